"""The process SIGKILLed at each stage, then restarted: nothing lost, nobody mailed twice, and
no pack that lists as complete is missing a file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reporter.deliver.ledger import Status
from reporter.evidence import LocalStore, RunStatus
from reporter.sandbox import Sandbox
from tests.smtp_server import smtp_server

from .conftest import (
    ROUND,
    complete_runs,
    execute,
    expected_keys,
    keys,
    ledger_rows,
    once_each,
    settings_for,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("stage", "mailed"),
    [
        ("collecting", 0),
        ("rendering", 0),
        ("delivering", 0),
        ("message:3", 1),  # asked twice per message: dies before the second one
    ],
)
def test_killed_at_a_stage_then_restarted(
    sandbox: Sandbox, tmp_path: Path, stage: str, mailed: int
) -> None:
    out = tmp_path / "out"
    with smtp_server() as (server, port):
        settings = settings_for(sandbox, tmp_path, port=port)
        earlier = execute(sandbox, settings, round_id="earlier")
        after_earlier = len(server.received)

        killed = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.faults.kill_driver",
                str(tmp_path),
                str(port),
                ROUND,
                stage,
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert killed.returncode == -9, killed.stderr[-2000:]
        assert "finished" not in killed.stdout
        assert len(server.received) - after_earlier == mailed
        # The killed run left at most a `.partial` folder, which never lists as complete.
        assert complete_runs(out) == [earlier.context.run_id]
        statuses = {r.run_id: r.status for r in LocalStore(out).runs()}
        assert set(statuses.values()) <= {RunStatus.COMPLETE, RunStatus.INCOMPLETE}

        restarted = execute(sandbox, settings, round_id=ROUND)
        assert restarted.exit_code == 0 and restarted.undelivered == ()
        # No finding lost between the runs: all reported, none new or resolved (the killed run
        # moved no history on).
        assert keys(restarted.run_dir) == keys(earlier.run_dir) == expected_keys(sandbox)
        assert (restarted.new, restarted.resolved) == (0, 0)
        once_each(server, since=after_earlier)
        assert set(ledger_rows(settings, ROUND).values()) == {Status.SENT}
        assert sorted(complete_runs(out)) == sorted(
            [earlier.context.run_id, restarted.context.run_id]
        )
