"""The access review loop end to end on the sandbox organization: a run, the owner's workbook
filled in and imported, the sandbox removes one access, and the next run verifies the removal,
keeps the kept finding under an exception (source: review) and sends the Not mine to triage.
The evidence pack carries decisions.json and the imported workbook byte for byte."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reporter.config import load_data
from reporter.evidence import LocalStore
from reporter.models import owner_slug
from reporter.pipeline import Dependencies, run
from reporter.reviews.commands import import_files
from reporter.sandbox import Sandbox, SandboxSpec
from reporter.session import AwsOptions, SessionFactory
from reporter.state.decisions import DecisionStore

from .reviewbooks import fill

NOW = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(SandboxSpec(seed=5, member_accounts=4, ous=2, now=NOW)) as opened:
        yield opened


def _settings(sandbox: Sandbox, tmp: Path) -> Any:
    return load_data(
        {
            "organization": {
                "home_region": sandbox.home_region,
                "delegated_admin_role_arn": sandbox.delegated_admin_role_arn,
                "member_role_name": sandbox.member_role_name,
            },
            "sources": {
                "security_hub": {"enabled": True},
                "access_analyzer": {"enabled": True},
                "iam": {"enabled": False},
            },
            "collection": {"recommendation_poll_seconds": 0.01},
            "state": {"database_url": f"sqlite:///{tmp / 'state.db'}"},
            "reports": {"output_dir": str(tmp / "out")},
        },
        environ={},
        source="test",
        today=NOW.date(),
    )


def _run(sandbox: Sandbox, tmp: Path, now: datetime) -> Any:
    sessions = SessionFactory(
        sandbox.session(), AwsOptions(region=sandbox.home_region), sandbox.configure_session
    )
    return run(
        _settings(sandbox, tmp), Dependencies(sessions=sessions, output_dir=tmp / "out"), now
    )


def _records(run_dir: Path) -> dict[str, dict[str, Any]]:
    doc = json.loads((run_dir / "data/findings.json").read_text())
    return {r["key"]: r for r in doc["findings"]}


def test_decisions_come_back_and_the_next_run_verifies_keeps_and_triages(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    first = _run(sandbox, tmp_path, NOW)
    first_dir = Path(first.run_dir)
    records = _records(first_dir)
    owner = next(o for o, n in first.owners if n >= 3 and o != "security-team@example.com")
    mine = [r for r in records.values() if r["owner"] == owner and r["organization_access"] is None]
    by_key = {e.principal_arn: e for e in sandbox.reportable if e.finding_id}
    removed = next(r for r in mine if r["principal_arn"] in by_key)
    kept, not_mine = [r for r in mine if r is not removed][:2]
    book = (first_dir / "owners" / owner_slug(owner) / "findings.xlsx").read_bytes()
    filled = fill(
        book,
        {
            removed["key"]: {"Decision": "Remove"},
            kept["key"]: {
                "Decision": "Keep",
                "Keep until": date(2026, 12, 15),
                "Reason": "disaster-recovery role",
            },
            not_mine["key"]: {"Decision": "Not mine", "Reason": "the data team's"},
        },
    )
    settings = _settings(sandbox, tmp_path)
    with DecisionStore(settings.state.database_url) as store:
        code = import_files(
            settings, LocalStore(tmp_path / "out"), store, [("returned.xlsx", filled)], "",
            NOW + timedelta(days=1), io.StringIO(),
        )  # fmt: skip
    assert code == 0

    sandbox.resolve([by_key[removed["principal_arn"]].finding_id], at=NOW + WEEK)
    second = _run(sandbox, tmp_path, NOW + WEEK)
    second_dir = Path(second.run_dir)
    after = _records(second_dir)
    assert removed["key"] not in after
    assert after[kept["key"]]["status"] == "excepted"
    assert after[kept["key"]]["exception"]["source"] == "review"
    assert after[kept["key"]]["review"]["state"] == "kept"
    assert after[not_mine["key"]]["review"]["state"] == "triage"
    assert after[not_mine["key"]]["review"]["reason"] == "the data team's"

    decisions = json.loads((second_dir / "data/decisions.json").read_text())
    states = {d["key"]: d for d in decisions["decisions"]}
    assert states[removed["key"]]["state"] == "removed"
    assert states[removed["key"]]["verified"]["run_id"] == second.context.run_id
    assert states[removed["key"]]["source"]["file_sha256"] == hashlib.sha256(filled).hexdigest()
    (imported,) = decisions["imported_since_previous_run"]
    assert (second_dir / imported["path"]).read_bytes() == filled
    manifest = json.loads((second_dir / "manifest.json").read_text())
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    assert listed[imported["path"]] == hashlib.sha256(filled).hexdigest()
    assert "data/decisions.json" in listed

    summary_pdf = (second_dir / "summary" / "summary.pdf").read_bytes()
    from pypdf import PdfReader

    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(summary_pdf)).pages)
    assert "Access review" in text and "Triage" in text
    with DecisionStore(settings.state.database_url) as store:
        assert store.in_force()[removed["key"]].verified_run_id == second.context.run_id

    # A third run imports nothing new: the pack holds no workbook, the verification stays.
    third = _run(sandbox, tmp_path, NOW + 2 * WEEK)
    later = json.loads((Path(third.run_dir) / "data/decisions.json").read_text())
    assert later["imported_since_previous_run"] == []
    assert {d["key"]: d for d in later["decisions"]}[removed["key"]]["verified"]["run_id"] == (
        second.context.run_id
    )


def test_the_attestation_of_the_period_verifies(sandbox: Sandbox, tmp_path: Path) -> None:
    from pypdf import PdfReader

    from reporter.evidence import verify
    from reporter.reviews.attestation import write_attestation

    first = _run(sandbox, tmp_path, NOW + 3 * WEEK)
    records = _records(Path(first.run_dir))
    owner = next(o for o, n in first.owners if n >= 2 and o != "security-team@example.com")
    mine = [r for r in records.values() if r["owner"] == owner and r["status"] == "active"]
    book = (Path(first.run_dir) / "owners" / owner_slug(owner) / "findings.xlsx").read_bytes()
    decided = {
        mine[0]["key"]: {"Decision": "Remove"},
        mine[1]["key"]: {"Decision": "Not mine", "Reason": "not ours"},
    }
    filled = fill(book, decided)
    settings = _settings(sandbox, tmp_path)
    with DecisionStore(settings.state.database_url) as store:
        import_files(settings, LocalStore(tmp_path / "out"), store, [("b.xlsx", filled)], "",
                     NOW + 3 * WEEK + timedelta(hours=1), io.StringIO())  # fmt: skip
        history = store.history()
    day = (NOW + 3 * WEEK).date()
    folder = write_attestation(
        settings, LocalStore(tmp_path / "out"), history, day, day, tmp_path / "att",
        NOW + 3 * WEEK + timedelta(hours=2),
    )  # fmt: skip
    assert verify(folder).ok
    doc = json.loads((folder / "attestation.json").read_text())
    assert doc["coverage"]["decided"] == 2 and doc["coverage"]["findings"] == len(records)
    assert [r["run_id"] for r in doc["scope"]["runs"]] == [first.context.run_id]
    states = {d["key"]: d["state"] for d in doc["decisions"]}
    assert states == {mine[0]["key"]: "promised", mine[1]["key"]: "triage"}
    opened = {i["key"]: i["open"] for i in doc["open_items"]}
    assert opened[mine[0]["key"]] == "removal promised, not yet verified"
    mine_row = next(o for o in doc["owners"] if o["owner"] == owner)
    assert (mine_row["decided"], mine_row["remove"], mine_row["not_mine"]) == (2, 1, 1)
    text = "".join(p.extract_text() for p in PdfReader(folder / "attestation.pdf").pages)
    assert "Access review attestation" in text and owner in text
    from openpyxl import load_workbook

    wb = load_workbook(folder / "attestation.xlsx")
    assert wb.sheetnames == ["Summary", "Owners", "Decisions", "Open items", "Exceptions", "Runs"]
    # Tampering shows.
    (folder / "attestation.json").write_text("{}")
    assert not verify(folder).ok
