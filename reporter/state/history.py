"""The finding history in the state database (`HistoryStore`): the edge of `reporter.history`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.dml import Insert

from ..errors import StateError
from ..history import HistoryDiff, Seen
from ..models import TrendPoint
from . import open_state
from .engine import state_error
from .schema import finding_history, runs


def _utc(value: datetime) -> datetime:
    """An instant in UTC, as the history stores and returns it. SQLite keeps a datetime's wall
    clock and drops its offset (and hands it back naive), PostgreSQL hands it back in the
    session's time zone: UTC on the way in and out makes both backends agree."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


def _upsert(conn: Connection) -> Insert:
    """INSERT … ON CONFLICT (key) DO UPDATE: a changed row replaced in place, in one statement
    per batch (PostgreSQL, and SQLite 3.24 or newer)."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(finding_history)
    return statement.on_conflict_do_update(
        index_elements=[finding_history.c.key],
        set_={c.name: statement.excluded[c.name] for c in finding_history.c if c.name != "key"},
    )


class HistoryStore:
    """The finding history in the state database."""

    def __init__(self, url: str) -> None:
        self._engine: Engine = open_state(url)

    @contextmanager
    def _reading(self, what: str) -> Iterator[Connection]:
        """A connection for a read; a database that is locked, damaged or unreachable becomes a
        StateError with a hint instead of a driver traceback (the URL's password never shows)."""
        try:
            with self._engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            if self._engine.dialect.name != "sqlite":
                raise state_error(self._engine, f"read {what}", exc) from exc
            raise StateError(
                f"cannot read {what} from the state database ({type(exc).__name__})\n"
                "    hint: another run may be writing it (try again when it ends), or the "
                "database is damaged: restore it, or point state.database_url at a new one "
                "(every finding will count as new once)"
            ) from exc

    def trend(self, limit: int = 12) -> tuple[TrendPoint, ...]:
        """The most recent runs, oldest first (for the organization summary)."""
        with self._reading("the recent runs") as conn:
            rows = conn.execute(select(runs).order_by(runs.c.started_at.desc()).limit(limit)).all()
        return tuple(
            TrendPoint(
                run_id=r.run_id,
                started_at=_utc(r.started_at),
                findings=r.findings,
                new=r.new,
                resolved=r.resolved,
            )
            for r in reversed(rows)
        )

    def load(self) -> dict[str, Seen]:
        with self._reading("the findings seen before") as conn:
            result = conn.execute(select(finding_history))
            return {
                row.key: Seen(
                    row.key,
                    row.account_id,
                    _utc(row.first_seen),
                    _utc(row.last_seen),
                    _utc_or_none(row.resolved_at),
                )
                for row in result
            }

    def save(self, run_id: str, started_at: datetime, changes: HistoryDiff) -> None:
        """Record the run and every changed row in one transaction."""
        try:
            with self._engine.begin() as conn:
                self._save(conn, run_id, started_at, changes)
        except SQLAlchemyError as exc:
            raise state_error(self._engine, "save the finding history", exc) from exc

    @staticmethod
    def _save(conn: Connection, run_id: str, started_at: datetime, changes: HistoryDiff) -> None:
        if changes.rows:
            conn.execute(
                _upsert(conn),
                [
                    {
                        "key": s.key,
                        "account_id": s.account_id,
                        "first_seen": _utc(s.first_seen),
                        "last_seen": _utc(s.last_seen),
                        "resolved_at": _utc_or_none(s.resolved_at),
                        "last_run_id": run_id,
                    }
                    for s in changes.rows.values()
                ],
            )
        conn.execute(
            runs.insert().values(
                run_id=run_id,
                started_at=_utc(started_at),
                findings=len(changes.new) + len(changes.still_open),
                new=len(changes.new),
                resolved=len(changes.resolved),
                still_open=len(changes.still_open),
            )
        )

    def dispose(self) -> None:
        self._engine.dispose()
