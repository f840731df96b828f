"""A real SMTP server on 127.0.0.1 (aiosmtpd) that records what it receives and can be told to
answer the next DATA commands with a 4xx or 5xx, or to drop the connection."""

from __future__ import annotations

import email
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default
from typing import Any

from aiosmtpd.controller import Controller

DROP = "drop"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.data, policy=default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class Recorder:
    """aiosmtpd handler. `data_replies` answers the next DATA commands in order ("451 ...",
    "550 ...", or DROP); `refuse` answers RCPT for an address every time, `refuse_next` the
    next RCPTs for it in order (then it is accepted)."""

    received: list[Received] = field(default_factory=list)
    data_replies: list[str] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    refuse_next: dict[str, list[str]] = field(default_factory=dict)
    rcpt_seen: list[str] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.rcpt_seen.append(address)
        if address in self.refuse:
            return self.refuse[address]
        if self.refuse_next.get(address):
            return self.refuse_next[address].pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = self.data_replies.pop(0) if self.data_replies else ""
        if reply == DROP:
            server.transport.close()
            return "421 4.4.2 connection dropped"
        if reply:
            return reply
        self.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content))
        )
        return f"250 2.0.0 Ok: queued as Q{len(self.received)}"

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.rcpt_tos]

    def accepted(self) -> dict[str, int]:
        """How many messages the server took for each address."""
        counts: dict[str, int] = {}
        for r in self.received:
            for address in r.rcpt_tos:
                counts[address] = counts.get(address, 0) + 1
        return counts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def smtp_server(**kwargs: Any) -> Iterator[tuple[Recorder, int]]:
    recorder = Recorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield recorder, port
    finally:
        controller.stop()
