from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reporter.history import HistoryStore, Seen, diff

T0 = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=7)


def test_new_still_open_and_resolved() -> None:
    earlier = T0 - timedelta(days=30)
    acct = "111111111111"
    first = diff({}, [("a", acct, None), ("b", acct, earlier)], frozenset(), T0)
    assert first.new == {"a", "b"} and not first.resolved
    assert first.rows["b"].first_seen == earlier  # AWS saw it before we did
    second = diff(first.rows, [("b", acct, None), ("c", acct, None)], frozenset({acct}), T1)
    assert (second.new, second.still_open, second.resolved) == ({"c"}, {"b"}, {"a"})
    assert second.rows["b"].first_seen == earlier and second.rows["b"].last_seen == T1
    assert second.rows["a"].resolved_at == T1


def test_an_account_we_could_not_read_resolves_nothing() -> None:
    previous = {"a": Seen("a", "222222222222", T0, T0)}
    result = diff(previous, [], frozenset({"111111111111"}), T1)
    assert not result.resolved


def test_a_finding_that_comes_back_is_new_again() -> None:
    previous = {"a": Seen("a", "111111111111", T0, T0, resolved_at=T0 + timedelta(days=1))}
    result = diff(previous, [("a", "111111111111", T0)], frozenset(), T1)
    assert result.new == {"a"} and result.rows["a"].first_seen == T1


def test_store_round_trips_through_a_real_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/deep/state.db"
    store = HistoryStore(url)
    store.save("run-1", T0, diff({}, [("a", "111111111111", None)], frozenset(), T0))
    store.dispose()
    loaded = HistoryStore(url).load()
    assert loaded["a"].first_seen == T0 and loaded["a"].open


def test_a_partial_export_resolves_nothing(tmp_path: Path) -> None:
    """An export may hold only some of an account's findings: what it lacks is not resolved."""
    from reporter.cli import main

    from .conftest import SAMPLES

    listed = SAMPLES / "aa-list-findings-v2-unused-permission-aws-blog.json"
    fixed = tmp_path / "fixed.json"
    doc = json.loads(listed.read_text())
    doc["findings"] = doc["findings"][:1]  # the role's finding was fixed
    fixed.write_text(json.dumps(doc))
    config = tmp_path / "c.yaml"
    config.write_text(f"state:\n  database_url: sqlite:///{tmp_path}/s.db\n")
    out = tmp_path / "out"
    base = ["run", "-c", str(config), "--no-send", "--out", str(out)]
    assert main([*base, "--from-file", str(listed)]) == 0
    assert main([*base, "--from-file", str(fixed)]) == 0
    manifests = [json.loads(p.read_text()) for p in out.glob("*/manifest.json")]
    counts = sorted((m["counts"]["new"], m["counts"]["resolved"]) for m in manifests)
    assert counts == [(0, 0), (2, 0)]
