"""End to end: the sandbox organization, the whole pipeline, mail to a real SMTP server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reporter.cli import _execute
from reporter.config import Settings, load_data
from reporter.deliver.driver import DeliveryCancelled
from reporter.deliver.ledger import Ledger, Status
from reporter.models import owner_slug
from reporter.sandbox import Sandbox, SandboxSpec
from tests.smtp_server import Recorder, smtp_server

ROUND = "slot:unused-access-report:2026-11-30T06:00:00+00:00"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        with Sandbox(SandboxSpec(seed=11, member_accounts=4)) as running:
            yield running


def settings_for(sandbox: Sandbox, tmp_path: Path, port: int) -> Settings:
    return load_data(
        {
            "organization": {
                "home_region": sandbox.home_region,
                "delegated_admin_role_arn": sandbox.delegated_admin_role_arn,
                "member_role_name": sandbox.member_role_name,
            },
            "sources": {"security_hub": {"enabled": True}, "access_analyzer": {"enabled": True}},
            "state": {"database_url": f"sqlite:///{tmp_path}/state.db"},
            "mail": {
                "transport": "smtp",
                "smtp": {"host": "127.0.0.1", "port": port, "security": "none"},
            },
        },
        {},
    )


def manifest(run_dir: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((Path(run_dir) / "manifest.json").read_text())
    return data


def test_stopped_mid_delivery_then_resumed_every_owner_gets_exactly_one_message(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    with smtp_server() as (recorder, port):
        settings = settings_for(sandbox, tmp_path, port)
        out = tmp_path / "reports"
        # SIGTERM arrives once the first owner is mailed: the run is abandoned there.
        with pytest.raises(DeliveryCancelled):
            _execute(
                settings,
                out,
                sandbox.session(),
                sandbox.configure_session,
                delivery_round=ROUND,
                should_stop=lambda: len(recorder.received) >= 1,
            )
        (early,) = recorder.received
        # Nothing of the abandoned run is left that could pass for complete.
        assert list(out.iterdir()) == []

        # The next start resumes the slot as the same round: only what was missing goes out.
        result = _execute(
            settings, out, sandbox.session(), sandbox.configure_session, delivery_round=ROUND
        )
        owners = [o for o, _ in result.owners]
        assert len(owners) >= 2 and result.undelivered == ()
        # The early owner's message came from the abandoned run (its files are gone with it).
        _check_one_message_each(recorder, owners, Path(result.run_dir), early.rcpt_tos[0])
        team = settings.owners.security_team[0]
        summaries = [r for r in recorder.to(team) if "Organization summary" in r.message["Subject"]]
        assert len(summaries) == 1
        entries = {e["recipient"]: e["status"] for e in manifest(result.run_dir)["deliveries"]
                   if e["kind"] == "owner"}  # fmt: skip
        assert entries[early.rcpt_tos[0]] == "already_sent"
        assert sorted(s for r, s in entries.items() if r != early.rcpt_tos[0]) == ["sent"] * (
            len(owners) - 1
        )
        assert [p.name for p in out.iterdir()] == [result.context.run_id]

    ledger = Ledger.open(settings.state.database_url)
    rows = ledger.round(ROUND)
    ledger.dispose()
    assert len(rows) == len(owners) + 1 and {r.status for r in rows} == {Status.SENT}


def _check_one_message_each(
    recorder: Recorder, owners: list[str], run_dir: Path, earlier: str
) -> None:
    for owner in owners:
        (got,) = [
            r for r in recorder.to(owner) if "Organization summary" not in r.message["Subject"]
        ]
        msg = got.message
        attachments = {p.get_filename(): p.get_content() for p in msg.iter_attachments()}
        folder = run_dir / "owners" / owner_slug(owner)
        if owner == earlier:
            assert sorted(attachments) == ["findings.xlsx", "report.pdf"]
            continue
        assert attachments == {
            "report.pdf": (folder / "report.pdf").read_bytes(),
            "findings.xlsx": (folder / "findings.xlsx").read_bytes(),
        }
        assert msg.get_body(("html",)) is not None and msg.get_body(("plain",)) is not None
