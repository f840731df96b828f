"""Two weekly runs over one sandbox organization, with some findings fixed in between.

Checks the history end to end: new, still open and resolved counts, first seen carried over,
the resolved findings named in the owner's report data, the trend, an exception and SLA ages.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from reporter.config import load_data
from reporter.models import owner_slug
from reporter.pipeline import Dependencies, run
from reporter.sandbox import Sandbox, SandboxSpec
from reporter.session import AwsOptions, SessionFactory

NOW = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(SandboxSpec(seed=5, member_accounts=4, ous=2, now=NOW)) as opened:
        yield opened


def _settings(sandbox: Sandbox, tmp: Path, rules: list[dict[str, Any]]) -> Any:
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
            "exceptions": {"rules": rules},
        },
        environ={},
        source="test",
        today=NOW.date(),
    )


def _run(sandbox: Sandbox, tmp: Path, now: datetime, rules: list[dict[str, Any]]) -> Any:
    sessions = SessionFactory(
        sandbox.session(), AwsOptions(region=sandbox.home_region), sandbox.configure_session
    )
    deps = Dependencies(sessions=sessions, output_dir=tmp / "out")
    return run(_settings(sandbox, tmp, rules), deps, now)


def test_fixing_findings_between_runs_shows_new_and_resolved(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    reportable = sandbox.reportable
    assert len(reportable) >= 6
    excepted = reportable[0]
    rules = [
        {
            "id": "break-glass",
            "principal_arn": excepted.principal_arn,
            "types": [excepted.finding_type],
            "reason": "break-glass role, reviewed quarterly",
            "approved_by": "ciso@example.com",
            "expires": str((NOW + timedelta(days=10)).date()),
        }
    ]
    first = _run(sandbox, tmp_path, NOW, rules)
    assert (first.findings, first.new, first.resolved) == (len(reportable), len(reportable), 0)

    fixed = [e for e in reportable[1:] if e.finding_id][:3]
    sandbox.resolve([e.finding_id for e in fixed], at=NOW + WEEK)
    second = _run(sandbox, tmp_path, NOW + WEEK, rules)
    assert (second.findings, second.new, second.resolved) == (len(reportable) - 3, 0, 3)

    doc = json.loads((Path(second.run_dir) / "data/findings.json").read_text())
    records = {r["principal_arn"] + r["type"]: r for r in doc["findings"]}
    gone = {e.principal_arn + e.finding_type for e in fixed}
    assert gone.isdisjoint(records)
    # Still open since the first run: first seen never moves forward, and ages grow.
    for record in records.values():
        assert record["first_seen"] <= str(NOW.date())
        assert record["new"] is False
    held = records[excepted.principal_arn + excepted.finding_type]
    assert held["status"] == "excepted"
    assert held["exception"]["id"] == "break-glass"

    manifest = json.loads((Path(second.run_dir) / "manifest.json").read_text())
    assert (manifest["counts"]["new"], manifest["counts"]["resolved"]) == (0, 3)
    # The skipped total is the sum of its reasons, records a source filtered out included.
    counts = manifest["counts"]
    assert counts["skipped"] == sum(counts["skipped_reasons"].values()) == second.skipped
    assert counts["skipped_reasons"].get("archived in Security Hub", 0) >= 3


def test_resolved_findings_reach_their_owner_and_the_trend(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    from reporter.state.history import HistoryStore

    _run(sandbox, tmp_path, NOW + 2 * WEEK, [])
    remaining = [e for e in sandbox.reportable if e.finding_id]
    victim = next(e for e in reversed(remaining) if e.owner and "@" in e.owner)
    sandbox.resolve([victim.finding_id], at=NOW + 3 * WEEK)
    result = _run(sandbox, tmp_path, NOW + 3 * WEEK, [])
    assert (result.new, result.resolved) == (0, 1)
    # The owner hears that it is gone, even though the principal no longer exists.
    pdf = Path(result.run_dir) / "owners" / owner_slug(victim.owner) / "report.pdf"
    text = "".join(page.extract_text() for page in PdfReader(pdf).pages)
    assert victim.principal_arn.rsplit("/", 1)[-1] in text
    assert "resolved" in text.lower()
    store = HistoryStore(f"sqlite:///{tmp_path / 'state.db'}")
    trend = store.trend()
    store.dispose()
    assert [(p.new, p.resolved) for p in trend] == [(len(remaining), 0), (0, 1)]
