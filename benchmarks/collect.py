"""Collect benchmark (issue 3): calls, wall time, cache and memory against floors of the same run.

    .venv/bin/python -m benchmarks.collect                 # 2,000 accounts x 50 = 100,000 findings
    .venv/bin/python -m benchmarks.collect --quick         # 200 x 50 = 10,000 findings
    .venv/bin/python -m benchmarks.collect --sources security_hub     # one source only

The sandbox enforces the documented rates, time-scaled (`--scale`, default 10: GetFindings at
30/s burst 6 instead of 3/s), by answering ThrottlingException to a client that goes faster;
Access Analyzer publishes no rate, so the sandbox enforces an assumed `--aa-rate` (scaled the
same way) and the reporter is configured to pace at it (`collection.access_analyzer_rate`).

Figures, each against a baseline computed in the same run:

1. API calls per operation against the minimum the data allows: ceil(records / 100) pages of
   GetFindings (every record the server returns, decoys included) and ListFindingsV2, one
   GetFindingV2 per finding plus one per further 10 details, one GenerateFindingRecommendation
   per UnusedPermission finding and two GetFindingRecommendation (the sandbox answers the first
   poll IN_PROGRESS, as AWS does while it computes). Target: total <= 1.05 x minimum.
2. Collection wall time against the quota floor: per source, (minimum calls - burst) / rate of
   its paced operations; the sources run concurrently, so the floor is the largest. Target
   <= 1.2 x floor.
3. GetFindingV2 calls of a second, unchanged run (same state database) against the first.
   Target <= 5 %.
4. Peak memory of the process tree (this process, sandbox included, and any process it starts;
   `benchmarks.memory.TreeSampler`), with this process's own peak. Target <= 500 MB.

Also printed: the retry mode each paced service's clients got, and the process's CPU time
over the first run's wall time with the machine's load average, to tell a run held back by
the rates from one held back by CPU (the sandbox answers in-process, under the same GIL).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.memory import MB, TreeSampler
from reporter.collect import Collection, collect
from reporter.config import Settings, load_data
from reporter.discover import Scope, fetch_organization, parse_accounts, split_scope
from reporter.ratelimit import DOCUMENTED_RATES, Limiter, Rate
from reporter.sandbox import Sandbox, SandboxSpec
from reporter.session import AwsOptions, SessionFactory
from reporter.telemetry import NullDisplay, Telemetry

DETAILS_PAGE = 10  # the sandbox's GetFindingV2 page of findingDetails
PAGE = 100
RECOMMENDATION = "accessanalyzer.GetFindingRecommendation"


def _settings(sandbox: Sandbox, db: Path, sources: set[str], aa_rate: float) -> Settings:
    return load_data(
        {
            "organization": {
                "home_region": sandbox.home_region,
                "delegated_admin_role_arn": sandbox.delegated_admin_role_arn,
                "member_role_name": sandbox.member_role_name,
            },
            "sources": {
                "security_hub": {"enabled": "security_hub" in sources},
                "access_analyzer": {"enabled": "access_analyzer" in sources},
                "iam": {"enabled": False},
            },
            "collection": {"workers": 8, "access_analyzer_rate": aa_rate},
            "state": {"database_url": f"sqlite:///{db}"},
        },
        environ={},
        source="benchmark",
    )


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run(
    sandbox: Sandbox, settings: Settings, scale: float, show_modes: bool = False
) -> tuple[Collection, float]:
    factory = SessionFactory(
        sandbox.session(),
        AwsOptions(region=sandbox.home_region),
        sandbox.configure_session,
        limiter=Limiter(DOCUMENTED_RATES, scale=scale),
        telemetry=Telemetry(),
    )
    accounts = parse_accounts(fetch_organization(factory.client("organizations")))
    assess, out_of_scope = split_scope(accounts, Scope())
    started = time.monotonic()
    result = collect(
        settings,
        factory,
        assess,
        out_of_scope,
        lambda message: None,
        settings.state.database_url,
        sandbox.now,
        display=NullDisplay(),
    )
    wall = time.monotonic() - started
    if show_modes:
        modes = {name: factory.retry_mode(name) for name in ("securityhub", "accessanalyzer")}
        print(f"retry modes: {modes}")
    return result, wall


def _minimum(sandbox: Sandbox, result: Collection) -> dict[str, int]:
    minimum: dict[str, int] = {}
    if "security_hub" in result.raw:
        served = len(result.raw["security_hub"]) + sum(result.skipped.values())
        minimum["securityhub.GetFindings"] = math.ceil(served / PAGE)
    if "access_analyzer" in result.raw:
        records = result.raw["access_analyzer"]
        minimum["accessanalyzer.ListFindingsV2"] = max(1, math.ceil(len(records) / PAGE))
        minimum["accessanalyzer.GetFindingV2"] = sum(
            max(1, math.ceil(len(r.payload.get("findingDetails") or ()) / DETAILS_PAGE))
            for r in records
        )
        permission = sum(1 for r in records if r.payload["findingType"] == "UnusedPermission")
        minimum["accessanalyzer.GenerateFindingRecommendation"] = permission
        minimum["accessanalyzer.GetFindingRecommendation"] = 2 * permission
    return minimum


def _floor(minimum: dict[str, int], scale: float, aa_rate: float) -> dict[str, float]:
    """Seconds each source needs at least at the enforced rates."""
    hub = DOCUMENTED_RATES["securityhub.GetFindings"].scaled(scale)
    floors: dict[str, float] = {}
    if "securityhub.GetFindings" in minimum:
        floors["security_hub"] = max(0, minimum["securityhub.GetFindings"] - hub.burst) / (
            hub.per_second
        )
    aa_calls = sum(v for k, v in minimum.items() if k.startswith("accessanalyzer."))
    if aa_calls and aa_rate > 0:
        aa = Rate(aa_rate * scale, max(1, int(aa_rate)))
        floors["access_analyzer"] = max(0, aa_calls - aa.burst) / aa.per_second
    return floors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 accounts x 50 findings")
    parser.add_argument("--accounts", type=int, default=None)
    parser.add_argument("--findings-per-account", type=int, default=50)
    parser.add_argument("--scale", type=float, default=10.0, help="time scale of the rates")
    parser.add_argument(
        "--aa-rate", type=float, default=20.0, help="assumed Access Analyzer rate (requests/s)"
    )
    parser.add_argument(
        "--sources",
        default="security_hub,access_analyzer",
        help="comma-separated: security_hub, access_analyzer",
    )
    args = parser.parse_args(argv)
    accounts = args.accounts or (200 if args.quick else 2_000)
    sources = set(args.sources.split(","))
    spec = SandboxSpec(
        member_accounts=accounts,
        findings_per_account=args.findings_per_account,
        rate_scale=args.scale,
        access_analyzer_rate=args.aa_rate,
    )
    started = time.monotonic()
    tree = TreeSampler()
    with tree, tempfile.TemporaryDirectory() as tmp, Sandbox(spec) as sandbox:
        built = time.monotonic() - started
        settings = _settings(sandbox, Path(tmp) / "state.db", sources, args.aa_rate)
        print(
            f"sandbox: {accounts} member accounts, {len(sandbox.expected):,} findings, "
            f"built in {built:.1f} s; rates x{args.scale:g}, Access Analyzer assumed "
            f"{args.aa_rate:g}/s; sources {', '.join(sorted(sources))}"
        )
        cpu_before = _cpu_seconds()
        first, wall = _run(sandbox, settings, args.scale, show_modes=True)
        cpu = _cpu_seconds() - cpu_before
        load = os.getloadavg()[0]
        second, wall2 = _run(sandbox, settings, args.scale)
        throttled = dict(sandbox.faults.throttled)
    assert first.telemetry is not None and second.telemetry is not None
    calls: dict[str, int] = dict(first.telemetry.calls)
    minimum = _minimum(sandbox, first)
    print("\n1. API calls per operation (first run) against the minimum")
    print(f"   {'operation':<48} {'calls':>8} {'minimum':>8} {'ratio':>6}")
    for op in sorted(calls):
        low = minimum.get(op)
        ratio = f"{calls[op] / low:.3f}" if low else "-"
        print(f"   {op:<48} {calls[op]:>8,} {low if low is not None else '-':>8} {ratio:>6}")
    counted = sum(calls.get(op, 0) for op in minimum)
    total_min = sum(minimum.values())
    calls_ratio = counted / total_min if total_min else 0.0
    print(
        f"   operations with a minimum: {counted:,} calls / {total_min:,} minimum = "
        f"{calls_ratio:.3f} (target <= 1.05); retries {sum(first.telemetry.retries.values())}, "
        f"throttled {sum(first.telemetry.throttles.values())} (sandbox refused "
        f"{sum(throttled.values())} over both runs)"
    )
    if first.telemetry.throttles:
        print(f"   throttled by operation: {dict(sorted(first.telemetry.throttles.items()))}")
    floors = _floor(minimum, args.scale, args.aa_rate)
    floor = max(floors.values(), default=0.0)
    print("\n2. Collection wall time against the quota floor")
    for name, stats in sorted(first.telemetry.sources.items()):
        print(
            f"   {name:<16} {stats.seconds:8.1f} s   floor {floors.get(name, 0.0):8.1f} s   "
            f"{stats.records:,} records in {stats.pages:,} pages"
        )
    print(
        f"   collection {wall:.1f} s / floor {floor:.1f} s = "
        f"{wall / floor if floor else float('nan'):.2f} (target <= 1.2)"
    )
    print(
        f"   process CPU {cpu:.1f} s over {wall:.1f} s wall = {cpu / wall:.0%} of one core "
        f"(GIL-bound near 100 %); load average {load:.2f} on {os.cpu_count()} CPUs"
    )
    before = calls.get("accessanalyzer.GetFindingV2", 0)
    after = second.telemetry.calls.get("accessanalyzer.GetFindingV2", 0)
    print("\n3. Unchanged second run (same state database)")
    if before:
        print(
            f"   GetFindingV2 {after:,} / {before:,} = {after / before:.1%} (target <= 5 %); "
            f"GetFindingRecommendation {second.telemetry.calls.get(RECOMMENDATION, 0):,}; "
            f"wall {wall2:.1f} s"
        )
    else:
        print("   (Access Analyzer not read)")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / MB * 1024
    print(
        f"\n4. Memory: {tree.summary()}; this process's ru_maxrss {rss:,.0f} MB "
        "(target <= 500 MB; sandbox and both runs included)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
