"""Finding history across runs: first seen, last seen, resolved — in the state database.

`diff` is pure; `HistoryStore` is the edge (SQLAlchemy Core: a SQLite file by default,
PostgreSQL by URL). AWS deletes resolved findings 90 days after their last update; the history
keeps them, so age and resolution survive that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.dml import Insert

from .errors import StateError
from .models import FindingType, ResolvedFinding, TrendPoint
from .statedb import open_engine, schema_change, state_error

metadata = MetaData()

# The schema version this code writes. Each migration takes the database from version n-1
# to n; a database newer than the code is refused rather than misread.
SCHEMA_VERSION = 2

schema_info = Table(
    "schema_info",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("findings", Integer, nullable=False),
    Column("new", Integer, nullable=False),
    Column("resolved", Integer, nullable=False),
    Column("still_open", Integer, nullable=False, default=0),
)

finding_history = Table(
    "finding_history",
    metadata,
    Column("key", String(2048), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("last_run_id", String(64), nullable=False),
)


def _v2_add_runs_still_open(conn: Connection) -> None:
    # Version 1 (the first release) had no still-open count per run; the trend needs it.
    if "still_open" not in {c["name"] for c in inspect(conn).get_columns("runs")}:
        conn.execute(text("ALTER TABLE runs ADD COLUMN still_open INTEGER NOT NULL DEFAULT 0"))


_MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _v2_add_runs_still_open}


@dataclass(frozen=True)
class Seen:
    """What the history knows of one finding key."""

    key: str
    account_id: str
    first_seen: datetime
    last_seen: datetime
    resolved_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.resolved_at is None


@dataclass(frozen=True)
class HistoryDiff:
    """This run against the history: every current key's record, and what changed."""

    rows: Mapping[str, Seen]
    new: frozenset[str]
    still_open: frozenset[str]
    resolved: frozenset[str]


def diff(
    previous: Mapping[str, Seen],
    current: Iterable[tuple[str, str, datetime | None]],
    covered_accounts: frozenset[str],
    now: datetime,
) -> HistoryDiff:
    """`current` is (key, account id, the source's creation date) triples. A new finding's first
    sighting is the source's creation date when that is earlier than this run. A finding
    missing from this run counts as resolved only if its account was covered: an account we
    could not read resolves nothing."""
    rows: dict[str, Seen] = {}
    new: set[str] = set()
    still: set[str] = set()
    for key, account_id, created in current:
        before = previous.get(key)
        if before is None or not before.open:
            new.add(key)
            first = min(now, created) if created and before is None else now
            rows[key] = Seen(key, account_id, first, now)
        else:
            still.add(key)
            rows[key] = Seen(key, account_id, before.first_seen, now)
    resolved = set()
    for key, before in previous.items():
        if before.open and key not in rows and before.account_id in covered_accounts:
            resolved.add(key)
            rows[key] = Seen(key, before.account_id, before.first_seen, before.last_seen, now)
    return HistoryDiff(rows, frozenset(new), frozenset(still), frozenset(resolved))


def split_key(key: str) -> tuple[str, str, str]:
    """(account id, finding type, principal ARN) of a finding key (`models.Finding.key`)."""
    account_id, type_, arn = key.split("/", 2)
    return account_id, type_, arn


def resolved_findings(changes: HistoryDiff) -> tuple[ResolvedFinding, ...]:
    """The findings this run resolved, as the reports show them, oldest first."""
    found = []
    for key in sorted(changes.resolved):
        seen = changes.rows[key]
        account_id, type_, arn = split_key(key)
        found.append(
            ResolvedFinding(
                key=key,
                account_id=account_id,
                type=type_,
                principal_arn=arn,
                first_seen=seen.first_seen,
                resolved_at=seen.resolved_at or seen.last_seen,
            )
        )
    return tuple(sorted(found, key=lambda r: (r.first_seen, r.key)))


@dataclass(frozen=True)
class Age:
    days: int | None
    sla_days: int | None
    breached: bool


def age(
    first_seen: date | None, today: date, type_: FindingType, sla_days: Mapping[str, int]
) -> Age:
    """Days open since first seen, against the SLA for the finding's type (config
    `reports.sla_days`). A finding open exactly `sla_days` days is not yet in breach."""
    days = None if first_seen is None else max(0, (today - first_seen).days)
    sla = sla_days.get(type_.value)
    return Age(days, sla, days is not None and sla is not None and days > sla)


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
    """The finding history in the state database; creates its own schema."""

    def __init__(self, url: str) -> None:
        self._engine: Engine = open_engine(url)
        try:
            self._migrate()
        except SQLAlchemyError as exc:
            self._engine.dispose()
            raise state_error(self._engine, "open the state database", exc) from exc
        except StateError:
            self._engine.dispose()
            raise

    def _migrate(self) -> None:
        """Create the tables, then bring an older database up to SCHEMA_VERSION in place."""
        with schema_change(self._engine) as conn:
            existed = inspect(conn).has_table("runs")
            metadata.create_all(conn)
            row = conn.execute(select(schema_info.c.version)).first()
            version = row.version if row else (1 if existed else SCHEMA_VERSION)
            if version > SCHEMA_VERSION:
                raise StateError(
                    f"the state database has schema version {version}, newer than this "
                    f"version of the tool understands ({SCHEMA_VERSION})\n"
                    "    hint: upgrade unused-access-reporter, or point state.database_url "
                    "at another database"
                )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                _MIGRATIONS[step](conn)
            if row is None:
                conn.execute(schema_info.insert().values(id=1, version=SCHEMA_VERSION))
            elif version != SCHEMA_VERSION:
                conn.execute(schema_info.update().values(version=SCHEMA_VERSION))

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
