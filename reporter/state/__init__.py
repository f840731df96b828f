"""The state database, in one room: its engine (`engine.py`), its tables in one MetaData
(`schema.py`) and their migrations (Alembic, `migrations/`).

The stores that keep state there (finding history, details cache, delivery ledger and mail queue,
run lock, APScheduler's job store) open it with `open_state`, which brings the schema to the head
first; nothing else opens an engine. A database written by 0.1, which predates Alembic, upgrades
in place (`migrations/versions/0001_baseline.py`); one written by a newer version of the tool is
refused rather than misread.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from ..errors import StateError
from .engine import open_engine, schema_change, state_error

__all__ = ["HEAD", "migrate", "open_state"]

log = logging.getLogger(__name__)

# The revision this code writes; `tests/test_state.py` checks it is the scripts' head.
HEAD = "0003"


def _alembic_config(conn: Connection) -> object:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "reporter.state:migrations")
    config.attributes["connection"] = conn
    return config


def migrate(engine: Engine) -> None:
    """Bring the database to HEAD, one process at a time (`schema_change`). Raises StateError
    for a database newer than this code, or one that cannot be read or changed."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    try:
        with schema_change(engine) as conn:
            current = MigrationContext.configure(conn).get_current_revision()
            if current == HEAD:
                return
            config = _alembic_config(conn)
            scripts = ScriptDirectory.from_config(config)  # type: ignore[arg-type]
            known = {script.revision for script in scripts.walk_revisions()}
            if current is not None and current not in known:
                raise StateError(
                    f"the state database is at schema revision {current}, newer than this "
                    f"version of the tool understands ({HEAD})\n"
                    "    hint: upgrade unused-access-reporter, or point state.database_url at "
                    "another database"
                )
            command.upgrade(config, HEAD)  # type: ignore[arg-type]
            log.info("state database schema migrated from %s to %s", current or "none", HEAD)
    except SQLAlchemyError as exc:
        raise state_error(engine, "open the state database", exc) from exc


def open_state(url: str) -> Engine:
    """An engine on the state database at `url`, its schema at HEAD."""
    engine = open_engine(url)
    try:
        migrate(engine)
    except StateError:
        engine.dispose()
        raise
    return engine
