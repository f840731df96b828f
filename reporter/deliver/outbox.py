"""The outbox transport: each message becomes an `.eml` file instead of being sent."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from email.message import EmailMessage
from email.policy import SMTP

from ..models import owner_slug
from .transport import Receipt


def eml_name(recipient: str) -> str:
    return f"outbox/{owner_slug(recipient)}.eml"


def as_bytes(msg: EmailMessage) -> bytes:
    # The SMTP policy gives CRLF line endings: the file is byte-for-byte what a server gets.
    return msg.as_bytes(policy=SMTP)


class OutboxTransport:
    """Writes through `write(relpath, data)` (the run folder's), so every file is in the
    evidence manifest. `name` is the path inside the run folder."""

    name = "outbox"

    def __init__(self, write: Callable[[str, bytes], object]) -> None:
        self._write = write

    def limit(self) -> int | None:
        return None

    def send(self, raw: bytes, sender: str, recipients: Sequence[str], name: str) -> Receipt:
        self._write(name, raw)
        return Receipt(name)

    def close(self) -> None:
        pass
