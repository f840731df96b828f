"""What every transport offers, and the two ways a send can fail.

A transport hands one finished message (bytes) to a mail system. It says how large a message may
be, and it raises `TemporaryFailure` (worth retrying: 4xx, throttling, a dropped connection) or
`PermanentFailure` (retrying cannot help: 5xx, an invalid address, a rejected message) when the
message as a whole was not taken. Nothing else leaves `send`.

A mail server may take a message for some recipients and refuse others (SMTP answers each RCPT
on its own): `send` then returns a `Receipt` naming the refused ones, each temporary or
permanent, so that each recipient is retried or reported on its own and nobody who was accepted
gets a second copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..errors import DeliveryError


class TemporaryFailure(DeliveryError):
    """Retry later: the same message may well go through."""


class PermanentFailure(DeliveryError):
    """Do not retry this message; a person has to look."""


@dataclass(frozen=True)
class Refusal:
    """One recipient the mail system did not take, and whether trying again may help."""

    address: str
    temporary: bool
    reason: str


@dataclass(frozen=True)
class Receipt:
    """What the mail system said: its id for the message (empty when nobody was accepted) and
    the recipients it refused. Every recipient not refused was accepted."""

    id: str
    refused: tuple[Refusal, ...] = ()


class Transport(Protocol):
    name: str

    def limit(self) -> int | None:
        """Largest message in bytes this transport takes; None = no limit."""
        ...

    def send(self, raw: bytes, sender: str, recipients: Sequence[str], name: str) -> Receipt:
        """Send `raw` to `recipients` (the envelope; the headers say To/Cc). `name` is a
        file-system-safe name for the message. Returns the mail system's id (or file name) and
        the recipients it refused."""
        ...

    def close(self) -> None: ...
