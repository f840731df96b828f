"""Shared fixtures. No test reaches real AWS: credentials are fake and moto answers."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .postgres import postgres_server, postgres_url  # noqa: F401 (fixtures)

# Copied verbatim from shared/reference/samples (provenance in SOURCES.md there and here).
SAMPLES = Path(__file__).resolve().parent / "samples"


@pytest.fixture(autouse=True)
def _fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def sample(name: str) -> Any:
    """A real payload published by AWS (see shared/reference/samples/SOURCES.md)."""
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One full `demo` run on the sandbox, shared by the end-to-end tests (it takes seconds)."""
    from reporter.cli import main

    out = tmp_path_factory.mktemp("demo")
    previous = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    try:
        code = main(["demo", "--out", str(out)])
    finally:
        for k, v in previous.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert code in (0, 1)
    # The demo runs twice, with an owner's decisions imported in between (tests/test_cli.py
    # checks the second); the tests of the sandbox's ground truth read the first.
    first, _second = sorted(p for p in out.iterdir() if (p / "manifest.json").is_file())
    yield first


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty state database, once per backend: a SQLite file, then a fresh
    database on the session's throwaway PostgreSQL server (tests/postgres.py)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state/reporter.db"
    url: str = request.getfixturevalue("postgres_url")
    return url
