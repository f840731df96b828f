"""Faults at the product's own edges: S3 evidence upload, the state database, a full disk."""

from __future__ import annotations

import errno
import pathlib
import sqlite3
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ConnectionClosedError

from reporter.cli import main
from reporter.errors import StateError
from reporter.evidence import EvidenceError, RunStatus, open_store
from reporter.sandbox import Sandbox
from tests.smtp_server import smtp_server

from .conftest import (
    ROUND,
    complete_runs,
    config_data,
    execute,
    expected_keys,
    keys,
    ledger_rows,
    leftovers,
    once_each,
    settings_for,
)

BUCKET = "faults-evidence"


def test_s3_upload_failing_keeps_the_local_pack_and_upload_retries(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = config_data(sandbox, tmp_path, evidence={"store": "s3", "s3": {"bucket": BUCKET}})
    config = tmp_path / "reporter.yaml"
    config.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    # The bucket does not exist (yet): the upload fails, the run says so with its exit code.
    assert main(["run", "-c", str(config)]) == EvidenceError.exit_code == 1
    err = capsys.readouterr().err
    assert "NoSuchBucket" in err and "evidence upload" in err
    (run_id,) = complete_runs(out)  # the local pack is complete and verifies
    assert keys(out / run_id) == expected_keys(sandbox)
    assert err.count(run_id) >= 2  # names the run and the command that retries it

    s3 = boto3.client("s3", region_name=sandbox.home_region)
    s3.create_bucket(Bucket=BUCKET)
    assert main(["evidence", "upload", run_id, "-c", str(config)]) == 0
    store = open_store(settings_for(sandbox, tmp_path, **{"evidence": data["evidence"]}), out, s3)
    assert [(r.run_id, r.status) for r in store.runs()] == [(run_id, RunStatus.COMPLETE)]
    assert store.verify(run_id).ok


def test_a_put_object_failing_midway_lists_as_incomplete_until_retried(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    s3 = boto3.client("s3", region_name=sandbox.home_region)
    s3.create_bucket(Bucket=BUCKET + "-2")
    settings = settings_for(
        sandbox, tmp_path, evidence={"store": "s3", "s3": {"bucket": BUCKET + "-2"}}
    )
    puts: list[str] = []

    def fail_third(params: dict[str, Any], **_: Any) -> None:
        puts.append(params["Key"])
        if len(puts) == 3:
            raise ConnectionClosedError(endpoint_url="https://s3.amazonaws.com")

    def hook(session: Any) -> None:
        session.events.register("before-parameter-build.s3.PutObject", fail_third)

    with pytest.raises(EvidenceError, match="evidence upload") as raised:
        execute(sandbox, settings, configure=hook)
    assert "Connection was closed" in str(raised.value)
    (run_id,) = complete_runs(tmp_path / "out")
    store = open_store(settings, tmp_path / "out", s3)
    assert [(r.run_id, r.status) for r in store.runs()] == [(run_id, RunStatus.INCOMPLETE)]
    store.publish(tmp_path / "out" / run_id)
    assert [r.status for r in store.runs()] == [RunStatus.COMPLETE]
    assert store.verify(run_id).ok


def test_a_locked_state_database_fails_clearly_and_the_rerun_mails_nobody_twice(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with smtp_server() as (server, port):
        settings = settings_for(sandbox, tmp_path, port=port)
        first = execute(sandbox, settings, round_id="round-1")
        assert first.exit_code == 0
        after_first = len(server.received)
        holder = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StateError) as raised:
                execute(sandbox, settings, round_id=ROUND)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        # A state problem: nothing ran, so exit 2 (not 1, "incomplete").
        assert raised.value.exit_code == 2
        assert "locked" in str(raised.value) or "state" in str(raised.value)
        assert complete_runs(out) == [first.context.run_id]  # nothing complete-but-wrong
        assert leftovers(out) == []

        again = execute(sandbox, settings, round_id=ROUND)
        assert again.exit_code == 0
        assert keys(again.run_dir) == expected_keys(sandbox)
        assert again.new == 0 and again.resolved == 0  # the locked run moved no history
        once_each(server, since=after_first)  # the first run was another round
        assert set(ledger_rows(settings, ROUND).values()) == {"sent"}
        assert sorted(complete_runs(out)) == sorted([first.context.run_id, again.context.run_id])


# The 3rd file of the pack (before any message), or the second owner's first file (the first
# owner's message is out by then).
@pytest.mark.parametrize(
    ("under", "fail_at"), [("", 3), ("owners/", 3)], ids=["before-delivery", "mid-delivery"]
)
def test_disk_full_while_writing_the_pack_leaves_nothing_that_looks_complete(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, under: str, fail_at: int
) -> None:
    out = tmp_path / "out"
    real_write = pathlib.Path.write_bytes
    written: list[str] = []

    def write_bytes(self: pathlib.Path, data: Any) -> int:
        if ".partial" in str(self) and f".partial/{under}" in self.as_posix():
            written.append(self.name)
            if len(written) >= fail_at:
                raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write(self, data)

    with smtp_server() as (server, port):
        settings = settings_for(sandbox, tmp_path, port=port)
        monkeypatch.setattr(pathlib.Path, "write_bytes", write_bytes)
        with pytest.raises(OSError) as raised:
            execute(sandbox, settings, round_id=ROUND)
        monkeypatch.undo()
        assert raised.value.errno == errno.ENOSPC
        assert complete_runs(out) == [] and leftovers(out) == []
        assert not any(p.name.endswith(".partial") for p in out.iterdir())
        sent_before = len(server.received)
        assert sent_before == (1 if under else 0)

        # Space again: the rerun of the round completes and mails only who was missing.
        again = execute(sandbox, settings, round_id=ROUND)
        assert again.exit_code == 0
        assert keys(again.run_dir) == expected_keys(sandbox)
        once_each(server)
        assert complete_runs(out) == [again.context.run_id]
        assert set(ledger_rows(settings, ROUND).values()) == {"sent"}
