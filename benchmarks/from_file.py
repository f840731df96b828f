"""From-file benchmark (issue 22): a whole `run --from-file` on a Security Hub export.

    .venv/bin/python -m benchmarks.from_file                     # 1,000 accounts x 100 findings
    .venv/bin/python -m benchmarks.from_file --findings 40000    # 1,000 accounts x 40
    .venv/bin/python -m benchmarks.from_file --quick             # 100 accounts x 20, 50 owners

The export is what `aws securityhub get-findings` prints (`{"Findings": [...]}`, indented by 4
like the CLI), one ASFF record per finding of the sandbox's plan (`reporter/sandbox/data.py`,
`records.py`); two accounts per owner through `owners.accounts` (an export names accounts, not
their tags). The run happens in a child process, as `access-reporter run -c CONFIG --no-send
--from-file EXPORT` does it (settings from the file, outbox delivery, 0 = one render worker per
CPU), with each stage's start stamped with its time and the process's memory.

Figures: wall time of the child, and the peak memory of the process tree (the child and its
render workers together, sampled from /proc by `benchmarks.memory.TreeSampler`), with each
process's own peak. Targets at 100,000 findings and 500 owners: <= 150 s on 2 cores, <= 800 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.memory import TreeSampler

PER_OWNER = 2  # accounts per owner


def write_export(path: Path, accounts: int, per_account: int, now: datetime) -> list[str]:
    """The ASFF export, written record by record; returns the member account ids."""
    from reporter.sandbox import records
    from reporter.sandbox.data import build_plan
    from reporter.sandbox.spec import SandboxSpec

    plan = build_plan(
        SandboxSpec(member_accounts=accounts, findings_per_account=per_account, now=now),
        "123456789012",
        now,
    )
    security = plan.security.id
    analyzer = records.AnalyzerRef(
        f"arn:aws:access-analyzer:us-east-1:{security}:analyzer/unused-access",
        "unused-access",
        security,
        "us-east-1",
    )

    def pieces() -> Iterator[str]:
        yield '{\n    "Findings": ['
        for n, finding in enumerate(plan.findings):
            text = json.dumps(records.asff_record(finding, analyzer, now), indent=4)
            yield ("," if n else "") + "\n" + textwrap.indent(text, " " * 8)
        yield "\n    ]\n}\n"

    with path.open("w", encoding="utf-8") as out:
        out.writelines(pieces())
    return sorted(a.id for a in plan.members)


def write_config(path: Path, tmp: Path, members: list[str], workers: int) -> int:
    """Settings as a deployment would write them; returns the number of owners."""
    owners = {
        account: f"team-{n // PER_OWNER:03d}@example.com" for n, account in enumerate(members)
    }
    config = {
        "owners": {"accounts": owners, "allowed_domains": ["example.com"]},
        "reports": {"render_workers": workers},
        "state": {"database_url": f"sqlite:///{tmp / 'state.db'}"},
        "mail": {"transport": "outbox"},
    }
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return len(set(owners.values()))


def child(config: Path, out: Path, export: Path) -> int:
    """The run itself, as `access-reporter run -c CONFIG --no-send --from-file EXPORT`."""
    from reporter.config import load_file
    from reporter.pipeline import Dependencies, run

    started = time.monotonic()

    def stamp(message: str) -> None:
        status = Path("/proc/self/status").read_text().splitlines()
        mem = {
            k: int(v.split()[0]) // 1024
            for k, v in (s.split(":", 1) for s in status)
            if k in ("VmRSS", "VmHWM")
        }
        print(
            f"  {time.monotonic() - started:7.1f} s  RSS {mem['VmRSS']:5,} MB  "
            f"(peak {mem['VmHWM']:5,} MB)  {message}",
            file=sys.stderr,
            flush=True,
        )

    settings = load_file(config, os.environ)
    result = run(
        settings,
        Dependencies(sessions=None, output_dir=out, files=(export,), progress=stamp),
        datetime.now(UTC).replace(microsecond=0),
    )
    stamp(f"done: exit code {result.exit_code}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="100 accounts x 20 findings")
    parser.add_argument("--accounts", type=int, help="member accounts (default 1,000)")
    parser.add_argument("--findings", type=int, help="findings in the export (default 100,000)")
    parser.add_argument("--workers", type=int, default=0, help="render processes; 0 = per CPU")
    parser.add_argument("--keep", type=Path, help="write the export and the run here, and keep")
    parser.add_argument("--child", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(*args.child)
    accounts = args.accounts or (100 if args.quick else 1_000)
    findings = args.findings or (2_000 if args.quick else 100_000)
    per_account = max(1, findings // accounts)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        export, config, out = tmp / "get-findings.json", tmp / "config.yaml", tmp / "reports"
        started = time.monotonic()
        members = write_export(export, accounts, per_account, now)
        owners = write_config(config, tmp, members, args.workers)
        print(
            f"export: {accounts * per_account:,} ASFF records, {accounts:,} accounts, "
            f"{owners} owners, {export.stat().st_size / 1e6:,.0f} MB, written in "
            f"{time.monotonic() - started:.1f} s",
            flush=True,
        )
        command = [sys.executable, "-m", "benchmarks.from_file", "--child", config, out, export]
        started = time.monotonic()
        process = subprocess.Popen([str(c) for c in command])
        with TreeSampler(process.pid) as tree:
            _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            print(f"the run failed with exit code {process.returncode}")
            return 1
        (run_dir,) = (p for p in out.iterdir() if not p.name.startswith("."))
        manifest = json.loads((run_dir / "manifest.json").read_text())
        counts = manifest["counts"]
        files = manifest["files"]
    cpu = usage.ru_utime + usage.ru_stime
    print(
        f"run --from-file: {counts['findings']:,} findings, {counts['owners']} owners, "
        f"{len(files)} files ({sum(f['size'] for f in files) / 1e6:,.0f} MB) in {wall:,.1f} s "
        f"(target <= 150 s on {os.cpu_count()} CPUs); CPU {cpu:,.1f} s, "
        f"{cpu / wall:.2f} cores busy on average; load average {os.getloadavg()[0]:.2f}"
    )
    print(f"memory: {tree.summary()} (target <= 800 MB)")
    writer = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"        largest ru_maxrss in the tree {usage.ru_maxrss / 1024:,.0f} MB; "
        f"this process (the export's writer, not counted) {writer:,.0f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
