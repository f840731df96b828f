"""Build one e-mail per recipient: HTML and plain text, PDF and workbook attached. Pure."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime

import jinja2

from ..models import OwnerReport

PDF_TYPE = ("application", "pdf")
XLSX_TYPE = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")


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
class Envelope:
    """Who sends, and the subject prefix; from `mail` settings."""

    from_address: str
    reply_to: str | None = None
    subject_prefix: str = "[Unused access]"


def message_id(run_id: str, recipient: str) -> str:
    """Stable per run and recipient, so a re-sent message is recognisably the same one."""
    digest = hashlib.sha256(f"{run_id}\0{recipient.lower()}".encode()).hexdigest()[:24]
    return f"<{run_id}.{digest}@unused-access-reporter>"


def subject(report: OwnerReport, prefix: str) -> str:
    n = len(report.items)
    accounts = len(report.accounts)
    ctx = report.context
    return (
        f"{prefix} {n} finding{'s' if n != 1 else ''} in {accounts} "
        f"account{'s' if accounts != 1 else ''}, {ctx.period_start:%Y-%m-%d} to "
        f"{ctx.period_end:%Y-%m-%d}"
    ).strip()


def build_message(
    report: OwnerReport,
    attachments: tuple[Attachment, ...],
    envelope: Envelope,
    env: jinja2.Environment,
) -> EmailMessage:
    by_type = Counter(item.finding.type.label for item in report.items)
    values = {
        "report": report,
        "by_type": sorted(by_type.items()),
        "top": report.items[:10],
        "attachments": attachments,
    }
    msg = EmailMessage()
    msg["From"] = envelope.from_address
    msg["To"] = report.owner
    if envelope.reply_to:
        msg["Reply-To"] = envelope.reply_to
    msg["Subject"] = subject(report, envelope.subject_prefix)
    msg["Date"] = format_datetime(report.context.generated_at)
    msg["Message-ID"] = message_id(report.context.run_id, report.owner)
    msg["X-Unused-Access-Run"] = report.context.run_id
    msg.set_content(env.get_template("email_body.txt.j2").render(values))
    msg.add_alternative(env.get_template("email_body.html.j2").render(values), subtype="html")
    for a in attachments:
        msg.add_attachment(a.data, maintype=a.maintype, subtype=a.subtype, filename=a.filename)
    return msg
