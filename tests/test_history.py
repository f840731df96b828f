from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    text,
)

from reporter.errors import StateError
from reporter.history import Seen, diff
from reporter.state.engine import engine_url, open_engine
from reporter.state.history import HistoryStore

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


def test_store_round_trips(state_url: str) -> None:
    store = HistoryStore(state_url)
    store.save("run-1", T0, diff({}, [("a", "111111111111", None)], frozenset(), T0))
    store.dispose()
    reopened = HistoryStore(state_url)
    loaded = reopened.load()
    reopened.dispose()
    assert loaded["a"].first_seen == T0 and loaded["a"].open
    assert loaded["a"].first_seen.tzinfo is UTC


def test_times_come_back_in_utc_whatever_zone_they_were_written_in(state_url: str) -> None:
    # SQLite keeps the wall clock and drops the offset; PostgreSQL answers in the session's
    # zone (the tests' server runs at +05:45). Both must give back the same instants, in UTC.
    kathmandu = timezone(timedelta(hours=5, minutes=45))
    local = T0.astimezone(kathmandu)
    store = HistoryStore(state_url)
    changes = diff({}, [("a", "111111111111", local - timedelta(days=3))], frozenset(), local)
    store.save("run-1", local, changes)
    resolved = diff(changes.rows, [], frozenset({"111111111111"}), local + timedelta(days=7))
    store.save("run-2", local + timedelta(days=7), resolved)
    loaded = store.load()["a"]
    points = store.trend()
    store.dispose()
    assert (loaded.first_seen, loaded.last_seen) == (T0 - timedelta(days=3), T0)
    assert loaded.resolved_at == T1
    assert [p.started_at.isoformat() for p in points] == [T0.isoformat(), T1.isoformat()]
    assert {loaded.first_seen.tzinfo, loaded.last_seen.tzinfo, loaded.resolved_at.tzinfo} == {UTC}


def test_a_second_save_replaces_the_rows_it_changed(state_url: str) -> None:
    store = HistoryStore(state_url)
    acct = "111111111111"
    first = diff({}, [("a", acct, None), ("b", acct, None)], frozenset(), T0)
    store.save("run-1", T0, first)
    second = diff(store.load(), [("b", acct, None), ("c", acct, None)], frozenset({acct}), T1)
    store.save("run-2", T1, second)
    loaded = store.load()
    store.dispose()
    assert sorted((k, s.open, s.last_seen) for k, s in loaded.items()) == [
        ("a", False, T0),
        ("b", True, T1),
        ("c", True, T1),
    ]


def test_replicas_opening_a_new_database_together_both_succeed(state_url: str) -> None:
    """Two replicas of `serve` may start at the same moment on an empty database: the schema is
    created and migrated once, and neither fails."""
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            barrier.wait(10)
            HistoryStore(state_url).dispose()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    engine = create_engine(engine_url(state_url))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id, version FROM schema_info")).all() == [(1, 2)]
    engine.dispose()


def test_a_partial_export_resolves_nothing(tmp_path: Path, state_url: str) -> None:
    """An export may hold only some of an account's findings: what it lacks is not resolved."""
    from reporter.cli import main

    from .conftest import SAMPLES

    listed = SAMPLES / "aa-list-findings-v2-unused-permission-aws-blog.json"
    fixed = tmp_path / "fixed.json"
    doc = json.loads(listed.read_text())
    doc["findings"] = doc["findings"][:1]  # the role's finding was fixed
    fixed.write_text(json.dumps(doc))
    config = tmp_path / "c.yaml"
    config.write_text(f"state:\n  database_url: {state_url}\n")
    out = tmp_path / "out"
    base = ["run", "-c", str(config), "--no-send", "--out", str(out)]
    assert main([*base, "--from-file", str(listed)]) == 0
    assert main([*base, "--from-file", str(fixed)]) == 0
    manifests = [json.loads(p.read_text()) for p in out.glob("*/manifest.json")]
    counts = sorted((m["counts"]["new"], m["counts"]["resolved"]) for m in manifests)
    assert counts == [(0, 0), (2, 0)]


def test_resolved_findings_carry_type_and_principal() -> None:
    from reporter.history import resolved_findings

    key = "111111111111/UnusedIAMRole/arn:aws:iam::111111111111:role/path/with/slashes/r"
    previous = {key: Seen(key, "111111111111", T0, T0)}
    changes = diff(previous, [], frozenset({"111111111111"}), T1)
    (gone,) = resolved_findings(changes)
    assert (gone.account_id, gone.type) == ("111111111111", "UnusedIAMRole")
    assert gone.principal_arn == "arn:aws:iam::111111111111:role/path/with/slashes/r"
    assert (gone.first_seen, gone.resolved_at) == (T0, T1)


def test_age_against_sla() -> None:
    from reporter.history import age
    from reporter.models import FindingType

    sla = {"UnusedIAMUserAccessKey": 30}
    today = T1.date()
    at_limit = age(today - timedelta(days=30), today, FindingType.UNUSED_ACCESS_KEY, sla)
    over = age(today - timedelta(days=31), today, FindingType.UNUSED_ACCESS_KEY, sla)
    no_sla = age(today - timedelta(days=400), today, FindingType.UNUSED_ROLE, sla)
    unknown = age(None, today, FindingType.UNUSED_ACCESS_KEY, sla)
    assert (at_limit.days, at_limit.breached) == (30, False)
    assert (over.days, over.sla_days, over.breached) == (31, 30, True)
    assert (no_sla.sla_days, no_sla.breached) == (None, False)
    assert (unknown.days, unknown.breached) == (None, False)


def test_trend_lists_recent_runs_oldest_first(state_url: str) -> None:
    store = HistoryStore(state_url)
    rows: dict[str, Seen] = {}
    for n, keys in enumerate([["a", "b"], ["b", "c", "d"], ["d"]]):
        now = T0 + timedelta(days=7 * n)
        changes = diff(
            rows, [(k, "111111111111", None) for k in keys], frozenset({"111111111111"}), now
        )
        store.save(f"run-{n}", now, changes)
        rows = {**rows, **changes.rows}
    points = store.trend(limit=2)
    store.dispose()
    assert [(p.run_id, p.findings, p.new, p.resolved) for p in points] == [
        ("run-1", 3, 2, 1),
        ("run-2", 1, 0, 2),
    ]


def test_a_first_release_database_is_migrated_in_place(state_url: str) -> None:
    """The first release wrote `runs` without `still_open` and no schema version."""
    old = MetaData()
    old_runs = Table(
        "runs",
        old,
        Column("run_id", String(64), primary_key=True),
        Column("started_at", DateTime(timezone=True), nullable=False),
        Column("findings", Integer, nullable=False),
        Column("new", Integer, nullable=False),
        Column("resolved", Integer, nullable=False),
    )
    engine = open_engine(state_url)
    with engine.begin() as conn:
        old.create_all(conn)
        conn.execute(
            old_runs.insert().values(
                run_id="old-run", started_at=T0 - timedelta(days=30), findings=5, new=5, resolved=0
            )
        )
    store = HistoryStore(state_url)
    points = store.trend()
    store.save("run-new", T1, diff({}, [("a", "111111111111", None)], frozenset(), T1))
    store.dispose()
    assert [p.run_id for p in points] == ["old-run"]
    assert points[0].started_at == T0 - timedelta(days=30)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version FROM schema_info")).all() == [(2,)]
        still_open = conn.execute(text("SELECT still_open FROM runs ORDER BY run_id")).all()
        assert still_open == [(0,), (0,)]
    engine.dispose()


def test_a_database_from_a_newer_version_is_refused(state_url: str) -> None:
    HistoryStore(state_url).dispose()
    engine = open_engine(state_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StateError, match="schema revision 9999, newer than"):
        HistoryStore(state_url)


def test_a_damaged_or_locked_database_is_a_state_error_with_a_hint(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "s.db"
    # A short lock timeout: SQLite's default would wait five seconds for the lock.
    store = HistoryStore(f"sqlite:///{path}?timeout=0.05")
    holder = sqlite3.connect(path)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StateError, match="cannot read the findings seen before") as locked:
            store.load()
    finally:
        holder.rollback()
        holder.close()
    assert "another run may be writing it" in str(locked.value)
    assert str(path) not in str(locked.value)
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE runs")
    with pytest.raises(StateError, match=r"cannot read the recent runs .*OperationalError"):
        store.trend()
    store.dispose()
