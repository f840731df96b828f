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
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import jinja2

from ..config import Settings, Transport
from ..errors import DeliveryError
from ..models import OrgSummary, OwnerReport, owner_slug
from ..owners import is_allowed
from .ledger import Ledger, LedgerKey, Status
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
# Statuses of a Delivery beyond the ledger's: not sent because the round already sent it, and
# written to the outbox instead of being sent.
ALREADY_SENT = "already_sent"
WRITTEN = "written"


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
class Delivery:
    """What happened to one message in this run."""

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

    @property
    def failed(self) -> bool:
        return self.status in (Status.FAILED_TEMPORARY, Status.FAILED_PERMANENT)

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
            "attachments": [{"filename": n, "sha256": h} for n, h in self.attachments],
            "linked": self.linked,
        }
        if self.file:
            entry["file"] = self.file
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
    _done: list[Delivery] = field(default_factory=list, init=False)

    def deliver(
        self,
        owners: Iterable[tuple[OwnerReport, tuple[Attachment, ...]]],
        summary: OrgSummary | None = None,
        summary_attachments: tuple[Attachment, ...] = (),
    ) -> DeliveryReport:
        """Every owner's message as the pairs arrive, then the summary (which lists this run's
        failures). Raises DeliveryCancelled between messages when asked to stop."""
        for report, attachments in owners:
            if self.preview and report.owner.lower() != self.preview.owner.lower():
                continue
            self.owner(report, attachments)
        if summary is not None and self.preview is None:
            self.summary(summary, summary_attachments)
        return self.report()

    def report(self) -> DeliveryReport:
        return DeliveryReport(self.round_id, tuple(self._done))

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
            FailedDelivery(d.recipient, d.kind, d.status, d.error) for d in self._done if d.failed
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
        mid = message_id(self.round_id, recipient if kind == OWNER else f"summary/{recipient}")
        hashes = tuple((a.filename, a.sha256) for a in attachments)
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
        if earlier is not None and earlier.status is Status.SENT:
            log.info("%s to %s already sent in round %s", kind, recipient, self.round_id)
            return _replace(base, status=ALREADY_SENT, attempts=earlier.attempts)
        if earlier is not None and earlier.status is Status.FAILED_PERMANENT:
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
        return self._send(key, base, recipients, build, attachments, file_name)

    def _send(
        self,
        key: LedgerKey,
        base: Delivery,
        recipients: Recipients,
        build: Callable[[tuple[AttachmentLink, ...]], EmailMessage],
        attachments: tuple[Attachment, ...],
        file_name: Callable[[str], str],
    ) -> Delivery:
        delays = self.retry.delays()
        attempts = 0
        links: tuple[AttachmentLink, ...] = ()
        while True:
            attempts = self._attempt(key, base, attempts)
            try:
                raw = as_bytes(build(links))
                limit = self.transport.limit()
                if limit is not None and len(raw) > limit and not links:
                    links = self._publish(base.recipient, attachments, len(raw), limit)
                    raw = as_bytes(build(links))
                if limit is not None and len(raw) > limit:
                    raise PermanentFailure(
                        f"message is {len(raw)} bytes, over the limit of {limit} even without "
                        "attachments"
                    )
                receipt = self.transport.send(
                    raw, self.envelope.from_address, recipients.all, file_name(base.recipient)
                )
            except TemporaryFailure as exc:
                status = Status.FAILED_TEMPORARY
                self._finish(key, status, str(exc))
                delay = next(delays, None)
                if delay is None or self.should_stop():
                    log.error("%s to %s failed after %d attempt(s): %s",
                              base.kind, base.recipient, attempts, exc)  # fmt: skip
                    return _replace(base, status=status, attempts=attempts, error=str(exc),
                                    linked=bool(links))  # fmt: skip
                log.warning("%s to %s: %s; retrying in %.1f s",
                            base.kind, base.recipient, exc, delay)  # fmt: skip
                self.sleep(delay)
                continue
            except PermanentFailure as exc:
                self._finish(key, Status.FAILED_PERMANENT, str(exc))
                log.error("%s to %s failed permanently: %s", base.kind, base.recipient, exc)
                return _replace(base, status=Status.FAILED_PERMANENT, attempts=attempts,
                                error=str(exc), linked=bool(links))  # fmt: skip
            outbox = self.transport.name == OutboxTransport.name
            self._finish(key, Status.SENT, "", receipt)
            return _replace(
                base,
                status=WRITTEN if outbox else Status.SENT,
                attempts=attempts,
                receipt=receipt,
                file=receipt if outbox else "",
                linked=bool(links),
            )

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

    def _attempt(self, key: LedgerKey, base: Delivery, attempts: int) -> int:
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
        )

    def _finish(self, key: LedgerKey, status: Status, error: str, receipt: str = "") -> None:
        if self.ledger is not None:
            self.ledger.finish(key, status, self.clock(), error=error, provider_id=receipt)

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
