"""The delivery ledger in the state database: one row per message of a delivery round, one row
per recipient of each message, and the queue of messages not yet delivered to everyone.

A *round* is the logical delivery a run performs: a scheduled slot (all runs for the Monday 07:00
slot share it) or, for a run started by hand, the run itself. A message row is keyed by round,
kind (`owner` or `summary`) and the message's recipient (the owner, or the security team member);
each address the message goes to (To and Cc) has its own row under it. Rows are written `pending`
*before* each attempt and `sent` (or a failure) after it, each in its own transaction; a message
is `sent` only when every one of its addresses is.

A message is queued (`outgoing`: its exact bytes, so a retry sends the same message with the same
Message-ID and Date) from its first attempt until every address is sent or has failed for good.
Whoever sends it holds a lease on its queue row, so two replicas, or a run and the retry job,
never send one message at once; a holder that dies leaves a lease that runs out.

Delivery is at-least-once. A crash between the server's "accepted" and the `sent` commit leaves
the row `pending`; the next run of the round sends that message again, with the same Message-ID
(derived from round and recipient), so the rare duplicate is recognisably the same message and
mail clients that de-duplicate by Message-ID show it once. The alternative, at-most-once, would
turn the same crash into an owner silently missing a week's report, the failure this product
exists to prevent. A message recorded `sent` is never sent again for its round.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Table,
    delete,
    func,
    or_,
    select,
)
from sqlalchemy.engine import Engine, Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from ..errors import StateError
from ..state import migrate, open_state
from ..state.engine import guarded
from ..state.schema import deliveries, delivery_recipients, outgoing


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
class RecipientEntry:
    address: str
    role: str
    status: Status
    attempts: int
    last_error: str
    sent_at: datetime | None


@dataclass(frozen=True)
class Queued:
    """A message in the queue: what to send again, and to whom the ledger says is left."""

    key: LedgerKey
    run_id: str
    message_id: str
    sender: str
    transport: str
    raw: bytes
    retry_until: datetime
    created_at: datetime


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


def default_holder() -> str:
    """Who this process is, in leases: host, process and a random part (pids repeat)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands timezone-aware columns back naive; they were stored as UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class Ledger:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        migrate(engine)

    @classmethod
    def open(cls, url: str) -> Ledger:
        return cls(open_state(url))

    @guarded("read the delivery ledger")
    def get(self, key: LedgerKey) -> LedgerEntry | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(deliveries).where(*_where(key))).first()
        return _entry(row) if row is not None else None

    @guarded("read the delivery ledger")
    def round(self, round_id: str) -> list[LedgerEntry]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(deliveries)
                .where(deliveries.c.round_id == round_id)
                .order_by(deliveries.c.kind, deliveries.c.recipient)
            ).all()
        return [_entry(r) for r in rows]

    @guarded("read the delivery ledger")
    def recipients(self, key: LedgerKey) -> dict[str, RecipientEntry]:
        """Each address of the message, by address (lower-cased)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(delivery_recipients).where(*_where(key, delivery_recipients))
            )
            return {
                r.address: RecipientEntry(
                    address=r.address,
                    role=r.role,
                    status=Status(r.status),
                    attempts=int(r.attempts),
                    last_error=r.last_error,
                    sent_at=_aware(r.sent_at),
                )
                for r in rows
            }

    @guarded("record a delivery attempt")
    def begin_attempt(
        self,
        key: LedgerKey,
        *,
        run_id: str,
        message_id: str,
        transport: str,
        attachments: Sequence[tuple[str, str]],
        now: datetime,
        addresses: Sequence[tuple[str, str]] = (),
    ) -> int:
        """Record `pending` and one more attempt for the message and for each of `addresses`
        ((address, role) pairs: the ones this attempt sends to), committed before the message
        is handed over. Returns the message's attempt number."""
        files = json.dumps([{"filename": n, "sha256": h} for n, h in attachments])
        with self._engine.begin() as conn:
            row = conn.execute(select(deliveries).where(*_where(key))).first()
            if row is None:
                attempts = 1
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
            else:
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
            known = {
                r.address: r
                for r in conn.execute(
                    select(delivery_recipients).where(*_where(key, delivery_recipients))
                )
            }
            for address, role in addresses:
                address = address.lower()
                earlier = known.get(address)
                if earlier is None:
                    conn.execute(
                        delivery_recipients.insert().values(
                            round_id=key.round_id,
                            kind=key.kind,
                            recipient=key.recipient,
                            address=address,
                            role=role,
                            status=Status.PENDING.value,
                            attempts=1,
                            last_error="",
                            provider_id="",
                            updated_at=now,
                            sent_at=None,
                        )
                    )
                elif earlier.status == Status.SENT.value:
                    raise StateError(f"{key} is already sent to {address}")
                else:
                    conn.execute(
                        delivery_recipients.update()
                        .where(*_where(key, delivery_recipients))
                        .where(delivery_recipients.c.address == address)
                        .values(
                            status=Status.PENDING.value,
                            attempts=int(earlier.attempts) + 1,
                            updated_at=now,
                        )
                    )
            return attempts

    @guarded("record a delivery")
    def finish(
        self,
        key: LedgerKey,
        status: Status,
        now: datetime,
        *,
        error: str = "",
        provider_id: str = "",
        outcomes: Mapping[str, tuple[Status, str]] | None = None,
    ) -> Status:
        """Record how an attempt ended. With `outcomes` (address -> (status, error)) each address
        gets its own status and the message's is derived from all its addresses: `sent` when
        every one is sent, else `failed_temporary` while any may still go, else
        `failed_permanent`. Without, `status` is the message's. Returns the message's status."""
        with self._engine.begin() as conn:
            if outcomes is not None:
                for address, (outcome, why) in outcomes.items():
                    values: dict[str, object] = {
                        "status": outcome.value,
                        "last_error": why,
                        "updated_at": now,
                    }
                    if outcome is Status.SENT:
                        values["sent_at"] = now
                        values["provider_id"] = provider_id
                    conn.execute(
                        delivery_recipients.update()
                        .where(*_where(key, delivery_recipients))
                        .where(delivery_recipients.c.address == address.lower())
                        .values(**values)
                    )
                rows = conn.execute(
                    select(delivery_recipients).where(*_where(key, delivery_recipients))
                ).all()
                status = _overall(Status(r.status) for r in rows)
                error = "; ".join(
                    f"{r.address}: {r.last_error}" for r in rows if r.status != Status.SENT.value
                )
            message: dict[str, object] = {
                "status": status.value,
                "last_error": error,
                "updated_at": now,
            }
            if status is Status.SENT:
                message["sent_at"] = now
                message["provider_id"] = provider_id
            conn.execute(deliveries.update().where(*_where(key)).values(**message))
        return status

    # -- the queue ---------------------------------------------------------------------------

    @guarded("queue a message")
    def enqueue(
        self,
        key: LedgerKey,
        *,
        run_id: str,
        message_id: str,
        sender: str,
        transport: str,
        raw: bytes,
        holder: str,
        now: datetime,
        lease: timedelta,
        retry_until: datetime,
    ) -> bool:
        """Queue the message's bytes, held by `holder` until `now + lease`. A message already
        queued by an earlier run of the round is taken over with this run's bytes (the same
        Message-ID: its files are the ones this run's evidence records), unless another holder's
        lease is still running: then False, and nothing changes."""
        values = {
            "run_id": run_id,
            "message_id": message_id,
            "sender": sender,
            "transport": transport,
            "raw": raw,
            "holder": holder,
            "lease_until": now + lease,
            "retry_until": retry_until,
        }
        with self._engine.connect() as conn:
            row = conn.execute(select(outgoing.c.holder).where(*_where(key, outgoing))).first()
        if row is None:
            try:
                with self._engine.begin() as conn:
                    conn.execute(
                        outgoing.insert().values(
                            round_id=key.round_id,
                            kind=key.kind,
                            recipient=key.recipient,
                            created_at=now,
                            **values,
                        )
                    )
            except IntegrityError:
                return False  # another replica queued it first: it is theirs
            return True
        with self._engine.begin() as conn:
            result = conn.execute(
                outgoing.update()
                .where(*_where(key, outgoing))
                .where(or_(outgoing.c.holder == holder, outgoing.c.lease_until <= now))
                .values(**values)
            )
        return result.rowcount == 1

    @guarded("take a queued message")
    def claim(self, key: LedgerKey, holder: str, now: datetime, lease: timedelta) -> bool:
        """Take the queued message for `lease`: compare-and-set, so of two replicas one wins."""
        with self._engine.begin() as conn:
            result = conn.execute(
                outgoing.update()
                .where(*_where(key, outgoing))
                .where(or_(outgoing.c.holder == holder, outgoing.c.lease_until <= now))
                .values(holder=holder, lease_until=now + lease)
            )
        return result.rowcount == 1

    @guarded("release a queued message")
    def release(self, key: LedgerKey, holder: str, now: datetime) -> None:
        """Let the retry job have the message now."""
        with self._engine.begin() as conn:
            conn.execute(
                outgoing.update()
                .where(*_where(key, outgoing), outgoing.c.holder == holder)
                .values(holder="", lease_until=now)
            )

    @guarded("settle a queued message")
    def settle(self, key: LedgerKey, holder: str) -> None:
        """Off the queue: every address is sent or has failed for good. Only its holder may."""
        with self._engine.begin() as conn:
            conn.execute(
                delete(outgoing).where(*_where(key, outgoing), outgoing.c.holder == holder)
            )

    @guarded("read the mail queue")
    def queued(self, key: LedgerKey) -> Queued | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(outgoing).where(*_where(key, outgoing))).first()
        return _queued(row) if row is not None else None

    @guarded("read the mail queue")
    def due(self, now: datetime, *, until_only: bool) -> list[LedgerKey]:
        """Queued messages nobody holds, oldest first; with `until_only`, only those still
        within their retry time (the retry job's; a run of the schedule takes them all)."""
        query = select(outgoing.c.round_id, outgoing.c.kind, outgoing.c.recipient).where(
            outgoing.c.lease_until <= now
        )
        if until_only:
            query = query.where(outgoing.c.retry_until > now)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(outgoing.c.created_at)).all()
        return [LedgerKey(r.round_id, r.kind, r.recipient) for r in rows]

    @guarded("read the mail queue")
    def undelivered(self, now: datetime | None = None) -> tuple[int, str]:
        """How many queued messages still have an address to deliver to, and the last error.
        With `now`, only those nobody is sending at the moment (a run's own messages between
        its retries are not undelivered yet)."""
        counted = select(func.count()).select_from(outgoing)
        if now is not None:
            counted = counted.where(outgoing.c.lease_until <= now)
        with self._engine.connect() as conn:
            count = conn.execute(counted).scalar_one()
            last = conn.execute(
                select(deliveries.c.last_error)
                .join(
                    outgoing,
                    (deliveries.c.round_id == outgoing.c.round_id)
                    & (deliveries.c.kind == outgoing.c.kind)
                    & (deliveries.c.recipient == outgoing.c.recipient),
                )
                .order_by(deliveries.c.updated_at.desc())
                .limit(1)
            ).scalar()
        return int(count), str(last or "")

    def dispose(self) -> None:
        self._engine.dispose()


def _where(key: LedgerKey, table: Table = deliveries) -> tuple[ColumnElement[bool], ...]:
    return (
        table.c.round_id == key.round_id,
        table.c.kind == key.kind,
        table.c.recipient == key.recipient,
    )


def _overall(statuses: Iterable[Status]) -> Status:
    seen = set(statuses)
    if not seen or seen == {Status.SENT}:
        return Status.SENT
    if Status.FAILED_TEMPORARY in seen or Status.PENDING in seen:
        return Status.FAILED_TEMPORARY
    return Status.FAILED_PERMANENT


def _queued(row: Row[Any]) -> Queued:
    r = row._mapping
    return Queued(
        key=LedgerKey(r["round_id"], r["kind"], r["recipient"]),
        run_id=r["run_id"],
        message_id=r["message_id"],
        sender=r["sender"],
        transport=r["transport"],
        raw=bytes(r["raw"]),
        retry_until=_aware(r["retry_until"]) or r["retry_until"],
        created_at=_aware(r["created_at"]) or r["created_at"],
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
