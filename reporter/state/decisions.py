"""Owners' decisions in the state database (`DecisionStore`): the edge of
`reporter.reviews.decisions`. Every decision is kept; the one in force for a finding is the
latest recorded. Returned workbooks are kept byte for byte for the next run's evidence pack."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, func, select, update
from sqlalchemy.engine import Engine, Row
from sqlalchemy.exc import SQLAlchemyError

from ..errors import StateError
from ..reviews.decisions import Decision, RecordedDecision, ValidRow
from . import open_state
from .engine import state_error
from .schema import review_decisions, review_imports


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class ImportedFile:
    """A returned workbook as it was imported."""

    sha256: str
    filename: str
    run_id: str
    owner: str
    imported_by: str
    imported_at: datetime
    recorded: int
    rejected: int
    content: bytes = b""


@dataclass(frozen=True)
class ImportResult:
    recorded: tuple[RecordedDecision, ...]
    # Rows identical to what is already recorded (the same file again, or the same decision).
    unchanged: int
    first_import: bool


def _decision(row: Row[tuple[object, ...]]) -> RecordedDecision:
    m = row._mapping
    recorded_at = _utc(m["recorded_at"])
    assert recorded_at is not None
    return RecordedDecision(
        id=m["id"],
        key=m["key"],
        owner=m["owner"],
        decision=Decision(m["decision"]),
        keep_until=m["keep_until"],
        reason=m["reason"],
        decided_by=m["decided_by"],
        imported_by=m["imported_by"],
        run_id=m["run_id"],
        source_sha256=m["source_sha256"],
        source_name=m["source_name"],
        sheet_row=m["sheet_row"],
        recorded_at=recorded_at,
        approved_by=m["approved_by"],
        approved_at=_utc(m["approved_at"]),
        verified_run_id=m["verified_run_id"],
        verified_at=_utc(m["verified_at"]),
    )


class DecisionStore:
    """Owners' decisions and the workbooks they came in."""

    def __init__(self, url: str) -> None:
        self._engine: Engine = open_state(url)

    def dispose(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> DecisionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    @contextmanager
    def _connect(self, what: str, write: bool = False) -> Iterator[Connection]:
        try:
            with self._engine.begin() if write else self._engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise state_error(self._engine, what, exc) from exc

    def history(self, key: str | None = None) -> list[RecordedDecision]:
        """Every decision recorded (on `key`), oldest first."""
        query = select(review_decisions).order_by(review_decisions.c.id)
        if key is not None:
            query = query.where(review_decisions.c.key == key)
        with self._connect("read the decisions") as conn:
            return [_decision(r) for r in conn.execute(query)]

    def in_force(self) -> dict[str, RecordedDecision]:
        """finding key → its latest decision."""
        latest = (
            select(func.max(review_decisions.c.id))
            .group_by(review_decisions.c.key)
            .scalar_subquery()
        )
        query = (
            select(review_decisions)
            .where(review_decisions.c.id.in_(latest))
            .order_by(review_decisions.c.id)
        )
        with self._connect("read the decisions") as conn:
            return {d.key: d for d in map(_decision, conn.execute(query))}

    def get(self, decision_id: int) -> RecordedDecision | None:
        query = select(review_decisions).where(review_decisions.c.id == decision_id)
        with self._connect("read a decision") as conn:
            row = conn.execute(query).first()
        return None if row is None else _decision(row)

    def record(
        self,
        rows: Sequence[ValidRow],
        *,
        owner: str,
        imported_by: str,
        run_id: str,
        sha256: str,
        filename: str,
        content: bytes,
        rejected: int,
        now: datetime,
    ) -> ImportResult:
        """Record a workbook's valid rows and the workbook, all or nothing. A row already
        recorded from this file, or saying what the decision in force already says, changes
        nothing: importing a file twice records it once."""
        in_force = self.in_force()
        recorded: list[dict[str, object]] = []
        unchanged = 0
        with self._connect("record the decisions", write=True) as conn:
            done = {
                r.sheet_row
                for r in conn.execute(
                    select(review_decisions.c.sheet_row).where(
                        review_decisions.c.source_sha256 == sha256
                    )
                )
            }
            for row in rows:
                current = in_force.get(row.key)
                if row.row in done or (current is not None and current.same_as(row, owner)):
                    unchanged += 1
                    continue
                recorded.append(
                    {
                        "key": row.key,
                        "owner": owner,
                        "decision": row.decision.value,
                        "keep_until": row.keep_until,
                        "reason": row.reason,
                        "decided_by": owner,
                        "imported_by": imported_by,
                        "run_id": run_id,
                        "source_sha256": sha256,
                        "source_name": filename,
                        "sheet_row": row.row,
                        "recorded_at": now,
                    }
                )
            if recorded:
                conn.execute(review_decisions.insert(), recorded)
            first = (
                conn.execute(
                    select(review_imports.c.sha256).where(review_imports.c.sha256 == sha256)
                ).first()
                is None
            )
            if first:
                conn.execute(
                    review_imports.insert().values(
                        sha256=sha256,
                        filename=filename,
                        run_id=run_id,
                        owner=owner,
                        imported_by=imported_by,
                        imported_at=now,
                        recorded=len(recorded),
                        rejected=rejected,
                        content=content,
                    )
                )
            new = [
                _decision(r)
                for r in conn.execute(
                    select(review_decisions)
                    .where(review_decisions.c.source_sha256 == sha256)
                    .where(review_decisions.c.sheet_row.in_([r["sheet_row"] for r in recorded]))
                    .order_by(review_decisions.c.id)
                )
            ]
        return ImportResult(tuple(new), unchanged, first)

    def approve(self, decision_id: int, by: str, now: datetime) -> RecordedDecision:
        """Approve a pending Keep. Raises StateError when there is nothing to approve."""
        decision = self.get(decision_id)
        if decision is None or decision.decision is not Decision.KEEP:
            raise StateError(
                f"no Keep decision with id {decision_id}\n"
                "    hint: `access-reporter decisions list --open` shows the pending ones"
            )
        current = self.in_force().get(decision.key)
        if current is None or current.id != decision.id:
            raise StateError(f"decision {decision_id} was superseded by a later decision")
        if decision.approved_by is not None:
            raise StateError(
                f"decision {decision_id} was already approved by {decision.approved_by}"
            )
        with self._connect("approve a decision", write=True) as conn:
            conn.execute(
                update(review_decisions)
                .where(review_decisions.c.id == decision_id)
                .values(approved_by=by, approved_at=now)
            )
        approved = self.get(decision_id)
        assert approved is not None
        return approved

    def verify_removals(self, ids: Sequence[int], run_id: str, at: datetime) -> None:
        """Mark Remove decisions as verified by a run that no longer found their findings."""
        if not ids:
            return
        with self._connect("record verified removals", write=True) as conn:
            conn.execute(
                update(review_decisions)
                .where(review_decisions.c.id.in_(list(ids)))
                .where(review_decisions.c.verified_run_id.is_(None))
                .values(verified_run_id=run_id, verified_at=at)
            )

    def imports(
        self, since: datetime | None = None, until: datetime | None = None, content: bool = False
    ) -> list[ImportedFile]:
        """The workbooks imported in [since, until], oldest first (times are to the second)."""
        columns = [c for c in review_imports.c if content or c.name != "content"]
        query = select(*columns).order_by(review_imports.c.imported_at, review_imports.c.sha256)
        if since is not None:
            query = query.where(review_imports.c.imported_at >= since)
        if until is not None:
            query = query.where(review_imports.c.imported_at <= until)
        with self._connect("read the imported workbooks") as conn:
            rows = conn.execute(query).all()
        files = []
        for r in rows:
            m = dict(r._mapping)
            m["imported_at"] = _utc(m["imported_at"])
            files.append(ImportedFile(**m))
        return files
