"""Render every owner's PDF and workbook in a pool of processes.

WeasyPrint layout is pure Python and CPU-bound, so threads would share one core; processes
use them all. Workers are started with `spawn`, not `fork`: a forked child would inherit the
parent's Pango/fontconfig state and any threads (the scheduler's, boto3's), which is not safe,
and a fresh interpreter only pays the imports once per worker. Each worker builds its own Jinja
environment (environments do not pickle) from the template folder's path; reports travel as
frozen dataclasses, which pickle as they are.

`OwnerFiles` starts rendering as soon as it is created, so the caller can render the
organization summary in its own process meanwhile, then iterate the owners' files in report
order.
"""

from __future__ import annotations

import gc
import os
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import NamedTuple

from jinja2 import Environment

from reporter.models import OwnerReport
from reporter.render.environment import make_environment
from reporter.render.pdf import DEFAULT_LIMITS, PdfLimits, render_owner_pdf
from reporter.render.xlsx import render_owner_xlsx

# Reports handed to the pool ahead of the one the caller waits for. The caller tops the queue up
# only when it takes the next files, and it takes none while it writes the data files and the
# organization summary (a minute at 100,000 findings): a queue of 32 per worker ran dry after
# 30 s and left both workers idle for 40 s of a 200 s run. 1,024 covers that minute at any
# worker count here; finished files (about 100 kB an owner) wait in memory for the caller, so
# this also bounds what piles up while it delivers. Pending reports cost nothing extra: the
# pool pickles one only as a worker becomes free.
_AHEAD = 1_024


def mapping_proxy(values: dict[str, str]) -> MappingProxyType[str, str]:
    return MappingProxyType(values)


def _reduce_mapping_proxy(
    proxy: MappingProxyType[str, str],
) -> tuple[Callable[[dict[str, str]], MappingProxyType[str, str]], tuple[dict[str, str]]]:
    # The proxy's type cannot be found by name on unpickling; this module's function can.
    return mapping_proxy, (dict(proxy),)


# Frozen models may hold read-only mappings (tags); a proxy does not pickle by itself.
ForkingPickler.register(MappingProxyType, _reduce_mapping_proxy)


class OwnerFilesRendered(NamedTuple):
    report: OwnerReport
    pdf: bytes
    xlsx: bytes


def worker_count(configured: int, tasks: int) -> int:
    """`reports.render_workers`: 0 means one per CPU this process may use; never more than tasks."""
    if configured <= 0:
        try:
            configured = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            configured = os.cpu_count() or 1
    return max(1, min(configured, tasks))


def render_owner(
    report: OwnerReport, env: Environment, limits: PdfLimits = DEFAULT_LIMITS
) -> OwnerFilesRendered:
    """One owner's files, in this process."""
    pdf = render_owner_pdf(report, env, limits)
    return OwnerFilesRendered(report, pdf, render_owner_xlsx(report))


class OwnerFiles:
    """Iterator of OwnerFilesRendered, in the order of `reports`; rendering starts at once.

    With one worker everything happens in the calling process, lazily. Use as a context manager
    (or call `close`) so an error before the last report stops the workers.
    """

    def __init__(
        self,
        reports: Sequence[OwnerReport],
        template_dir: Path | None,
        workers: int = 0,
        limits: PdfLimits = DEFAULT_LIMITS,
    ) -> None:
        self._reports = list(reports)
        self._template_dir = template_dir
        self._limits = limits
        self._next = 0
        self._pending: deque[tuple[OwnerReport, Future[tuple[bytes, bytes]]]] = deque()
        self._pool: ProcessPoolExecutor | None = None
        self._env: Environment | None = None
        self.workers = worker_count(workers, len(self._reports))
        if self.workers > 1:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=get_context("spawn"),
                initializer=_init_worker,
                initargs=(template_dir, limits),
            )
            # Workers must not outlive an OwnerFiles dropped by an error before close().
            self._finalizer = weakref.finalize(
                self, self._pool.shutdown, wait=False, cancel_futures=True
            )
            self._fill()
        else:
            # Fail on a bad template folder now, as the pool would on its first report.
            self._env = make_environment(template_dir)

    def _fill(self) -> None:
        assert self._pool is not None
        while self._next < len(self._reports) and len(self._pending) < _AHEAD:
            report = self._reports[self._next]
            self._pending.append((report, self._pool.submit(_render, report)))
            self._next += 1

    def __iter__(self) -> OwnerFiles:
        return self

    def __next__(self) -> OwnerFilesRendered:
        if self._pool is None:
            if self._env is None or self._next >= len(self._reports):
                raise StopIteration
            report = self._reports[self._next]
            self._next += 1
            return render_owner(report, self._env, self._limits)
        if not self._pending:
            self.close()
            raise StopIteration
        report, future = self._pending.popleft()
        try:
            pdf, xlsx = future.result()
        except BaseException:
            self.close(wait=False)
            raise
        self._fill()
        return OwnerFilesRendered(report, pdf, xlsx)

    def close(self, wait: bool = True) -> None:
        """Stop the workers; reports not yet rendered are dropped."""
        if self._pool is not None:
            self._finalizer.detach()
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None
            self._pending.clear()
            self._next = len(self._reports)
        self._env = None

    def __enter__(self) -> OwnerFiles:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # After an error, do not wait for renders nobody will read.
        self.close(wait=exc_type is None)


def render_owner_files(
    reports: Sequence[OwnerReport],
    template_dir: Path | None,
    workers: int = 0,
    limits: PdfLimits = DEFAULT_LIMITS,
) -> OwnerFiles:
    """Start rendering every owner's PDF and workbook; iterate for (report, pdf, xlsx)."""
    return OwnerFiles(reports, template_dir, workers, limits)


# ---- worker side ------------------------------------------------------------------------------

_worker_env: Environment | None = None
_worker_limits = DEFAULT_LIMITS


def _init_worker(template_dir: Path | None, limits: PdfLimits) -> None:
    global _worker_env, _worker_limits
    _worker_env = make_environment(template_dir)
    _worker_limits = limits
    # Everything alive now (the interpreter's, the modules', WeasyPrint's) lives as long as the
    # worker. Frozen out of the cyclic collector, it stops making every full collection walk
    # ~100,000 objects, and a higher first threshold lets the boxes of a layout die by
    # reference counting between collections: collection time fell from ~45 to ~8 ms of an
    # owner's ~500 ms (measured with gc.callbacks).
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 10)


def _render(report: OwnerReport) -> tuple[bytes, bytes]:
    # Only the bytes travel back; the parent pairs them with its own copy of the report.
    assert _worker_env is not None, "worker not initialised"
    files = render_owner(report, _worker_env, _worker_limits)
    return files.pdf, files.xlsx
