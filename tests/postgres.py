"""A throwaway PostgreSQL server for the tests: a cluster of its own, started once per session.

`initdb` into a temporary folder, then `postgres` on 127.0.0.1 and a free port (its unix socket in
that folder), with `trust` for 127.0.0.1 only, `fsync=off`, and a session time zone that is not
UTC (+05:45). initdb and postgres refuse to run
as root, and CI runs the tests as root: then the cluster belongs to the `postgres` system user
that Debian's package creates (`runuser`). Each test that asks gets a fresh database, dropped
(with its connections) when the test ends.

The server binaries come from Debian's `postgresql` package (`make install-dev`). Without them
the PostgreSQL tests are skipped on a workstation and fail in CI: CI must never skip silently.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest

START_SECONDS = 60
# A role that must give a password (scram-sha-256): how the tests meet a refused password.
LOCKED_ROLE = "locked"
LOCKED_PASSWORD = "the-right-one"


def find_bindir() -> Path | None:
    """The newest `/usr/lib/postgresql/*/bin` with initdb, else `pg_config --bindir`'s."""

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", Path(path).parent.name))

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if found:
            candidates.append(found)
    for folder in candidates:
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "postgres").is_file():
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class PostgresServer:
    bindir: Path
    root: Path  # the temporary folder: data/, the socket, the log
    port: int
    run_as: list[str]  # the command prefix that runs a binary as the cluster's owner
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str, user: str = "postgres", password: str = "") -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgresql+psycopg://{auth}@127.0.0.1:{self.port}/{database}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        )

    def create_database(self) -> str:
        name = f"test_{next(self._numbers)}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.run_as, *argv],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=START_SECONDS,
        )

    def _tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no server log)"

    def start(self) -> None:
        done = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stdout}\n{done.stderr}")
        (self.data / "pg_hba.conf").write_text(
            f"host all {LOCKED_ROLE} 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 trust\n"
        )
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-c port={self.port}",
                f"-c unix_socket_directories={self.root}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c shared_buffers=32MB",
                "-c max_connections=100",
                # Not UTC: code that reads timestamps back as if they were UTC shows up.
                "-c timezone=Asia/Kathmandu",
            ]
        )
        started = self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
            "-o", options, "-W", "start",
        )  # fmt: skip
        if started.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed:\n{started.stderr}\n{self._tail()}")
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                with self.admin() as conn:
                    conn.execute(f"CREATE ROLE {LOCKED_ROLE} LOGIN PASSWORD '{LOCKED_PASSWORD}'")
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"PostgreSQL did not accept connections within {START_SECONDS} s "
                        f"({exc})\n{self._tail()}"
                    ) from exc
                time.sleep(0.1)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "stop", "-m", "fast")


class MissingServer(Exception):
    """No PostgreSQL server binaries, or no user to run them as."""


@contextmanager
def throwaway_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of its own on 127.0.0.1, removed when the block ends."""
    bindir = find_bindir()
    if bindir is None:
        raise MissingServer(
            "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin, pg_config)"
        )
    run_as: list[str] = []
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise MissingServer(
                "running as root and there is no `postgres` system user to run the server"
            ) from None
        run_as = ["runuser", "-u", "postgres", "--"]
    # Not pytest's tmp_path: its parents are private to the user running the tests.
    root = Path(tempfile.mkdtemp(prefix="reporter-pg-"))
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    server = PostgresServer(bindir, root, _free_port(), run_as)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (started by the first test that asks)."""
    try:
        with throwaway_server() as server:
            yield server
    except MissingServer as missing:
        unavailable(str(missing), os.environ)


def unavailable(why: str, environ: Mapping[str, str]) -> NoReturn:
    """No server for the tests: a failure in CI (never a silent skip there), else a skip."""
    if environ.get("CI"):
        pytest.fail(f"{why}: CI must run the PostgreSQL tests, never skip them", pytrace=False)
    pytest.skip(f"{why}; run `make install-dev` to install them")


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The SQLAlchemy URL of a fresh, empty database on the session's server."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)
