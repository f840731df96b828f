"""The scheduler service: cron slots, the run lock, missed and interrupted runs, health, logs.

The scheduler runs with the real clock: tests wait on events (with generous timeouts), never
assert on durations.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger

from reporter.errors import StateError
from reporter.schedule import (
    ABANDONED,
    FINISHED,
    JOB_ID,
    RunLock,
    RunRequest,
    Service,
    configure_logging,
    health,
    latest_slot,
    next_run,
    one_line,
)
from reporter.state.engine import open_engine

WAIT = 30  # seconds; only ever reached when something is broken


def test_default_schedule_fires_monday_seven_local_time() -> None:
    saturday = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
    fire = next_run("0 7 * * mon", "Europe/Berlin", saturday)
    assert fire is not None
    assert fire.isoformat() == "2026-11-30T07:00:00+01:00"
    assert fire.astimezone(UTC).hour == 6


def test_latest_slot_is_the_last_fire_time_within_the_grace() -> None:
    weekly = CronTrigger.from_crontab("0 7 * * mon", timezone=UTC)
    monday_late = datetime(2026, 11, 30, 7, 20, tzinfo=UTC)
    assert latest_slot(weekly, monday_late, timedelta(hours=1)) == datetime(
        2026, 11, 30, 7, 0, tzinfo=UTC
    )
    assert latest_slot(weekly, monday_late, timedelta(minutes=10)) is None


# --- the run lock ------------------------------------------------------------------------------

SLOT = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
NOW = SLOT + timedelta(seconds=5)
LEASE = timedelta(minutes=15)


@pytest.fixture
def db(state_url: str) -> str:
    """The state database, once on SQLite and once on PostgreSQL."""
    return state_url


@pytest.fixture
def lock(db: str) -> Iterator[RunLock]:
    engine = open_engine(db)
    yield RunLock(engine)
    engine.dispose()


def test_lock_refuses_a_second_holder_while_the_lease_runs(lock: RunLock) -> None:
    assert lock.acquire(JOB_ID, SLOT, "replica-a", NOW, LEASE) == (True, "")
    acquired, why = lock.acquire(JOB_ID, SLOT, "replica-b", NOW, LEASE)
    assert not acquired and "running on replica-a" in why
    # Renewal keeps it; a holder that died is taken over once its lease ran out.
    assert lock.renew(JOB_ID, "replica-a", NOW + timedelta(minutes=10), LEASE)
    assert not lock.acquire(JOB_ID, SLOT, "replica-b", NOW + timedelta(minutes=20), LEASE)[0]
    assert lock.acquire(JOB_ID, SLOT, "replica-b", NOW + timedelta(minutes=26), LEASE)[0]
    assert not lock.renew(JOB_ID, "replica-a", NOW + timedelta(minutes=27), LEASE)


def test_a_finished_slot_never_runs_again_an_abandoned_one_does(lock: RunLock) -> None:
    assert lock.acquire(JOB_ID, SLOT, "a", NOW, LEASE)[0]
    lock.release(JOB_ID, "a", NOW + timedelta(minutes=1), FINISHED, "run-1")
    acquired, why = lock.acquire(JOB_ID, SLOT, "b", NOW + timedelta(minutes=2), LEASE)
    assert not acquired and "already ran (finished)" in why
    next_week = SLOT + timedelta(days=7)
    assert lock.acquire(JOB_ID, next_week, "b", next_week, LEASE)[0]
    lock.release(JOB_ID, "b", next_week, ABANDONED)
    state = lock.get(JOB_ID)
    assert state is not None and state.interrupted(next_week)
    assert lock.acquire(JOB_ID, next_week, "c", next_week + timedelta(minutes=1), LEASE)[0]
    # An older slot never runs after a newer one.
    assert not lock.acquire(JOB_ID, SLOT, "d", next_week + timedelta(hours=1), LEASE)[0]


def service(db: str, job: object, when: CronTrigger, holder: str, grace: int = 3600) -> Service:
    return Service(
        database_url=db,
        job=job,  # type: ignore[arg-type]
        when=when,
        timezone="UTC",
        misfire_grace_seconds=grace,
        lease_seconds=60,
        holder=holder,
    )


def test_two_replicas_never_run_one_slot_twice(db: str) -> None:
    started = threading.Event()
    release = threading.Event()
    runs: list[str] = []

    def job(request: RunRequest) -> str:
        runs.append(request.round_id)
        started.set()
        release.wait(WAIT)
        return "run-a"

    weekly = CronTrigger.from_crontab("0 7 * * mon", timezone=UTC)
    a = service(db, job, weekly, "replica-a")
    b = service(db, job, weekly, "replica-b")
    slot = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    first = threading.Thread(target=a.run_slot, args=(slot,))
    first.start()
    assert started.wait(WAIT)
    assert b.run_slot(slot) is False  # the lock refuses while A runs
    release.set()
    first.join(WAIT)
    assert b.run_slot(slot) is False  # and after A finished, the slot is done
    assert runs == [f"slot:{JOB_ID}:{slot.isoformat()}"]
    state = a.lock.get(JOB_ID)
    assert state is not None and (state.state, state.run_id) == (FINISHED, "run-a")
    a.dispose()
    b.dispose()


def test_the_scheduler_fires_on_its_trigger(db: str) -> None:
    fired = threading.Event()
    requests: list[RunRequest] = []
    stops: list[bool] = []

    def job(request: RunRequest) -> None:
        requests.append(request)
        stops.append(request.should_stop())
        fired.set()

    every_second = CronTrigger(second="*", timezone=UTC)
    svc = service(db, job, every_second, "replica-a", grace=30)
    svc.start()
    try:
        assert fired.wait(WAIT)
    finally:
        svc.stop()
        svc.dispose()
    first = requests[0]
    assert first.slot.microsecond == 0 and first.round_id.startswith(f"slot:{JOB_ID}:")
    assert stops[0] is False and first.should_stop()  # stop() asks a running job to stop


def test_a_run_missed_while_down_runs_once_at_start_up(db: str) -> None:
    now = datetime.now(UTC)
    hour_ago = now - timedelta(hours=1)
    daily = CronTrigger(hour=hour_ago.hour, minute=hour_ago.minute, timezone=UTC)
    ran = threading.Event()
    slots: list[datetime] = []

    def job(request: RunRequest) -> None:
        slots.append(request.slot)
        ran.set()

    # The service ran before, stored its job, and went down three days ago.
    before = service(db, job, daily, "old-replica", grace=7200)
    before.start()
    assert before.scheduler is not None
    before.scheduler.pause()
    before.scheduler.modify_job(JOB_ID, next_run_time=hour_ago - timedelta(days=3))
    before.stop()
    before.dispose()
    assert slots == []

    after = service(db, job, daily, "new-replica", grace=7200)
    after.start()
    try:
        assert ran.wait(WAIT)
        nxt = after.next_fire()
    finally:
        after.stop()
        after.dispose()
    # Three missed days coalesce into one run, for the latest missed slot.
    assert slots == [hour_ago.replace(second=0, microsecond=0)]
    assert nxt is not None and nxt > now


def test_an_interrupted_slot_is_resumed_once_at_start_up(db: str, lock: RunLock) -> None:
    weekly = CronTrigger.from_crontab("0 7 * * mon", timezone=UTC)
    slot = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    now = datetime.now(UTC)
    assert lock.acquire(JOB_ID, slot, "dead-replica", now - timedelta(minutes=4), LEASE)[0]
    lock.release(JOB_ID, "dead-replica", now - timedelta(minutes=3), ABANDONED)
    ran = threading.Event()
    rounds: list[str] = []

    def job(request: RunRequest) -> str:
        rounds.append(request.round_id)
        ran.set()
        return "run-resumed"

    svc = service(db, job, weekly, "replica-b")
    svc.start()
    try:
        assert ran.wait(WAIT)
    finally:
        svc.stop()
        svc.dispose()
    # Same round as the interrupted run: the ledger sends only what it lacks.
    assert rounds == [f"slot:{JOB_ID}:{slot.isoformat()}"]
    state = lock.get(JOB_ID)
    assert state is not None and (state.state, state.run_id) == (FINISHED, "run-resumed")


def test_stopping_abandons_the_run_at_its_next_checkpoint(db: str) -> None:
    weekly = CronTrigger.from_crontab("0 7 * * mon", timezone=UTC)
    svc: Service

    def job(request: RunRequest) -> str:
        request.checkpoint()
        svc.stopping.set()  # SIGTERM arrives while the run is between stages
        request.checkpoint()
        raise AssertionError("not reached")

    svc = service(db, job, weekly, "replica-a")
    slot = datetime.now(UTC).replace(microsecond=0)
    assert svc.run_slot(slot) is True
    state = svc.lock.get(JOB_ID)
    assert state is not None and state.state == ABANDONED and state.interrupted(slot)
    svc.dispose()


def test_health_reports_the_last_run_and_the_next(db: str, lock: RunLock) -> None:
    weekly = CronTrigger.from_crontab("0 7 * * mon", timezone=UTC)
    now = SLOT + timedelta(hours=3)
    assert health(db, weekly, 3600, now)["last_run"] is None
    lock.acquire(JOB_ID, SLOT, "a", NOW, LEASE)
    lock.release(JOB_ID, "a", NOW + timedelta(minutes=3), FINISHED, "run-1")
    status = health(db, weekly, 3600, now)
    assert status["ok"] and not status["overdue"]
    assert status["last_run"]["run_id"] == "run-1" and status["last_run"]["state"] == FINISHED
    assert status["next_run"] == (SLOT + timedelta(days=7)).isoformat()
    # A week later, two hours after the next slot, nothing ran: overdue.
    late = health(db, weekly, 3600, SLOT + timedelta(days=7, hours=2))
    assert late["overdue"] and not late["ok"]


def test_logs_are_json_lines_when_not_on_a_terminal() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging(stream)
        logging.getLogger("reporter.test").warning("run %s failed", "r-1")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    entry = json.loads(stream.getvalue().splitlines()[-1])
    assert entry["level"] == "warning" and entry["message"] == "run r-1 failed"
    assert entry["logger"] == "reporter.test" and entry["time"].endswith("+00:00")


def test_health_command_prints_json(
    tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from reporter.cli import main

    config = tmp_path / "reporter.yaml"
    config.write_text(
        f"state:\n  database_url: {db}\n"
        "schedule:\n  cron: '0 7 * * mon'\n  timezone: Europe/Berlin\n"
    )
    assert main(["health", "-c", str(config)]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["ok"] and status["last_run"] is None
    assert status["next_run"].endswith(("+01:00", "+02:00"))
    assert "T07:00:00" in status["next_run"]


def test_health_gives_a_failed_runs_reason_in_one_line(db: str, lock: RunLock) -> None:
    weekly = CronTrigger.from_crontab("0 7 * * mon", timezone=UTC)
    lock.acquire(JOB_ID, SLOT, "a", NOW, LEASE)
    lock.release(JOB_ID, "a", NOW, "failed", "", one_line(StateError("database locked\n    hint")))
    status = health(db, weekly, 3600, SLOT + timedelta(hours=1))
    assert not status["ok"] and status["last_run"]["reason"] == "StateError: database locked"
    assert status["problem"] == "the last run failed: StateError: database locked"


def test_a_replica_takes_over_a_slot_another_left_and_the_job_is_no_replicas_own(db: str) -> None:
    ran: list[tuple[str, str]] = []

    def job(name: str) -> Callable[[RunRequest], str]:
        def run(request: RunRequest) -> str:
            ran.append((name, request.round_id))
            return f"run-{name}"

        return run

    clock = [SLOT + timedelta(minutes=1)]
    weekly = CronTrigger.from_crontab("0 7 * * mon", timezone=UTC)
    a = Service(database_url=db, job=job("a"), when=weekly, timezone="UTC",
                misfire_grace_seconds=3600, holder="a", clock=lambda: clock[0])  # fmt: skip
    b = Service(database_url=db, job=job("b"), when=weekly, timezone="UTC",
                misfire_grace_seconds=3600, holder="b", clock=lambda: clock[0])  # fmt: skip
    try:
        # Replica a took the slot and died (no release): its lease is still running.
        assert a.lock.acquire(JOB_ID, SLOT, "a", clock[0], a.lease)[0]
        assert not b.watch()
        clock[0] += a.lease + timedelta(seconds=1)
        assert b.watch()  # the lease ran out: b runs the slot, as its round
        assert ran == [("b", b.round_id(SLOT))]
        assert not b.watch()  # finished: never again
        # The stored job names the schedule, not a replica: any live replica fires it.
        b.start()
        stored = b.scheduler.get_job(JOB_ID) if b.scheduler else None
        assert stored is not None and stored.args == (JOB_ID,)
    finally:
        b.stop()
        a.dispose()
        b.dispose()


# --- PostgreSQL as users write it, and replicas that start together -----------------------------


@pytest.mark.postgresql
def test_the_service_opens_postgresql_by_the_url_users_write(postgres_url: str) -> None:
    url = postgres_url.replace("postgresql+psycopg://", "postgres://")
    weekly = CronTrigger.from_crontab("0 7 * * mon", timezone=UTC)
    assert health(url, weekly, 3600, NOW)["last_run"] is None
    service(url, lambda request: None, weekly, "replica-a").dispose()


def test_replicas_starting_together_on_a_new_database_all_start(db: str) -> None:
    weekly = CronTrigger.from_crontab("0 7 * * mon", timezone=UTC)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []
    started: list[Service] = []

    def replica(n: int) -> None:
        try:
            barrier.wait(WAIT)
            s = service(db, lambda request: None, weekly, f"replica-{n}")
            started.append(s)
            s.start()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=replica, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    for s in started:
        s.stop()
        s.dispose()
    assert errors == []
