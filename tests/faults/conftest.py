"""Shared parts of the fault matrix: a small sandbox, settings, one full run, and the checks
every case makes (nothing lost, nothing mailed twice, no complete-looking pack missing a file)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reporter.cli import _execute
from reporter.config import Settings, load_data
from reporter.deliver.ledger import Ledger, Status
from reporter.evidence import LocalStore, RunStatus
from reporter.models import RunResult
from reporter.sandbox import Sandbox, SandboxSpec
from tests.smtp_server import Recorder

# Small enough for a run in seconds, big enough for several owners and a suspended account.
SPEC = SandboxSpec(seed=11, member_accounts=4)
ROUND = "slot:unused-access-report:2026-11-30T06:00:00+00:00"
ON = {"enabled": True}
OFF = {"enabled": False}


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """The plain organization; cases that need another spec open their own."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        with Sandbox(SPEC) as running:
            yield running


def config_data(
    sandbox: Sandbox,
    tmp_path: Path,
    *,
    port: int | None = None,
    sources: dict[str, Any] | None = None,
    **sections: Any,
) -> dict[str, Any]:
    wanted: dict[str, Any] = {"security_hub": ON, "access_analyzer": ON, "iam": OFF}
    wanted.update(sources or {})
    mail: dict[str, Any] = {"transport": "outbox"}
    if port is not None:
        mail = {
            "transport": "smtp",
            "smtp": {"host": "127.0.0.1", "port": port, "security": "none"},
        }
    data: dict[str, Any] = {
        "organization": {
            "home_region": sandbox.home_region,
            "delegated_admin_role_arn": sandbox.delegated_admin_role_arn,
            "member_role_name": sandbox.member_role_name,
        },
        "sources": wanted,
        "collection": {"recommendation_poll_seconds": 0.01},
        "reports": {"output_dir": str(tmp_path / "out"), "render_workers": 1},
        "state": {"database_url": f"sqlite:///{tmp_path}/state.db"},
        "mail": mail,
    }
    data.update(sections)
    return data


def settings_for(sandbox: Sandbox, tmp_path: Path, **kwargs: Any) -> Settings:
    return load_data(config_data(sandbox, tmp_path, **kwargs), {}, source="faults")


def execute(
    sandbox: Sandbox,
    settings: Settings,
    *,
    round_id: str | None = None,
    progress: Callable[[str], None] | None = None,
    configure: Callable[[Any], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> RunResult:
    def hook(session: Any) -> None:
        sandbox.configure_session(session)
        if configure is not None:
            configure(session)

    return _execute(
        settings,
        Path(settings.reports.output_dir),
        sandbox.session(),
        hook,
        delivery_round=round_id,
        progress=progress,
        should_stop=should_stop,
    )


def findings(run_dir: str | Path) -> list[dict[str, Any]]:
    document = json.loads((Path(run_dir) / "data/findings.json").read_text())
    records: list[dict[str, Any]] = document["findings"]
    return records


def keys(run_dir: str | Path) -> set[tuple[str, str, str]]:
    return {(f["account_id"], f["principal_arn"], f["type"]) for f in findings(run_dir)}


def expected_keys(
    sandbox: Sandbox, skip: frozenset[str] = frozenset()
) -> set[tuple[str, str, str]]:
    """What the sandbox put in and a covered run must report (active accounts only)."""
    active = {a.id for a in sandbox.accounts if a.active}
    return {
        (e.account_id, e.principal_arn, e.finding_type)
        for e in sandbox.reportable
        if e.account_id in active and e.account_id not in skip
    }


def manifest(run_dir: str | Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((Path(run_dir) / "manifest.json").read_text())
    return data


def complete_runs(out: Path) -> list[str]:
    """Every run the store lists as complete, each verified against its manifest: a complete-
    looking pack that misses (or changed) a file fails here."""
    if not out.exists():
        return []
    store = LocalStore(out)
    done = [r.run_id for r in store.runs() if r.status is RunStatus.COMPLETE]
    for run_id in done:
        check = store.verify(run_id)
        assert check.ok, (run_id, check.lines())
    return done


def leftovers(out: Path) -> list[str]:
    """Anything in the output folder that is neither a complete run nor a `.partial` one."""
    return sorted(
        p.name
        for p in out.iterdir()
        if not p.name.endswith(".partial") and not (p / "manifest.json").is_file()
    )


def once_each(recorder: Recorder, since: int = 0) -> Counter[tuple[str, str]]:
    """(recipient, subject) → how many messages the SMTP server accepted (from the `since`-th
    on); all must be 1."""
    seen: Counter[tuple[str, str]] = Counter()
    for got in recorder.received[since:]:
        for rcpt in got.rcpt_tos:
            seen[(rcpt, str(got.message["Subject"]))] += 1
    assert seen and set(seen.values()) == {1}, seen
    return seen


def ledger_rows(settings: Settings, round_id: str) -> dict[str, Status]:
    ledger = Ledger.open(settings.state.database_url)
    try:
        return {f"{r.key.kind}:{r.key.recipient}": r.status for r in ledger.round(round_id)}
    finally:
        ledger.dispose()
