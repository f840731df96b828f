"""`access-reporter decisions import / list / approve`: owners' decisions in from returned
workbooks, what is in force, and the approval of a pending Keep.

Exit codes of `import`: 0 every decided row recorded (or already recorded), 1 some rows
rejected (each with its reason; nothing of a rejected row is kept), 2 a file that cannot be read
as a returned workbook, or whose run's evidence pack cannot be found (nothing of it recorded).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import io
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO

from reporter.config import Settings, load_data, load_file
from reporter.errors import UsageError
from reporter.evidence import EvidenceError, EvidenceStore, open_store

from .decisions import Decision, RecordedDecision, Rejection, validate_rows
from .workbook import ReviewFileError, read_returned

DEFAULT_CONFIG = Path("config/reporter.yaml")
FINDINGS_JSON = "data/findings.json"


def add_parsers(sub: Any) -> None:
    """Add `decisions` and its actions to the top-level subparsers."""
    decisions = sub.add_parser("decisions", help="owners' decisions from returned workbooks")
    actions = decisions.add_subparsers(dest="decisions_command", required=True, metavar="ACTION")

    def action(name: str, text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = actions.add_parser(name, help=text, description=text)
        p.add_argument("-c", "--config", type=Path, help=f"config file (default {DEFAULT_CONFIG})")
        return p

    imp = action(
        "import",
        "record the decisions of returned owner workbooks (exit 1 if rows were rejected, 2 if "
        "a file is unreadable)",
    )
    imp.add_argument("files", nargs="+", type=Path, metavar="FILE")
    imp.add_argument("--by", default="", help="who imports the files (recorded with them)")
    listing = action("list", "the decision in force on each finding")
    listing.add_argument("--owner", help="only this owner's decisions")
    listing.add_argument("--open", action="store_true", help="only what still needs something done")
    approve = action("approve", "approve a pending Keep (the owner's manager or security team)")
    approve.add_argument("id", type=int)
    approve.add_argument("--by", required=True, help="the approver's e-mail address")

    review = sub.add_parser("review", help="access review attestation for auditors")
    reviews = review.add_subparsers(dest="review_command", required=True, metavar="ACTION")
    text = (
        "write the access review attestation of a period (attestation.pdf, .xlsx, .json and a "
        "manifest that `evidence verify` checks)"
    )
    report = reviews.add_parser("report", help=text, description=text)
    report.add_argument("--from", dest="start", required=True, type=date.fromisoformat)
    report.add_argument("--to", dest="stop", required=True, type=date.fromisoformat)
    report.add_argument("-c", "--config", type=Path, help=f"config file (default {DEFAULT_CONFIG})")
    report.add_argument("-o", "--out", type=Path, default=Path("attestations"), help="folder")


def run_review_command(args: argparse.Namespace) -> int:
    from reporter.state.decisions import DecisionStore

    from .attestation import write_attestation

    if args.stop < args.start:
        raise UsageError("--to is before --from")
    settings = settings_for(args.config)
    now = datetime.now(UTC).replace(microsecond=0)
    with DecisionStore(settings.state.database_url) as store:
        history = store.history()
    folder = write_attestation(
        settings, open_store(settings), history, args.start, args.stop, args.out, now
    )
    print(f"Attestation: {folder}  (check it with `access-reporter evidence verify {folder}`)")
    return 0


def settings_for(config: Path | None) -> Settings:
    if config is not None:
        return load_file(config, os.environ)
    if DEFAULT_CONFIG.is_file():
        return load_file(DEFAULT_CONFIG, os.environ)
    return load_data({}, os.environ, source="built-in defaults")


def run_command(args: argparse.Namespace) -> int:
    from reporter.state.decisions import DecisionStore

    settings = settings_for(args.config)
    now = datetime.now(UTC).replace(microsecond=0)
    with DecisionStore(settings.state.database_url) as store:
        match args.decisions_command:
            case "import":
                files = [(p.name, _read(p)) for p in args.files]
                return import_files(
                    settings, open_store(settings), store, files, args.by, now, sys.stdout
                )
            case "list":
                return list_decisions(
                    settings, store, now.date(), sys.stdout, owner=args.owner, only_open=args.open
                )
            case "approve":
                return approve(settings, store, args.id, args.by, now, sys.stdout)
    raise UsageError(f"unknown decisions action {args.decisions_command!r}")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from exc


def run_owners(evidence: EvidenceStore, run_id: str, name: str) -> dict[str, str | None]:
    """finding key → owner in the run, from the run's `data/findings.json`."""
    # Record by record: a run's findings.json can be hundreds of megabytes. (Imported by name:
    # ijson ships no type information.)
    ijson = importlib.import_module("ijson")
    try:
        raw = evidence.read(run_id, FINDINGS_JSON)
    except EvidenceError as exc:
        raise ReviewFileError(
            f"{name}: the evidence pack of its run {run_id} cannot be read ({exc})\n"
            f"    hint: import it with the config of the deployment that sent it "
            f"(evidence store {evidence.location})"
        ) from exc
    try:
        return {
            str(record["key"]): record.get("owner")
            for record in ijson.items(io.BytesIO(raw), "findings.item")
        }
    except (ijson.JSONError, KeyError, TypeError) as exc:
        raise ReviewFileError(f"{name}: run {run_id}'s {FINDINGS_JSON} is unreadable") from exc


@dataclass(frozen=True)
class FileOutcome:
    name: str
    recorded: tuple[RecordedDecision, ...] = ()
    unchanged: int = 0
    rejected: tuple[Rejection, ...] = ()
    error: str = ""

    @property
    def exit_code(self) -> int:
        return 2 if self.error else 1 if self.rejected else 0


def import_one(
    settings: Settings,
    evidence: EvidenceStore,
    store: Any,
    name: str,
    data: bytes,
    by: str,
    now: datetime,
) -> FileOutcome:
    """Read, check and record one returned workbook."""
    try:
        workbook = read_returned(data, name)
        owners = run_owners(evidence, workbook.run_id, name)
    except ReviewFileError as exc:
        return FileOutcome(name, error=str(exc))
    valid, rejected = validate_rows(
        workbook, owners, settings.owners.fallback, now.date(), settings.reviews.max_keep_days
    )
    result = store.record(
        valid,
        owner=workbook.owner,
        imported_by=by or workbook.owner,
        run_id=workbook.run_id,
        sha256=hashlib.sha256(data).hexdigest(),
        filename=name,
        content=data,
        rejected=len(rejected),
        now=now,
    )
    return FileOutcome(name, result.recorded, result.unchanged, tuple(rejected))


def import_files(
    settings: Settings,
    evidence: EvidenceStore,
    store: Any,
    files: Sequence[tuple[str, bytes]],
    by: str,
    now: datetime,
    out: TextIO,
) -> int:
    code = 0
    for name, data in files:
        outcome = import_one(settings, evidence, store, name, data, by, now)
        code = max(code, outcome.exit_code)
        if outcome.error:
            print(f"error: {outcome.error}", file=sys.stderr)
            continue
        print(
            f"{name}: {len(outcome.recorded)} recorded, {outcome.unchanged} already recorded, "
            f"{len(outcome.rejected)} rejected",
            file=out,
        )
        for d in outcome.recorded:
            print(f"  #{d.id} row {d.sheet_row}: {d.decision.label} {d.key}", file=out)
        for r in outcome.rejected:
            print(f"  REJECTED row {r.row} {r.key or '(no key)'}: {r.reason}", file=out)
    return code


def status_text(d: RecordedDecision, settings: Settings, today: date) -> str:
    """Where a decision stands, from the store alone (the runs add overdue and triage)."""
    if d.decision is Decision.KEEP:
        if settings.reviews.keep_requires_approval and d.approved_by is None:
            return "pending approval"
        if d.keep_until is not None and today > d.keep_until:
            return f"expired {d.keep_until}"
        return f"kept until {d.keep_until}"
    if d.decision is Decision.REMOVE:
        if d.verified_run_id:
            verified = d.verified_at.date() if d.verified_at else ""
            return f"removed, verified by run {d.verified_run_id} on {verified}"
        due = d.due(settings.reviews.remove_within_days)
        return f"overdue since {due}" if today > due else f"removal promised by {due}"
    return "in security team triage"


def is_open(d: RecordedDecision, settings: Settings) -> bool:
    """Whether a decision still waits for something: approval, a removal, triage."""
    if d.decision is Decision.KEEP:
        return settings.reviews.keep_requires_approval and d.approved_by is None
    if d.decision is Decision.REMOVE:
        return d.verified_run_id is None
    return True


def list_decisions(
    settings: Settings,
    store: Any,
    today: date,
    out: TextIO,
    *,
    owner: str | None = None,
    only_open: bool = False,
) -> int:
    shown: Mapping[str, RecordedDecision] = store.in_force()
    rows = [
        d
        for d in shown.values()
        if (owner is None or d.owner == owner.lower()) and (not only_open or is_open(d, settings))
    ]
    if not rows:
        print("no decisions", file=out)
        return 0
    for d in sorted(rows, key=lambda d: (d.owner, d.key)):
        print(
            f"#{d.id:<5} {d.owner:<28} {d.decision.label:<8} {status_text(d, settings, today)}"
            f"\n       {d.key}\n       by {d.decided_by} on {d.recorded_at:%Y-%m-%d}"
            f" ({d.source_name} row {d.sheet_row}, run {d.run_id})"
            + (f": {d.reason}" if d.reason else ""),
            file=out,
        )
    return 0


def approve(
    settings: Settings, store: Any, decision_id: int, by: str, now: datetime, out: TextIO
) -> int:
    decision = store.get(decision_id)
    if decision is None:
        raise UsageError(f"no decision #{decision_id}")
    approver = by.strip().lower()
    owners = settings.owners
    manager = {o.lower(): m.lower() for o, m in owners.managers.items()}.get(decision.owner)
    allowed = {a.lower() for a in owners.security_team} | ({manager} if manager else set())
    if approver not in allowed:
        raise UsageError(
            f"--by {by}: not {decision.owner}'s manager nor in owners.security_team\n"
            f"    hint: approvers of this decision: {', '.join(sorted(allowed))}"
        )
    approved = store.approve(decision_id, approver, now)
    print(f"#{approved.id} Keep of {approved.key} approved by {approver}", file=out)
    return 0
