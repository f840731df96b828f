"""`serve`: run the report on the configured cron schedule (APScheduler 3).

- The job lives in an APScheduler SQLAlchemy job store in the state database, so its next run
  time survives a restart: a run missed while the service was down fires once at start-up if it
  is within `misfire_grace_seconds` (coalescing folds several missed runs into one).
- One instance at most per process (`max_instances=1`), and across replicas a run lock row in the
  state database: a lease per schedule, renewed while the run is alive, naming the slot (the
  scheduled fire time) it runs. A slot that finished is never run again; a slot whose holder
  died (its lease ran out) or that was abandoned on SIGTERM is resumed once at start-up, within
  the grace time, as the same delivery round, so only what the ledger lacks is sent.
- SIGTERM/SIGINT stop the scheduler and abandon the current run at its next checkpoint (between
  stages and between messages); the evidence folder of an abandoned run is removed, never left
  looking complete.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import IO, Any
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobEvent
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from .deliver.driver import DeliveryCancelled
from .deliver.ledger import Ledger, default_holder
from .errors import ReporterError, StateError
from .state import migrate, open_state
from .state.engine import guarded
from .state.schema import JOBS_TABLE, run_locks

log = logging.getLogger(__name__)
JOB_ID = "unused-access-report"

FINISHED = "finished"
FAILED = "failed"
ABANDONED = "abandoned"
RUNNING = "running"


class RunCancelled(ReporterError):
    """The service is stopping; the run is abandoned at a checkpoint."""


def trigger(cron: str, timezone: str) -> CronTrigger:
    return CronTrigger.from_crontab(cron, timezone=ZoneInfo(timezone))


def next_run(cron: str, timezone: str, now: datetime) -> datetime | None:
    fire: datetime | None = trigger(cron, timezone).get_next_fire_time(None, now)
    return fire


def slot_round(name: str, slot: datetime) -> str:
    """The delivery round of a schedule slot: every run for the slot shares it."""
    return f"slot:{name}:{_utc(slot).isoformat()}"


def latest_slot(when: BaseTrigger, now: datetime, grace: timedelta) -> datetime | None:
    """The last fire time of `when` at or before `now`, looking back at most `grace`: the slot a
    job started by APScheduler is running for (APScheduler does not hand it to the job)."""
    start = now - grace - timedelta(seconds=1)
    fire: datetime | None = when.get_next_fire_time(None, start)
    last = None
    while fire is not None and fire <= now:
        last = fire
        fire = when.get_next_fire_time(fire, fire + timedelta(microseconds=1))
    return last


# --------------------------------------------------------------------------------------------
# The run lock.
# --------------------------------------------------------------------------------------------


def one_line(exc: BaseException) -> str:
    """An error as `health` and the logs' summaries show it: its first line, with its type."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _utc(value: datetime) -> datetime:
    # SQLite hands timezone-aware columns back naive; they were stored as UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class LockState:
    name: str
    slot: datetime
    holder: str
    run_id: str
    state: str
    acquired_at: datetime
    lease_until: datetime
    finished_at: datetime | None
    reason: str = ""

    def interrupted(self, now: datetime) -> bool:
        """Its run will not finish by itself: abandoned, or the holder died (lease ran out)."""
        return self.state == ABANDONED or (self.state == RUNNING and self.lease_until <= now)


class RunLock:
    """One row per schedule: who runs which slot, until when (the lease)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # The run lock and APScheduler's job store table come from the state room's migrations
        # (replicas starting together raced to create the job store's table themselves).
        migrate(engine)

    @guarded("read the run lock")
    def get(self, name: str) -> LockState | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(run_locks).where(run_locks.c.name == name)).first()
        if row is None:
            return None
        return LockState(
            name=row.name,
            slot=_utc(row.slot),
            holder=row.holder,
            run_id=row.run_id,
            state=row.state,
            acquired_at=_utc(row.acquired_at),
            lease_until=_utc(row.lease_until),
            finished_at=_utc(row.finished_at) if row.finished_at else None,
            reason=row.reason or "",
        )

    @guarded("take the run lock")
    def acquire(
        self, name: str, slot: datetime, holder: str, now: datetime, lease: timedelta
    ) -> tuple[bool, str]:
        """Take the lock for `slot`. Refused while another holder's lease runs, and for a slot
        that already finished or failed. Returns (acquired, why not)."""
        slot = _utc(slot)
        values = {
            "slot": slot,
            "holder": holder,
            "run_id": "",
            "state": RUNNING,
            "acquired_at": now,
            "lease_until": now + lease,
            "finished_at": None,
            "reason": "",
        }
        current = self.get(name)
        if current is None:
            try:
                with self._engine.begin() as conn:
                    conn.execute(run_locks.insert().values(name=name, **values))
            except IntegrityError:
                return False, "another replica took the lock first"
            return True, ""
        if current.state == RUNNING and current.lease_until > now:
            return False, f"slot {current.slot.isoformat()} is running on {current.holder}"
        if current.slot == slot and current.state in (FINISHED, FAILED):
            return False, f"slot {slot.isoformat()} already ran ({current.state})"
        if current.slot > slot:
            return False, f"a later slot ({current.slot.isoformat()}) already ran"
        # Compare-and-set on what we read: of two replicas racing here, one update matches.
        with self._engine.begin() as conn:
            result = conn.execute(
                run_locks.update()
                .where(
                    run_locks.c.name == name,
                    run_locks.c.holder == current.holder,
                    run_locks.c.acquired_at == current.acquired_at,
                )
                .values(**values)
            )
        if result.rowcount != 1:
            return False, "another replica took the lock first"
        return True, ""

    @guarded("renew the run lock")
    def renew(self, name: str, holder: str, now: datetime, lease: timedelta) -> bool:
        with self._engine.begin() as conn:
            result = conn.execute(
                run_locks.update()
                .where(
                    run_locks.c.name == name,
                    run_locks.c.holder == holder,
                    run_locks.c.state == RUNNING,
                )
                .values(lease_until=now + lease)
            )
        return result.rowcount == 1

    @guarded("release the run lock")
    def release(
        self, name: str, holder: str, now: datetime, state: str, run_id: str = "", reason: str = ""
    ) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                run_locks.update()
                .where(run_locks.c.name == name, run_locks.c.holder == holder)
                .values(state=state, run_id=run_id, lease_until=now, finished_at=now, reason=reason)
            )


# --------------------------------------------------------------------------------------------
# The service.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRequest:
    """What a scheduled run is told: its slot, its delivery round, and how to know to stop."""

    slot: datetime
    round_id: str
    should_stop: Callable[[], bool]

    def checkpoint(self) -> None:
        if self.should_stop():
            raise RunCancelled(f"stopping: run for slot {self.slot.isoformat()} abandoned")


# A job returns the run id it produced (or None).
Job = Callable[[RunRequest], str | None]

# APScheduler persists the job as a reference to a module-level function plus its arguments.
# The argument is the schedule's name, the same for every replica (never settings: no secret goes
# into the job store): whichever replica's scheduler takes the shared job runs it with its own
# service. (An argument naming one replica left the others ignoring the job once that replica
# stopped, and the slot was lost.)
_SERVICES: dict[str, list[Service]] = {}


def _live(name: str) -> Service | None:
    return next((s for s in _SERVICES.get(name, ()) if not s.stopping.is_set()), None)


def _fire(name: str) -> None:
    service = _live(name)
    if service is None:
        log.error("scheduled job %s fired in a process that serves no such schedule: ignored",
                  name)  # fmt: skip
        return
    service.fire()


def _resume(name: str, slot: str) -> None:
    service = _live(name)
    if service is not None:
        service.run_slot(datetime.fromisoformat(slot))


def _watch(name: str) -> None:
    service = _live(name)
    if service is not None:
        service.watch()


def _retry(name: str) -> None:
    service = _live(name)
    if service is not None:
        service.retry()


class Service:
    """The scheduler, its job store and the run lock, around a job callable."""

    def __init__(
        self,
        *,
        database_url: str,
        job: Job,
        when: BaseTrigger,
        timezone: str,
        misfire_grace_seconds: int,
        lease_seconds: int = 900,
        name: str = JOB_ID,
        holder: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        retry: Callable[[], object] | None = None,
        retry_interval_seconds: int = 1800,
        watch_interval_seconds: int | None = None,
    ) -> None:
        self.name = name
        self.job = job
        self.when = when
        self.zone = ZoneInfo(timezone)
        self.grace = timedelta(seconds=misfire_grace_seconds)
        self.lease = timedelta(seconds=lease_seconds)
        self.holder = holder or default_holder()
        self.clock = clock
        self.stopping = threading.Event()
        self._engine = open_state(database_url)
        self.lock = RunLock(self._engine)
        self.retry_job = retry
        self.retry_interval = retry_interval_seconds
        # How often a replica looks for a slot another one left interrupted: a few times per
        # lease, so a killed replica's slot is taken over soon after its lease runs out.
        self.watch_interval = watch_interval_seconds or max(int(self.lease.total_seconds() / 3), 5)
        self.scheduler: BackgroundScheduler | None = None

    # -- running one slot ----------------------------------------------------------------------

    def round_id(self, slot: datetime) -> str:
        return slot_round(self.name, slot)

    def fire(self) -> bool:
        """Called by APScheduler at a fire time: run the slot that is due now."""
        now = self.clock()
        slot = latest_slot(self.when, now, self.grace) or now
        return self.run_slot(slot)

    def run_slot(self, slot: datetime) -> bool:
        """Run `slot` under the lock; False if the lock refused (no run happened)."""
        acquired, why = self.lock.acquire(self.name, slot, self.holder, self.clock(), self.lease)
        if not acquired:
            log.info("run for slot %s not started: %s", slot.isoformat(), why)
            return False
        log.info("run for slot %s started on %s", slot.isoformat(), self.holder)
        done = threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat, args=(done,), daemon=True)
        heartbeat.start()
        state, run_id, reason = FAILED, "", ""
        try:
            request = RunRequest(slot, self.round_id(slot), self.stopping.is_set)
            run_id = self.job(request) or ""
            state = FINISHED
        except (RunCancelled, DeliveryCancelled) as exc:
            state = ABANDONED
            log.warning("%s", exc)
        except ReporterError as exc:
            # A failed week must not stop the service: logged, the next slot runs as usual, and
            # `health` shows the reason.
            reason = one_line(exc)
            log.error("run for slot %s failed: %s", slot.isoformat(), exc)
        except Exception as exc:
            reason = one_line(exc)
            log.error("run for slot %s failed: %s", slot.isoformat(), reason, exc_info=exc)
        finally:
            done.set()
            heartbeat.join()
            self.lock.release(self.name, self.holder, self.clock(), state, run_id, reason)
            log.info("run for slot %s %s", slot.isoformat(), state)
        return True

    def watch(self) -> bool:
        """Run a slot another replica left interrupted (killed: its lease ran out; stopped: it
        abandoned the slot), if it is still within the grace time. False if none was run."""
        state = self.lock.get(self.name)
        now = self.clock()
        if state is None or not state.interrupted(now):
            return False
        if now - state.slot > self.grace:
            return False
        log.info("slot %s was left %s by %s: taking it over", state.slot.isoformat(),
                 state.state, state.holder)  # fmt: skip
        return self.run_slot(state.slot)

    def retry(self) -> None:
        """The retry job: one more try for mail left undelivered, within its retry time."""
        if self.retry_job is None or self.stopping.is_set():
            return
        try:
            self.retry_job()
        except (DeliveryCancelled, RunCancelled):
            pass
        except Exception as exc:
            log.error("retrying undelivered mail failed: %s", one_line(exc), exc_info=exc)

    def _heartbeat(self, done: threading.Event) -> None:
        interval = max(self.lease.total_seconds() / 3, 1.0)
        while not done.wait(interval):
            try:
                if not self.lock.renew(self.name, self.holder, self.clock(), self.lease):
                    log.error("run lock lost: another replica may take this slot over")
            except StateError as exc:
                log.error("run lock not renewed: %s", one_line(exc))

    # -- the scheduler -------------------------------------------------------------------------

    def start(self) -> BackgroundScheduler:
        """Start scheduling in the background: reconcile the stored job with the config (a
        stored next run time is kept, so a missed run fires now), queue the resumption of an
        interrupted slot, then resume."""
        scheduler = BackgroundScheduler(
            jobstores={
                "default": SQLAlchemyJobStore(engine=self._engine, tablename=JOBS_TABLE),
                "memory": MemoryJobStore(),
            },
            timezone=self.zone,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(self.grace.total_seconds()),
            },
        )
        scheduler.add_listener(self._on_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR)
        _SERVICES.setdefault(self.name, []).append(self)
        scheduler.start(paused=True)
        self.scheduler = scheduler
        stored = scheduler.get_job(self.name, jobstore="default")
        if stored is None:
            # Another replica starting at the same moment may add it too: the same job either way.
            scheduler.add_job(
                _fire, self.when, args=[self.name], id=self.name, replace_existing=True
            )
        else:
            scheduler.modify_job(
                self.name,
                func=_fire,
                args=[self.name],
                coalesce=True,
                max_instances=1,
                misfire_grace_time=int(self.grace.total_seconds()),
            )
            if repr(stored.trigger) != repr(self.when):
                log.info("schedule changed to %s: next run recomputed", self.when)
                scheduler.reschedule_job(self.name, trigger=self.when)
        self._queue_resumption(scheduler)
        # This replica's own jobs, in memory: watching for slots left interrupted by another
        # replica, and retrying undelivered mail (the ledger's leases keep replicas apart).
        scheduler.add_job(
            _watch, "interval", seconds=self.watch_interval, args=[self.name],
            id=f"{self.name}-watch", jobstore="memory", replace_existing=True,
            coalesce=True, max_instances=1, misfire_grace_time=None,
        )  # fmt: skip
        if self.retry_job is not None:
            scheduler.add_job(
                _retry, "interval", seconds=self.retry_interval, args=[self.name],
                id=f"{self.name}-retry", jobstore="memory", replace_existing=True,
                coalesce=True, max_instances=1, misfire_grace_time=None,
            )  # fmt: skip
        scheduler.resume()
        job = scheduler.get_job(self.name)
        log.info("scheduled %s; next run %s", self.when, job.next_run_time if job else None)
        return scheduler

    def _queue_resumption(self, scheduler: BackgroundScheduler) -> None:
        state = self.lock.get(self.name)
        now = self.clock()
        if state is None or state.state not in (RUNNING, ABANDONED):
            return
        if now - state.slot > self.grace:
            log.warning(
                "slot %s was interrupted and is past the grace time: not resumed",
                state.slot.isoformat(),
            )
            return
        # A run still holding an unexpired lease may be a dead process of ours: look again
        # when the lease runs out.
        at = max(now, state.lease_until)
        log.info("slot %s was interrupted: resuming it at %s", state.slot.isoformat(), at)
        scheduler.add_job(
            _resume,
            "date",
            run_date=at,
            args=[self.name, state.slot.isoformat()],
            id=f"{self.name}-resume",
            jobstore="memory",
            replace_existing=True,
            misfire_grace_time=None,
        )

    def _on_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            log.warning(
                "run for %s missed by more than the grace time: skipped",
                getattr(event, "scheduled_run_time", "?"),
            )
        elif event.code == EVENT_JOB_ERROR:
            log.error("scheduled job raised: %s", getattr(event, "exception", "?"))

    def stop(self, wait: bool = True) -> None:
        """Ask the current run to stop at its next checkpoint and shut the scheduler down."""
        self.stopping.set()
        if self.scheduler is not None and self.scheduler.running:
            # APScheduler 3 looks for due jobs once more after shutting its executors down, and
            # a job due then is lost (its next run time moves on, the submission fails). With
            # the stores detached first, that last look finds nothing: a due run stays stored
            # and fires at the next start.
            self.scheduler.pause()
            for alias in ("default", "memory"):
                self.scheduler.remove_jobstore(alias)
            self.scheduler.shutdown(wait=wait)
        services = _SERVICES.get(self.name, [])
        if self in services:
            services.remove(self)

    def dispose(self) -> None:
        self._engine.dispose()

    def next_fire(self) -> datetime | None:
        if self.scheduler is None:
            return None
        job = self.scheduler.get_job(self.name)
        fire: datetime | None = job.next_run_time if job else None
        return fire


def serve_forever(service: Service) -> None:
    """Block until SIGTERM or SIGINT, then stop: the current run is abandoned at its next
    checkpoint and its slot is resumed by the next start within the grace time."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: stopping; a running report is abandoned at its next checkpoint",
                 signum)  # fmt: skip
        service.stopping.set()
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        service.start()
        stop.wait()
    finally:
        service.stop(wait=True)
        service.dispose()
        for s, handler in previous.items():
            signal.signal(s, handler)


# --------------------------------------------------------------------------------------------
# Health and logs.
# --------------------------------------------------------------------------------------------


def health(
    database_url: str, when: BaseTrigger, grace_seconds: int, now: datetime, name: str = JOB_ID
) -> dict[str, Any]:
    """The last run and the next one, from the state database (no scheduler needed). `ok` is
    False when a run is overdue: the last slot that should have run did not finish."""
    engine = open_state(database_url)
    try:
        state = RunLock(engine).get(name)
        undelivered, mail_error = Ledger(engine).undelivered(now)
        stored = None
        store = SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE)
        try:
            with engine.connect() as conn:
                row = conn.execute(
                    select(store.jobs_t.c.next_run_time).where(store.jobs_t.c.id == name)
                ).first()
            if row is not None and row.next_run_time is not None:
                stored = datetime.fromtimestamp(float(row.next_run_time), UTC)
        except SQLAlchemyError:
            stored = None  # the service never started here: no job store table yet
    finally:
        engine.dispose()
    computed: datetime | None = when.get_next_fire_time(None, now)
    after = (
        when.get_next_fire_time(computed, computed + timedelta(microseconds=1))
        if computed
        else None
    )
    period = (after - computed) if computed and after else timedelta(days=7)
    # The slot that should have run by now (its grace time is over), looked for far enough back.
    due = latest_slot(
        when, now - timedelta(seconds=grace_seconds), max(period * 2, timedelta(days=8))
    )
    live = state is not None and state.state == RUNNING and not state.interrupted(now)
    overdue = bool(
        state is not None
        and due is not None
        and not live
        and (state.slot < due or state.interrupted(now))
    )
    last = None
    if state is not None:
        last = {
            "slot": state.slot.isoformat(),
            "state": "interrupted" if state.interrupted(now) else state.state,
            "run_id": state.run_id,
            "holder": state.holder,
            "started_at": state.acquired_at.isoformat(),
            "finished_at": state.finished_at.isoformat() if state.finished_at else None,
            "reason": state.reason or None,
        }
    nxt = stored or computed
    failed = state is not None and state.state == FAILED
    problems = []
    if overdue:
        problems.append("the last slot due did not run to its end")
    if failed and state is not None:
        problems.append(f"the last run failed: {state.reason or 'see the logs'}")
    if undelivered:
        problems.append(f"{undelivered} message(s) undelivered: {mail_error or 'see the ledger'}")
    return {
        "ok": not problems,
        "last_run": last,
        "next_run": nxt.isoformat() if nxt else None,
        "overdue": overdue,
        "undelivered": undelivered,
        "problem": "; ".join(problems) or None,
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: what log collectors parse without a pattern."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(stream: IO[str], level: int = logging.INFO) -> None:
    """JSON lines when `stream` is not a terminal (a container, a log shipper), text otherwise."""
    handler = logging.StreamHandler(stream)
    if stream.isatty():
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # Alembic narrates every start-up at INFO (its plugins, its DDL mode); the state room logs
    # one line when it migrates.
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
