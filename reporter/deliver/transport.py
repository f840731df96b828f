"""What every transport offers, and the two ways a send can fail.

A transport hands one finished message (bytes) to a mail system. It says how large a message may
be, and it raises `TemporaryFailure` (worth retrying: 4xx, throttling, a dropped connection) or
`PermanentFailure` (retrying cannot help: 5xx, an invalid address, a rejected message). Nothing
else leaves `send`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..errors import DeliveryError


class TemporaryFailure(DeliveryError):
    """Retry later: the same message may well go through."""


class PermanentFailure(DeliveryError):
    """Do not retry this message; a person has to look."""


class Transport(Protocol):
    name: str

    def limit(self) -> int | None:
        """Largest message in bytes this transport takes; None = no limit."""
        ...

    def send(self, raw: bytes, sender: str, recipients: Sequence[str], name: str) -> str:
        """Send `raw` to `recipients` (the envelope; the headers say To/Cc). `name` is a
        file-system-safe name for the message. Returns the mail system's id or file name."""
        ...

    def close(self) -> None: ...
