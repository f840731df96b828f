"""Configuration: strict loading, every problem with key/value/hint, secrets, docs-as-test."""

from __future__ import annotations

import base64
import copy
import json
import pickle
import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr, ValidationError

from reporter.config import (
    _MARKED,
    REDACTED,
    Settings,
    _Shown,
    config_digest,
    describe_fields,
    dump_yaml,
    load_data,
    load_file,
    mask_url_credentials,
    redacted,
)
from reporter.errors import ConfigError, ConfigProblem

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "example.yaml"

# Paths where example.yaml deliberately shows something other than the default.
EXAMPLE_ILLUSTRATIONS = {"owners.names"}

SECRET = "s3cr3t-VALUE-that-must-not-leak"


def problems_of(data: dict[str, Any], environ: dict[str, str] | None = None) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_data(data, environ or {})
    return caught.value.problems


def only_problem(data: dict[str, Any], environ: dict[str, str] | None = None) -> ConfigProblem:
    problems = problems_of(data, environ)
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted path → leaf value, over the sections only (mapping settings stay whole)."""
    sections = {doc.path for doc in describe_fields() if doc.is_section}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if path in sections and isinstance(value, dict):
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


# --- example.yaml and docs-as-test --------------------------------------------------------------


def test_example_loads_with_an_empty_environment() -> None:
    settings = load_file(EXAMPLE, {})
    assert settings.version == 1
    assert settings.owners.names == {"platform-team": "platform-team@example.com"}


def test_example_shows_the_defaults_except_its_illustrations() -> None:
    example = flatten(redacted(load_file(EXAMPLE, {})))
    defaults = flatten(redacted(Settings()))
    differing = {path for path in defaults if example[path] != defaults[path]}
    assert differing == EXAMPLE_ILLUSTRATIONS


def test_every_setting_is_in_example_and_every_example_key_is_a_setting() -> None:
    in_model = {doc.path for doc in describe_fields()}

    def keys(data: dict[str, Any], prefix: str = "") -> set[str]:
        found: set[str] = set()
        sections = {doc.path for doc in describe_fields() if doc.is_section}
        for key, value in data.items():
            path = f"{prefix}{key}"
            found.add(path)
            if path in sections:
                found |= keys(value, f"{path}.")
        return found

    in_example = keys(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))
    assert in_model - in_example == set(), "settings missing from config/example.yaml"
    assert in_example - in_model == set(), "keys in config/example.yaml that are not settings"


# Mappings whose keys are data (names, ids, finding types), not settings.
DATA_MAPPINGS = {"names", "sla_days", "ous", "accounts", "managers", "principal_tags", "users"}


def test_every_key_in_example_is_commented() -> None:
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    uncommented: list[str] = []

    def walk(node: yaml.Node) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                line = key_node.start_mark.line
                above = lines[line - 1].strip() if line else ""
                if "#" not in lines[line] and not above.startswith("#"):
                    uncommented.append(f"line {line + 1}: {key_node.value}")
                if key_node.value not in DATA_MAPPINGS:
                    walk(value_node)

    root = yaml.compose(EXAMPLE.read_text(encoding="utf-8"))
    assert root is not None
    walk(root)
    assert uncommented == []


def test_every_setting_has_a_description() -> None:
    assert [doc.path for doc in describe_fields() if not doc.description.strip()] == []


def test_describe_fields_gives_plain_defaults() -> None:
    docs = {doc.path: doc for doc in describe_fields()}
    assert docs["mail.smtp.port"].default == 587
    assert docs["owners.fallback"].default == ["security-team@example.com"]
    assert docs["aws.retry_mode"].default == "adaptive"
    assert docs["reports.output_dir"].default == "reports"
    assert docs["mail.smtp"].is_section and docs["mail.smtp"].default is None


# --- defaults, typed access, immutability, pickling --------------------------------------------


@pytest.mark.parametrize("text", ["", "\n", "# nothing but a comment\n", "---\n"])
def test_empty_file_loads_the_defaults(tmp_path: Path, text: str) -> None:
    assert load_file(write(tmp_path, text), {}) == Settings()


def test_empty_mapping_loads_the_defaults() -> None:
    settings = load_data({}, {})
    assert settings == Settings()
    assert settings.organization.home_region == "us-east-1"
    assert settings.organization.member_role_name == "UnusedAccessReporterReadOnly"
    assert settings.organization.include_accounts == ()
    assert settings.aws.retry_mode == "adaptive"
    assert settings.aws.max_attempts == 10
    assert settings.sources.security_hub.enabled is True
    assert settings.sources.access_analyzer.enabled is False
    assert settings.owners.account_tag_keys == ("owner",)
    assert settings.owners.fallback == ("security-team@example.com",)
    assert settings.mail.transport == "outbox"
    assert settings.mail.subject_prefix == "[Unused access]"
    assert settings.mail.smtp.port == 587
    assert settings.mail.smtp.security == "starttls"
    assert settings.mail.smtp.password is None
    assert settings.reports.output_dir == Path("reports")
    assert settings.reports.period_days == 7
    assert settings.state.database_url == "sqlite:///state/reporter.db"
    assert settings.schedule.cron == "0 7 * * mon"
    assert settings.schedule.timezone == "UTC"
    assert settings.schedule.misfire_grace_seconds == 3600


def test_values_are_typed() -> None:
    settings = load_data(
        {
            "mail": {"transport": "smtp", "smtp": {"port": "2525", "timeout_seconds": 5}},
            "organization": {"include_accounts": ["012345678901"], "include_ous": ["r-ab12"]},
            "reports": {"template_dir": "my-templates"},
            "schedule": {"cron": "30 6 * * mon-fri", "timezone": "Europe/Berlin"},
        },
        {},
    )
    assert settings.mail.smtp.port == 2525
    assert settings.mail.smtp.timeout_seconds == 5.0
    assert settings.reports.template_dir == Path("my-templates")
    assert settings.organization.include_accounts == ("012345678901",)
    trigger = settings.schedule.trigger()
    assert str(trigger.timezone) == "Europe/Berlin"
    assert settings.schedule.zone().key == "Europe/Berlin"


def test_allows_matches_domains_exactly_and_case_insensitively() -> None:
    owners = load_data({"owners": {"allowed_domains": ["Example.com"]}}, {}).owners
    assert owners.allowed_domains == ("example.com",)
    assert owners.allows("alice@EXAMPLE.com")
    assert not owners.allows("alice@eu.example.com")
    assert not owners.allows("alice@example.com.evil.org")


def test_settings_are_frozen() -> None:
    settings = load_data({}, {})
    with pytest.raises(ValidationError):
        settings.mail = settings.mail  # type: ignore[misc]
    with pytest.raises(ValidationError):
        settings.mail.smtp.port = 25  # type: ignore[misc]
    assert isinstance(settings.owners.fallback, tuple)  # no append on a frozen setting


def test_settings_survive_pickling_with_their_secret_references() -> None:
    settings = load_data({"mail": {"smtp": {"username": "u", "password": "${P}"}}}, {"P": SECRET})
    restored = pickle.loads(pickle.dumps(settings))
    assert restored == settings
    assert restored.mail.smtp.password is not None
    assert restored.mail.smtp.password.get_secret_value() == SECRET
    assert redacted(restored) == redacted(settings)
    assert SECRET not in repr(restored)


# --- several problems at once ------------------------------------------------------------------


def test_unknown_key_bad_cron_and_wrong_type_are_reported_together(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        mail:
          smtp:
            port: abc
        schedule:
          cron: "0 7 * *"
        organisation:
          home_region: eu-west-1
        """.replace("\n        ", "\n"),
    )
    with pytest.raises(ConfigError) as caught:
        load_file(path, {})
    error = caught.value
    assert error.source == str(path)
    by_path = {p.path: p for p in error.problems}
    assert sorted(by_path) == ["mail.smtp.port", "organisation", "schedule.cron"]
    assert by_path["organisation"].message == "unknown key"
    assert "did you mean `organization`?" in by_path["organisation"].hint
    assert by_path["mail.smtp.port"].value == "'abc'"
    assert "whole number" in by_path["mail.smtp.port"].message
    assert "`port: 587`" in by_path["mail.smtp.port"].hint
    assert by_path["schedule.cron"].value == "'0 7 * *'"
    assert "0 7 * * mon" in by_path["schedule.cron"].hint
    assert str(path) in str(error) and "3 configuration problem(s)" in str(error)


# --- each kind of problem ----------------------------------------------------------------------

CASES: list[tuple[str, dict[str, Any], str, str, str]] = [
    # id, data, path, message contains, hint contains
    ("unknown-close", {"mail": {"smtp": {"usernme": "x"}}}, "mail.smtp.usernme", "unknown key",
     "did you mean `username`?"),
    ("unknown-far", {"mail": {"zzz": 1}}, "mail.zzz", "unknown key",
     "allowed keys: transport, from_address, reply_to, subject_prefix, message_id_domain, smtp"),
    ("unknown-root", {"sorces": {}}, "sorces", "unknown key", "did you mean `sources`?"),
    ("port-text", {"mail": {"smtp": {"port": "abc"}}}, "mail.smtp.port", "whole number",
     "without quotes"),
    ("port-range", {"mail": {"smtp": {"port": 70000}}}, "mail.smtp.port",
     "less than or equal to 65535", "1–65535"),
    ("list-not-text", {"owners": {"fallback": "a@b"}}, "owners.fallback", "expected a list",
     "`fallback: ['a@b']`"),
    ("empty-list", {"owners": {"fallback": []}}, "owners.fallback", "must not be empty",
     "nobody owns"),
    ("section-not-mapping", {"mail": "smtp"}, "mail", "expected a mapping",
     "indent the settings under `mail:`"),
    ("bool", {"sources": {"security_hub": {"enabled": "maybe"}}},
     "sources.security_hub.enabled", "true or false", "`true` or `false`"),
    ("text-not-number", {"organization": {"member_role_name": 12}},
     "organization.member_role_name", "expected text", "quote it"),
    ("choice", {"mail": {"transport": "smtps"}}, "mail.transport", "'outbox', 'smtp' or 'ses'",
     "outbox"),
    ("version", {"version": 2}, "version", "should be 1", "only 1 exists"),
    ("cron-fields", {"schedule": {"cron": "0 7 * * mon *"}}, "schedule.cron",
     "expected 5 fields, got 6", "e.g. `0 7 * * mon`"),
    ("cron-value", {"schedule": {"cron": "61 7 * * mon"}}, "schedule.cron",
     "invalid cron expression", "five fields"),
    ("cron-weekday-number", {"schedule": {"cron": "0 7 * * 1"}}, "schedule.cron",
     "day of week must use names", "0 = Monday"),
    ("timezone", {"schedule": {"timezone": "Europe/Berln"}}, "schedule.timezone",
     "unknown time zone", "did you mean `Europe/Berlin`?"),
    ("timezone-far", {"schedule": {"timezone": "Mars/Olympus"}}, "schedule.timezone",
     "unknown time zone", "IANA"),
    ("email", {"mail": {"from_address": "reporter at example.com"}}, "mail.from_address",
     "not an e-mail address", "team@example.com"),
    ("email-display-name", {"mail": {"reply_to": "Team <team@example.com>"}}, "mail.reply_to",
     "not an e-mail address", "no display name"),
    ("email-in-names", {"owners": {"names": {"alice": "alice"}}}, "owners.names.alice",
     "not an e-mail address", ""),
    ("blank-owner-name", {"owners": {"names": {" ": "a@example.com"}}}, 'owners.names[" "]',
     "owner name is blank", ""),
    ("fallback-domain", {"owners": {"fallback": ["sec@other.org"]}}, "owners.fallback[0]",
     "outside allowed_domains", "example.com"),
    ("security-team-domain",
     {"owners": {"security_team": ["a@example.com", "b@elsewhere.io"]}},
     "owners.security_team[1]", "outside allowed_domains", "add its domain"),
    ("domain", {"owners": {"allowed_domains": ["@example.com"]}}, "owners.allowed_domains[0]",
     "not a domain name", "example.com"),
    ("role-arn", {"organization": {"management_role_arn": "arn:aws:iam::1234:role/Org"}},
     "organization.management_role_arn", "not an IAM role ARN", "arn:aws:iam::123456789012:role/"),
    ("role-arn-user",
     {"organization": {"delegated_admin_role_arn": "arn:aws:iam::123456789012:user/bob"}},
     "organization.delegated_admin_role_arn", "not an IAM role ARN", ""),
    ("role-name", {"organization": {"member_role_name": "role/with space"}},
     "organization.member_role_name", "not an IAM role name", "1–64"),
    ("session-name", {"organization": {"session_name": "x"}}, "organization.session_name",
     "session name", "2–64"),
    ("analyzer-arn",
     {"sources": {"access_analyzer": {"analyzer_arn": "arn:aws:iam::123456789012:analyzer/a"}}},
     "sources.access_analyzer.analyzer_arn", "not an Access Analyzer analyzer ARN",
     "list-analyzers"),
    ("account-int", {"organization": {"include_accounts": [123456789012]}},
     "organization.include_accounts[0]", "quoted string", "put it in quotes"),
    ("account-short", {"organization": {"exclude_accounts": ["12345678901"]}},
     "organization.exclude_accounts[0]", "not an AWS account id", "exactly 12 digits"),
    ("account-both",
     {"organization": {"include_accounts": ["111122223333"], "exclude_accounts": ["111122223333"]}},
     "organization.exclude_accounts[0]", "also listed in include_accounts", ""),
    ("ou", {"organization": {"include_ous": ["Production"]}}, "organization.include_ous[0]",
     "not an organizational unit", "ou-ab12-cd34ef56"),
    ("region", {"organization": {"home_region": "US East"}}, "organization.home_region",
     "not an AWS Region code", "us-east-1"),
    ("endpoint", {"aws": {"endpoint_url": "localhost:4566"}}, "aws.endpoint_url",
     "not an http(s) URL", "http://localhost:4566"),
    ("attempts", {"aws": {"max_attempts": 0}}, "aws.max_attempts", "greater than or equal to 1",
     ""),
    ("retry-mode", {"aws": {"retry_mode": "fast"}}, "aws.retry_mode", "'standard'", ""),
    ("smtp-security", {"mail": {"smtp": {"security": "ssl"}}}, "mail.smtp.security",
     "'starttls', 'tls' or 'none'", ""),
    ("literal-password", {"mail": {"smtp": {"username": "u", "password": "hunter2"}}},
     "mail.smtp.password", "literal password", "${SMTP_PASSWORD}"),
    ("password-without-username", {"mail": {"smtp": {"password": "${P}"}}},
     "mail.smtp.username", "password is set but username is not", ""),
    ("username-without-password", {"mail": {"smtp": {"username": "u"}}}, "mail.smtp.password",
     "username is set but password is not", "${SMTP_PASSWORD}"),
    ("password-in-clear",
     {"mail": {"smtp": {"username": "u", "password": "${P}", "security": "none"}}},
     "mail.smtp.security", "unencrypted", "starttls"),
    ("subject-newline", {"mail": {"subject_prefix": "x\nBcc: evil@example.org"}},
     "mail.subject_prefix", "single line", ""),
    ("ses-region", {"mail": {"ses": {"region": "Frankfurt"}}}, "mail.ses.region",
     "not an AWS Region code", ""),
    ("database-url", {"state": {"database_url": "mysql://db/x"}}, "state.database_url",
     "not a supported database URL", "sqlite:///"),
    ("database-psycopg2", {"state": {"database_url": "postgresql+psycopg2://db/x"}},
     "state.database_url", "unsupported PostgreSQL driver", "psycopg 3"),
    ("database-async-sqlite", {"state": {"database_url": "sqlite+aiosqlite:///s.db"}},
     "state.database_url", "unsupported SQLite driver", "sqlite:///"),
    ("period", {"reports": {"period_days": 400}}, "reports.period_days", "366", ""),
    ("output-dir-empty", {"reports": {"output_dir": " "}}, "reports.output_dir", "empty", ""),
    ("missing-variable", {"mail": {"smtp": {"username": "u", "password": "${SMTP_PW}"}}},
     "mail.smtp.password", "environment variable SMTP_PW is not set", "export SMTP_PW=..."),
    ("env-mapping-extra-key", {"organization": {"external_id": {"$env": "X", "y": 1}}},
     "organization.external_id", "exactly one key", "$env"),
    ("unterminated-reference", {"state": {"database_url": "postgresql://u:${PW@db/x"}},
     "state.database_url", "unterminated", "${NAME}"),
    ("non-text-key", {"owners": {"names": {1: "a@example.com"}}}, "owners.names.1",
     "key is not text", "quote the key"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "path", "message", "hint"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_problem_names_key_value_and_hint(
    data: dict[str, Any], path: str, message: str, hint: str
) -> None:
    problem = only_problem(data, {"P": SECRET})
    assert problem.path == path
    assert message in problem.message
    assert hint in problem.hint
    assert problem.value  # what was given is always shown
    assert SECRET not in str(problem)


def test_value_is_shown_as_written_and_truncated() -> None:
    long_value = "x" * 200
    problem = only_problem({"mail": {"from_address": long_value}})
    assert problem.path == "mail.from_address"
    assert problem.value.startswith("'xxx") and problem.value.endswith("...")
    assert len(problem.value) <= 80


def test_a_failing_section_does_not_hide_problems_elsewhere() -> None:
    problems = problems_of(
        {
            "organization": {"include_accounts": [1]},
            "owners": {"fallback": ["x@other.org"]},
            "mail": {"smtp": {"port": 0}},
            "schedule": {"timezone": "Nowhere/City"},
        }
    )
    assert [p.path for p in problems] == [
        "organization.include_accounts[0]",
        "owners.fallback[0]",
        "mail.smtp.port",
        "schedule.timezone",
    ]


# --- YAML and file problems --------------------------------------------------------------------


def test_account_ids_must_be_quoted_in_yaml(tmp_path: Path) -> None:
    quoted = write(
        tmp_path, "organization:\n  include_accounts: ['012345670123', \"111122223333\"]\n"
    )
    assert load_file(quoted, {}).organization.include_accounts == ("012345670123", "111122223333")

    # Unquoted, YAML 1.1 reads this id as an octal number: the value shown makes that visible.
    bare = write(tmp_path, "organization:\n  include_accounts: [012345670123, 111122223333]\n")
    with pytest.raises(ConfigError) as caught:
        load_file(bare, {})
    problems = caught.value.problems
    assert [(p.path, p.value) for p in problems] == [
        ("organization.include_accounts[0]", "1402433619"),
        ("organization.include_accounts[1]", "111122223333"),
    ]
    assert all("quotes" in p.hint for p in problems)


def test_yaml_syntax_error_is_one_problem_with_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "mail:\n  transport: smtp\n  smtp: [unclosed\nschedule:\n  cron: x\n")
    with pytest.raises(ConfigError) as caught:
        load_file(path, {})
    (problem,) = caught.value.problems
    assert problem.path == "<file>"
    assert "YAML syntax error at line" in problem.message and "column" in problem.message
    assert problem.hint


def test_tab_indentation_is_a_syntax_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_file(write(tmp_path, "mail:\n\ttransport: smtp\n"), {})
    (problem,) = caught.value.problems
    assert "line 2, column 1" in problem.message
    assert "tabs" in problem.hint


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_file(write(tmp_path, "- mail\n- owners\n"), {})
    (problem,) = caught.value.problems
    assert (problem.path, problem.message) == (
        "<file>",
        "the top level must be a mapping of settings",
    )
    assert problem.value == "['mail', 'owners']"


def test_load_data_rejects_a_non_mapping() -> None:
    with pytest.raises(ConfigError):
        load_data(["mail"], {})  # type: ignore[arg-type]


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "mail:\n  transport: smtp\nowners: {}\nmail:\n  transport: ses\n")
    with pytest.raises(ConfigError) as caught:
        load_file(path, {})
    (problem,) = caught.value.problems
    assert problem.path == "mail"
    assert problem.message == "duplicate key at line 4 (first at line 1)"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_file(path, {})
    (problem,) = caught.value.problems
    assert (problem.path, problem.message) == ("<file>", "file not found")
    assert "example.yaml" in problem.hint
    assert caught.value.source == str(path)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_file(tmp_path, {})
    assert caught.value.problems[0].message == "is a directory"


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "version: 1\n")

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    # chmod cannot make a file unreadable for root, which is who runs the tests in a container.
    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(ConfigError) as caught:
        load_file(path, {})
    (problem,) = caught.value.problems
    assert problem.message == "permission denied"
    assert "readable" in problem.hint


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("mail:\n  subject_prefix: 'Prüfung'\n".encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_file(path, {})
    assert "UTF-8" in caught.value.problems[0].hint


def test_unsafe_yaml_tags_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "version: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError) as caught:
        load_file(path, {})
    assert caught.value.problems[0].path == "<file>"


def test_an_alias_loop_is_an_error_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_file(write(tmp_path, "owners:\n  fallback: &loop [*loop]\n"), {})
    assert caught.value.problems[0].message == "nested too deeply"


def test_only_config_error_ever_leaves_load_data() -> None:
    """Random junk at every setting must give ConfigError or Settings, never a traceback."""
    junk: list[Any] = [
        None, True, 0, -1, 10**30, 1.5, float("nan"), "", " ", "${", "$${X}", "${1BAD}",
        "\x00", "a" * 5000, [], [None], {}, {"$env": None}, {"$env": "X"}, {1: 2}, [[["deep"]]],
        "0 7 * * mon", "UTC", "../../etc/passwd", "ou-ab12-cd34ef56", "012345678901",
    ]  # fmt: skip
    paths = [doc.path.split(".") for doc in describe_fields()]
    rng = random.Random(20240601)
    for _ in range(1500):
        data: dict[str, Any] = {}
        for _ in range(rng.randint(1, 4)):
            *parents, leaf = rng.choice(paths)
            node = data
            for parent in parents:
                node = node.setdefault(parent, {})
                if not isinstance(node, dict):
                    break
            else:
                node[leaf] = copy.deepcopy(rng.choice(junk))
        try:
            load_data(data, {"X": "x"})
        except ConfigError as exc:
            assert exc.problems and all(p.path and p.message for p in exc.problems)


# --- secrets -----------------------------------------------------------------------------------

SECRET_CONFIG = {
    "organization": {"external_id": {"$env": "EXTERNAL_ID"}},
    "mail": {
        "transport": "smtp",
        "smtp": {"username": "${SMTP_USER}", "password": "${SMTP_PASSWORD}"},
    },
    "state": {"database_url": "postgresql://reporter:${DB_PASSWORD}@db.internal:5432/reporter"},
}


def secret_environ(value: str = SECRET) -> dict[str, str]:
    return {
        "EXTERNAL_ID": f"ext-{value}",
        "SMTP_USER": f"user-{value}",
        "SMTP_PASSWORD": f"pw-{value}",
        "DB_PASSWORD": f"db-{value}",
    }


def test_secret_references_resolve_from_the_given_environment() -> None:
    settings = load_data(SECRET_CONFIG, secret_environ())
    smtp = settings.mail.smtp
    assert isinstance(smtp.password, SecretStr)
    assert smtp.password.get_secret_value() == f"pw-{SECRET}"
    assert smtp.username == f"user-{SECRET}"
    assert settings.organization.external_id is not None
    assert settings.organization.external_id.get_secret_value() == f"ext-{SECRET}"
    assert settings.state.database_url == (
        f"postgresql://reporter:db-{SECRET}@db.internal:5432/reporter"
    )


def test_os_environ_is_never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", SECRET)
    problem = only_problem({"mail": {"smtp": {"username": "u", "password": "${SMTP_PASSWORD}"}}})
    assert problem.message == "environment variable SMTP_PASSWORD is not set"


def test_the_input_mapping_is_not_modified() -> None:
    data = json.loads(json.dumps(SECRET_CONFIG))
    load_data(data, secret_environ())
    assert data == SECRET_CONFIG


def test_redacted_shows_references_never_values() -> None:
    settings = load_data(SECRET_CONFIG, secret_environ())
    shown = redacted(settings)
    assert shown["mail"]["smtp"]["password"] == "<redacted: ${SMTP_PASSWORD}>"
    assert shown["mail"]["smtp"]["username"] == "<redacted: ${SMTP_USER}>"
    assert shown["organization"]["external_id"] == "<redacted: ${EXTERNAL_ID}>"
    assert shown["state"]["database_url"] == (
        "<redacted: postgresql://<redacted>:${DB_PASSWORD}@db.internal:5432/reporter>"
    )
    assert shown["mail"]["smtp"]["host"] == "localhost"  # the rest is plain data
    assert shown["mail"]["smtp"]["port"] == 587
    assert SECRET not in json.dumps(shown)
    assert SECRET not in dump_yaml(shown)


def test_repr_and_str_never_show_secrets() -> None:
    settings = load_data(SECRET_CONFIG, secret_environ())
    for text in (
        repr(settings),
        str(settings),
        repr(settings.mail),
        repr(settings.mail.smtp),
        str(settings.mail.smtp),
        repr(settings.state),
        repr(settings.organization),
        f"{settings}",
    ):
        assert SECRET not in text
    assert "${DB_PASSWORD}" in repr(settings.state)


def test_literal_secrets_are_redacted_too() -> None:
    settings = load_data(
        {
            "organization": {"external_id": "literal-external-id"},
            "state": {"database_url": "postgresql://app:hunter2@db/x?sslpassword=hunter3"},
        },
        {},
    )
    shown = redacted(settings)
    assert shown["organization"]["external_id"] == REDACTED
    assert shown["state"]["database_url"] == f"postgresql://{REDACTED}@db/x?{REDACTED}"
    for text in (json.dumps(shown), repr(settings), str(settings)):
        assert "literal-external-id" not in text and "hunter2" not in text
        assert "hunter3" not in text


def test_secrets_never_appear_in_error_messages() -> None:
    # Each resolved value is invalid where it lands, so validation must talk about it.
    environ = {"PORT": f"port-{SECRET}", "EXT": "!", "DB": f"mysql://u:{SECRET}@h/d", "OK": "x"}
    problems = problems_of(
        {
            "organization": {"external_id": "${EXT}"},
            "mail": {"smtp": {"port": "${PORT}", "username": "u", "password": "${OK}"}},
            "state": {"database_url": "${DB}"},
        },
        environ,
    )
    text = "\n".join(map(str, problems))
    assert SECRET not in text
    assert {p.path: p.value for p in problems} == {
        "organization.external_id": "'${EXT}'",
        "mail.smtp.port": "'${PORT}'",
        "state.database_url": "'${DB}'",
    }


def test_details_quoting_a_referenced_value_are_left_out() -> None:
    plain = only_problem({"schedule": {"cron": "61 7 * * mon"}})
    assert "(61)" in plain.message  # APScheduler's detail, shown for a value from the file
    problems = problems_of(
        {"schedule": {"cron": "${CRON}", "timezone": "${TZ}"}},
        {"CRON": "61 7 * * mon", "TZ": "Europe/Berln"},
    )
    assert [(p.message, p.value) for p in problems] == [
        ("invalid cron expression", "'${CRON}'"),
        ("unknown time zone", "'${TZ}'"),
    ]
    assert "did you mean" not in problems[1].hint


def test_a_literal_secret_is_not_echoed_in_errors() -> None:
    problems = problems_of(
        {
            "organization": {"external_id": "x"},  # too short: invalid, and secret
            "mail": {"smtp": {"username": "u", "password": SECRET}},
            "state": {"database_url": f"mysql://u:{SECRET}@h/d"},
        }
    )
    assert len(problems) == 3
    assert all(SECRET not in str(p) for p in problems)
    assert {p.path: p.value for p in problems}["organization.external_id"] == "'<redacted>'"


def test_all_missing_variables_are_reported() -> None:
    problems = problems_of(
        {
            "mail": {"smtp": {"username": "${USER_A}", "password": {"$env": "PW_B"}}},
            "state": {"database_url": "postgresql://u:${PW_C}@db/x"},
        }
    )
    assert [(p.path, p.hint) for p in problems] == [
        ("mail.smtp.username", "export USER_A=..."),
        ("mail.smtp.password", "export PW_B=..."),
        ("state.database_url", "export PW_C=..."),
    ]
    assert problems[1].value == "{'$env': 'PW_B'}"


def test_references_work_in_any_text_setting_and_in_lists() -> None:
    settings = load_data(
        {"owners": {"fallback": ["${FALLBACK}"]}, "mail": {"smtp": {"port": "${PORT}"}}},
        {"FALLBACK": "ops@example.com", "PORT": "2525"},
    )
    assert settings.owners.fallback == ("ops@example.com",)
    assert settings.mail.smtp.port == 2525
    shown = redacted(settings)
    assert shown["owners"]["fallback"] == ["<redacted: ${FALLBACK}>"]
    assert shown["mail"]["smtp"]["port"] == "<redacted: ${PORT}>"
    assert "ops@example.com" not in repr(settings)


def test_escaped_dollar_brace_is_literal() -> None:
    settings = load_data({"mail": {"subject_prefix": "[$${NOT_A_VAR}]"}}, {})
    assert settings.mail.subject_prefix == "[${NOT_A_VAR}]"
    assert redacted(settings)["mail"]["subject_prefix"] == "[${NOT_A_VAR}]"


# --- digest and dump ---------------------------------------------------------------------------


def test_config_digest_is_stable_and_ignores_secret_values() -> None:
    first = config_digest(load_data(SECRET_CONFIG, secret_environ("one")))
    assert first == config_digest(load_data(SECRET_CONFIG, secret_environ("one")))
    assert first == config_digest(load_data(SECRET_CONFIG, secret_environ("rotated")))
    assert len(first) == 64 and int(first, 16) >= 0
    changed = json.loads(json.dumps(SECRET_CONFIG))
    changed["mail"]["smtp"]["port"] = 2525
    assert config_digest(load_data(changed, secret_environ("one"))) != first


def test_config_digest_of_defaults_does_not_depend_on_key_order() -> None:
    settings = load_data({"schedule": {"timezone": "UTC", "cron": "0 7 * * mon"}}, {})
    assert config_digest(settings) == config_digest(Settings())


def test_dump_yaml_round_trips_the_defaults() -> None:
    text = dump_yaml(redacted(Settings()))
    assert text.startswith("version: 1\norganization:\n")
    assert load_data(yaml.safe_load(text), {}) == Settings()


def test_dump_yaml_accepts_tuples_and_paths() -> None:
    text = dump_yaml({"a": ("x", "y"), "b": Path("reports"), "c": {"d": None}})
    assert yaml.safe_load(text) == {"a": ["x", "y"], "b": "reports", "c": {"d": None}}


def test_dump_yaml_never_writes_a_secret_it_is_handed() -> None:
    settings = load_data(SECRET_CONFIG, secret_environ())
    text = dump_yaml({"settings": settings, "password": settings.mail.smtp.password})
    assert SECRET not in text
    assert yaml.safe_load(text)["password"] == REDACTED


# --- URLs with user info and password hashes (issue 17) ------------------------------------------

WEB_PASSWORD = "correct horse battery staple"


def web_hash(password: str = WEB_PASSWORD) -> str:
    from reporter.web.passwords import hash_password

    return hash_password(password, n=2**10)  # cheap; the format is the default's


def forged_hash(n: int, r: int, p: int = 1) -> str:
    """A well-formed hash with the given cost; never computed, so any cost is cheap to test."""
    salt, digest = base64.b64encode(b"s" * 16).decode(), base64.b64encode(b"d" * 32).decode()
    return f"scrypt${n}${r}${p}${salt}${digest}"


def test_validate_config_prints_no_url_password_and_no_password_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reporter.cli import main

    hashed = web_hash()
    config = write(
        tmp_path,
        f"aws:\n  endpoint_url: https://user:{SECRET}@emulator.internal:4566/\n"
        f"state:\n  database_url: postgresql://reporter:{SECRET}@db/x\n"
        f"evidence:\n  web:\n    users:\n      auditor: '{hashed}'\n",
    )
    assert main(["validate-config", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    salt, digest = hashed.split("$")[4:]
    for leak in (SECRET, hashed, salt, digest, "user:"):
        assert leak not in out, leak
    shown = yaml.safe_load(out)
    assert shown["aws"]["endpoint_url"] == f"https://{REDACTED}@emulator.internal:4566/"
    assert shown["state"]["database_url"] == f"postgresql://{REDACTED}@db/x"
    assert shown["evidence"]["web"]["users"] == {"auditor": REDACTED}
    settings = load_file(config, {})
    for text in (repr(settings), str(settings.aws), repr(settings.evidence.web)):
        assert SECRET not in text and salt not in text and digest not in text


def test_a_url_written_with_a_reference_and_a_literal_password_shows_neither_value() -> None:
    settings = load_data(
        {"aws": {"endpoint_url": f"https://ci:{SECRET}@${{EMULATOR}}:4566"}},
        {"EMULATOR": "localstack.internal"},
    )
    assert settings.aws.endpoint_url == f"https://ci:{SECRET}@localstack.internal:4566"
    shown = redacted(settings)["aws"]["endpoint_url"]
    assert shown == f"<redacted: https://{REDACTED}@${{EMULATOR}}:4566>"
    assert SECRET not in repr(settings) and SECRET not in repr(settings.aws)
    problem = only_problem(
        {"aws": {"endpoint_url": f"ftp://ci:{SECRET}@${{EMULATOR}}"}}, {"EMULATOR": "x"}
    )
    assert problem.path == "aws.endpoint_url" and SECRET not in str(problem)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:secret@host/", "https://<redacted>@host/"),
        ("https://TOKEN@host", "https://<redacted>@host"),
        ("https://user:p@ss/w@rd@host:1/x", "https://<redacted>@host:1/x"),
        ("https://host/x?token=abc", "https://host/x?<redacted>"),
        ("http://localhost:4566", "http://localhost:4566"),
        ("sqlite:////srv/a@b/reporter.db", "sqlite:////srv/a@b/reporter.db"),
        ("not a url", "not a url"),
    ],
)
def test_mask_url_credentials_replaces_the_whole_user_info(url: str, shown: str) -> None:
    assert mask_url_credentials(url) == shown


def test_mask_url_credentials_can_keep_references_as_written() -> None:
    def keep(url: str) -> str:
        return mask_url_credentials(url, keep_references=True)

    assert (
        keep("postgresql://app:${DB_PASSWORD}@db/x")
        == "postgresql://<redacted>:${DB_PASSWORD}@db/x"
    )
    assert keep("postgresql://${DB_USER}:${DB_PW}@db/x") == "postgresql://${DB_USER}:${DB_PW}@db/x"
    assert keep("https://x:lit${PW}@h") == "https://<redacted>@h"
    assert keep("https://${TOKEN}@h") == "https://${TOKEN}@h"


def test_every_url_setting_is_redacted() -> None:
    # A URL-valued setting added without the marker would be printed and digested as written.
    marked = {".".join(map(str, loc)) for loc, kind in _MARKED if kind is _Shown.URL}
    urls = {doc.path for doc in describe_fields() if doc.path.rsplit(".", 1)[-1].endswith("url")}
    assert urls and urls <= marked


def test_config_digest_does_not_depend_on_url_passwords_or_password_hashes() -> None:
    # The manifest records config_digest(settings); were a password hashed into it, anyone with
    # the manifest and the rest of the config could test guesses against it offline.
    def digest(password: str, hashed: str, host: str = "emulator") -> str:
        data = {
            "aws": {"endpoint_url": f"https://ci:{password}@{host}:4566"},
            "evidence": {"web": {"users": {"auditor": hashed}}},
        }
        return config_digest(load_data(data, {}))

    first = digest("hunter2", web_hash())
    assert digest("correct-horse", web_hash("another password")) == first
    assert digest("hunter2", web_hash(), host="elsewhere") != first


def test_a_password_hash_costing_more_than_64_mib_per_check_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reporter.cli import main

    costly = forged_hash(2**20, 8)  # 1 GiB per login check
    problem = only_problem({"evidence": {"web": {"users": {"auditor": costly}}}})
    assert problem.path == "evidence.web.users.auditor"
    assert problem.value == "'scrypt$1048576$8$1$<redacted>'"  # the cost, not the hash
    assert "1 GiB" in problem.message and "64 MiB" in problem.message
    assert "hash-password" in problem.hint
    config = write(tmp_path, f"evidence:\n  web:\n    users:\n      auditor: '{costly}'\n")
    assert main(["validate-config", "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert "evidence.web.users.auditor" in err and costly.split("$")[4] not in err


def test_password_hash_cost_is_bounded_by_memory() -> None:
    from reporter.web.passwords import (
        DEFAULT_N,
        DEFAULT_R,
        MAX_MEMORY,
        HashError,
        hash_password,
        is_password_hash,
    )

    assert 128 * DEFAULT_N * DEFAULT_R <= MAX_MEMORY == 64 * 2**20
    assert is_password_hash(forged_hash(2**16, 8))  # exactly 64 MiB
    assert is_password_hash(forged_hash(2**14, 32))
    for n, r, p in ((2**17, 8, 1), (2**16, 16, 1), (2**20, 8, 1), (2**15, 8, 17), (2**15, 64, 1)):
        assert not is_password_hash(forged_hash(n, r, p)), (n, r, p)
    with pytest.raises(HashError, match="64 MiB"):
        hash_password(WEB_PASSWORD, n=2**20)  # refused before any memory is taken


def test_a_password_written_where_a_hash_belongs_is_not_echoed() -> None:
    problem = only_problem({"evidence": {"web": {"users": {"auditor": WEB_PASSWORD}}}})
    assert problem.value == f"'{REDACTED}'" and WEB_PASSWORD not in str(problem)


# --- owners: the ladder and its maps (issue 4) ---------------------------------------------------

OWNER_CASES: list[tuple[str, dict[str, Any], str, str, str]] = [
    ("ladder-unknown-step", {"ladder": ["account_tag", "owners_map", "fallback"]},
     "owners.ladder[1]", "'owner_map'", "fallback"),
    ("ladder-fallback-not-last", {"ladder": ["fallback", "account_tag"]}, "owners.ladder",
     "must end with `fallback`", "end the list with fallback"),
    ("ladder-without-fallback", {"ladder": ["account_tag"]}, "owners.ladder",
     "must end with `fallback`", ""),
    ("ladder-twice", {"ladder": ["ou", "account_tag", "ou", "fallback"]}, "owners.ladder[2]",
     "step listed twice", "once"),
    ("manager-outside", {"managers": {"alice@example.com": "boss@other.org"}},
     'owners.managers["alice@example.com"]', "manager outside allowed_domains", "example.com"),
    ("manager-owner-outside", {"managers": {"alice@other.org": "boss@example.com"}},
     'owners.managers["alice@other.org"]', "owner outside allowed_domains", ""),
    ("manager-not-address", {"managers": {"alice@example.com": "the boss"}},
     'owners.managers["alice@example.com"]', "not an e-mail address", ""),
    ("ou-name-not-id", {"ous": {"Engineering": "a@example.com"}}, "owners.ous.Engineering",
     "not an organizational unit or root id", "ou-ab12-cd34ef56"),
    ("ou-unknown-name", {"ous": {"ou-ab12-cd34ef56": "nobody"}}, "owners.ous.ou-ab12-cd34ef56",
     "name not in owners.names", "add `nobody: ADDRESS` under owners.names"),
    ("ou-blank-owner", {"ous": {"r-ab12": " "}}, "owners.ous.r-ab12", "owner is blank", ""),
    ("account-owner-outside", {"accounts": {"123456789012": "m@evil.test"}},
     "owners.accounts.123456789012", "not a plain address in allowed_domains", "example.com"),
    ("account-owner-two-addresses", {"accounts": {"123456789012": "evil@x.test a@example.com"}},
     "owners.accounts.123456789012", "not a plain address in allowed_domains", ""),
    ("account-key-short", {"accounts": {"1234": "a@example.com"}}, "owners.accounts.1234",
     "not an AWS account id", "12 digits"),
    ("name-outside", {"names": {"bob": "bob@other.org"}}, "owners.names.bob",
     "address outside allowed_domains", "example.com"),
    ("principal-tag-keys-empty", {"principal_tag_keys": []}, "owners.principal_tag_keys",
     "must not be empty", ""),
]  # fmt: skip


@pytest.mark.parametrize(
    ("owners", "path", "message", "hint"),
    [case[1:] for case in OWNER_CASES],
    ids=[case[0] for case in OWNER_CASES],
)
def test_owner_ladder_problems_name_key_value_and_hint(
    owners: dict[str, Any], path: str, message: str, hint: str
) -> None:
    problem = only_problem({"owners": owners})
    assert problem.path == path
    assert message in problem.message
    assert hint in problem.hint
    assert problem.value


def test_owner_ladder_settings_load() -> None:
    owners = load_data(
        {
            "owners": {
                "ladder": ["account_tag", "principal_tag", "fallback"],
                "principal_tag_keys": ["owner", "Team"],
                "ous": {"ou-ab12-cd34ef56": "platform-team", "r-ab12": "root@example.com"},
                "accounts": {"123456789012": " payments@example.com "},
                "names": {"platform-team": "platform@example.com"},
                "managers": {"Payments@Example.com": "boss@example.com"},
            }
        },
        {},
    ).owners
    assert [str(step) for step in owners.ladder] == ["account_tag", "principal_tag", "fallback"]
    assert owners.principal_tag_keys == ("owner", "Team")
    assert owners.ous == {"ou-ab12-cd34ef56": "platform-team", "r-ab12": "root@example.com"}
    assert owners.accounts == {"123456789012": "payments@example.com"}
    assert owners.managers == {"Payments@example.com": "boss@example.com"}


def test_owner_ladder_problems_exit_2_with_every_key_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reporter.cli import main

    # Cross-field checks (domains, names, ladder shape) run once every value has its type, so
    # the two kinds are checked in two files.
    typed = write(
        tmp_path,
        "owners:\n"
        "  ladder: [account_tag, owner_mapp, fallback]\n"
        "  ous: {Engineering: alice@example.com}\n",
        "typed.yaml",
    )
    crossed = write(
        tmp_path,
        "owners:\n"
        "  ladder: [fallback, ou]\n"
        "  managers: {alice@example.com: boss@other.org}\n"
        "  accounts: {'123456789012': ghost}\n",
        "crossed.yaml",
    )
    for path, keys in (
        (typed, ("owners.ladder[1]", "owners.ous.Engineering")),
        (
            crossed,
            (
                "owners.ladder:",
                'owners.managers["alice@example.com"]',
                "owners.accounts.123456789012",
            ),
        ),
    ):
        assert main(["validate-config", "-c", str(path)]) == 2
        err = capsys.readouterr().err
        assert f"{len(keys)} configuration problem(s)" in err
        for key in keys:
            assert key in err
        assert "Traceback" not in err


# --- exceptions section (issue 4 §2; matching is tested in tests/test_exceptions.py) ------------

EXCEPTION_RULE_KEYS = (
    "id",
    "accounts",
    "principal_arn",
    "types",
    "principal_tags",
    "reason",
    "approved_by",
    "expires",
)


def test_exception_rule_keys_are_documented_in_both_example_files() -> None:
    from reporter.config import ExceptionRuleSettings

    assert tuple(ExceptionRuleSettings.model_fields) == EXCEPTION_RULE_KEYS
    assert all(field.description for field in ExceptionRuleSettings.model_fields.values())
    example = EXAMPLE.read_text(encoding="utf-8")
    section = example[example.index("\nexceptions:") :]
    rules_file = (EXAMPLE.parent / "exceptions.yaml").read_text(encoding="utf-8")
    for key in EXCEPTION_RULE_KEYS:
        assert key in section, f"exceptions rule key {key} not described in example.yaml"
        assert f"#   {key} " in rules_file, f"rule key {key} not described in exceptions.yaml"


def test_exceptions_defaults() -> None:
    section = load_data({}, {}).exceptions
    assert (section.file, section.max_days_ahead, section.warn_days, section.rules) == (
        None,
        365,
        14,
        (),
    )
    assert section.all_rules() == ()


def test_an_impossible_date_anywhere_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    # PyYAML raises ValueError building `2026-02-30`; the loader keeps it as text instead.
    path = write(tmp_path, "schedule:\n  timezone: 2026-02-30\n")
    problem = only_problem_of_file(path)
    assert (problem.path, problem.value, problem.message) == (
        "schedule.timezone",
        "'2026-02-30'",
        "unknown time zone",
    )


def test_expiry_is_checked_against_the_given_day() -> None:
    from datetime import date

    rule = {
        "id": "EXC-1",
        "types": ["UnusedIAMRole"],
        "reason": "r",
        "approved_by": "a@example.com",
        "expires": "2027-01-01",
    }
    data = {"exceptions": {"rules": [rule]}}
    assert load_data(data, {}, today=date(2026, 1, 2)).exceptions.rules[0].expires == date(
        2027, 1, 1
    )
    with pytest.raises(ConfigError) as caught:
        load_data(data, {}, today=date(2025, 12, 31))
    (problem,) = caught.value.problems
    assert problem.path == "exceptions.rules[0].expires"
    assert problem.value == "'2027-01-01'"
    assert "on or before 2026-12-31" in problem.hint


def test_unknown_key_in_a_list_item_gets_the_items_keys_as_hint() -> None:
    problems = problems_of({"exceptions": {"rules": [{"id": "EXC-1", "aprovd_by": "x"}]}})
    typo = next(p for p in problems if p.path == "exceptions.rules[0].aprovd_by")
    assert typo.hint == "did you mean `approved_by`?"


def only_problem_of_file(path: Path) -> ConfigProblem:
    with pytest.raises(ConfigError) as caught:
        load_file(path, {})
    (problem,) = caught.value.problems
    return problem
