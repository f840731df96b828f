"""The SMTP server refusing (4xx, 5xx), stalling past the timeout, or dropping the connection
mid-message: retried or reported, and a second run of the round mails nobody twice."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from reporter.deliver.ledger import Status
from reporter.sandbox import Sandbox
from tests.smtp_server import DROP, Recorder, free_port

from .conftest import (
    ROUND,
    complete_runs,
    execute,
    expected_keys,
    keys,
    ledger_rows,
    manifest,
    once_each,
    settings_for,
)

STALL = "stall"


class FaultyServer(Recorder):
    """`data_replies` may also hold STALL: answer only after the client's timeout, taking
    nothing (a server that hangs and then gives up)."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_replies and self.data_replies[0] == STALL:
            self.data_replies.pop(0)
            await asyncio.sleep(1.5)
            return "451 4.4.1 took too long"
        return await super().handle_DATA(server, session, envelope)


@contextmanager
def faulty_server() -> Iterator[tuple[FaultyServer, int]]:
    recorder = FaultyServer()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield recorder, port
    finally:
        controller.stop()


@pytest.mark.parametrize(
    ("reply", "permanent"),
    [
        ("451 4.3.0 mailbox busy, try later", False),
        ("550 5.1.1 mailbox unavailable", True),
        (STALL, False),
        (DROP, False),
    ],
    ids=["4xx", "5xx", "timeout", "dropped"],
)
def test_smtp_faults_are_retried_or_reported_and_nothing_goes_twice(
    sandbox: Sandbox, tmp_path: Path, reply: str, permanent: bool
) -> None:
    with faulty_server() as (server, port):
        settings = settings_for(
            sandbox,
            tmp_path,
            port=port,
            mail={
                "transport": "smtp",
                "smtp": {
                    "host": "127.0.0.1",
                    "port": port,
                    "security": "none",
                    "timeout_seconds": 0.5,
                },
                "retry": {"attempts": 3, "backoff_seconds": 0},
            },
        )
        server.data_replies.append(reply)
        first = execute(sandbox, settings, round_id=ROUND)
        hit = server.rcpt_seen[0]  # the message that met the fault
        entries = {
            f"{e['kind']}:{e['recipient']}": e for e in manifest(first.run_dir)["deliveries"]
        }
        (faulted,) = [e for e in entries.values() if e["recipient"] == hit]
        if permanent:
            assert first.exit_code == 1
            assert [r for r, _ in first.undelivered] == [hit]
            assert "550" in first.undelivered[0][1]
            assert faulted["status"] == Status.FAILED_PERMANENT and faulted["attempts"] == 1
            assert manifest(first.run_dir)["exit_code"] == 1
        else:
            assert first.exit_code == 0 and first.undelivered == ()
            assert faulted["status"] == Status.SENT and faulted["attempts"] == 2
        assert all(e["status"] == Status.SENT for e in entries.values() if e is not faulted)
        assert keys(first.run_dir) == expected_keys(sandbox)
        sent_first = once_each(server)

        # The same round again (a restart, a retry run): nothing more goes out, and a
        # permanent refusal is not hammered.
        again = execute(sandbox, settings, round_id=ROUND)
        assert once_each(server) == sent_first
        statuses = {e["status"] for e in manifest(again.run_dir)["deliveries"]}
        assert statuses == (
            {"already_sent", Status.FAILED_PERMANENT} if permanent else {"already_sent"}
        )
        assert again.exit_code == first.exit_code
        rows = ledger_rows(settings, ROUND)
        assert set(rows) == set(entries)
        assert {k: v for k, v in rows.items() if v is not Status.SENT} == (
            {next(k for k, e in entries.items() if e is faulted): Status.FAILED_PERMANENT}
            if permanent
            else {}
        )
        assert len(complete_runs(tmp_path / "out")) == 2
