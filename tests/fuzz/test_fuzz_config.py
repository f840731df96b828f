"""The configuration loader (`load_data`, `load_file`): the documented example with parts
dropped, nulled, retyped, replaced by hostile text or secret references; random YAML text; and
YAML's own traps (aliases, tags, duplicate keys, tabs). The loader returns Settings or raises
ConfigError whose every problem names its key path and says what is wrong — nothing else — and
a secret's value never appears in what it says."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from reporter.config import Settings, load_data, load_file, redacted
from reporter.errors import ConfigError
from tests.fuzz.strategies import budget, json_values, mutated, ran, texts

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((ROOT / "config/example.yaml").read_text(encoding="utf-8"))
SECRET = "Fuzz-S3cret-Value-91"
ENVIRON = {"SMTP_PASSWORD": SECRET, "REPORTER_EXTERNAL_ID": SECRET, "DB_PASSWORD": SECRET}
TODAY = date(2026, 3, 1)

# Secret references in the places they belong, so the mutations start from a config that uses
# them (and may then move, retype or break them).
BASE = copy.deepcopy(EXAMPLE)
BASE["organization"]["external_id"] = "${REPORTER_EXTERNAL_ID}"
BASE["mail"]["smtp"].update(username="reporter", password="${SMTP_PASSWORD}")
BASE["state"]["database_url"] = "postgresql://reporter:${DB_PASSWORD}@db.internal:5432/reporter"

_references = st.sampled_from(
    ["${SMTP_PASSWORD}", "${MISSING}", "$${SMTP_PASSWORD}", "${", "x${DB_PASSWORD}y"]
)
_configs = st.one_of(
    mutated(BASE, max_ops=5),
    mutated(BASE, max_ops=2),
    st.just(copy.deepcopy(BASE)),
    st.dictionaries(st.sampled_from(sorted(EXAMPLE)), st.one_of(json_values, _references)),
    json_values,
)
_yaml_traps = st.sampled_from(
    [
        "a: &x [*x]\n",
        "mail: &m {transport: outbox}\nmail: *m\n",
        "!!python/object/apply:os.system ['echo pwned']\n",
        "organization:\n\thome_region: us-east-1\n",
        "version: 1\nversion: 2\n",
        "? [complex, key]\n: value\n",
        "reports:\n  output_dir: !!binary aGVsbG8=\n",
        "owners:\n  accounts:\n    012345670123: a@example.com\n",
        "exceptions:\n  rules:\n    - expires: 2026-02-30\n",
        "---\n---\n",
        "\ufeffversion: 1\n",
        "x" * 100_000,
        "[" * 5_000,
        "a: " + "[" * 2_000 + "]" * 2_000 + "\n",
    ]
)


def _check(load: Any) -> str:
    try:
        settings = load()
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert isinstance(problem.path, str) and problem.path.strip(), problem
            assert isinstance(problem.message, str) and problem.message.strip(), problem
            assert isinstance(problem.value, str) and isinstance(problem.hint, str)
        assert exc.exit_code == 2
        assert SECRET not in exc.render()
        return "ConfigError"
    assert isinstance(settings, Settings)
    assert SECRET not in repr(settings) and SECRET not in str(redacted(settings))
    return "Settings"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("fuzz-config")


@budget(300)
@given(_configs)
def test_config_data_gives_settings_or_problems_with_key_paths(data: Any) -> None:
    ran("config data", _check(lambda: load_data(data, ENVIRON, "fuzz", today=TODAY)))


@budget(150)
@given(
    st.one_of(
        _configs.map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode("utf-8", "replace")),
        # Text edits of the example: a character dropped or inserted anywhere.
        st.tuples(st.integers(0, 20_000), texts).map(
            lambda edit: (
                (text := (ROOT / "config/example.yaml").read_text(encoding="utf-8"))[: edit[0]]
                + edit[1]
                + text[edit[0] + 1 :]
            ).encode("utf-8", "surrogatepass")
        ),
        _yaml_traps.map(str.encode),
        st.binary(max_size=200),
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    )
)
def test_config_file_gives_settings_or_problems_with_key_paths(folder: Path, raw: bytes) -> None:
    path = folder / "config.yaml"
    path.write_bytes(raw)
    ran("config file", _check(lambda: load_file(path, ENVIRON, today=TODAY)))
