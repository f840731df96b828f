"""`serve` end to end against a misbehaving SMTP server: the scheduled path (real `Service`
processes, their job store, run lock, retry job and takeover watch) on the sandbox organization.

The server answers 421 and 451 to first RCPTs, drops the connection in the middle of a DATA,
refuses one recipient with 550 for good, refuses an owner while accepting the Cc'd manager, and
refuses another owner for longer than the in-run retries last. A replica is SIGKILLed while a
DATA is in flight and another (or a restart) carries the slot on. Counted from what the server
accepted: every recipient gets exactly one message of the slot; the permanent refusal is in the
ledger, the manifest, the security team's e-mail and the exit code; every Message-ID is valid,
distinct per message and the manifest's.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from reporter.deliver.ledger import Ledger, Status
from reporter.schedule import JOB_ID, RunLock, slot_round
from reporter.state.engine import open_engine
from tests.smtp_server import DROP, Recorder, free_port

from .conftest import manifest

REPO = Path(__file__).resolve().parents[2]
WAIT = 240.0  # seconds; only reached when something is broken
ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
MSG_ID = re.compile(rf"<{ATOM}(\.{ATOM})*@{ATOM}(\.{ATOM})*>")
PERMANENT = "bob-manager@example.com"
OWNER_REFUSED = "alice@example.com"


class HoldingServer(Recorder):
    """A Recorder that can hold the next DATA until told to go on (`hold`/`go`). A message whose
    client is gone by then is not taken: the client never saw a reply, so for it the message
    was in flight, and this server, unlike many, does not keep it."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = threading.Event()
        self.holding = threading.Event()
        self.go = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.hold.is_set():
            self.hold.clear()
            self.holding.set()
            while not self.go.is_set():
                await asyncio.sleep(0.05)
            if server.transport is None or server.transport.is_closing():
                return "451 4.4.2 client went away"
        return await super().handle_DATA(server, session, envelope)


@contextmanager
def holding_server() -> Iterator[tuple[HoldingServer, int]]:
    recorder = HoldingServer()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield recorder, port
    finally:
        recorder.go.set()
        controller.stop()


def replica(tmp: Path, port: int, state_url: str, name: str) -> subprocess.Popen[str]:
    """A `serve` process (tests/faults/serve_driver.py); give it its slot with `serve`."""
    log = (tmp / f"{name}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.serve_driver", str(tmp), str(port), state_url],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
        env={**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    )  # fmt: skip
    assert process.stdout is not None
    assert '"ready"' in process.stdout.readline(), f"see {tmp / name}.log"
    return process


def serve(process: subprocess.Popen[str], slot: datetime) -> None:
    """Hand the replica its slot and wait until it serves."""
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(slot.isoformat() + "\n")
    process.stdin.flush()
    assert '"serving"' in process.stdout.readline()


def soon(seconds: int = 8) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)


def until(check: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def settled(state_url: str, round_id: str) -> bool:
    """The slot finished and nothing of its mail is queued any more."""
    engine = open_engine(state_url)
    try:
        state = RunLock(engine).get(JOB_ID)
        ledger = Ledger(engine)
        rows = ledger.round(round_id)
        return (
            state is not None
            and state.state == "finished"
            and bool(rows)
            and ledger.undelivered()[0] == 0
        )
    finally:
        engine.dispose()


def misbehave(server: HoldingServer) -> None:
    """The sandbox's owners are alice, bob (their managers in Cc) and security-team (the
    fallback, who also gets the summary)."""
    server.refuse_next["security-team@example.com"] = ["421 4.7.0 Try again later"]
    server.refuse_next["bob@example.com"] = ["451 4.3.0 Greylisted"]
    server.refuse[PERMANENT] = "550 5.1.1 No such user"
    # An owner refused while the manager in Cc is accepted, for longer than the run's retries
    # (2 attempts): the retry job delivers it.
    server.refuse_next[OWNER_REFUSED] = ["452 4.2.2 Over quota"] * 3
    server.data_replies.append(DROP)


def check_outcome(server: HoldingServer, state_url: str, out: Path, round_id: str) -> None:
    # What the server took: (address, Message-ID) -> how many times.
    accepted = Counter(
        (address, str(got.message["Message-ID"]))
        for got in server.received
        for address in got.rcpt_tos
    )
    engine = open_engine(state_url)
    ledger = Ledger(engine)
    try:
        expected = {
            (address, row.message_id): entry.status
            for row in ledger.round(round_id)
            for address, entry in ledger.recipients(row.key).items()
        }
    finally:
        engine.dispose()
    # Every recipient of every message of the slot got it exactly once; the refused one never.
    assert set(accepted.values()) == {1}, accepted
    assert {k for k, v in expected.items() if v is Status.SENT} == set(accepted)
    assert {k[0]: v for k, v in expected.items() if v is not Status.SENT} == {
        PERMANENT: Status.FAILED_PERMANENT
    }
    addresses = Counter(a for a, _ in accepted)
    assert addresses == {
        OWNER_REFUSED: 1,
        "alice-manager@example.com": 1,
        "bob@example.com": 1,
        # their own (unowned findings') report, and the organization summary
        "security-team@example.com": 2,
    }
    # Message-IDs: valid, one per message (an owner's and their manager's copies, sent apart,
    # are the same message), different between messages, and the manifest's.
    mids = {mid for _, mid in accepted}
    assert all(MSG_ID.fullmatch(mid) for mid in mids), mids
    assert len(mids) == len({mid for _, mid in expected})
    runs = sorted(p for p in out.iterdir() if (p / "manifest.json").is_file())
    final = manifest(runs[-1])
    recorded = {d["message_id"] for r in runs for d in manifest(r)["deliveries"]}
    assert mids <= recorded
    # The permanent refusal: in the manifest, the exit code and the security team's e-mail.
    bob = next(d for d in final["deliveries"] if d["recipient"] == "bob@example.com")
    assert {r["address"]: r["status"] for r in bob["recipients"]}[PERMANENT] == "failed_permanent"
    assert final["exit_code"] == 1
    team = [g for g in server.received if "security-team@example.com" in g.rcpt_tos
            and "Organization summary" in str(g.message["Subject"])]  # fmt: skip
    assert team
    body = team[-1].message.get_body(("plain",))
    assert body is not None and PERMANENT in body.get_content()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_serve_killed_mid_data_and_restarted_delivers_each_recipient_once(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    state_url = (
        f"sqlite:///{tmp_path}/state.db"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    with holding_server() as (server, port):
        misbehave(server)
        server.hold.set()  # the first DATA that gets through is held…
        first = replica(tmp_path, port, state_url, "first")
        slot = soon()
        round_id = slot_round(JOB_ID, slot)
        serve(first, slot)
        try:
            until(server.holding.is_set, "a DATA in flight")
            first.send_signal(signal.SIGKILL)  # …and the replica killed while it is in flight
            first.wait(30)
            server.go.set()
            restarted = replica(tmp_path, port, state_url, "restarted")
            serve(restarted, slot)
            until(lambda: settled(state_url, round_id), "the slot to settle")
        finally:
            for p in (first, locals().get("restarted")):
                if p is not None and p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    p.wait(60)
        check_outcome(server, state_url, tmp_path / "out", round_id)


def holder_pid(state_url: str) -> int | None:
    engine = open_engine(state_url)
    try:
        state = RunLock(engine).get(JOB_ID)
    finally:
        engine.dispose()
    if state is None or state.state != "running":
        return None
    return int(state.holder.split(":")[1])  # host:pid:random (ledger.default_holder)


def test_replicas_one_stopped_before_the_slot_one_killed_during_it_run_it_once(
    tmp_path: Path, postgres_url: str
) -> None:
    with holding_server() as (server, port):
        misbehave(server)
        server.hold.set()
        replicas = {n: replica(tmp_path, port, postgres_url, n) for n in "abc"}
        slot = soon(12)
        round_id = slot_round(JOB_ID, slot)
        try:
            for p in replicas.values():
                serve(p, slot)
            replicas["a"].send_signal(signal.SIGTERM)  # stopped before the slot
            assert replicas["a"].wait(60) == 0
            assert datetime.now(UTC) < slot, "replica a stopped after the slot: inconclusive"
            until(server.holding.is_set, "a DATA in flight")
            pid = holder_pid(postgres_url)
            (killed,) = [n for n, p in replicas.items() if p.pid == pid]
            replicas[killed].send_signal(signal.SIGKILL)  # killed during it
            replicas[killed].wait(30)
            server.go.set()
            until(lambda: settled(postgres_url, round_id), "the slot to settle")
            (survivor,) = [n for n in "bc" if n != killed]
        finally:
            for p in replicas.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    p.wait(60)
        check_outcome(server, postgres_url, tmp_path / "out", round_id)
        # The slot ran to its end once, on the survivor.
        out = replicas[survivor].stdout
        finished = [json.loads(line) for line in (out.read() if out else "").splitlines()]
        assert [r["round"] for r in finished if "run_id" in r] == [round_id]
