"""Build one e-mail per recipient: HTML and plain text, PDF and workbook attached. Pure.

Who may receive a message is decided here too (`owner_recipients`), with the same allowed-domain
rule owner resolution uses, so no transport ever sees an address outside the allowed domains.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

import jinja2

from ..models import OrgSummary, OwnerReport, ReportItem
from ..owners import is_allowed

PDF_TYPE = ("application", "pdf")
XLSX_TYPE = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")
TOP_ACTIONS = 10


@dataclass(frozen=True)
class Attachment:
    filename: str
    data: bytes
    maintype: str
    subtype: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class AttachmentLink:
    """An attachment too large to send, published elsewhere: the body links to it instead."""

    filename: str
    url: str
    size: int
    sha256: str
    expires_at: datetime


@dataclass(frozen=True)
class Envelope:
    """Who sends, and the subject prefix; from `mail` settings."""

    from_address: str
    reply_to: str | None = None
    subject_prefix: str = "[Unused access]"
    message_id_domain: str | None = None

    @property
    def id_domain(self) -> str:
        """The right part of every Message-ID: the configured domain, else the sender's."""
        return self.message_id_domain or self.from_address.rpartition("@")[2].lower()


@dataclass(frozen=True)
class Recipients:
    """Where one message goes. `refused` holds addresses left out, each with the reason."""

    to: tuple[str, ...]
    cc: tuple[str, ...] = ()
    refused: tuple[tuple[str, str], ...] = ()

    @property
    def all(self) -> tuple[str, ...]:
        return (*self.to, *self.cc)


@dataclass(frozen=True)
class FailedDelivery:
    """A message that could not be delivered, as the security team's summary lists it."""

    recipient: str
    kind: str
    status: str
    error: str


def message_id(round_id: str, recipient: str, domain: str) -> str:
    """`<uar.DIGEST@domain>`: the same for the same round and recipient, so a message sent again
    is recognisably the same one, and different for every other round and recipient.

    The left part is a digest, not the round id itself: round ids hold colons and `+`
    (`slot:unused-access-report:2026-12-07T07:00:00+00:00`), which RFC 5322's dot-atom does not
    allow, and a Message-ID the e-mail package cannot parse is cut down to its first word."""
    digest = hashlib.sha256(f"{round_id}\0{recipient.lower()}".encode()).hexdigest()[:32]
    return f"<uar.{digest}@{domain}>"


def _allowed(address: str, allowed_domains: Sequence[str]) -> bool:
    return is_allowed(address, tuple(allowed_domains))


def sla_managers(items: Iterable[ReportItem]) -> tuple[str, ...]:
    """Managers of the owners of findings past their SLA or past a promised removal's due date,
    lower-cased and sorted."""
    return tuple(
        sorted(
            {
                i.owner.manager.lower()
                for i in items
                if (i.sla_breached or (i.review is not None and i.review.overdue))
                and i.owner.manager
            }
        )
    )


def owner_recipients(
    report: OwnerReport, allowed_domains: Sequence[str], cc_manager: bool
) -> Recipients:
    """The owner, and their managers in Cc when findings are past their SLA (if configured).

    Nothing outside the allowed domains is ever addressed: such an address is refused with a
    reason instead, and an owner who is refused leaves a message with no recipient at all.
    """
    refused: list[tuple[str, str]] = []
    to: tuple[str, ...] = ()
    if _allowed(report.owner, allowed_domains):
        to = (report.owner,)
    else:
        refused.append((report.owner, "outside owners.allowed_domains"))
    cc: list[str] = []
    if cc_manager:
        for manager in sla_managers(report.items):
            if manager == report.owner.lower():
                continue
            if _allowed(manager, allowed_domains):
                cc.append(manager)
            else:
                refused.append((manager, "manager outside owners.allowed_domains"))
    return Recipients(to=to, cc=tuple(cc) if to else (), refused=tuple(refused))


def subject(report: OwnerReport, prefix: str) -> str:
    n = len(report.items)
    if not n and report.exception_notices:
        # An approver with no finding of their own: the message is about their exceptions.
        k = len(report.exception_notices)
        return (
            f"{prefix} {k} exception{'s' if k != 1 else ''} need{'' if k != 1 else 's'} "
            f"your attention, {report.context.period_start:%Y-%m-%d} to "
            f"{report.context.period_end:%Y-%m-%d}"
        ).strip()
    accounts = len(report.accounts)
    ctx = report.context
    breached = sum(1 for i in report.items if i.sla_breached)
    overdue = f", {breached} past SLA" if breached else ""
    return (
        f"{prefix} {n} finding{'s' if n != 1 else ''} in {accounts} "
        f"account{'s' if accounts != 1 else ''}{overdue}, {ctx.period_start:%Y-%m-%d} to "
        f"{ctx.period_end:%Y-%m-%d}"
    ).strip()


def summary_subject(summary: OrgSummary, prefix: str, failures: int) -> str:
    ctx = summary.context
    undelivered = f", {failures} undelivered" if failures else ""
    forged = sum(count for _, count in summary.lookalikes)
    lookalikes = (
        f", {forged} look-alike finding{'' if forged == 1 else 's'} quarantined" if forged else ""
    )
    return (
        f"{prefix} Organization summary: {len(summary.items)} findings, "
        f"{len(summary.owners)} owners{undelivered}{lookalikes}, {ctx.period_start:%Y-%m-%d} to "
        f"{ctx.period_end:%Y-%m-%d}"
    ).strip()


def _headers(
    msg: EmailMessage,
    envelope: Envelope,
    recipients: Recipients,
    subject_line: str,
    generated_at: datetime,
    mid: str,
    run_id: str,
) -> None:
    msg["From"] = envelope.from_address
    msg["To"] = ", ".join(recipients.to)
    if recipients.cc:
        msg["Cc"] = ", ".join(recipients.cc)
    if envelope.reply_to:
        msg["Reply-To"] = envelope.reply_to
    msg["Subject"] = subject_line
    msg["Date"] = format_datetime(generated_at)
    msg["Message-ID"] = mid
    msg["X-Unused-Access-Run"] = run_id


def _body(
    msg: EmailMessage,
    env: jinja2.Environment,
    stem: str,
    values: dict[str, object],
    attachments: Sequence[Attachment],
) -> None:
    msg.set_content(env.get_template(f"{stem}.txt.j2").render(values))
    msg.add_alternative(env.get_template(f"{stem}.html.j2").render(values), subtype="html")
    for a in attachments:
        msg.add_attachment(a.data, maintype=a.maintype, subtype=a.subtype, filename=a.filename)


def build_message(
    report: OwnerReport,
    attachments: tuple[Attachment, ...],
    envelope: Envelope,
    env: jinja2.Environment,
    *,
    recipients: Recipients | None = None,
    links: tuple[AttachmentLink, ...] = (),
    message_key: str | None = None,
) -> EmailMessage:
    """The owner's message. `links` replace attachments too large to send; `message_key` (the
    delivery round) makes the Message-ID, so a re-send after a crash carries the same one."""
    # Organization access is counted apart and never among the actions (reporter.orgaccess).
    work = [i for i in report.items if i.organization_access is None]
    by_type = Counter(item.finding.type.label for item in work)
    values: dict[str, object] = {
        "report": report,
        "by_type": sorted(by_type.items()),
        "top": work[:TOP_ACTIONS],
        "organization_access": [i for i in report.items if i.organization_access is not None],
        "attachments": attachments,
        "links": links,
        "sla_breached": sum(1 for i in report.items if i.sla_breached),
        "overdue": sum(1 for i in report.items if i.review is not None and i.review.overdue),
        "reviewed": sum(1 for i in report.items if i.review is not None),
        "new": sum(1 for i in report.items if i.new),
        "cc": recipients.cc if recipients else (),
    }
    msg = EmailMessage()
    _headers(
        msg,
        envelope,
        recipients or Recipients(to=(report.owner,)),
        subject(report, envelope.subject_prefix),
        report.context.generated_at,
        message_id(message_key or report.context.run_id, report.owner, envelope.id_domain),
        report.context.run_id,
    )
    _body(msg, env, "email_body", values, attachments)
    return msg


def build_summary_message(
    summary: OrgSummary,
    attachments: tuple[Attachment, ...],
    envelope: Envelope,
    env: jinja2.Environment,
    recipient: str,
    *,
    failures: tuple[FailedDelivery, ...] = (),
    links: tuple[AttachmentLink, ...] = (),
    message_key: str | None = None,
) -> EmailMessage:
    """The organization summary for one member of the security team, with this run's
    undelivered messages listed so nobody's silence goes unnoticed."""
    work = [i for i in summary.items if i.organization_access is None]
    access = [i for i in summary.items if i.organization_access is not None]
    by_type = Counter(item.finding.type.label for item in work)
    in_scope = [c for c in summary.coverage if c.in_scope]
    values: dict[str, object] = {
        "summary": summary,
        "by_type": sorted(by_type.items()),
        "organization_access": access,
        "organization_access_top": access[:TOP_ACTIONS],
        "top_owners": summary.owners[:TOP_ACTIONS],
        "covered": sum(1 for c in in_scope if c.covered),
        "in_scope": len(in_scope),
        "not_covered": [c for c in in_scope if not c.covered],
        "failures": failures,
        "attachments": attachments,
        "links": links,
    }
    msg = EmailMessage()
    _headers(
        msg,
        envelope,
        Recipients(to=(recipient,)),
        summary_subject(summary, envelope.subject_prefix, len(failures)),
        summary.context.generated_at,
        message_id(
            message_key or summary.context.run_id, f"summary/{recipient}", envelope.id_domain
        ),
        summary.context.run_id,
    )
    _body(msg, env, "summary_email", values, attachments)
    return msg
