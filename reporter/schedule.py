"""`serve`: run the report on the configured cron schedule (APScheduler 3).

One instance at most and coalescing on, so a slow run or a missed week never piles up runs.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from datetime import datetime
from types import FrameType
from zoneinfo import ZoneInfo

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

log = logging.getLogger(__name__)
JOB_ID = "unused-access-report"


def trigger(cron: str, timezone: str) -> CronTrigger:
    return CronTrigger.from_crontab(cron, timezone=ZoneInfo(timezone))


def next_run(cron: str, timezone: str, now: datetime) -> datetime | None:
    fire: datetime | None = trigger(cron, timezone).get_next_fire_time(None, now)
    return fire


def serve(cron: str, timezone: str, misfire_grace_seconds: int, job: Callable[[], object]) -> None:
    """Block, running `job` on schedule until SIGTERM or SIGINT; a running job finishes first."""
    scheduler = BlockingScheduler(timezone=ZoneInfo(timezone))
    scheduler.add_job(
        job,
        trigger(cron, timezone),
        id=JOB_ID,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=misfire_grace_seconds,
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: stopping after the current run", signum)
        scheduler.shutdown(wait=True)

    signal.signal(signal.SIGTERM, stop)
    log.info("scheduled %r in %s", cron, timezone)
    scheduler.start()
