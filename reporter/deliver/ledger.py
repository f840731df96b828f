"""The delivery ledger in the state database: one row per message of a delivery round.

A *round* is the logical delivery a run performs: a scheduled slot (all runs for the Monday 07:00
slot share it) or, for a run started by hand, the run itself. A row is keyed by round, kind
(`owner` or `summary`) and recipient, and written `pending` *before* each attempt and `sent` (or a
failure) after it, each in its own transaction.

Delivery is at-least-once. A crash between the server's "accepted" and the `sent` commit leaves
the row `pending`; the next run of the round sends that message again, with the same Message-ID
(derived from round and recipient), so the rare duplicate is recognisably the same message and
mail clients that de-duplicate by Message-ID show it once. The alternative, at-most-once, would
turn the same crash into an owner silently missing a week's report, the failure this product
exists to prevent. A message recorded `sent` is never sent again for its round.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    select,
)
from sqlalchemy.engine import Engine, Row, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from ..errors import StateError

metadata = MetaData()

deliveries = Table(
    "deliveries",
    metadata,
    Column("round_id", String(128), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("recipient", String(320), primary_key=True),
    Column("run_id", String(64), nullable=False),
    Column("message_id", String(255), nullable=False),
    Column("transport", String(16), nullable=False),
    # JSON list of {"filename", "sha256"}: what the message carried (or linked to).
    Column("attachments", Text, nullable=False),
    Column("status", String(24), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=False),
    Column("provider_id", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
)


class Status(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED_TEMPORARY = "failed_temporary"
    FAILED_PERMANENT = "failed_permanent"


@dataclass(frozen=True)
class LedgerKey:
    round_id: str
    kind: str
    recipient: str


@dataclass(frozen=True)
class LedgerEntry:
    key: LedgerKey
    run_id: str
    message_id: str
    transport: str
    attachments: tuple[tuple[str, str], ...]
    status: Status
    attempts: int
    last_error: str
    provider_id: str
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands timezone-aware columns back naive; they were stored as UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def open_engine(url: str) -> Engine:
    """An engine on the state database, with its folder created for a SQLite file."""
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        return create_engine(url)
    except (SQLAlchemyError, OSError) as exc:
        # The URL may hold a password: name the backend, never the URL.
        raise StateError(
            f"cannot open the state database ({type(exc).__name__})\n"
            "    hint: check state.database_url and that its folder is writable"
        ) from exc


class Ledger:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        try:
            metadata.create_all(engine)
        except SQLAlchemyError as exc:
            raise StateError(f"cannot create the delivery ledger ({type(exc).__name__})") from exc

    @classmethod
    def open(cls, url: str) -> Ledger:
        return cls(open_engine(url))

    def get(self, key: LedgerKey) -> LedgerEntry | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(deliveries).where(*_where(key))).first()
        return _entry(row) if row is not None else None

    def round(self, round_id: str) -> list[LedgerEntry]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(deliveries)
                .where(deliveries.c.round_id == round_id)
                .order_by(deliveries.c.kind, deliveries.c.recipient)
            ).all()
        return [_entry(r) for r in rows]

    def begin_attempt(
        self,
        key: LedgerKey,
        *,
        run_id: str,
        message_id: str,
        transport: str,
        attachments: Sequence[tuple[str, str]],
        now: datetime,
    ) -> int:
        """Record `pending` and one more attempt, committed before the message is handed over.
        Returns the attempt number."""
        files = json.dumps([{"filename": n, "sha256": h} for n, h in attachments])
        with self._engine.begin() as conn:
            row = conn.execute(select(deliveries).where(*_where(key))).first()
            if row is None:
                conn.execute(
                    deliveries.insert().values(
                        round_id=key.round_id,
                        kind=key.kind,
                        recipient=key.recipient,
                        run_id=run_id,
                        message_id=message_id,
                        transport=transport,
                        attachments=files,
                        status=Status.PENDING.value,
                        attempts=1,
                        last_error="",
                        provider_id="",
                        created_at=now,
                        updated_at=now,
                        sent_at=None,
                    )
                )
                return 1
            if row.status == Status.SENT.value:
                raise StateError(f"{key} is already sent; it must not be attempted again")
            attempts = int(row.attempts) + 1
            conn.execute(
                deliveries.update()
                .where(*_where(key))
                .values(
                    run_id=run_id,
                    message_id=message_id,
                    transport=transport,
                    attachments=files,
                    status=Status.PENDING.value,
                    attempts=attempts,
                    updated_at=now,
                )
            )
            return attempts

    def finish(
        self,
        key: LedgerKey,
        status: Status,
        now: datetime,
        *,
        error: str = "",
        provider_id: str = "",
    ) -> None:
        values: dict[str, object] = {
            "status": status.value,
            "last_error": error,
            "updated_at": now,
        }
        if status is Status.SENT:
            values["sent_at"] = now
            values["provider_id"] = provider_id
        with self._engine.begin() as conn:
            conn.execute(deliveries.update().where(*_where(key)).values(**values))

    def dispose(self) -> None:
        self._engine.dispose()


def _where(key: LedgerKey) -> tuple[ColumnElement[bool], ...]:
    return (
        deliveries.c.round_id == key.round_id,
        deliveries.c.kind == key.kind,
        deliveries.c.recipient == key.recipient,
    )


def _entry(row: Row[Any]) -> LedgerEntry:
    r = row._mapping
    return LedgerEntry(
        key=LedgerKey(r["round_id"], r["kind"], r["recipient"]),
        run_id=r["run_id"],
        message_id=r["message_id"],
        transport=r["transport"],
        attachments=tuple((f["filename"], f["sha256"]) for f in json.loads(r["attachments"])),
        status=Status(r["status"]),
        attempts=int(r["attempts"]),
        last_error=r["last_error"],
        provider_id=r["provider_id"],
        created_at=_aware(r["created_at"]) or r["created_at"],
        updated_at=_aware(r["updated_at"]) or r["updated_at"],
        sent_at=_aware(r["sent_at"]),
    )
