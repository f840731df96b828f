"""`access-reporter`: thin commands over `pipeline.run`; every known error becomes a message
with a hint and an exit code (0 ok, 1 incomplete, 2 usage/config, 3 nothing collected)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from . import __version__
from .config import Settings, Transport, dump_yaml, load_data, load_file, redacted
from .deliver.driver import Preview
from .errors import ReporterError, UsageError
from .evidence import commands as evidence_commands
from .models import RunResult
from .pipeline import Dependencies, run
from .reviews import commands as review_commands
from .session import AwsOptions, SessionFactory, SessionHook
from .web import commands as web_commands

if TYPE_CHECKING:
    from .sandbox import Sandbox

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

    preview = sub.add_parser(
        "preview",
        help="render one owner's e-mail and attachments, or send them only to --to",
        description="Runs the report, then writes the owner's message to the run's outbox/ "
        "(or sends it only to --to). No one else is mailed, the delivery ledger is not "
        "touched, and the finding history is read from a copy.",
    )
    preview.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG)
    preview.add_argument("--owner", required=True, help="the owner's e-mail address")
    preview.add_argument("--to", help="send the message to this address only")
    preview.add_argument("--out", type=Path, default=Path("preview"), help="output folder")

    health = sub.add_parser(
        "health", help="the last scheduled run and the next one, as JSON (exit 1 if overdue)"
    )
    health.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG)

    validate = sub.add_parser("validate-config", help="validate a config file strictly")
    validate.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG)

    evidence_commands.add_parsers(sub)
    review_commands.add_parsers(sub)
    web_commands.add_parsers(sub)
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
        case "preview":
            return _preview(args.config, args.owner, args.to, args.out)
        case "health":
            return _health(args.config)
        case "validate-config":
            settings = load_file(args.config, os.environ)
            sys.stdout.write(dump_yaml(redacted(settings)))
            print(f"# {args.config}: valid", file=sys.stderr)
            return 0
        case "evidence":
            return evidence_commands.run_command(args)
        case "decisions":
            return review_commands.run_command(args)
        case "review":
            return review_commands.run_review_command(args)
        case "web":
            return web_commands.run_web_command(args)
        case "hash-password":
            return web_commands.hash_password_command()
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
                    "security_tooling_accounts": [sandbox.security_account_id],
                },
                "remediation": {
                    "protected_principals": [
                        {
                            "arn": "arn:aws:iam::*:role/break-glass-*",
                            "reason": "Break-glass administrator role for incidents; the "
                            "security team holds its credentials",
                        },
                        {
                            "arn": "arn:aws:iam::*:role/admin-breakglass*",
                            "reason": "Break-glass administrator role of the account team, "
                            "sealed in the incident runbook",
                        },
                    ]
                },
                "sources": {
                    "security_hub": {"enabled": True},
                    "access_analyzer": {"enabled": True},
                },
                "reports": {"output_dir": str(out)},
                "state": {
                    "database_url": f"sqlite:///{(out / '.state' / 'reporter.db').resolve()}"
                },
                "exceptions": {"rules": _demo_exceptions(sandbox)},
            },
            environ={},
            source="built-in demo settings",
        )
        print(f"Sandbox organization (seed {seed}): no AWS account was used.")
        first = _execute(settings, out, sandbox.session(), sandbox.configure_session)
        code = _report(first, sys.stdout)
        removed = _demo_review(settings, sandbox, first, out)
        if removed is None:
            return code
        second = _execute(settings, out, sandbox.session(), sandbox.configure_session)
    print("Second run, after the owner's decisions came back:")
    code = max(code, _report(second, sys.stdout))
    _demo_review_outcome(settings, second, removed, out)
    return code


def _demo_review(settings: Settings, sandbox: Sandbox, first: RunResult, out: Path) -> str | None:
    """Between the demo's two runs: one owner fills in their workbook (Remove, Keep, Not mine),
    it is imported, and the sandbox carries out the removal. Returns the removed finding's key,
    or None when no owner of a small sandbox has the three findings it takes."""
    import io
    import json

    from openpyxl import load_workbook

    from .evidence import LocalStore
    from .models import owner_slug
    from .reviews.commands import import_files
    from .state.decisions import DecisionStore

    run_dir = Path(first.run_dir)
    doc = json.loads((run_dir / "data" / "findings.json").read_bytes())
    removable = {e.principal_arn + e.finding_type: e for e in sandbox.reportable if e.finding_id}
    chosen = None
    for owner, _ in sorted(first.owners, key=lambda o: -o[1]):
        if owner in settings.owners.fallback:
            continue
        mine = [f for f in doc["findings"] if f["owner"] == owner
                and not f["organization_access"] and f["status"] == "active"]  # fmt: skip
        remove = next((f for f in mine if f["principal_arn"] + f["type"] in removable), None)
        others = [f for f in mine if f is not remove]
        if remove is not None and len(others) >= 2:
            chosen = owner, remove, others[0], others[1]
            break
    if chosen is None:
        print("\nNo owner of this sandbox has the three findings the review loop shows: skipped.")
        return None
    owner, remove, keep, not_mine = chosen
    until = (first.context.generated_at + timedelta(days=60)).date()
    wanted = {
        remove["key"]: ("Remove", None, ""),
        keep["key"]: ("Keep", until, "Runs the yearly disaster-recovery drill (DR-7)"),
        not_mine["key"]: ("Not mine", None, "Belongs to the data platform team"),
    }
    path = run_dir / "owners" / owner_slug(owner) / "findings.xlsx"
    book = load_workbook(path)
    sheet = book["Findings"]
    header = {cell.value: cell.column for cell in sheet[1]}
    for row in sheet.iter_rows(min_row=2):
        decision = wanted.get(str(row[header["key"] - 1].value))
        if decision is not None:
            for name, value in zip(("Decision", "Keep until", "Reason"), decision, strict=True):
                sheet.cell(row=row[0].row, column=header[name], value=value)
    returned = io.BytesIO()
    book.save(returned)
    # Beside the run folders, under names the evidence store never takes for a run.
    (out / ".returned").mkdir(exist_ok=True)
    (out / ".returned" / f"{owner_slug(owner)}.xlsx").write_bytes(returned.getvalue())
    print(f"\n{owner} returned the workbook filled in; `decisions import` records it:")
    with DecisionStore(settings.state.database_url) as store:
        import_files(
            settings,
            LocalStore(out),
            store,
            [(f"{owner_slug(owner)}.xlsx", returned.getvalue())],
            "security-team@example.com",
            datetime.now(UTC).replace(microsecond=0),
            sys.stdout,
        )
    sandbox.resolve([removable[remove["principal_arn"] + remove["type"]].finding_id])
    print(f"The sandbox removes {remove['principal_name']} as promised.\n")
    return str(remove["key"])


def _demo_review_outcome(settings: Settings, second: RunResult, removed: str, out: Path) -> None:
    """What the second run made of the decisions, and the attestation of the day."""
    import json

    from .evidence import LocalStore
    from .reviews.attestation import write_attestation
    from .state.decisions import DecisionStore

    doc = json.loads((Path(second.run_dir) / "data" / "decisions.json").read_bytes())
    for d in doc["decisions"]:
        name = d["principal_arn"].rsplit("/", 1)[-1]
        if d["state"] == "removed":
            print(f"  review: {name} removed, verified by run {d['verified']['run_id']}")
        elif d["state"] == "kept":
            print(f"  review: {name} kept until {d['keep_until']} (exception, source: review)")
        elif d["state"] == "triage":
            print(f"  review: {name} not mine: in the security team's triage list")
    assert any(d["key"] == removed and d["state"] == "removed" for d in doc["decisions"])
    with DecisionStore(settings.state.database_url) as store:
        history = store.history()
    today = second.context.generated_at.date()
    folder = write_attestation(
        settings, LocalStore(out), history, today, today, out / ".attestations",
        datetime.now(UTC).replace(microsecond=0),
    )  # fmt: skip
    print(f"Attestation: {folder}")


def _demo_exceptions(sandbox: Sandbox) -> list[dict[str, object]]:
    """One approved exception, so the demo shows the excepted section and an expiry notice."""
    from .sandbox.data import (
        BREAK_GLASS_ROLE,
        CONTROL_TOWER_ROLES,
        ORG_ACCESS_ROLE,
        STACKSET_ROLE,
        TRUSTED_BY_MANAGEMENT_ROLE,
    )

    # Not one of the organization access roles: those are handled apart, exception or not.
    kept = {ORG_ACCESS_ROLE, STACKSET_ROLE, TRUSTED_BY_MANAGEMENT_ROLE, BREAK_GLASS_ROLE}
    kept.update(CONTROL_TOWER_ROLES)
    role = next(
        (
            e
            for e in sandbox.reportable
            if e.finding_type == "UnusedIAMRole"
            and e.owner
            and e.principal_arn.rsplit("/", 1)[-1] not in kept
        ),
        None,
    )
    if role is None:
        return []
    return [
        {
            "id": "demo-break-glass",
            "principal_arn": role.principal_arn,
            "types": ["UnusedIAMRole"],
            "reason": "break-glass role for incident response; reviewed every quarter",
            "approved_by": "security-team@example.com",
            "expires": (datetime.now(UTC) + timedelta(days=10)).date().isoformat(),
        }
    ]


def _run(config: Path, out: Path | None, no_send: bool, files: tuple[Path, ...] = ()) -> int:
    for path in files:
        if not path.is_file():
            raise UsageError(f"--from-file {path}: no such file")
    if files and no_send and config == DEFAULT_CONFIG and not config.exists():
        settings = load_data({}, os.environ, source="built-in defaults")
    else:
        settings = load_file(config, os.environ)
    if no_send:
        settings = _with_mail(settings, transport=Transport.OUTBOX)
    base = None if files else boto3.Session()
    result = _execute(settings, out or Path(settings.reports.output_dir), base, None, files)
    return _report(result, sys.stdout)


def _with_mail(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update={"mail": settings.mail.model_copy(update=changes)})


def _serve(config: Path) -> int:
    from .schedule import RunRequest, Service, configure_logging, serve_forever

    settings = load_file(config, os.environ)
    schedule = settings.schedule
    configure_logging(sys.stderr)
    log = logging.getLogger(__name__)

    def job(request: RunRequest) -> str:
        def progress(message: str) -> None:
            request.checkpoint()  # the stages' boundaries are where a stop request is honoured
            log.info("%s", message)

        result = _execute(
            settings,
            Path(settings.reports.output_dir),
            boto3.Session(),
            None,
            delivery_round=request.round_id,
            delivery_slot=request.slot,
            should_stop=request.should_stop,
            progress=progress,
        )
        log.info(
            "run %s: %d findings, %d owners, %d undelivered, exit %d",
            result.context.run_id,
            result.findings,
            len(result.owners),
            len(result.undelivered),
            result.exit_code,
        )
        return result.context.run_id

    def retry() -> None:
        from .deliver.driver import close_deliverer, open_deliverer
        from .render.environment import make_environment

        deliverer = open_deliverer(
            settings,
            env=make_environment(settings.reports.template_dir),
            run_id="retry",
            round_id="retry",
            write=_no_outbox,
            sessions=_sessions(settings, boto3.Session(), None),
        )
        try:
            done = deliverer.retry_queued(until_only=True)
        finally:
            close_deliverer(deliverer)
        for d in done:
            log.info("retried %s to %s of round %s: %s", d.kind, d.recipient, d.round_id,
                     d.status)  # fmt: skip

    check_service(settings, boto3.Session())
    service = Service(
        database_url=settings.state.database_url,
        job=job,
        when=schedule.trigger(),
        timezone=schedule.timezone,
        misfire_grace_seconds=schedule.misfire_grace_seconds,
        lease_seconds=schedule.lock_lease_seconds,
        retry=retry if settings.mail.transport is not Transport.OUTBOX else None,
        retry_interval_seconds=settings.mail.retry.interval_minutes * 60,
    )
    log.info("serving %r in %s", schedule.cron, schedule.timezone)
    serve_forever(service)
    return 0


def _no_outbox(name: str, data: bytes) -> None:
    raise AssertionError("the retry job has no outbox")  # the outbox keeps no ledger to retry


def check_service(settings: Settings, base: boto3.Session) -> None:
    """What `serve` needs before it waits for its first slot, checked now rather than found
    missing a week later: the state database opens and holds its tables, and the credentials
    work (STS GetCallerIdentity, which needs no permission). Raises StateError or UsageError
    (exit 2) with the reason."""
    from .state import open_state

    open_state(settings.state.database_url).dispose()
    sessions = _sessions(settings, base, None)
    try:
        sessions.client("sts", region=settings.organization.home_region).get_caller_identity()
    except NoCredentialsError as exc:
        raise UsageError(
            "serve: no AWS credentials\n"
            "    hint: give the container a task role, or set AWS_PROFILE / the AWS_* variables"
        ) from exc
    except (ClientError, BotoCoreError) as exc:
        raise UsageError(
            f"serve: the AWS credentials do not work: {exc}\n"
            "    hint: check the role or profile, and aws.endpoint_url if set"
        ) from exc


def _preview(config: Path, owner: str, to: str | None, out: Path) -> int:
    import tempfile

    from .deliver.driver import Preview

    settings = load_file(config, os.environ)
    if to is not None and not settings.owners.allows(to):
        raise UsageError(
            f"--to {to}: outside owners.allowed_domains\n"
            f"    hint: use an address at {', '.join(settings.owners.allowed_domains)}"
        )
    with tempfile.TemporaryDirectory(prefix="access-reporter-preview-") as scratch:
        # The history is read from a copy: a preview must not move first-seen or resolved dates.
        settings = settings.model_copy(
            update={"state": settings.state.model_copy(
                update={"database_url": _scratch_copy(settings.state.database_url, scratch)})}
        )  # fmt: skip
        if hasattr(settings, "evidence"):
            # …and is never published to the evidence store.
            settings = settings.model_copy(
                update={"evidence": settings.evidence.model_copy(update={"store": "local"})}
            )
        result = _execute(
            settings, out, boto3.Session(), None, preview=Preview(owner=owner.lower(), to=to)
        )
    if all(o.lower() != owner.lower() for o, _ in result.owners):
        raise UsageError(
            f"--owner {owner}: no findings for this owner in this run\n"
            f"    hint: owners in this run: {', '.join(o for o, _ in result.owners) or 'none'}"
        )
    where = f"sent to {to}" if to else f"written to {result.run_dir}/outbox/"
    print(f"Preview of {owner}'s message {where}.")
    return 1 if result.undelivered else 0


def _scratch_copy(url: str, scratch: str) -> str:
    """A SQLite state database is copied (faithful history); any other gets an empty one."""
    import shutil

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    target = Path(scratch) / "state.db"
    source = Path(parsed.database or "")
    if parsed.get_backend_name() == "sqlite" and parsed.database and source.is_file():
        shutil.copyfile(source, target)
    return f"sqlite:///{target}"


def _health(config: Path) -> int:
    import json

    from .schedule import health

    settings = load_file(config, os.environ)
    schedule = settings.schedule
    status = health(
        settings.state.database_url,
        schedule.trigger(),
        schedule.misfire_grace_seconds,
        datetime.now(UTC),
    )
    print(json.dumps(status, indent=2))
    return 0 if status["ok"] else 1


def _execute(
    settings: Settings,
    out: Path,
    base: boto3.Session | None,
    configure: SessionHook | None,
    files: tuple[Path, ...] = (),
    *,
    delivery_round: str | None = None,
    delivery_slot: datetime | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    progress: Callable[[str], None] | None = None,
    preview: Preview | None = None,
) -> RunResult:
    deps = Dependencies(
        sessions=_sessions(settings, base, configure) if base is not None else None,
        output_dir=out,
        files=files,
        progress=progress or (_progress if sys.stderr.isatty() else lambda message: None),
        delivery_round=delivery_round,
        delivery_slot=delivery_slot,
        should_stop=should_stop,
        preview=preview,
    )
    return run(settings, deps, datetime.now(UTC).replace(microsecond=0))


def _sessions(
    settings: Settings, base: boto3.Session, configure: SessionHook | None
) -> SessionFactory:
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
    return SessionFactory(base, options, configure)


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
    for origin, forged in result.lookalikes:
        print(
            f"  WARNING {forged} finding(s) claiming to be Access Analyzer's came from another "
            f"product: {origin.product}, account {origin.account_id or 'unknown'} "
            "(quarantined, data/quarantine.json)",
            file=out,
        )
    for c in result.coverage:
        if c.in_scope and not c.covered:
            print(f"  NOT COVERED {c.account_id} {c.account_name}: {c.reason}", file=out)
    for recipient, error in result.undelivered:
        print(f"  NOT DELIVERED {recipient}: {error}", file=out)
    print(f"Reports: {result.run_dir}", file=out)
    return result.exit_code
