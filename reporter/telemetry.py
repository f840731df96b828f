"""What a run cost: API calls, retries and throttles per operation, time and pages per source.

Calls are counted from botocore's own events on every client the SessionFactory makes, so the
figures are what went over the wire, not what the code meant to do: `before-call` once per API
call, `before-send` once per attempt (retries = attempts - calls), `needs-retry` once per
response, where a throttling error code is counted.

The same counters feed the progress display: live on a terminal, structured log lines elsewhere.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

log = logging.getLogger("reporter.collect")

# botocore's throttling codes (retries/standard.py) plus the ones Access Analyzer and
# Account Management use.
THROTTLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "EC2ThrottledException",
    }
)


@dataclass(frozen=True)
class SourceStats:
    """One source's share of a run."""

    seconds: float = 0.0
    pages: int = 0
    records: int = 0
    accounts: int = 0  # account sources: accounts read
    failed_accounts: int = 0


@dataclass(frozen=True)
class TelemetryReport:
    """Frozen figures of one run, for the manifest (`as_dict`) and the summary table."""

    calls: Mapping[str, int]
    attempts: Mapping[str, int]
    throttles: Mapping[str, int]
    sources: Mapping[str, SourceStats]
    wall_seconds: float
    paced_seconds: Mapping[str, float] = field(default_factory=dict)
    cache: Mapping[str, int] = field(default_factory=dict)

    @property
    def retries(self) -> dict[str, int]:
        return {
            op: self.attempts.get(op, 0) - self.calls.get(op, 0)
            for op in sorted(self.attempts)
            if self.attempts.get(op, 0) > self.calls.get(op, 0)
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "wall_seconds": round(self.wall_seconds, 3),
            "calls": dict(sorted(self.calls.items())),
            "retries": self.retries,
            "throttles": dict(sorted(self.throttles.items())),
            "paced_seconds": dict(sorted(self.paced_seconds.items())),
            "cache": dict(sorted(self.cache.items())),
            "sources": {
                name: {
                    "seconds": round(s.seconds, 3),
                    "pages": s.pages,
                    "records": s.records,
                    "accounts": s.accounts,
                    "failed_accounts": s.failed_accounts,
                }
                for name, s in sorted(self.sources.items())
            },
        }


def _operation(event_name: str) -> str:
    # `before-call.securityhub.GetFindings` -> `securityhub.GetFindings`
    return event_name.partition(".")[2]


class Telemetry:
    """Thread-safe counters of one run; `register` hooks a botocore client's events."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self.calls: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self.throttles: Counter[str] = Counter()
        self.cache: Counter[str] = Counter()
        self._sources: dict[str, SourceStats] = {}

    def register(self, events: Any) -> None:
        """Count on a client's (or session's) event emitter."""
        events.register("before-call", self._on_call, unique_id="reporter-telemetry-call")
        events.register("before-send", self._on_send, unique_id="reporter-telemetry-send")
        events.register("needs-retry", self._on_response, unique_id="reporter-telemetry-retry")

    def _on_call(self, event_name: str = "", **_: Any) -> None:
        with self._lock:
            self.calls[_operation(event_name)] += 1

    def _on_send(self, event_name: str = "", **_: Any) -> None:
        with self._lock:
            self.attempts[_operation(event_name)] += 1

    def _on_response(
        self, event_name: str = "", response: Any = None, **_: Any
    ) -> None:  # returns None: never decides a retry, only watches
        if not response or len(response) < 2 or not isinstance(response[1], Mapping):
            return
        code = response[1].get("Error", {}).get("Code")
        if code in THROTTLE_CODES:
            with self._lock:
                self.throttles[_operation(event_name)] += 1

    def count_cache(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.cache[what] += n

    def source(self, name: str, **changes: Any) -> SourceStats:
        """Add to a source's figures (`seconds`, `pages`, `records`, `accounts`, ...)."""
        with self._lock:
            before = self._sources.get(name, SourceStats())
            after = SourceStats(
                **{
                    key: getattr(before, key) + changes.get(key, 0)
                    for key in SourceStats.__dataclass_fields__
                }
            )
            self._sources[name] = after
            return after

    def report(self, paced: Mapping[str, float] | None = None) -> TelemetryReport:
        with self._lock:
            return TelemetryReport(
                calls=dict(self.calls),
                attempts=dict(self.attempts),
                throttles=dict(self.throttles),
                sources=dict(self._sources),
                wall_seconds=self._clock() - self._started,
                paced_seconds=dict(paced or {}),
                cache=dict(self.cache),
            )


class Display(Protocol):
    """Where collection progress goes. `update` may be called from any thread."""

    def update(self, source: str, stats: SourceStats, total_accounts: int | None) -> None: ...

    def finish(self, report: TelemetryReport) -> None: ...


class LogDisplay:
    """Structured lines, one per source at most every `interval` seconds and at the end."""

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def update(self, source: str, stats: SourceStats, total_accounts: int | None) -> None:
        now = self._clock()
        with self._lock:
            if now - self._last.get(source, -self._interval) < self._interval:
                return
            self._last[source] = now
        log.info(
            "collect source=%s pages=%d records=%d accounts=%d%s failed_accounts=%d",
            source,
            stats.pages,
            stats.records,
            stats.accounts,
            f"/{total_accounts}" if total_accounts is not None else "",
            stats.failed_accounts,
        )

    def finish(self, report: TelemetryReport) -> None:
        for name, s in sorted(report.sources.items()):
            log.info(
                "collected source=%s seconds=%.1f pages=%d records=%d accounts=%d "
                "failed_accounts=%d",
                name,
                s.seconds,
                s.pages,
                s.records,
                s.accounts,
                s.failed_accounts,
            )
        log.info(
            "collection wall_seconds=%.1f calls=%d retries=%d throttles=%d",
            report.wall_seconds,
            sum(report.calls.values()),
            sum(report.retries.values()),
            sum(report.throttles.values()),
        )


class LiveDisplay:
    """One line redrawn in place on a terminal, then a summary table."""

    def __init__(
        self,
        stream: TextIO,
        interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._interval = interval
        self._clock = clock
        self._state: dict[str, tuple[SourceStats, int | None]] = {}
        self._last = 0.0
        self._lock = threading.Lock()

    def update(self, source: str, stats: SourceStats, total_accounts: int | None) -> None:
        with self._lock:
            self._state[source] = (stats, total_accounts)
            now = self._clock()
            if now - self._last < self._interval:
                return
            self._last = now
            parts = []
            for name, (s, total) in sorted(self._state.items()):
                accounts = f" {s.accounts}/{total} accounts" if total is not None else ""
                parts.append(f"{name}: {s.pages} pages, {s.records:,} records{accounts}")
            self._stream.write("\r\x1b[2K  … " + " | ".join(parts))
            self._stream.flush()

    def finish(self, report: TelemetryReport) -> None:
        self._stream.write("\r\x1b[2K")
        for line in summary_table(report):
            self._stream.write(line + "\n")
        self._stream.flush()


def summary_table(report: TelemetryReport) -> list[str]:
    """The end-of-collection table: one row per source, then the API totals."""
    rows = [("source", "seconds", "pages", "records", "accounts", "failed")]
    rows += [
        (
            name,
            f"{s.seconds:.1f}",
            str(s.pages),
            f"{s.records:,}",
            str(s.accounts),
            str(s.failed_accounts),
        )
        for name, s in sorted(report.sources.items())
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  "
        + "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.append(
        f"  {sum(report.calls.values()):,} API calls, {sum(report.retries.values())} retries, "
        f"{sum(report.throttles.values())} throttled, {report.wall_seconds:.1f} s"
    )
    return lines


def auto_display(stream: TextIO | None = None) -> Display:
    """Live on a terminal, log lines otherwise."""
    stream = stream or sys.stderr
    return LiveDisplay(stream) if stream.isatty() else LogDisplay()


class NullDisplay:
    def update(self, source: str, stats: SourceStats, total_accounts: int | None) -> None:
        return None

    def finish(self, report: TelemetryReport) -> None:
        return None
