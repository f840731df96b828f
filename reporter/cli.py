"""`access-reporter`: thin commands over `pipeline.run`; every known error becomes a message
with a hint and an exit code (0 ok, 1 incomplete, 2 usage/config, 3 nothing collected)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from . import __version__
from .config import Settings, dump_yaml, load_data, load_file, redacted
from .errors import ReporterError, UsageError
from .evidence import MANIFEST, verify
from .models import RunResult
from .pipeline import Dependencies, run
from .session import AwsOptions, SessionFactory, SessionHook

DEFAULT_CONFIG = Path("config/reporter.yaml")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="access-reporter",
        description="Collect IAM Access Analyzer unused-access findings across an AWS "
        "organization and send each owner one PDF + Excel report.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the whole pipeline on the built-in sandbox org")
    demo.add_argument("--out", type=Path, default=Path("reports"), help="output folder")
    demo.add_argument("--seed", type=int, default=7, help="sandbox seed (same seed, same org)")
    demo.add_argument("--accounts", type=int, default=12, help="sandbox member accounts")

    run_cmd = sub.add_parser("run", help="one run now, against AWS")
    run_cmd.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG)
    run_cmd.add_argument("--out", type=Path, help="output folder (default: reports.output_dir)")
    run_cmd.add_argument(
        "--no-send", action="store_true", help="write e-mails to the run's outbox/ only"
    )
    run_cmd.add_argument(
        "--from-file",
        type=Path,
        action="append",
        default=[],
        metavar="F",
        help="read exported findings JSON instead of AWS (repeatable); with --no-send, no "
        "config file is needed",
    )

    serve = sub.add_parser("serve", help="run on the schedule from the config until stopped")
    serve.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG)

    validate = sub.add_parser("validate-config", help="validate a config file strictly")
    validate.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG)

    evidence = sub.add_parser("evidence", help="audit evidence of past runs")
    ev_sub = evidence.add_subparsers(dest="evidence_command", required=True, metavar="ACTION")
    for name, text in (
        ("list", "list runs"),
        ("show", "show a run's manifest"),
        ("verify", "recompute every hash of a run"),
    ):
        p = ev_sub.add_parser(name, help=text)
        if name != "list":
            p.add_argument("run_id")
        p.add_argument("--dir", type=Path, default=Path("reports"), help="evidence folder")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return _dispatch(args)
    except ReporterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except NoCredentialsError:
        print(
            "error: no AWS credentials found\n"
            "    hint: set AWS_PROFILE or run inside a role; `access-reporter demo` needs none",
            file=sys.stderr,
        )
        return 2
    except (ClientError, BotoCoreError) as exc:
        print(f"error: AWS call failed: {exc}", file=sys.stderr)
        return 3
    except BrokenPipeError:
        # The reader went away (`| head`): the run itself is complete; stay quiet on exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; no run folder was completed", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    match args.command:
        case "demo":
            return _demo(args.out, args.seed, args.accounts)
        case "run":
            return _run(args.config, args.out, args.no_send, tuple(args.from_file))
        case "serve":
            return _serve(args.config)
        case "validate-config":
            settings = load_file(args.config, os.environ)
            sys.stdout.write(dump_yaml(redacted(settings)))
            print(f"# {args.config}: valid", file=sys.stderr)
            return 0
        case "evidence":
            return _evidence(args)
    raise UsageError(f"unknown command {args.command!r}")


def _demo(out: Path, seed: int, accounts: int) -> int:
    from .sandbox import Sandbox, SandboxSpec  # moto is imported only when the demo runs

    with Sandbox(SandboxSpec(seed=seed, member_accounts=accounts)) as sandbox:
        settings = load_data(
            {
                "organization": {
                    "home_region": sandbox.home_region,
                    "delegated_admin_role_arn": sandbox.delegated_admin_role_arn,
                    "member_role_name": sandbox.member_role_name,
                },
                "sources": {
                    "security_hub": {"enabled": True},
                    "access_analyzer": {"enabled": True},
                },
                "reports": {"output_dir": str(out)},
                "state": {
                    "database_url": f"sqlite:///{(out / '.state' / 'reporter.db').resolve()}"
                },
            },
            environ={},
            source="built-in demo settings",
        )
        result = _execute(settings, out, sandbox.session(), sandbox.configure_session)
    print(f"Sandbox organization (seed {seed}): no AWS account was used.")
    return _report(result, sys.stdout)


def _run(config: Path, out: Path | None, no_send: bool, files: tuple[Path, ...] = ()) -> int:
    for path in files:
        if not path.is_file():
            raise UsageError(f"--from-file {path}: no such file")
    if files and no_send and config == DEFAULT_CONFIG and not config.exists():
        settings = load_data({}, os.environ, source="built-in defaults")
    else:
        settings = load_file(config, os.environ)
    if not no_send:
        _require_outbox(settings, "pass --no-send to write the e-mails to the run's outbox/")
    base = None if files else boto3.Session()
    result = _execute(settings, out or Path(settings.reports.output_dir), base, None, files)
    return _report(result, sys.stdout)


def _require_outbox(settings: Settings, hint: str) -> None:
    """SMTP and SES delivery are not built yet: refuse rather than pretend to send."""
    if settings.mail.transport.value != "outbox":
        raise UsageError(
            f"mail.transport {settings.mail.transport.value!r} is not available in this "
            f"version yet\n    hint: {hint}"
        )


def _serve(config: Path) -> int:
    from .schedule import next_run, serve

    settings = load_file(config, os.environ)
    schedule = settings.schedule
    _require_outbox(settings, "use mail.transport: outbox")

    def job() -> None:
        try:
            result = _execute(settings, Path(settings.reports.output_dir), boto3.Session(), None)
            _report(result, sys.stdout)
        except (ReporterError, ClientError, BotoCoreError) as exc:
            # A failed week must not stop the service: log it and wait for the next one.
            logging.getLogger(__name__).error("scheduled run failed: %s", exc)

    upcoming = next_run(schedule.cron, schedule.timezone, datetime.now(UTC))
    print(f"serving: {schedule.cron!r} in {schedule.timezone}; next run {upcoming}")
    serve(schedule.cron, schedule.timezone, schedule.misfire_grace_seconds, job)
    return 0


def _execute(
    settings: Settings,
    out: Path,
    base: boto3.Session | None,
    configure: SessionHook | None,
    files: tuple[Path, ...] = (),
) -> RunResult:
    org = settings.organization
    external_id = org.external_id.get_secret_value() if org.external_id else None
    options = AwsOptions(
        region=org.home_region,
        endpoint_url=settings.aws.endpoint_url,
        retry_mode=settings.aws.retry_mode.value,
        max_attempts=settings.aws.max_attempts,
        session_name=org.session_name,
        external_id=external_id,
    )
    deps = Dependencies(
        sessions=SessionFactory(base, options, configure) if base is not None else None,
        output_dir=out,
        files=files,
        progress=_progress if sys.stderr.isatty() else lambda message: None,
    )
    return run(settings, deps, datetime.now(UTC).replace(microsecond=0))


def _progress(message: str) -> None:
    print(f"  … {message}", file=sys.stderr)


def _report(result: RunResult, out: TextIO) -> int:
    covered = sum(1 for c in result.coverage if c.covered)
    in_scope = sum(1 for c in result.coverage if c.in_scope)
    rows = [("owner", "findings"), *((o, str(n)) for o, n in result.owners)]
    width = max(len(r[0]) for r in rows)
    print(
        f"Run {result.context.run_id}: {covered}/{in_scope} in-scope accounts covered "
        f"({len(result.coverage) - in_scope} not in scope), {len(result.owners)} owners, "
        f"{result.findings} findings ({result.new} new, {result.resolved} resolved since the "
        f"last run), {result.files} files",
        file=out,
    )
    for owner, count in rows:
        print(f"  {owner:<{width}}  {count:>8}", file=out)
    if result.skipped or result.quarantined:
        print(
            f"  skipped {result.skipped} record(s) (not unused access, archived, or out of "
            f"scope: reasons in manifest.json); quarantined {result.quarantined} malformed "
            "record(s) (data/quarantine.json)",
            file=out,
        )
    for c in result.coverage:
        if c.in_scope and not c.covered:
            print(f"  NOT COVERED {c.account_id} {c.account_name}: {c.reason}", file=out)
    print(f"Reports: {result.run_dir}", file=out)
    return result.exit_code


def _evidence(args: argparse.Namespace) -> int:
    root: Path = args.dir
    if args.evidence_command == "list":
        for manifest_path in sorted(root.glob(f"*/{MANIFEST}")):
            if manifest_path.parent.name.startswith("."):
                continue  # an unfinished `.<run>.partial` folder is not a run
            try:
                manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
                counts = manifest.get("counts", {})
                run_id = manifest["run_id"]
            except (ValueError, KeyError, AttributeError) as exc:
                print(f"{manifest_path.parent.name}  UNREADABLE manifest ({exc})")
                continue
            print(
                f"{run_id}  {manifest.get('started_at', '')}  "
                f"findings={counts.get('findings', '?')} owners={counts.get('owners', '?')} "
                f"exit={manifest.get('exit_code', '?')}"
            )
        return 0
    run_dir = root / args.run_id
    if args.run_id.startswith(".") or "/" in args.run_id or not (run_dir / MANIFEST).is_file():
        raise UsageError(
            f"no complete run {args.run_id!r} in {root}\n"
            "    hint: `access-reporter evidence list` shows the runs"
        )
    if args.evidence_command == "show":
        sys.stdout.write((run_dir / MANIFEST).read_text(encoding="utf-8"))
        return 0
    result = verify(run_dir)
    for label, paths in (
        ("missing", result.missing),
        ("changed", result.changed),
        ("extra", result.extra),
    ):
        for path in paths:
            print(f"{label}: {path}")
    print(f"{args.run_id}: {'verified' if result.ok else 'FAILED verification'}")
    return 0 if result.ok else 1
