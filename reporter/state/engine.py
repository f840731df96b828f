"""The state database's URL and engine: a SQLite file, or PostgreSQL through psycopg 3.

Users write the URL the way PostgreSQL's own tools do (`postgresql://` or `postgres://`, no driver
named); SQLAlchemy alone would pick psycopg2 for that, which the tool does not ship. `engine_url`
names the driver the tool has and refuses the others with a config error. Messages name the
backend, the host and the user, never the whole URL: it may hold a password.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from ..errors import ConfigError, ConfigProblem, StateError

KEY = "state.database_url"
POSTGRESQL = "postgresql+psycopg"
EXAMPLES = "`sqlite:///state/reporter.db` or `postgresql://USER:${DB_PASSWORD}@HOST:5432/DBNAME`"
# Drivers as SQLAlchemy names them (`backend+driver`; no driver is the backend's default).
_SQLITE = {"sqlite", "sqlite+pysqlite"}
_POSTGRESQL = {"postgresql", "postgres", "postgresql+psycopg", "postgres+psycopg"}
# pg_advisory_xact_lock key of schema changes ("reporter" in ASCII): replicas that start
# together create and migrate the tables one after the other.
_SCHEMA_LOCK = 0x7265706F72746572


def url_problem(url: str) -> tuple[str, str] | None:
    """(message, hint) when `url` is not a state database URL this tool can open, else None.
    Neither quotes the URL."""
    scheme, sep, _rest = url.partition("://")
    drivername = scheme.lower()
    if not sep or not drivername:
        return "not a supported database URL", EXAMPLES
    if drivername in _SQLITE or drivername in _POSTGRESQL:
        return None
    backend = drivername.partition("+")[0]
    if backend in ("postgresql", "postgres"):
        return (
            f"unsupported PostgreSQL driver `{drivername}`",
            "write `postgresql://USER:${DB_PASSWORD}@HOST:5432/DBNAME`: the tool connects "
            "with psycopg 3 (`postgresql+psycopg://` means the same)",
        )
    if backend == "sqlite":
        return f"unsupported SQLite driver `{drivername}`", "write `sqlite:///PATH`"
    return "not a supported database URL", EXAMPLES


def _config_error(url: str, message: str, hint: str) -> ConfigError:
    backend = url.partition("://")[0] if "://" in url else "?"
    return ConfigError([ConfigProblem(KEY, repr(backend[:40]), message, hint)])


def engine_url(url: str) -> URL:
    """The SQLAlchemy URL to open: `postgresql://` and `postgres://` become psycopg 3's
    `postgresql+psycopg://`; any other driver is a ConfigError naming `state.database_url`."""
    problem = url_problem(url)
    if problem is not None:
        raise _config_error(url, *problem)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # SQLAlchemy's message quotes the URL: not passed on.
        raise _config_error(url, "not a valid database URL", EXAMPLES) from None
    drivername = parsed.drivername.lower()
    return parsed.set(drivername=POSTGRESQL if drivername in _POSTGRESQL else drivername)


def where(url: URL) -> str:
    """The database as messages may show it: backend, host, port and database, no password."""
    if url.get_backend_name() == "sqlite":
        return f"SQLite file {url.database}" if url.database else "SQLite in memory"
    return f"PostgreSQL at {url.host or 'localhost'}:{url.port or 5432} (database {url.database})"


def hint(url: URL) -> str:
    """What to check when the state database cannot be opened or used."""
    if url.get_backend_name() == "sqlite":
        return "check state.database_url and that its folder is writable"
    return (
        f"check that the PostgreSQL server at {url.host or 'localhost'}:{url.port or 5432} is "
        f"running and reachable, and that user {url.username or '(none)'!r}, its password and "
        f"database {url.database!r} in state.database_url are right"
    )


def open_engine(url: str) -> Engine:
    """An engine on the state database, with its folder created for a SQLite file. Opens no
    connection yet: a server that is down shows at the first use."""
    target = engine_url(url)
    try:
        if target.get_backend_name() == "sqlite" and target.database not in (None, "", ":memory:"):
            Path(target.database).parent.mkdir(parents=True, exist_ok=True)
        return create_engine(target)
    except (SQLAlchemyError, OSError) as exc:
        raise StateError(
            f"cannot open the state database ({type(exc).__name__})\n    hint: {hint(target)}"
        ) from exc


# What SQLite says of a damaged file (a corrupted page or header): not a problem of rights.
_DAMAGED = ("malformed", "not a database", "file is encrypted", "disk i/o error")


def state_error(engine: Engine, doing: str, exc: Exception) -> StateError:
    """`exc` (from the driver) as a StateError naming what failed, with a hint; the URL's
    password never appears (the driver's own messages name host and user only)."""
    advice = hint(engine.url)
    said = str(getattr(exc, "orig", exc) or "").strip().splitlines()
    reason = said[0] if said else ""
    if engine.url.get_backend_name() == "sqlite" and any(d in reason.lower() for d in _DAMAGED):
        return StateError(
            f"cannot {doing}: {where(engine.url)} is damaged ({reason})\n"
            "    hint: restore the file from a backup; or move it aside and run again to start "
            "a new one (first-seen dates restart, and this round's mail may go out again)"
        )
    if engine.url.get_backend_name() != "sqlite" and not isinstance(exc, OperationalError):
        # Connected, but a statement was refused: most often the role's rights.
        advice = (
            f"check that user {engine.url.username or '(none)'!r} may create and change tables "
            f"in database {engine.url.database!r} (the tool creates and migrates its own)"
        )
    return StateError(
        f"cannot {doing}: {where(engine.url)} ({type(exc).__name__})\n    hint: {advice}"
    )


P = ParamSpec("P")
R = TypeVar("R")


def guarded(
    doing: str,
) -> Callable[[Callable[Concatenate[Any, P], R]], Callable[Concatenate[Any, P], R]]:
    """A store's method whose driver errors become a StateError saying what it was `doing`
    (the store keeps its engine in `_engine`): a damaged or unreachable database is explained,
    never a driver traceback."""

    def wrap(method: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Any, P], R]:
        @functools.wraps(method)
        def inner(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return method(self, *args, **kwargs)
            except SQLAlchemyError as exc:
                raise state_error(self._engine, doing, exc) from exc

        return inner

    return wrap


@contextmanager
def schema_change(engine: Engine) -> Iterator[Connection]:
    """A transaction for creating or migrating tables that one process at a time gets, so
    processes opening a new database together do not both create a table (the second fails:
    "already exists", or a duplicate in PostgreSQL's catalog) or both run a migration.

    PostgreSQL: an advisory lock held until the transaction ends. SQLite: `BEGIN IMMEDIATE`
    (Python's sqlite3 would run the DDL outside any transaction, one statement at a time)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
        elif conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        yield conn
