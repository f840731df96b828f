"""Deliver a run: one message per owner, then the organization summary to the security team.

For each message: check the recipients against the allowed domains, skip it if the ledger says
this round already sent it, replace the attachments by presigned links if it is too large, then
send with retries and backoff for temporary failures, recording every attempt in the ledger
(`ledger.py` explains the at-least-once choice). Failures never stop the other owners' mail.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import jinja2

from ..config import Settings, Transport
from ..errors import DeliveryError
from ..models import OrgSummary, OwnerReport, owner_slug
from ..owners import is_allowed
from .ledger import Ledger, LedgerKey, Queued, RecipientEntry, Status, default_holder
from .links import S3LinkStore
from .message import (
    Attachment,
    AttachmentLink,
    Envelope,
    FailedDelivery,
    Recipients,
    build_message,
    build_summary_message,
    message_id,
    owner_recipients,
)
from .outbox import OutboxTransport, as_bytes, eml_name
from .securityhub import WorkflowResult, mark_notified, note_text
from .ses import SesTransport
from .smtp import SmtpTransport
from .transport import PermanentFailure, TemporaryFailure
from .transport import Transport as TransportProtocol

log = logging.getLogger(__name__)

OWNER = "owner"
SUMMARY = "summary"
# Statuses of a Delivery beyond the ledger's: not sent because the round already sent it,
# written to the outbox instead of being sent, and being sent by another replica right now.
ALREADY_SENT = "already_sent"
WRITTEN = "written"
IN_PROGRESS = "in_progress"


class DeliveryCancelled(DeliveryError):
    """The service is stopping: the run is abandoned between two messages."""


@dataclass(frozen=True)
class Preview:
    """`access-reporter preview`: one owner's message only, to `to` if given (else written to
    the outbox), never the summary, and never a ledger row."""

    owner: str
    to: str | None = None


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    backoff_seconds: float = 2.0

    def delays(self) -> Iterator[float]:
        """The wait before each retry: doubling from `backoff_seconds`."""
        for n in range(self.attempts - 1):
            yield self.backoff_seconds * (2**n)


@dataclass(frozen=True)
class RecipientOutcome:
    """What happened to one address (To or Cc) of a message."""

    address: str
    role: str
    status: str
    attempts: int = 0
    error: str = ""

    @property
    def failed(self) -> bool:
        return self.status in (Status.FAILED_TEMPORARY, Status.FAILED_PERMANENT)

    def record(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "role": self.role,
            "status": self.status,
            "attempts": self.attempts,
            "error": self.error,
        }


@dataclass(frozen=True)
class Delivery:
    """What happened to one message in this run, and to each of its addresses."""

    kind: str
    recipient: str
    status: str
    message_id: str
    transport: str
    attempts: int = 0
    error: str = ""
    cc: tuple[str, ...] = ()
    refused: tuple[tuple[str, str], ...] = ()
    attachments: tuple[tuple[str, str], ...] = ()
    linked: bool = False
    receipt: str = ""
    file: str = ""
    workflow: WorkflowResult | None = None
    recipients: tuple[RecipientOutcome, ...] = ()
    round_id: str = ""

    @property
    def failed(self) -> bool:
        return self.status in (Status.FAILED_TEMPORARY, Status.FAILED_PERMANENT) or any(
            r.failed for r in self.recipients
        )

    def undelivered(self) -> tuple[tuple[str, str, str], ...]:
        """(address, status, error) of every address this message did not reach; the message's
        recipient when it reached nobody and has no address of its own (refused before
        sending)."""
        failed = tuple((r.address, r.status, r.error) for r in self.recipients if r.failed)
        if failed or not self.failed:
            return failed
        return ((self.recipient, self.status, self.error),)

    def record(self) -> dict[str, Any]:
        """The manifest's entry: no message content, only where it went and how."""
        entry: dict[str, Any] = {
            "kind": self.kind,
            "recipient": self.recipient,
            "cc": list(self.cc),
            "transport": self.transport,
            "status": self.status,
            "message_id": self.message_id,
            "attempts": self.attempts,
            "error": self.error,
            "refused": [{"address": a, "reason": r} for a, r in self.refused],
            "recipients": [r.record() for r in self.recipients],
            "attachments": [{"filename": n, "sha256": h} for n, h in self.attachments],
            "linked": self.linked,
        }
        if self.file:
            entry["file"] = self.file
        if self.round_id:
            entry["round_id"] = self.round_id
        if self.workflow is not None:
            entry["security_hub"] = {
                "processed": self.workflow.processed,
                "unprocessed": [{"id": i, "error": e} for i, e in self.workflow.unprocessed],
                "error": self.workflow.error,
            }
        return entry


@dataclass(frozen=True)
class DeliveryReport:
    round_id: str
    deliveries: tuple[Delivery, ...]

    @property
    def failures(self) -> tuple[Delivery, ...]:
        return tuple(d for d in self.deliveries if d.failed)

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(d.file for d in self.deliveries if d.file and d.kind == OWNER)

    def manifest(self) -> list[dict[str, Any]]:
        return [d.record() for d in self.deliveries]


Notifier = Callable[[OwnerReport], WorkflowResult]


@dataclass
class Deliverer:
    """Sends one run's messages. Build it with `open_deliverer` (or directly in tests)."""

    transport: TransportProtocol
    envelope: Envelope
    env: jinja2.Environment
    allowed_domains: tuple[str, ...]
    run_id: str
    round_id: str
    ledger: Ledger | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    cc_manager: bool = True
    security_team: tuple[str, ...] = ()
    links: S3LinkStore | None = None
    notifier: Notifier | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    should_stop: Callable[[], bool] = field(default=lambda: False)
    preview: Preview | None = None
    # Who holds the messages this deliverer queues, for how long, and until when the retry job
    # tries them again (None: a day from now).
    holder: str = field(default_factory=default_holder)
    lease: timedelta = timedelta(minutes=15)
    retry_until: datetime | None = None
    _done: list[Delivery] = field(default_factory=list, init=False)

    def deliver(
        self,
        owners: Iterable[tuple[OwnerReport, tuple[Attachment, ...]]],
        summary: OrgSummary | None = None,
        summary_attachments: tuple[Attachment, ...] = (),
    ) -> DeliveryReport:
        """Every owner's message as the pairs arrive, then the summary (which lists this run's
        failures). Messages left undelivered by earlier runs are tried once more first. Raises
        DeliveryCancelled between messages when asked to stop."""
        if self.preview is None:
            self.retry_queued(until_only=False)
        for report, attachments in owners:
            if self.preview and report.owner.lower() != self.preview.owner.lower():
                continue
            self.owner(report, attachments)
        if summary is not None and self.preview is None:
            self.summary(summary, summary_attachments)
        return self.report()

    def report(self) -> DeliveryReport:
        return DeliveryReport(self.round_id, tuple(self._done))

    def retry_queued(self, *, until_only: bool) -> tuple[Delivery, ...]:
        """One more try for each message left undelivered by an earlier run: the exact bytes
        queued then, to the addresses the ledger says are left. The retry job of `serve` takes
        only those within their retry time (`until_only`); a run takes every one of earlier
        rounds. An address no longer inside the allowed domains fails for good."""
        if self.ledger is None:
            return ()
        done = []
        for key in self.ledger.due(self.clock(), until_only=until_only):
            if key.round_id == self.round_id:
                continue  # this run sends its own round's messages itself
            if self.should_stop():
                raise DeliveryCancelled("stopping: retries left for later")
            if not self.ledger.claim(key, self.holder, self.clock(), self.lease):
                continue
            queued = self.ledger.queued(key)
            if queued is None:
                continue
            delivery = self._retry_one(queued)
            self._done.append(delivery)
            done.append(delivery)
        return tuple(done)

    def _retry_one(self, queued: Queued) -> Delivery:
        assert self.ledger is not None
        key = queued.key
        known = self.ledger.recipients(key)
        left = tuple(
            (a, e.role)
            for a, e in known.items()
            if e.status not in (Status.SENT, Status.FAILED_PERMANENT)
        )
        outside = {a: (Status.FAILED_PERMANENT, "outside owners.allowed_domains")
                   for a, _ in left if not is_allowed(a, self.allowed_domains)}  # fmt: skip
        if outside:
            self.ledger.finish(key, Status.PENDING, self.clock(), outcomes=outside)
        todo = tuple((a, role) for a, role in left if a not in outside)
        base = Delivery(
            kind=key.kind,
            recipient=key.recipient,
            status=Status.PENDING,
            message_id=queued.message_id,
            transport=self.transport.name,
            round_id=key.round_id,
        )
        if todo:
            name = (
                eml_name(key.recipient) if key.kind == OWNER else _summary_eml_name(key.recipient)
            )
            log.info("retrying %s to %s of round %s: %s", key.kind, key.recipient, key.round_id,
                     ", ".join(a for a, _ in todo))  # fmt: skip
            self._send(key, base, queued.raw, todo, name, once=True)
        else:
            self.ledger.settle(key, self.holder)
        known = self.ledger.recipients(key)
        outcomes = tuple(_outcome(a, e.role, e) for a, e in known.items())
        return _replace(
            base,
            status=_status_of(outcomes),
            error=_errors(outcomes),
            recipients=outcomes,
            attempts=max((r.attempts for r in outcomes), default=0),
        )

    def owner(self, report: OwnerReport, attachments: tuple[Attachment, ...]) -> Delivery:
        recipients = owner_recipients(report, self.allowed_domains, self.cc_manager)
        if self.preview is not None and self.preview.to:
            # Only the person previewing; the allowed-domain rule still holds for them.
            to = self.preview.to
            allowed = is_allowed(to, self.allowed_domains)
            recipients = Recipients(
                to=(to,) if allowed else (),
                refused=() if allowed else ((to, "outside owners.allowed_domains"),),
            )

        def build(links: tuple[AttachmentLink, ...]) -> EmailMessage:
            return build_message(
                report,
                () if links else attachments,
                self.envelope,
                self.env,
                recipients=recipients,
                links=links,
                message_key=self.round_id,
            )

        delivery = self._one(OWNER, report.owner, recipients, build, attachments, eml_name)
        if delivery.status == Status.SENT and self.notifier is not None:
            delivery = _with_workflow(delivery, self.notifier(report))
        self._done.append(delivery)
        return delivery

    def summary(
        self, summary: OrgSummary, attachments: tuple[Attachment, ...]
    ) -> tuple[Delivery, ...]:
        failures = tuple(
            FailedDelivery(address, d.kind, status, error)
            for d in self._done
            for address, status, error in d.undelivered()
        )
        sent = []
        for address in self.security_team:
            recipients = (
                Recipients(to=(address,))
                if is_allowed(address, self.allowed_domains)
                else Recipients(to=(), refused=((address, "outside owners.allowed_domains"),))
            )

            def build(links: tuple[AttachmentLink, ...], to: str = address) -> EmailMessage:
                return build_summary_message(
                    summary,
                    () if links else attachments,
                    self.envelope,
                    self.env,
                    to,
                    failures=failures,
                    links=links,
                    message_key=self.round_id,
                )

            delivery = self._one(
                SUMMARY, address, recipients, build, attachments, _summary_eml_name
            )
            self._done.append(delivery)
            sent.append(delivery)
        return tuple(sent)

    # ----------------------------------------------------------------------------------------

    def _one(
        self,
        kind: str,
        recipient: str,
        recipients: Recipients,
        build: Callable[[tuple[AttachmentLink, ...]], EmailMessage],
        attachments: tuple[Attachment, ...],
        file_name: Callable[[str], str],
    ) -> Delivery:
        if self.should_stop():
            raise DeliveryCancelled(
                f"stopping: delivery of round {self.round_id} abandoned before {recipient}"
            )
        key = LedgerKey(self.round_id, kind, recipient.lower())
        mid = message_id(
            self.round_id,
            recipient if kind == OWNER else f"summary/{recipient}",
            self.envelope.id_domain,
        )
        hashes = tuple((a.filename, a.sha256) for a in attachments)
        addresses = tuple((a.lower(), "to") for a in recipients.to) + tuple(
            (a.lower(), "cc") for a in recipients.cc
        )
        base = Delivery(
            kind=kind,
            recipient=recipient,
            status=Status.PENDING,
            message_id=mid,
            transport=self.transport.name,
            cc=recipients.cc,
            refused=recipients.refused,
            attachments=hashes,
        )
        earlier = self.ledger.get(key) if self.ledger else None
        known = self.ledger.recipients(key) if self.ledger and earlier else {}
        settled = {
            a: e for a, e in known.items() if e.status in (Status.SENT, Status.FAILED_PERMANENT)
        }
        if earlier is not None and earlier.status is Status.SENT:
            log.info("%s to %s already sent in round %s", kind, recipient, self.round_id)
            return _replace(
                base,
                status=ALREADY_SENT,
                attempts=earlier.attempts,
                recipients=_outcomes(addresses, known),
            )
        if earlier is not None and earlier.status is Status.FAILED_PERMANENT and not known:
            # A permanent failure stays one: a re-run of the round does not hammer the server.
            return _replace(
                base, status=Status.FAILED_PERMANENT, attempts=earlier.attempts,
                error=f"(earlier run) {earlier.last_error}",
            )  # fmt: skip
        if earlier is not None and earlier.status is Status.PENDING:
            log.warning(
                "%s to %s was pending from an interrupted run of round %s: it may have gone "
                "out; sending again with the same Message-ID (at-least-once)",
                kind,
                recipient,
                self.round_id,
            )
        if not recipients.to:
            reason = "; ".join(f"{a}: {r}" for a, r in recipients.refused) or "no recipient"
            error = f"not sent: {reason}"
            log.error("%s message for %s %s", kind, recipient, error)
            self._record_failure(key, mid, hashes, Status.FAILED_PERMANENT, error)
            return _replace(base, status=Status.FAILED_PERMANENT, error=error)
        todo = tuple((a, role) for a, role in addresses if a not in settled)
        if not todo:
            # Every address was sent or refused for good by an earlier run of the round.
            outcomes = _outcomes(addresses, known)
            errors = _errors(outcomes)
            return _replace(
                base,
                status=_status_of(outcomes),
                attempts=earlier.attempts if earlier else 0,
                error=f"(earlier run) {errors}" if errors else "",
                recipients=outcomes,
            )
        try:
            raw, links = self._build(base.recipient, build, attachments)
        except PermanentFailure as exc:
            self._record_failure(key, mid, hashes, Status.FAILED_PERMANENT, str(exc))
            log.error("%s to %s failed permanently: %s", kind, recipient, exc)
            return _replace(base, status=Status.FAILED_PERMANENT, error=str(exc))
        if self.ledger is not None and not self.ledger.enqueue(
            key,
            run_id=self.run_id,
            message_id=mid,
            sender=self.envelope.from_address,
            transport=self.transport.name,
            raw=raw,
            holder=self.holder,
            now=self.clock(),
            lease=self.lease,
            retry_until=self.retry_until or self.clock() + timedelta(days=1),
        ):
            log.info("%s to %s is being sent by another replica", kind, recipient)
            return _replace(base, status=IN_PROGRESS, recipients=_outcomes(addresses, known))
        delivery = self._send(key, base, raw, todo, file_name(base.recipient))
        now_known = {r.address: r for r in delivery.recipients}
        outcomes = tuple(
            now_known.get(a) or _outcome(a, role, known.get(a)) for a, role in addresses
        )
        status = _status_of(outcomes)
        return _replace(
            delivery,
            status=delivery.status if status == Status.SENT and delivery.file else status,
            error=_errors(outcomes),
            recipients=outcomes,
            linked=bool(links),
        )

    def _build(
        self,
        recipient: str,
        build: Callable[[tuple[AttachmentLink, ...]], EmailMessage],
        attachments: tuple[Attachment, ...],
    ) -> tuple[bytes, tuple[AttachmentLink, ...]]:
        """The message's bytes, built once: every attempt and every retry sends these."""
        links: tuple[AttachmentLink, ...] = ()
        raw = as_bytes(build(links))
        try:
            limit = self.transport.limit()
        except TemporaryFailure as exc:
            # The server cannot say its size limit now: the message is built whole, queued and
            # tried; a server that then finds it too large refuses it for good (552).
            log.warning("%s: %s; size limit unknown", recipient, exc)
            limit = None
        if limit is not None and len(raw) > limit:
            links = self._publish(recipient, attachments, len(raw), limit)
            raw = as_bytes(build(links))
        if limit is not None and len(raw) > limit:
            raise PermanentFailure(
                f"message is {len(raw)} bytes, over the limit of {limit} even without attachments"
            )
        return raw, links

    def _send(
        self,
        key: LedgerKey,
        base: Delivery,
        raw: bytes,
        todo: tuple[tuple[str, str], ...],
        name: str,
        *,
        once: bool = False,
    ) -> Delivery:
        """Send `raw` to the addresses in `todo`, retrying those refused for now with backoff
        (not with `once`), never again to one accepted. Leaves the message queued for the retry
        job while any address may still go; takes it off the queue otherwise."""
        delays = iter(()) if once else self.retry.delays()
        done: dict[str, RecipientOutcome] = {}
        attempts = 0
        receipt = ""
        lost = False
        try:
            while todo:
                attempts = self._attempt(key, base, attempts, todo)
                outcomes, receipt = self._deliver_once(base, raw, todo, name)
                self._finish(key, outcomes, receipt)
                for (address, role), (status, error) in zip(todo, outcomes.values(), strict=True):
                    earlier = done.get(address)
                    tries = (earlier.attempts if earlier else 0) + 1
                    done[address] = RecipientOutcome(address, role, status, tries, error)
                todo = tuple(
                    (a, role) for a, role in todo if outcomes[a][0] is Status.FAILED_TEMPORARY
                )
                if not todo:
                    break
                delay = next(delays, None)
                if delay is None or self.should_stop():
                    log.error("%s to %s: %s left after %d attempt(s): %s", base.kind,
                              base.recipient, ", ".join(a for a, _ in todo), attempts,
                              _errors(tuple(done.values())))  # fmt: skip
                    break
                log.warning("%s to %s: %s; retrying in %.1f s", base.kind, base.recipient,
                            _errors(tuple(done.values())), delay)  # fmt: skip
                self.sleep(delay)
                if self.ledger is not None and not self.ledger.claim(
                    key, self.holder, self.clock(), self.lease
                ):
                    log.error("%s to %s: lost the queue lease; left to its new holder",
                              base.kind, base.recipient)  # fmt: skip
                    lost = True
                    break
        finally:
            # A message whose lease another holder took is theirs now: neither released nor
            # taken off the queue here.
            if self.ledger is not None and not lost:
                if todo:
                    self.ledger.release(key, self.holder, self.clock())
                elif done:
                    self.ledger.settle(key, self.holder)
        outbox = self.transport.name == OutboxTransport.name
        sent = all(r.status is Status.SENT for r in done.values())
        return _replace(
            base,
            status=WRITTEN if outbox and sent else base.status,
            attempts=attempts,
            receipt=receipt,
            file=receipt if outbox and sent else "",
            recipients=tuple(done.values()),
        )

    def _deliver_once(
        self, base: Delivery, raw: bytes, todo: tuple[tuple[str, str], ...], name: str
    ) -> tuple[dict[str, tuple[Status, str]], str]:
        """One hand-over to the transport: each address's status and error, and the receipt."""
        addresses = [a for a, _ in todo]
        try:
            receipt = self.transport.send(raw, self.envelope.from_address, addresses, name)
        except TemporaryFailure as exc:
            return {a: (Status.FAILED_TEMPORARY, str(exc)) for a in addresses}, ""
        except PermanentFailure as exc:
            log.error("%s to %s failed permanently: %s", base.kind, base.recipient, exc)
            return {a: (Status.FAILED_PERMANENT, str(exc)) for a in addresses}, ""
        refused = {r.address.lower(): r for r in receipt.refused}
        outcomes: dict[str, tuple[Status, str]] = {}
        for address in addresses:
            refusal = refused.get(address)
            if refusal is None:
                outcomes[address] = (Status.SENT, "")
            elif refusal.temporary:
                outcomes[address] = (Status.FAILED_TEMPORARY, refusal.reason)
            else:
                log.error("%s to %s: %s refused: %s", base.kind, base.recipient, address,
                          refusal.reason)  # fmt: skip
                outcomes[address] = (Status.FAILED_PERMANENT, refusal.reason)
        return outcomes, receipt.id

    def _publish(
        self, recipient: str, attachments: tuple[Attachment, ...], size: int, limit: int
    ) -> tuple[AttachmentLink, ...]:
        if self.links is None:
            raise PermanentFailure(
                f"message is {size} bytes, over the limit of {limit}; set "
                "mail.large_attachments.bucket to send links instead"
            )
        log.info("message to %s is %d bytes (limit %d): linking attachments", recipient, size,
                 limit)  # fmt: skip
        return self.links.publish(self.run_id, recipient, attachments)

    def _attempt(
        self, key: LedgerKey, base: Delivery, attempts: int, todo: tuple[tuple[str, str], ...]
    ) -> int:
        if self.should_stop() and attempts:
            raise DeliveryCancelled(f"stopping: {base.recipient} left for the next run")
        if self.ledger is None:
            return attempts + 1
        return self.ledger.begin_attempt(
            key,
            run_id=self.run_id,
            message_id=base.message_id,
            transport=base.transport,
            attachments=base.attachments,
            now=self.clock(),
            addresses=todo,
        )

    def _finish(
        self, key: LedgerKey, outcomes: dict[str, tuple[Status, str]], receipt: str
    ) -> None:
        if self.ledger is not None:
            self.ledger.finish(
                key, Status.PENDING, self.clock(), provider_id=receipt, outcomes=outcomes
            )

    def _record_failure(
        self,
        key: LedgerKey,
        mid: str,
        hashes: tuple[tuple[str, str], ...],
        status: Status,
        error: str,
    ) -> None:
        if self.ledger is None:
            return
        self.ledger.begin_attempt(
            key,
            run_id=self.run_id,
            message_id=mid,
            transport=self.transport.name,
            attachments=hashes,
            now=self.clock(),
        )
        self.ledger.finish(key, status, self.clock(), error=error)


def _outcome(address: str, role: str, entry: RecipientEntry | None) -> RecipientOutcome:
    if entry is None:
        return RecipientOutcome(address, role, Status.PENDING)
    return RecipientOutcome(address, role, entry.status, entry.attempts, entry.last_error)


def _outcomes(
    addresses: tuple[tuple[str, str], ...], known: dict[str, RecipientEntry]
) -> tuple[RecipientOutcome, ...]:
    """What the ledger says of each address; none known (a database from before per-recipient
    rows) means the message's own status stands for all."""
    if not known:
        return ()
    return tuple(_outcome(a, role, known.get(a)) for a, role in addresses)


def _status_of(outcomes: tuple[RecipientOutcome, ...]) -> str:
    statuses = {Status(r.status) for r in outcomes if r.status in set(Status)}
    if statuses <= {Status.SENT}:
        return Status.SENT
    if Status.FAILED_TEMPORARY in statuses or Status.PENDING in statuses:
        return Status.FAILED_TEMPORARY
    return Status.FAILED_PERMANENT


def _errors(outcomes: tuple[RecipientOutcome, ...]) -> str:
    return "; ".join(f"{r.address}: {r.error}" for r in outcomes if r.failed)


def _summary_eml_name(recipient: str) -> str:
    # Its own folder: the security team's address may also be an owner (the fallback).
    return f"outbox/summary/{owner_slug(recipient)}.eml"


def _replace(base: Delivery, **changes: Any) -> Delivery:
    return replace(base, **changes)


def _with_workflow(delivery: Delivery, result: WorkflowResult) -> Delivery:
    return _replace(delivery, workflow=result)


# --------------------------------------------------------------------------------------------
# From settings: the transport, ledger, link store and notifier a run uses.
# --------------------------------------------------------------------------------------------


def make_transport(
    settings: Settings, write: Callable[[str, bytes], object], sessions: Any | None
) -> TransportProtocol:
    mail = settings.mail
    if mail.transport is Transport.OUTBOX:
        return OutboxTransport(write)
    if mail.transport is Transport.SMTP:
        return SmtpTransport(mail.smtp, max_bytes=mail.max_message_bytes)
    if sessions is None:
        raise DeliveryError(
            "mail.transport ses needs AWS credentials\n"
            "    hint: run without --from-file, or use --no-send"
        )
    region = mail.ses.region or settings.organization.home_region
    return SesTransport(
        sessions.client("sesv2", region=region),
        configuration_set=mail.ses.configuration_set,
        max_bytes=mail.max_message_bytes,
    )


def open_deliverer(
    settings: Settings,
    *,
    env: jinja2.Environment,
    run_id: str,
    write: Callable[[str, bytes], object],
    sessions: Any | None = None,
    round_id: str | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
    transport: TransportProtocol | None = None,
    preview: Preview | None = None,
    slot: datetime | None = None,
    holder: str | None = None,
) -> Deliverer:
    """Everything a run's delivery needs, from settings. The outbox keeps no ledger: writing a
    file is not a delivery, and a later real run must not think the owner was mailed.
    Close `deliverer.transport` (and dispose `deliverer.ledger`) when done: `close_deliverer`."""
    mail = settings.mail
    if preview is not None and not preview.to:
        transport = transport or OutboxTransport(write)
    chosen = transport or make_transport(settings, write, sessions)
    ledger = None
    if chosen.name != OutboxTransport.name and preview is None:
        ledger = Ledger.open(settings.state.database_url)
    links = None
    notifier = None
    big = mail.large_attachments
    bucket = big.bucket or _evidence_bucket(settings)
    if sessions is not None and bucket:
        links = S3LinkStore(
            sessions.client("s3", region=settings.organization.home_region),
            bucket,
            big.prefix,
            big.expiry_seconds,
            lambda: datetime.now(UTC),
        )
    if sessions is not None and mail.security_hub.mark_notified and preview is None:
        org = settings.organization
        admin = (
            sessions.assume(org.delegated_admin_role_arn) if org.delegated_admin_role_arn else None
        )
        client = sessions.client("securityhub", admin, region=org.home_region)
        updated_by = mail.security_hub.updated_by

        def notifier(report: OwnerReport) -> WorkflowResult:
            note = note_text(report.owner, datetime.now(UTC), run_id)
            return mark_notified(client, report.items, note=note, updated_by=updated_by)

    return Deliverer(
        transport=chosen,
        envelope=Envelope(
            from_address=str(mail.from_address),
            reply_to=str(mail.reply_to) if mail.reply_to else None,
            subject_prefix=mail.subject_prefix,
            message_id_domain=mail.message_id_domain,
        ),
        env=env,
        allowed_domains=tuple(settings.owners.allowed_domains),
        run_id=run_id,
        round_id=round_id or run_id,
        ledger=ledger,
        retry=RetryPolicy(mail.retry.attempts, mail.retry.backoff_seconds),
        cc_manager=mail.cc_manager_on_sla_breach,
        security_team=tuple(settings.owners.security_team),
        links=links,
        notifier=notifier,
        sleep=sleep,
        should_stop=should_stop,
        preview=preview,
        holder=holder or default_holder(),
        # A message is held only while it is being sent; a holder that died lets go when its
        # lease runs out, on the same time scale as the run lock of the slot.
        lease=timedelta(seconds=settings.schedule.lock_lease_seconds),
        retry_until=(slot or datetime.now(UTC)) + timedelta(hours=mail.retry.until_hours),
    )


def _evidence_bucket(settings: Settings) -> str | None:
    """The evidence bucket, when runs are stored in S3: large attachments sit with the run."""
    evidence = getattr(settings, "evidence", None)
    if evidence is None or str(getattr(evidence, "store", "local")) != "s3":
        return None
    bucket: str | None = evidence.s3.bucket
    return bucket


def close_deliverer(deliverer: Deliverer) -> None:
    deliverer.transport.close()
    if deliverer.ledger is not None:
        deliverer.ledger.dispose()
