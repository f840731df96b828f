"""The state database's URLs and errors: the URL forms users write, drivers the tool lacks, and a
PostgreSQL server that is down or refuses the password (never echoing the password)."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

import pytest
from sqlalchemy import text

from reporter.cache import DetailsCache
from reporter.config import load_data
from reporter.errors import ConfigError, StateError
from reporter.state.engine import engine_url, open_engine
from reporter.state.history import HistoryStore

from . import postgres
from .postgres import LOCKED_PASSWORD, LOCKED_ROLE, PostgresServer
from .smtp_server import free_port

SECRET = "s3cret"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://reporter@db.internal/reporter",
        "postgres://reporter@db.internal/reporter",
        "postgresql+psycopg://reporter@db.internal/reporter",
        "POSTGRESQL://reporter@db.internal/reporter",
    ],
)
def test_postgresql_urls_without_a_driver_get_psycopg_3(url: str) -> None:
    target = engine_url(url)
    assert target.drivername == "postgresql+psycopg"
    assert (target.username, target.host, target.database) == (
        "reporter",
        "db.internal",
        "reporter",
    )


def test_sqlite_urls_are_left_as_written() -> None:
    assert engine_url("sqlite:///state/reporter.db").drivername == "sqlite"
    assert engine_url("sqlite+pysqlite:///s.db").drivername == "sqlite+pysqlite"


@pytest.mark.parametrize(
    ("url", "message", "hint"),
    [
        (f"postgresql+psycopg2://u:{SECRET}@h/d", "unsupported PostgreSQL driver", "psycopg 3"),
        (f"postgresql+asyncpg://u:{SECRET}@h/d", "unsupported PostgreSQL driver", "psycopg 3"),
        (f"mysql://u:{SECRET}@h/d", "not a supported database URL", "postgresql://"),
        (f"mysql+pymysql://u:{SECRET}@h/d", "not a supported database URL", "sqlite:///"),
        ("sqlite+aiosqlite:///s.db", "unsupported SQLite driver", "sqlite:///"),
        (f"u:{SECRET}@h/d", "not a supported database URL", "sqlite:///"),
    ],
)
def test_other_drivers_are_a_config_error_naming_the_key_not_the_url(
    url: str, message: str, hint: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        engine_url(url)
    (problem,) = raised.value.problems
    assert problem.path == "state.database_url"
    assert message in problem.message and hint in problem.hint
    assert SECRET not in str(raised.value)
    assert "@h/d" not in str(raised.value)  # the backend is named, never the URL


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///state/reporter.db",
        "sqlite+pysqlite:////var/lib/reporter/state.db",
        "postgresql://reporter:${DB_PASSWORD}@db.internal:5432/reporter",
        "postgres://reporter:${DB_PASSWORD}@db.internal/reporter",
        "postgresql+psycopg://reporter:${DB_PASSWORD}@db.internal/reporter?sslmode=require",
    ],
)
def test_config_accepts_the_url_forms_the_state_database_opens(url: str) -> None:
    settings = load_data({"state": {"database_url": url}}, {"DB_PASSWORD": SECRET})
    assert settings.state.database_url == url.replace("${DB_PASSWORD}", SECRET)
    engine_url(settings.state.database_url)  # and the store opens what config accepted


def test_open_engine_creates_a_sqlite_files_folder(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path}/deep/er/state.db")
    engine.dispose()
    assert (tmp_path / "deep" / "er").is_dir()


def _assert_secret_kept(raised: pytest.ExceptionInfo[StateError], logs: str) -> None:
    text = str(raised.value)
    assert "hint:" in text
    assert SECRET not in text
    assert SECRET not in "".join(traceback.format_exception(raised.value))  # the whole chain
    assert SECRET not in logs


def test_a_postgresql_server_that_is_down_is_a_state_error_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"postgresql://reporter:{SECRET}@127.0.0.1:{free_port()}/reporter"
    caplog.set_level(logging.DEBUG)
    for opening in (HistoryStore, DetailsCache):
        with pytest.raises(StateError) as raised:
            opening(url)
        _assert_secret_kept(raised, caplog.text)
        assert "PostgreSQL at 127.0.0.1" in str(raised.value)
        assert "is running and reachable" in str(raised.value)


@pytest.mark.postgresql
def test_a_refused_password_is_a_state_error_without_the_password(
    postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    name = postgres_server.create_database()
    with postgres_server.admin() as conn:
        conn.execute(f"ALTER DATABASE {name} OWNER TO {LOCKED_ROLE}")
    HistoryStore(postgres_server.url(name, LOCKED_ROLE, LOCKED_PASSWORD)).dispose()  # it opens
    wrong = postgres_server.url(name, LOCKED_ROLE, SECRET)
    with pytest.raises(StateError) as raised:
        HistoryStore(wrong)
    _assert_secret_kept(raised, caplog.text)
    assert f"user {LOCKED_ROLE!r}, its password" in str(raised.value)
    postgres_server.drop_database(name)


@pytest.mark.postgresql
def test_a_role_that_may_not_create_tables_gets_a_hint_saying_so(
    postgres_server: PostgresServer,
) -> None:
    # PostgreSQL 15 and later: only the database's owner may create tables in `public`.
    with pytest.raises(StateError) as raised:
        HistoryStore(postgres_server.url("postgres", LOCKED_ROLE, LOCKED_PASSWORD))
    assert "ProgrammingError" in str(raised.value)
    assert f"user {LOCKED_ROLE!r} may create and change tables" in str(raised.value)
    assert LOCKED_PASSWORD not in str(raised.value)


def test_the_cli_explains_a_database_that_is_down_without_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from reporter.cli import main

    from .conftest import SAMPLES

    caplog.set_level(logging.DEBUG)
    config = tmp_path / "c.yaml"
    url = f"postgresql://reporter:{SECRET}@127.0.0.1:{free_port()}/reporter"
    config.write_text(f"state:\n  database_url: '{url}'\n")
    listed = SAMPLES / "aa-list-findings-v2-unused-permission-aws-blog.json"
    code = main(
        ["run", "-c", str(config), "--no-send", "--out", str(tmp_path / "out"),
         "--from-file", str(listed)]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 2  # a state problem: nothing ran
    assert "cannot open the state database" in err and "hint:" in err
    assert SECRET not in out + err + caplog.text


def test_without_server_binaries_ci_fails_and_a_workstation_skips(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(postgres, "find_bindir", lambda: None)
    with pytest.raises(postgres.MissingServer) as missing, postgres.throwaway_server():
        pass
    with pytest.raises(pytest.fail.Exception, match="CI must run the PostgreSQL tests"):
        postgres.unavailable(str(missing.value), {"CI": "true"})
    with pytest.raises(pytest.skip.Exception, match="make install-dev"):
        postgres.unavailable(str(missing.value), {})


# --- a damaged SQLite file ------------------------------------------------------------------------


def _mailing_run(tmp_path: Path, port: int) -> list[str]:
    """`run --from-file` that mails through the SMTP server on `port`: it writes the history
    and the delivery ledger."""
    from .conftest import SAMPLES

    config = tmp_path / "c.yaml"
    config.write_text(
        f"state:\n  database_url: sqlite:///{tmp_path}/state.db\n"
        "owners:\n  allowed_domains: [example.com]\n"
        "mail:\n  transport: smtp\n  from_address: reporter@example.com\n"
        f"  smtp: {{host: 127.0.0.1, port: {port}, security: none}}\n"
    )
    listed = SAMPLES / "aa-list-findings-v2-unused-permission-aws-blog.json"
    return ["run", "-c", str(config), "--out", str(tmp_path / "out"), "--from-file", str(listed)]


def _damage_table(path: Path, table: str) -> None:
    """Overwrite the root page of `table` with garbage, as a torn write or a bad disk would."""
    import sqlite3

    with sqlite3.connect(path) as db:
        (root,) = db.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)
        ).fetchone()
        (page_size,) = db.execute("PRAGMA page_size").fetchone()
    with path.open("r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xa5" * page_size)


@pytest.mark.parametrize("damage", ["deliveries page", "header"])
def test_a_damaged_state_file_is_a_clear_state_error_with_exit_2(
    tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from reporter.cli import main

    from .smtp_server import smtp_server

    with smtp_server() as (server, port):
        args = _mailing_run(tmp_path, port)
        assert main(args) == 0 and server.received
        capsys.readouterr()
        db = tmp_path / "state.db"
        if damage == "header":
            with db.open("r+b") as f:
                f.write(b"not a database!!")
        else:
            _damage_table(db, "deliveries")
        assert main(args) == 2
    out, err = capsys.readouterr()
    assert "is damaged" in err and "hint: restore the file from a backup" in err, err
    assert "Traceback" not in out + err and "sqlite3." not in err


# --- the schema and its migrations ---------------------------------------------------------------


def test_the_head_migration_builds_exactly_the_declared_tables(state_url: str) -> None:
    """One MetaData (reporter/state/schema.py); the migrations must build it, column for column."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from reporter.state import HEAD, _alembic_config, open_state
    from reporter.state.schema import metadata

    engine = open_state(state_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert context.get_current_revision() == HEAD
            assert compare_metadata(context, metadata) == []
            scripts = ScriptDirectory.from_config(_alembic_config(conn))  # type: ignore[arg-type]
            assert scripts.get_current_head() == HEAD
    finally:
        engine.dispose()


def test_a_database_written_by_0_1_upgrades_in_place(tmp_path: Path) -> None:
    """tests/data/state-0.1.sqlite was written by the code of 0.1 (commit 708a816): a history
    row and a run, a cached finding, a sent message, a finished slot and the stored job."""
    import shutil

    from apscheduler.triggers.cron import CronTrigger

    from reporter.cache import DetailsCache
    from reporter.deliver.ledger import Ledger, LedgerKey, Status
    from reporter.schedule import JOB_ID, Service

    path = tmp_path / "state.db"
    shutil.copy(Path(__file__).parent / "data" / "state-0.1.sqlite", path)
    url = f"sqlite:///{path}"
    history = HistoryStore(url)
    (seen,) = history.load().values()
    assert seen.key.endswith("role/old-role|UnusedIAMRole|") and seen.open
    assert [p.run_id for p in history.trend()] == ["20261123T070000Z-aaaaaa"]
    history.dispose()
    cache = DetailsCache(url)
    assert cache.index("arn:aws:access-analyzer:us-east-1:999988887777:analyzer/org") == {
        "f-1": "2026-11-20T00:00:00+00:00"
    }
    cache.dispose()
    ledger = Ledger.open(url)
    key = LedgerKey("slot:unused-access-report:2026-11-23T07:00:00+00:00", "owner",
                    "alice@example.com")  # fmt: skip
    entry = ledger.get(key)
    assert entry is not None and entry.status is Status.SENT
    assert ledger.recipients(key) == {}  # 0.1 kept no per-recipient rows: the message stands
    assert ledger.undelivered() == (0, "")
    ledger.dispose()
    weekly = CronTrigger.from_crontab("0 7 * * mon", timezone="UTC")
    service = Service(database_url=url, job=lambda request: None, when=weekly, timezone="UTC",
                      misfire_grace_seconds=3600)  # fmt: skip
    try:
        state = service.lock.get(JOB_ID)
        assert state is not None and (state.state, state.reason) == ("finished", "")
        service.start()
        # 0.1 stored the job with one replica's key as its argument; now it names the schedule.
        job = service.scheduler.get_job(JOB_ID) if service.scheduler else None
        assert job is not None and tuple(job.args) == (JOB_ID,)
    finally:
        service.stop()
        service.dispose()


def test_replicas_opening_a_new_database_together_all_get_the_schema(state_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from reporter.state import HEAD, open_state

    def opened(_: int) -> str:
        engine = open_state(state_url)
        try:
            with engine.connect() as conn:
                return str(conn.execute(text("SELECT version_num FROM alembic_version")).scalar())
        finally:
            engine.dispose()

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(opened, range(4))) == [HEAD] * 4
