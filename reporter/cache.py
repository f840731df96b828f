"""Access Analyzer details and recommendations, kept between runs in the state database.

GetFindingV2 is one call per finding (more for broad UnusedPermission findings) and a
recommendation two or more; an organization has tens of thousands of findings, most of them
unchanged from one week to the next. A finding's `updatedAt` changes whenever its content does
(reference §1.7: a partial fix even makes a new finding), so (analyzer, id, updatedAt) is a
safe key: an unchanged finding is served from here, a changed one is fetched again.

Only terminal recommendations (SUCCEEDED or FAILED) are stored; one still IN_PROGRESS when the
run stopped polling is asked for again next time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from .state import open_state
from .state.engine import state_error
from .state.schema import finding_cache

_CHUNK = 500  # ids per IN (...) clause: below SQLite's variable limit on every version


def stamp(value: Any) -> str:
    """`updatedAt` as one canonical string, whether boto3 parsed it or a cache/JSON gave text."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat()
    if isinstance(value, str) and value:
        try:
            return stamp(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return value
    return ""


def to_json(value: Any) -> str:
    return json.dumps(value, default=_default, separators=(",", ":"), sort_keys=True)


def _default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__}")


@dataclass(frozen=True)
class Cached:
    finding_id: str
    updated_at: str
    details: Mapping[str, Any]
    recommendation: Mapping[str, Any] | None = None


class DetailsCache:
    """The cache table in the state database."""

    def __init__(self, url: str) -> None:
        self._engine: Engine = open_state(url)

    @contextmanager
    def _using(self, doing: str, *, write: bool = False) -> Iterator[Connection]:
        """A connection (a transaction when writing); driver errors become a StateError."""
        try:
            with self._engine.begin() if write else self._engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise state_error(self._engine, f"{doing} the details cache", exc) from exc

    def index(self, analyzer_arn: str) -> dict[str, str]:
        """finding id → the `updatedAt` stored for it (small: no payloads)."""
        query = select(finding_cache.c.finding_id, finding_cache.c.updated_at).where(
            finding_cache.c.analyzer_arn == analyzer_arn
        )
        with self._using("read") as conn:
            return {row.finding_id: row.updated_at for row in conn.execute(query)}

    def load(self, analyzer_arn: str, ids: Sequence[str]) -> dict[str, Cached]:
        found: dict[str, Cached] = {}
        with self._using("read") as conn:
            for start in range(0, len(ids), _CHUNK):
                query = select(finding_cache).where(
                    and_(
                        finding_cache.c.analyzer_arn == analyzer_arn,
                        finding_cache.c.finding_id.in_(ids[start : start + _CHUNK]),
                    )
                )
                for row in conn.execute(query):
                    found[row.finding_id] = Cached(
                        row.finding_id,
                        row.updated_at,
                        json.loads(row.details),
                        json.loads(row.recommendation) if row.recommendation else None,
                    )
        return found

    def store(self, analyzer_arn: str, entries: Iterable[Cached], now: datetime) -> int:
        stored_at = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
        rows: list[dict[str, Any]] = [
            {
                "analyzer_arn": analyzer_arn,
                "finding_id": e.finding_id,
                "updated_at": e.updated_at,
                "details": to_json(e.details),
                "recommendation": to_json(e.recommendation) if e.recommendation else None,
                "stored_at": stored_at,
            }
            for e in entries
        ]
        if not rows:
            return 0
        with self._using("write", write=True) as conn:
            self._delete(conn, analyzer_arn, [r["finding_id"] for r in rows])
            conn.execute(finding_cache.insert(), rows)
        return len(rows)

    def forget(self, analyzer_arn: str, ids: Sequence[str]) -> None:
        """Drop entries of findings the analyzer no longer lists."""
        if ids:
            with self._using("write", write=True) as conn:
                self._delete(conn, analyzer_arn, ids)

    @staticmethod
    def _delete(conn: Connection, analyzer_arn: str, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), _CHUNK):
            conn.execute(
                finding_cache.delete().where(
                    and_(
                        finding_cache.c.analyzer_arn == analyzer_arn,
                        finding_cache.c.finding_id.in_(ids[start : start + _CHUNK]),
                    )
                )
            )

    def dispose(self) -> None:
        self._engine.dispose()
