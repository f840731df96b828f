"""State database benchmark (issue 16): the history's save and load of N findings, SQLite vs
PostgreSQL.

    .venv/bin/python -m benchmarks.state                      # 10,000 findings, both backends
    .venv/bin/python -m benchmarks.state --findings 100000
    .venv/bin/python -m benchmarks.state --url postgresql://reporter@db.internal/bench --repeat 1

Without `--url` it measures a SQLite file in a temporary folder and a throwaway PostgreSQL server
started like the tests' one (tests/postgres.py: local, fsync off, so an upper bound on a real
server's speed). Per backend, on an empty database: the first save (every finding new), a load,
a second save a week later (every finding still open: every row replaced) and a load again.
Each figure is the best of `--repeat` rounds, a fresh database each round.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reporter.history import diff
from reporter.state.history import HistoryStore

T0 = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def _findings(n: int) -> list[tuple[str, str, datetime | None]]:
    account = lambda i: f"{100000000000 + i % 2000:012d}"  # noqa: E731 - 2,000 accounts
    return [
        (
            f"{account(i)}/UnusedPermission/arn:aws:iam::{account(i)}:role/team/app-{i:06d}",
            account(i),
            T0 - timedelta(days=i % 90),
        )
        for i in range(n)
    ]


def measure(url: str, n: int) -> dict[str, float]:
    current = _findings(n)
    accounts = frozenset(a for _, a, _ in current)
    times: dict[str, float] = {}

    def timed(name: str, step: Callable[[], object]) -> object:
        start = time.perf_counter()
        result = step()
        times[name] = time.perf_counter() - start
        return result

    tag = f"{time.time_ns():x}"  # run ids unique in a database measured more than once
    store = HistoryStore(url)
    try:
        first = diff({}, current, accounts, T0)
        timed("save (all new)", lambda: store.save(f"bench-{tag}-1", T0, first))
        loaded = timed("load", store.load)
        assert isinstance(loaded, dict) and len(loaded) >= n
        second = diff(loaded, current, accounts, T0 + WEEK)
        timed("save (all replaced)", lambda: store.save(f"bench-{tag}-2", T0 + WEEK, second))
        timed("load again", store.load)
    finally:
        store.dispose()
    return times


@contextmanager
def _sqlite() -> Iterator[Callable[[], str]]:
    folder = Path(tempfile.mkdtemp(prefix="bench-state-"))
    numbers = iter(range(1, 1_000_000))
    try:
        yield lambda: f"sqlite:///{folder}/state-{next(numbers)}.db"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _postgresql() -> Iterator[Callable[[], str]]:
    from tests.postgres import throwaway_server

    with throwaway_server() as server:
        yield lambda: server.url(server.create_database())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--findings", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--url", action="append", help="measure this database (repeatable)")
    args = parser.parse_args(argv)

    def report(label: str, urls: Callable[[], str]) -> None:
        best: dict[str, float] = {}
        for _ in range(args.repeat):
            for name, seconds in measure(urls(), args.findings).items():
                best[name] = min(best.get(name, seconds), seconds)
        cells = "  ".join(f"{name} {seconds:6.3f} s" for name, seconds in best.items())
        print(f"{label:<11} {args.findings:>7,} findings  {cells}", flush=True)

    if args.url:
        for url in args.url:
            report(url.partition("://")[0], lambda url=url: url)  # type: ignore[misc]
        return 0
    with _sqlite() as urls:
        report("sqlite", urls)
    with _postgresql() as urls:
        report("postgresql", urls)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
