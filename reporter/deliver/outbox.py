"""The outbox transport: each message becomes an `.eml` file instead of being sent."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP

from ..models import owner_slug


def eml_name(recipient: str) -> str:
    return f"outbox/{owner_slug(recipient)}.eml"


def as_bytes(msg: EmailMessage) -> bytes:
    # The SMTP policy gives CRLF line endings: the file is byte-for-byte what a server gets.
    return msg.as_bytes(policy=SMTP)
