"""Owners' decisions, pure: which rows of a returned workbook may be recorded, and what the
decisions in force do to a run's findings.

A row is recorded only when all of it is acceptable; otherwise it is rejected with its reason and
nothing of it is kept. The store (`reporter/state/decisions.py`) keeps every recorded decision;
the one in force for a finding is the latest recorded.

Review states of a finding that is still found:
- `pending`: Keep awaiting approval (`reviews.keep_requires_approval`); the finding stays active.
- `kept`: Keep in force, the finding is excepted (an exception with `source: review`).
- `expired`: Keep whose date has passed; the finding is active again.
- `promised`: Remove, not yet due.
- `overdue`: Remove past its due date and still found: listed first, the manager is Cc'd.
- `triage`: Not mine, while the owner ladder still sends the finding to whoever said so.
- `reassigned`: Not mine, and the ladder now sends it elsewhere: the decision no longer applies.

A Remove whose finding a later run no longer finds is `removed` (verified by that run).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from enum import StrEnum

from reporter.models import ExceptionMatch, ReportItem, Review, ReviewProgress

__all__ = [
    "Decision",
    "Outcome",
    "RecordedDecision",
    "Rejection",
    "ReturnedRow",
    "ReturnedWorkbook",
    "ValidRow",
    "belongs",
    "exception_for",
    "review_for",
    "validate_rows",
]


class Decision(StrEnum):
    """What an owner may decide on a finding; the workbook shows the labels."""

    REMOVE = "remove"
    KEEP = "keep"
    NOT_MINE = "not_mine"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @classmethod
    def parse(cls, text: str) -> Decision | None:
        """The decision a cell names, case and spacing aside (`Not mine`, `not_mine`)."""
        wanted = " ".join(text.replace("_", " ").split()).casefold()
        return next((d for d in cls if d.label.casefold() == wanted), None)


_LABELS = {Decision.REMOVE: "Remove", Decision.KEEP: "Keep", Decision.NOT_MINE: "Not mine"}
LABELS: tuple[str, ...] = tuple(_LABELS[d] for d in Decision)


class Outcome(StrEnum):
    PENDING = "pending"
    KEPT = "kept"
    EXPIRED = "expired"
    PROMISED = "promised"
    OVERDUE = "overdue"
    TRIAGE = "triage"
    REASSIGNED = "reassigned"
    REMOVED = "removed"


@dataclass(frozen=True)
class ReturnedRow:
    """One row of a returned Findings sheet, as the cells hold it. `keep_until` is a date, or
    the text someone typed (kept to say why it is not a date), or None."""

    row: int
    key: str
    decision: str
    keep_until: date | str | None
    reason: str

    @property
    def decided(self) -> bool:
        return bool(self.decision.strip())


@dataclass(frozen=True)
class ReturnedWorkbook:
    """A returned owner workbook: whose it is, from which run, and its rows."""

    run_id: str
    owner: str
    rows: tuple[ReturnedRow, ...]


@dataclass(frozen=True)
class ValidRow:
    """A row that may be recorded."""

    row: int
    key: str
    decision: Decision
    keep_until: date | None
    reason: str


@dataclass(frozen=True)
class Rejection:
    row: int
    key: str
    reason: str


@dataclass(frozen=True)
class RecordedDecision:
    """A decision as the store keeps it, with its provenance."""

    id: int
    key: str
    owner: str
    decision: Decision
    keep_until: date | None
    reason: str
    decided_by: str
    imported_by: str
    run_id: str
    source_sha256: str
    source_name: str
    sheet_row: int
    recorded_at: datetime
    approved_by: str | None = None
    approved_at: datetime | None = None
    verified_run_id: str | None = None
    verified_at: datetime | None = None

    def due(self, remove_within_days: int) -> date:
        """When a Remove must be done by."""
        return (self.recorded_at + timedelta(days=remove_within_days)).date()

    def same_as(self, row: ValidRow, owner: str) -> bool:
        return (self.decision, self.keep_until, self.reason, self.owner) == (
            row.decision,
            row.keep_until,
            row.reason,
            owner,
        )


def belongs(record_owner: str | None, owner: str, fallback: Iterable[str]) -> bool:
    """Whether a finding whose run record names `record_owner` was in `owner`'s workbook: their
    own, or an unowned one sent to them as a fallback recipient."""
    owner = owner.lower()
    if record_owner is None:
        return owner in {f.lower() for f in fallback}
    return record_owner.lower() == owner


def validate_rows(
    workbook: ReturnedWorkbook,
    owners: Mapping[str, str | None],
    fallback: Sequence[str],
    today: date,
    max_keep_days: int,
) -> tuple[list[ValidRow], list[Rejection]]:
    """The decided rows that may be recorded, and the others with why not.

    `owners` maps every finding key of the workbook's run to its owner in that run
    (`data/findings.json`); rows without a decision are not decisions and are skipped.
    """
    valid: list[ValidRow] = []
    rejected: list[Rejection] = []
    seen: dict[str, int] = {}
    latest = today + timedelta(days=max_keep_days)
    for row in workbook.rows:
        if not row.decided:
            continue
        key = row.key.strip()

        def reject(why: str, row: ReturnedRow = row, key: str = key) -> None:
            rejected.append(Rejection(row.row, key, why))

        decision = Decision.parse(row.decision)
        reason = " ".join(row.reason.split())
        if not key:
            reject("no key on the row (the key column was emptied)")
        elif key not in owners:
            reject(f"unknown key: no such finding in run {workbook.run_id}")
        elif not belongs(owners[key], workbook.owner, fallback):
            reject(
                f"not {workbook.owner}'s finding in run {workbook.run_id} (owner: "
                f"{owners[key] or 'unowned'}): a workbook decides on its own owner's findings only"
            )
        elif key in seen:
            reject(f"the finding is decided twice in this workbook (first on row {seen[key]})")
        elif decision is None:
            reject(f"decision {row.decision.strip()!r} is not one of: {', '.join(LABELS)}")
        elif decision is Decision.KEEP and not reason:
            reject("Keep needs a Reason")
        elif decision is Decision.KEEP and row.keep_until is None:
            reject("Keep needs a Keep until date")
        elif decision is Decision.KEEP and not isinstance(row.keep_until, date):
            reject(f"Keep until {row.keep_until!r} is not a date (write YYYY-MM-DD)")
        elif decision is Decision.KEEP and row.keep_until < today:  # type: ignore[operator]
            reject(f"Keep until {row.keep_until} is in the past")
        elif decision is Decision.KEEP and row.keep_until > latest:  # type: ignore[operator]
            reject(
                f"Keep until {row.keep_until} is more than reviews.max_keep_days "
                f"({max_keep_days}) days away: the latest is {latest}"
            )
        else:
            seen[key] = row.row
            until = row.keep_until if decision is Decision.KEEP else None
            assert until is None or isinstance(until, date)
            valid.append(ValidRow(row.row, key, decision, until, reason))
    return valid, rejected


def review_for(
    decision: RecordedDecision,
    owner_now: str | None,
    today: date,
    *,
    remove_within_days: int,
    keep_requires_approval: bool,
) -> Review:
    """What the decision in force says about a finding this run still finds, owned now by
    `owner_now` (None: unowned)."""
    until: date | None = decision.keep_until
    approver = decision.approved_by
    if decision.decision is Decision.KEEP:
        assert until is not None
        if keep_requires_approval and approver is None:
            state = Outcome.PENDING
        elif today > until:
            state = Outcome.EXPIRED
        else:
            state = Outcome.KEPT
            approver = approver or decision.decided_by
    elif decision.decision is Decision.REMOVE:
        until = decision.due(remove_within_days)
        state = Outcome.OVERDUE if today > until else Outcome.PROMISED
    else:
        same = owner_now is not None and owner_now.lower() == decision.owner.lower()
        state = Outcome.TRIAGE if same else Outcome.REASSIGNED
    return Review(
        id=decision.id,
        decision=decision.decision.value,
        by=decision.decided_by,
        at=decision.recorded_at,
        until=until,
        reason=decision.reason,
        state=state.value,
        approved_by=approver,
    )


def exception_for(review: Review) -> ExceptionMatch | None:
    """A Keep in force, as the exception it is (`source: review`); None for anything else."""
    if review.decision != Decision.KEEP or review.state not in (Outcome.KEPT, Outcome.EXPIRED):
        return None
    assert review.until is not None
    return ExceptionMatch(
        id=f"review-{review.id}",
        reason=review.reason,
        approved_by=review.approved_by or review.by,
        expires=review.until,
        expired=review.state == Outcome.EXPIRED,
        source="review",
    )


# ---- what the decisions in force do to a run ----------------------------------------------------


def review_exceptions(
    in_force: Mapping[str, RecordedDecision], today: date, *, keep_requires_approval: bool
) -> dict[str, ExceptionMatch]:
    """finding key → the exception a Keep in force makes of it (approved, or needing no
    approval); expired ones too, flagged, as config exceptions are."""
    found: dict[str, ExceptionMatch] = {}
    for key, decision in in_force.items():
        if decision.decision is not Decision.KEEP:
            continue
        review = review_for(
            decision,
            None,
            today,
            remove_within_days=1,
            keep_requires_approval=keep_requires_approval,
        )
        match = exception_for(review)
        if match is not None:
            found[key] = match
    return found


def apply_reviews(
    items: Sequence[ReportItem],
    in_force: Mapping[str, RecordedDecision],
    today: date,
    *,
    remove_within_days: int,
    keep_requires_approval: bool,
) -> list[ReportItem]:
    """Each item with the review of the decision in force on it (None without one)."""
    out = []
    for item in items:
        decision = in_force.get(item.finding.key)
        if decision is None:
            out.append(item)
            continue
        review = review_for(
            decision,
            item.owner.owner,
            today,
            remove_within_days=remove_within_days,
            keep_requires_approval=keep_requires_approval,
        )
        out.append(replace(item, review=review))
    return out


def removals_verified(
    in_force: Mapping[str, RecordedDecision],
    found: Iterable[str],
    covered_accounts: Iterable[str],
) -> list[RecordedDecision]:
    """Remove decisions this run verifies: not verified yet, their finding no longer found, in
    an account this run covered (a finding missing from an account not read proves nothing)."""
    present = set(found)
    covered = set(covered_accounts)
    return [
        d
        for key, d in in_force.items()
        if d.decision is Decision.REMOVE
        and d.verified_run_id is None
        and key not in present
        and key.split("/", 1)[0] in covered
    ]


def progress(
    in_force: Mapping[str, RecordedDecision],
    items: Sequence[ReportItem],
    *,
    keep_requires_approval: bool,
) -> tuple[ReviewProgress, ...]:
    """Per owner who decided anything: decisions in force, Keeps pending approval, overdue
    removals (from this run's items) and verified removals, by owner address."""
    overdue: dict[str, int] = {}
    for item in items:
        if item.review is not None and item.review.overdue:
            decision = in_force.get(item.finding.key)
            owner = decision.owner if decision is not None else ""
            overdue[owner] = overdue.get(owner, 0) + 1
    # A removal verified once whose finding this run finds again did not hold: not counted.
    found = {item.finding.key for item in items}
    counts: dict[str, list[int]] = {}
    for d in in_force.values():
        row = counts.setdefault(d.owner, [0, 0, 0, 0, 0])
        row[0] += 1
        if d.decision is Decision.KEEP and keep_requires_approval and d.approved_by is None:
            row[1] += 1
        if d.decision is Decision.REMOVE and d.verified_run_id is not None and d.key not in found:
            row[3] += 1
        if d.decision is Decision.NOT_MINE:
            row[4] += 1
    return tuple(
        ReviewProgress(
            owner=owner,
            decided=c[0],
            pending=c[1],
            overdue=overdue.get(owner, 0),
            removed=c[3],
            not_mine=c[4],
        )
        for owner, c in sorted(counts.items())
    )


def verified(decision: RecordedDecision, run_id: str, at: datetime) -> RecordedDecision:
    return replace(decision, verified_run_id=run_id, verified_at=at)


def outcome(
    decision: RecordedDecision,
    found: Mapping[str, Review],
    today: date,
    *,
    remove_within_days: int,
    keep_requires_approval: bool,
) -> str:
    """Where a decision stands: its finding's review state when this run found it, `removed`
    for a verified Remove, else what the dates say."""
    if decision.key in found:
        return found[decision.key].state
    if decision.decision is Decision.REMOVE and decision.verified_run_id is not None:
        return Outcome.REMOVED.value
    return review_for(
        decision,
        decision.owner,
        today,
        remove_within_days=remove_within_days,
        keep_requires_approval=keep_requires_approval,
    ).state


def decision_record(
    decision: RecordedDecision, state: str, remove_within_days: int
) -> dict[str, object]:
    """A decision with its provenance, as `data/decisions.json` and the attestation hold it."""
    account_id, _, rest = decision.key.partition("/")
    finding_type, _, principal_arn = rest.partition("/")
    due = decision.due(remove_within_days) if decision.decision is Decision.REMOVE else None
    return {
        "id": decision.id,
        "key": decision.key,
        "account_id": account_id,
        "type": finding_type,
        "principal_arn": principal_arn,
        "owner": decision.owner,
        "decision": decision.decision.value,
        "keep_until": _iso(decision.keep_until),
        "due": _iso(due),
        "reason": decision.reason or None,
        "decided_by": decision.decided_by,
        "recorded_at": _iso(decision.recorded_at),
        "approved_by": decision.approved_by,
        "approved_at": _iso(decision.approved_at),
        "state": state,
        "verified": (
            {"run_id": decision.verified_run_id, "at": _iso(decision.verified_at)}
            if decision.verified_run_id
            else None
        ),
        "source": {
            "file_sha256": decision.source_sha256,
            "file_name": decision.source_name,
            "run_id": decision.run_id,
            "sheet_row": decision.sheet_row,
            "imported_by": decision.imported_by,
        },
    }


def _iso(value: date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds").replace("+00:00", "Z")
    return value.isoformat()
