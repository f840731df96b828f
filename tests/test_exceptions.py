"""Exceptions as code: matching, expiry, notices and recipients; invalid rules are config errors."""

from __future__ import annotations

import pickle
import subprocess
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from reporter.cli import main
from reporter.config import config_digest, load_file
from reporter.errors import ConfigError, ConfigProblem
from reporter.exceptions import (
    ExceptionRule,
    apply_exceptions,
    notices_by_recipient,
    notices_for,
    recipients_for_notice,
    rules_from_settings,
    status_for,
)
from reporter.models import ExceptionMatch, Finding, FindingStatus, FindingType

ROOT = Path(__file__).resolve().parents[1]
TODAY = date(2026, 1, 15)
PROD, DEV = "111122223333", "444455556666"
ROLE, KEY, PASSWORD, PERMISSION = (
    FindingType.UNUSED_ROLE,
    FindingType.UNUSED_ACCESS_KEY,
    FindingType.UNUSED_PASSWORD,
    FindingType.UNUSED_PERMISSION,
)


def finding(
    name: str = "app",
    *,
    account: str = PROD,
    type: FindingType = ROLE,
    path: str = "/",
    tags: dict[str, str] | None = None,
) -> Finding:
    kind = "user" if type in (KEY, PASSWORD) else "role"
    return Finding(
        type=type,
        account_id=account,
        principal_arn=f"arn:aws:iam::{account}:{kind}{path}{name}",
        principal_tags=tags or {},
    )


def rule(
    id: str = "EXC-1", *, expires: date = TODAY + timedelta(days=100), **match: Any
) -> ExceptionRule:
    return ExceptionRule(
        id=id,
        reason=f"reason of {id}",
        approved_by="approver@example.com",
        expires=expires,
        accounts=frozenset(match.get("accounts", ())),
        principal_arn=match.get("principal_arn"),
        types=frozenset(match.get("types", ())),
        principal_tags=tuple(sorted(match.get("principal_tags", {}).items())),
    )


def matches(r: ExceptionRule, f: Finding) -> bool:
    outcome = apply_exceptions([f], [r], TODAY, 14)
    assert r.matches(f) == (f.key in outcome.by_key)
    return r.matches(f)


# --- each matcher alone ---------------------------------------------------------------------------


def test_accounts_alone() -> None:
    r = rule(accounts={PROD, "999999999999"})
    assert matches(r, finding(account=PROD))
    assert matches(r, finding(account=PROD, type=KEY))
    assert not matches(r, finding(account=DEV))


def test_types_alone() -> None:
    r = rule(types={KEY, PASSWORD})
    assert matches(r, finding("alice", type=KEY))
    assert matches(r, finding("alice", type=PASSWORD, account=DEV))
    assert not matches(r, finding("alice", type=ROLE))
    assert not matches(r, finding("alice", type=PERMISSION))


def test_principal_tags_alone_need_every_tag_with_its_exact_value() -> None:
    r = rule(principal_tags={"purpose": "dr", "team": "core"})
    assert matches(r, finding(tags={"purpose": "dr", "team": "core", "extra": "x"}))
    assert not matches(r, finding(tags={"purpose": "dr"}))
    assert not matches(r, finding(tags={"purpose": "DR", "team": "core"}))
    assert not matches(r, finding(tags={"purpose": "dr ", "team": "core"}))
    assert not matches(r, finding())


@pytest.mark.parametrize(
    ("pattern", "arn", "expected"),
    [
        ("arn:aws:iam::111122223333:role/app", "arn:aws:iam::111122223333:role/app", True),
        ("arn:aws:iam::111122223333:role/app", "arn:aws:iam::111122223333:role/app2", False),
        # `*` spans `/`: a role under a path is covered by `role/*`.
        ("arn:aws:iam::*:role/*", "arn:aws:iam::111122223333:role/team/deep/app", True),
        ("arn:aws:iam::*:role/ci-*", "arn:aws:iam::444455556666:role/ci-deploy", True),
        ("arn:aws:iam::*:role/ci-*", "arn:aws:iam::444455556666:role/team/ci-deploy", False),
        ("arn:aws:iam::*:role/*ci-*", "arn:aws:iam::444455556666:role/team/ci-deploy", True),
        ("arn:aws:iam::*:role/*", "arn:aws:iam::111122223333:user/role/alice", False),
        # `?` is one character, never none.
        ("arn:aws:iam::*:user/svc-?", "arn:aws:iam::111122223333:user/svc-1", True),
        ("arn:aws:iam::*:user/svc-?", "arn:aws:iam::111122223333:user/svc-", False),
        ("arn:aws:iam::*:user/svc-?", "arn:aws:iam::111122223333:user/svc-12", False),
        # Case-sensitive, like ARNs; the whole ARN must match, not a part of it.
        ("arn:aws:iam::*:role/App", "arn:aws:iam::111122223333:role/app", False),
        ("role/app", "arn:aws:iam::111122223333:role/app", False),
        # IAM names may hold `+=,.@-`: they are literal characters in a glob.
        ("arn:aws:iam::*:user/a+b=c,d.e@f-g", "arn:aws:iam::111122223333:user/a+b=c,d.e@f-g", True),
        ("arn:aws:iam::*:user/a.b", "arn:aws:iam::111122223333:user/aXb", False),
        # `[...]` is a character class.
        ("arn:aws:iam::*:role/app-[ab]", "arn:aws:iam::111122223333:role/app-b", True),
        ("arn:aws:iam::*:role/app-[ab]", "arn:aws:iam::111122223333:role/app-c", False),
        ("*", "arn:aws:iam::111122223333:role/anything/at/all", True),
    ],
)
def test_principal_arn_glob(pattern: str, arn: str, expected: bool) -> None:
    account = arn.split(":")[4]
    f = Finding(type=ROLE, account_id=account, principal_arn=arn)
    assert matches(rule(principal_arn=pattern), f) is expected


def test_combined_matchers_must_all_match() -> None:
    r = rule(
        accounts={PROD},
        types={ROLE},
        principal_arn="arn:aws:iam::*:role/batch/*",
        principal_tags={"team": "data"},
    )
    hit = finding("nightly", path="/batch/", tags={"team": "data"})
    assert matches(r, hit)
    assert not matches(r, finding("nightly", path="/batch/", tags={"team": "data"}, account=DEV))
    assert not matches(
        r, finding("nightly", path="/batch/", tags={"team": "data"}, type=PERMISSION)
    )
    assert not matches(r, finding("nightly", path="/web/", tags={"team": "data"}))
    assert not matches(r, finding("nightly", path="/batch/", tags={"team": "web"}))


# --- choice of rule, expiry and notices -----------------------------------------------------------


def test_first_matching_rule_wins_in_order() -> None:
    f = finding(type=KEY, name="alice")
    first = rule("EXC-A", types={KEY})
    second = rule("EXC-B", accounts={PROD})
    assert apply_exceptions([f], [first, second], TODAY, 14).by_key[f.key].id == "EXC-A"
    assert apply_exceptions([f], [second, first], TODAY, 14).by_key[f.key].id == "EXC-B"


def test_excepted_finding_carries_the_rule_and_is_excepted() -> None:
    f = finding()
    outcome = apply_exceptions([f], [rule(accounts={PROD})], TODAY, 14)
    assert outcome.by_key == {
        f.key: ExceptionMatch(
            id="EXC-1",
            reason="reason of EXC-1",
            approved_by="approver@example.com",
            expires=TODAY + timedelta(days=100),
            expired=False,
        )
    }
    assert status_for(outcome.by_key[f.key]) is FindingStatus.EXCEPTED
    assert status_for(None) is FindingStatus.ACTIVE
    assert outcome.notices == ()  # far from expiry and in use: nothing to say


def test_expired_exception_puts_findings_back_flagged() -> None:
    covered, other = finding("a"), finding("b", account=DEV)
    expired = rule("EXC-OLD", accounts={PROD}, expires=TODAY - timedelta(days=1))
    outcome = apply_exceptions([covered, other], [expired], TODAY, 14)
    match = outcome.by_key[covered.key]
    assert (match.id, match.expired) == ("EXC-OLD", True)
    assert status_for(match) is FindingStatus.ACTIVE
    assert other.key not in outcome.by_key
    (notice,) = outcome.notices
    assert (notice.id, notice.kind, notice.matched) == ("EXC-OLD", "expired", 1)
    assert notice.expires == TODAY - timedelta(days=1)
    assert notice.approved_by == "approver@example.com"
    assert notice.reason == "reason of EXC-OLD"


def test_expires_is_the_last_day_the_exception_applies() -> None:
    f = finding()
    on_the_day = apply_exceptions([f], [rule(accounts={PROD}, expires=TODAY)], TODAY, 14)
    assert not on_the_day.by_key[f.key].expired
    assert [n.kind for n in on_the_day.notices] == ["expiring"]
    day_after = apply_exceptions(
        [f], [rule(accounts={PROD}, expires=TODAY)], TODAY + timedelta(1), 14
    )
    assert day_after.by_key[f.key].expired
    assert [n.kind for n in day_after.notices] == ["expired"]


def test_a_live_rule_beats_an_earlier_expired_one() -> None:
    f = finding()
    old = rule("EXC-OLD", accounts={PROD}, expires=TODAY - timedelta(days=30))
    renewed = rule("EXC-NEW", types={ROLE})
    outcome = apply_exceptions([f], [old, renewed], TODAY, 14)
    assert (outcome.by_key[f.key].id, outcome.by_key[f.key].expired) == ("EXC-NEW", False)
    # The expired rule still matched it, so it is flagged as expired rather than stale.
    assert [(n.id, n.kind, n.matched) for n in outcome.notices] == [("EXC-OLD", "expired", 1)]


@pytest.mark.parametrize(
    ("days_left", "warn_days", "kind"),
    [(0, 14, "expiring"), (13, 14, "expiring"), (14, 14, "expiring"), (15, 14, None),
     (0, 0, "expiring"), (1, 0, None), (300, 365, "expiring")],
)  # fmt: skip
def test_expiring_within_warn_days(days_left: int, warn_days: int, kind: str | None) -> None:
    f = finding()
    r = rule(accounts={PROD}, expires=TODAY + timedelta(days=days_left))
    outcome = apply_exceptions([f, finding("b")], [r], TODAY, warn_days)
    assert [(n.kind, n.matched) for n in outcome.notices] == ([(kind, 2)] if kind else [])
    assert status_for(outcome.by_key[f.key]) is FindingStatus.EXCEPTED


def test_stale_rule_matches_nothing() -> None:
    used = rule("EXC-USED", accounts={PROD})
    stale = rule("EXC-STALE", principal_arn="arn:aws:iam::*:role/decommissioned-*")
    stale_soon = rule("EXC-STALE-SOON", accounts={DEV}, expires=TODAY + timedelta(days=3))
    gone = rule("EXC-GONE", accounts={DEV}, expires=TODAY - timedelta(days=3))
    outcome = apply_exceptions([finding()], [used, stale, stale_soon, gone], TODAY, 14)
    assert [(n.id, n.kind, n.matched) for n in outcome.notices] == [
        ("EXC-STALE", "stale", 0),
        ("EXC-STALE-SOON", "stale", 0),
        ("EXC-GONE", "expired", 0),
    ]


def test_no_rules_and_no_findings() -> None:
    assert apply_exceptions([finding()], [], TODAY, 14).by_key == {}
    outcome = apply_exceptions([], [rule(accounts={PROD})], TODAY, 14)
    assert [(n.kind, n.matched) for n in outcome.notices] == [("stale", 0)]


def test_matched_counts_every_finding_a_rule_matches_even_if_another_rule_won() -> None:
    f1, f2, f3 = finding("a"), finding("b"), finding("c", account=DEV)
    soon = TODAY + timedelta(days=2)
    broad = rule("EXC-BROAD", types={ROLE}, expires=soon)
    narrow = rule("EXC-NARROW", accounts={PROD}, expires=soon)
    outcome = apply_exceptions([f1, f2, f3], [broad, narrow], TODAY, 14)
    assert {k: m.id for k, m in outcome.by_key.items()} == dict.fromkeys(
        (f1.key, f2.key, f3.key), "EXC-BROAD"
    )
    assert [(n.id, n.matched) for n in outcome.notices] == [("EXC-BROAD", 3), ("EXC-NARROW", 2)]
    assert outcome.matched_keys["EXC-NARROW"] == (f1.key, f2.key)


# --- who hears about a notice ---------------------------------------------------------------------


def _notice_world() -> tuple[Any, dict[str, str | None], list[Finding]]:
    alice, bob, nobody, other = finding("a"), finding("b"), finding("c"), finding("d", account=DEV)
    rules = [
        rule("EXC-SOON", accounts={PROD}, expires=TODAY + timedelta(days=5)),
        rule("EXC-STALE", accounts={"999999999999"}),
        rule("EXC-FAR", accounts={DEV}),
    ]
    outcome = apply_exceptions([alice, bob, nobody, other], rules, TODAY, 14)
    owner_of: dict[str, str | None] = {
        alice.key: "alice@example.com",
        bob.key: "bob@example.com",
        nobody.key: None,
        other.key: "carol@example.com",
    }
    return outcome, owner_of, [alice, bob, nobody, other]


def test_notices_for_an_owner_are_those_touching_their_findings() -> None:
    outcome, _, (alice, _bob, _nobody, other) = _notice_world()
    assert [n.id for n in notices_for([alice.key], outcome)] == ["EXC-SOON"]
    assert notices_for([other.key], outcome) == ()  # EXC-FAR needs no notice
    assert notices_for([], outcome) == ()


def test_recipients_are_owners_and_approver_inside_allowed_domains() -> None:
    outcome, owner_of, _ = _notice_world()
    soon, stale = outcome.notices
    assert (soon.kind, stale.kind) == ("expiring", "stale")

    def inside(address: str) -> bool:
        return address.endswith("@example.com")

    assert recipients_for_notice(soon, outcome, owner_of, inside) == (
        "alice@example.com",
        "approver@example.com",
        "bob@example.com",
    )
    # An approver outside allowed_domains is never mailed; owners were vetted by the ladder.
    assert recipients_for_notice(soon, outcome, owner_of, lambda a: False) == (
        "alice@example.com",
        "bob@example.com",
    )
    assert recipients_for_notice(stale, outcome, owner_of, inside) == ("approver@example.com",)
    assert notices_by_recipient(outcome, owner_of, inside) == {
        "alice@example.com": (soon,),
        "approver@example.com": (soon, stale),
        "bob@example.com": (soon,),
    }


# --- from the config ------------------------------------------------------------------------


def write(folder: Path, text: str, name: str = "config.yaml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def rule_yaml(id: str = "EXC-1", **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": id,
        "accounts": [PROD],
        "reason": "kept for the audit (SEC-1)",
        "approved_by": "ciso@example.com",
        "expires": (TODAY + timedelta(days=90)).isoformat(),
    }
    for key, value in overrides.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def config_with(rules: list[Any], **section: Any) -> str:
    return yaml.safe_dump({"exceptions": {**section, "rules": rules}}, sort_keys=False)


def problems(path: Path) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_file(path, {}, today=TODAY)
    return caught.value.problems


def test_rules_load_from_the_config_in_order(tmp_path: Path) -> None:
    text = config_with(
        [
            rule_yaml("EXC-1", principal_arn="arn:aws:iam::*:role/ci-*", types=["UnusedIAMRole"]),
            rule_yaml("EXC-2", accounts=None, principal_tags={"purpose": "dr"}),
        ],
        warn_days=7,
    )
    settings = load_file(write(tmp_path, text), {}, today=TODAY)
    assert settings.exceptions.warn_days == 7
    assert settings.exceptions.max_days_ahead == 365
    first, second = rules_from_settings(settings.exceptions)
    assert first == ExceptionRule(
        id="EXC-1",
        reason="kept for the audit (SEC-1)",
        approved_by="ciso@example.com",
        expires=TODAY + timedelta(days=90),
        accounts=frozenset({PROD}),
        principal_arn="arn:aws:iam::*:role/ci-*",
        types=frozenset({ROLE}),
        source="exceptions.rules[0]",
    )
    assert (second.id, second.principal_tags, second.source) == (
        "EXC-2",
        (("purpose", "dr"),),
        "exceptions.rules[1]",
    )
    assert second.matches(finding(tags={"purpose": "dr"}, account=DEV))


def test_an_exception_expired_at_load_is_not_a_config_error(tmp_path: Path) -> None:
    old = (TODAY - timedelta(days=400)).isoformat()
    settings = load_file(write(tmp_path, config_with([rule_yaml(expires=old)])), {}, today=TODAY)
    (r,) = rules_from_settings(settings.exceptions)
    outcome = apply_exceptions([finding()], [r], TODAY, settings.exceptions.warn_days)
    assert outcome.by_key[finding().key].expired
    assert [n.kind for n in outcome.notices] == ["expired"]


def test_max_days_ahead_is_configurable(tmp_path: Path) -> None:
    far = (TODAY + timedelta(days=700)).isoformat()
    ok = write(tmp_path, config_with([rule_yaml(expires=far)], max_days_ahead=730))
    assert load_file(ok, {}, today=TODAY).exceptions.rules[0].expires.isoformat() == far
    (problem,) = problems(write(tmp_path, config_with([rule_yaml(expires=far)]), "b.yaml"))
    assert problem.path == "exceptions.rules[0].expires"


INVALID: list[tuple[str, str, str, str, str, str]] = [
    # id, the rule's YAML (one list item), path, message contains, value, hint contains
    ("missing-reason",
     "id: EXC-1\naccounts: ['111122223333']\napproved_by: a@example.com\nexpires: 2026-03-01",
     "exceptions.rules[0].reason", "required key is missing", "EXC-1", "Why the access"),
    ("blank-reason",
     "id: EXC-1\naccounts: ['111122223333']\nreason: '  '\napproved_by: a@example.com\n"
     "expires: 2026-03-01",
     "exceptions.rules[0].reason", "blank", "'  '", "why the access must stay"),
    ("missing-id",
     "accounts: ['111122223333']\nreason: r\napproved_by: a@example.com\nexpires: 2026-03-01",
     "exceptions.rules[0].id", "required key is missing", "111122223333", "Unique name"),
    ("bad-id", "id: 'EXC 1'\naccounts: ['111122223333']\nreason: r\napproved_by: a@example.com\n"
     "expires: 2026-03-01",
     "exceptions.rules[0].id", "not a valid exception id", "'EXC 1'", "letters, digits"),
    ("impossible-date",
     "id: EXC-1\naccounts: ['111122223333']\nreason: r\napproved_by: a@example.com\n"
     "expires: 2026-02-30",
     "exceptions.rules[0].expires", "not a valid date", "'2026-02-30'", "YYYY-MM-DD"),
    ("date-as-words",
     "id: EXC-1\naccounts: ['111122223333']\nreason: r\napproved_by: a@example.com\n"
     "expires: next spring",
     "exceptions.rules[0].expires", "not a date", "'next spring'", "YYYY-MM-DD"),
    ("date-as-number",
     "id: EXC-1\naccounts: ['111122223333']\nreason: r\napproved_by: a@example.com\n"
     "expires: 20260301",
     "exceptions.rules[0].expires", "not a date", "20260301", "YYYY-MM-DD"),
    ("date-with-time",
     "id: EXC-1\naccounts: ['111122223333']\nreason: r\napproved_by: a@example.com\n"
     "expires: 2026-03-01T10:00:00Z",
     "exceptions.rules[0].expires", "without a time", "2026", "YYYY-MM-DD"),
    ("too-far-ahead",
     "id: EXC-1\naccounts: ['111122223333']\nreason: r\napproved_by: a@example.com\n"
     "expires: 2027-01-16",
     "exceptions.rules[0].expires", "more than 365 days ahead", "2027-01-16", "2027-01-15"),
    ("unknown-type",
     "id: EXC-1\ntypes: [UnusedIAMGroup]\nreason: r\napproved_by: a@example.com\n"
     "expires: 2026-03-01",
     "exceptions.rules[0].types[0]", "'UnusedIAMRole'", "'UnusedIAMGroup'", "finding types"),
    ("short-account",
     "id: EXC-1\naccounts: ['11112222333']\nreason: r\napproved_by: a@example.com\n"
     "expires: 2026-03-01",
     "exceptions.rules[0].accounts[0]", "not an AWS account id", "'11112222333'", "12 digits"),
    ("unquoted-account",
     "id: EXC-1\naccounts: [111122223333]\nreason: r\napproved_by: a@example.com\n"
     "expires: 2026-03-01",
     "exceptions.rules[0].accounts[0]", "quoted string", "111122223333", "quotes"),
    ("bad-approver",
     "id: EXC-1\naccounts: ['111122223333']\nreason: r\napproved_by: Jane Doe\n"
     "expires: 2026-03-01",
     "exceptions.rules[0].approved_by", "not an e-mail address", "'Jane Doe'", "team@example.com"),
    ("no-matcher",
     "id: EXC-1\nreason: r\napproved_by: a@example.com\nexpires: 2026-03-01",
     "exceptions.rules[0]", "no matcher", "EXC-1", "principal_arn"),
    ("empty-matchers",
     "id: EXC-1\naccounts: []\nprincipal_tags: {}\nreason: r\napproved_by: a@example.com\n"
     "expires: 2026-03-01",
     "exceptions.rules[0]", "no matcher", "EXC-1", "accounts"),
    ("arn-not-a-pattern",
     "id: EXC-1\nprincipal_arn: ci-deploy\nreason: r\napproved_by: a@example.com\n"
     "expires: 2026-03-01",
     "exceptions.rules[0].principal_arn", "not an ARN pattern", "'ci-deploy'", "arn:aws:iam::*"),
    ("tag-value-not-text",
     "id: EXC-1\nprincipal_tags: {dr: yes}\nreason: r\napproved_by: a@example.com\n"
     "expires: 2026-03-01",
     "exceptions.rules[0].principal_tags.dr", "expected text", "True", "quote it"),
    ("typo-key",
     "id: EXC-1\naccounts: ['111122223333']\nreason: r\napproved_by: a@example.com\n"
     "expires: 2026-03-01\nexpiry: 2026-03-01",
     "exceptions.rules[0].expiry", "unknown key", "2026", "did you mean `expires`?"),
    ("not-a-mapping", "just text",
     "exceptions.rules[0]", "expected a mapping", "'just text'", "reason, approved_by, expires"),
]  # fmt: skip


def _as_list_item(rule_text: str) -> str:
    lines = rule_text.splitlines()
    return "\n".join(["  - " + lines[0], *("    " + line for line in lines[1:])])


@pytest.mark.parametrize(
    ("rule_text", "path", "message", "value", "hint"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_each_invalid_rule_is_one_problem_with_path_value_and_hint(
    tmp_path: Path, rule_text: str, path: str, message: str, value: str, hint: str
) -> None:
    text = f"exceptions:\n  rules:\n{_as_list_item(rule_text)}\n"
    found = problems(write(tmp_path, text))
    # A missing key is one problem per key; everything else here is exactly one problem.
    assert [p.path for p in found if p.path == path] == [path], [str(p) for p in found]
    (problem,) = (p for p in found if p.path == path)
    assert message in problem.message
    assert value in problem.value
    assert hint in problem.hint
    if "missing" not in rule_text:
        assert len(found) == 1, [str(p) for p in found]


def test_duplicate_ids_are_an_error_at_the_second(tmp_path: Path) -> None:
    text = config_with([rule_yaml("EXC-1"), rule_yaml("EXC-2"), rule_yaml("EXC-1")])
    (problem,) = problems(write(tmp_path, text))
    assert problem.path == "exceptions.rules[2].id"
    assert problem.message == "duplicate id (also exceptions.rules[0])"
    assert problem.value == "'EXC-1'"
    assert "its own id" in problem.hint


def test_every_problem_of_every_rule_is_reported_at_once(tmp_path: Path) -> None:
    text = config_with(
        [
            rule_yaml("EXC-1", approved_by="nobody", types=["UnusedIAMGroup"]),
            rule_yaml("EXC-2", reason=None, accounts=["12"]),
        ]
    )
    assert sorted(p.path for p in problems(write(tmp_path, text))) == [
        "exceptions.rules[0].approved_by",
        "exceptions.rules[0].types[0]",
        "exceptions.rules[1].accounts[0]",
        "exceptions.rules[1].reason",
    ]
    # The checks across rules all come together once each rule is well-formed.
    far = (TODAY + timedelta(days=366)).isoformat()
    text = config_with(
        [rule_yaml("EXC-1", expires=far), rule_yaml("EXC-1", accounts=None), rule_yaml("EXC-3")]
    )
    assert [(p.path, p.message.split(" (")[0]) for p in problems(write(tmp_path, text))] == [
        ("exceptions.rules[0].expires", "more than 365 days ahead"),
        ("exceptions.rules[1]", "no matcher: an exception must say which findings it covers"),
        ("exceptions.rules[1].id", "duplicate id"),
    ]


def test_section_settings_are_validated(tmp_path: Path) -> None:
    found = problems(
        write(tmp_path, "exceptions:\n  max_days_ahead: 0\n  warn_days: -1\n  file: ''\n")
    )
    assert sorted(p.path for p in found) == [
        "exceptions.file",
        "exceptions.max_days_ahead",
        "exceptions.warn_days",
    ]


# --- a separate exceptions file ----------------------------------------------------------------


def test_file_is_read_from_the_config_folder_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(
        tmp_path / "etc",
        config_with([rule_yaml("EXC-INLINE")], file="rules/exceptions.yaml"),
    )
    write(
        tmp_path / "etc",
        config_with([rule_yaml("EXC-FILE", accounts=[DEV])])
        .replace("exceptions:\n  ", "")
        .replace("\n  ", "\n"),
        "rules/exceptions.yaml",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = load_file(config, {}, today=TODAY)
    rules = rules_from_settings(settings.exceptions)
    assert [(r.id, r.source) for r in rules] == [
        ("EXC-INLINE", "exceptions.rules[0]"),
        ("EXC-FILE", "rules/exceptions.yaml:rules[0]"),
    ]
    assert rules[1].accounts == frozenset({DEV})
    assert settings.exceptions.file == Path("rules/exceptions.yaml")
    # The file's rules survive pickling (render workers) and count in the config digest.
    restored = pickle.loads(pickle.dumps(settings))
    assert rules_from_settings(restored.exceptions) == rules
    without_file = load_file(
        write(tmp_path / "etc", config_with([rule_yaml("EXC-INLINE")]), "b.yaml"), {}, today=TODAY
    )
    assert config_digest(settings) != config_digest(without_file)


def rules_file(folder: Path, text: str) -> Path:
    write(folder, text, "exceptions.yaml")
    return write(folder, "exceptions:\n  file: exceptions.yaml\n")


def test_an_absolute_file_path_works_and_the_example_file_loads(tmp_path: Path) -> None:
    example = ROOT / "config" / "exceptions.yaml"
    config = write(tmp_path, f"exceptions:\n  file: {example}\n")
    loaded = rules_from_settings(load_file(config, {}, today=date(2026, 11, 28)).exceptions)
    assert [r.id for r in loaded] == ["EXC-2026-001", "EXC-2026-002", "EXC-2026-003"]
    assert all(r.source == f"{example}:rules[{i}]" for i, r in enumerate(loaded))
    assert loaded[2].principal_tags == (("purpose", "disaster-recovery"),)


def test_missing_file_is_a_problem_at_exceptions_file(tmp_path: Path) -> None:
    (problem,) = problems(write(tmp_path, "exceptions:\n  file: nowhere.yaml\n"))
    assert problem.path == "exceptions.file"
    assert problem.value == "'nowhere.yaml'"
    assert problem.message == "file not found"
    assert str(tmp_path / "nowhere.yaml") in problem.hint


def test_a_folder_instead_of_the_file(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (problem,) = problems(write(tmp_path, "exceptions:\n  file: rules\n"))
    assert (problem.path, problem.message) == ("exceptions.file", "is a directory")


def test_errors_in_the_file_name_their_place_in_that_file(tmp_path: Path) -> None:
    config = rules_file(
        tmp_path,
        "rules:\n"
        "  - id: EXC-1\n    accounts: ['111122223333']\n    reason: r\n"
        "    approved_by: a@example.com\n    expires: 2026-03-01\n"
        "  - id: EXC-2\n    types: [UnusedIAMRole]\n    reason: r\n"
        "    approved_by: a@example.com\n    expires: 2030-01-01\n"
        "  - id: EXC-3\n    accounts: ['1']\n    reason: r\n    approved_by: a\n"
        "    expires: soon\n",
    )
    found = problems(config)
    assert [(p.path, p.message) for p in found] == [
        ("exceptions.yaml:rules[2].accounts[0]", "not an AWS account id"),
        ("exceptions.yaml:rules[2].approved_by", "not an e-mail address"),
        ("exceptions.yaml:rules[2].expires", "not a date"),
    ]
    assert found[2].value == "'soon'" and "YYYY-MM-DD" in found[2].hint
    # Once those are fixed, the checks across rules speak, still in the file's terms.
    config = rules_file(
        tmp_path,
        (tmp_path / "exceptions.yaml")
        .read_text()
        .replace("['1']", "['111122223333']")
        .replace("approved_by: a\n", "approved_by: a@example.com\n")
        .replace("expires: soon", "expires: 2026-03-01")
        .replace("EXC-3", "EXC-1"),
    )
    assert [(p.path, p.message) for p in problems(config)] == [
        ("exceptions.yaml:rules[1].expires", "more than 365 days ahead"),
        ("exceptions.yaml:rules[2].id", "duplicate id (also exceptions.yaml:rules[0])"),
    ]


def test_ids_are_unique_across_the_config_and_the_file(tmp_path: Path) -> None:
    write(tmp_path, yaml.safe_dump({"rules": [rule_yaml("EXC-9"), rule_yaml("EXC-1")]}), "x.yaml")
    config = write(tmp_path, config_with([rule_yaml("EXC-1")], file="x.yaml"))
    (problem,) = problems(config)
    assert (problem.path, problem.message) == (
        "x.yaml:rules[1].id",
        "duplicate id (also exceptions.rules[0])",
    )


def test_the_config_max_days_ahead_applies_to_the_file(tmp_path: Path) -> None:
    far = (TODAY + timedelta(days=500)).isoformat()
    write(tmp_path, yaml.safe_dump({"rules": [rule_yaml(expires=far)]}), "x.yaml")
    ok = write(tmp_path, "exceptions:\n  file: x.yaml\n  max_days_ahead: 600\n")
    assert rules_from_settings(load_file(ok, {}, today=TODAY).exceptions)[0].id == "EXC-1"
    strict = write(tmp_path, "exceptions:\n  file: x.yaml\n", "strict.yaml")
    assert [p.path for p in problems(strict)] == ["x.yaml:rules[0].expires"]


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ("rules: [\n", "exceptions.yaml", "YAML syntax error"),
        ("- id: EXC-1\n", "exceptions.yaml", "expected a mapping with `rules:`"),
        ("rules: []\nwarn_days: 3\n", "exceptions.yaml:warn_days", "unknown key"),
        ("rules: []\nrules: []\n", "exceptions.yaml:rules", "duplicate key"),
        ("rules: EXC-1\n", "exceptions.yaml:rules", "expected a list"),
    ],
)
def test_yaml_and_shape_problems_in_the_file(
    tmp_path: Path, text: str, path: str, message: str
) -> None:
    found = problems(rules_file(tmp_path, text))
    assert [p.path for p in found] == [path]
    assert message in found[0].message


def test_an_empty_file_holds_no_rules(tmp_path: Path) -> None:
    settings = load_file(rules_file(tmp_path, "# none yet\n"), {}, today=TODAY)
    assert rules_from_settings(settings.exceptions) == ()


def test_config_and_file_problems_are_reported_together(tmp_path: Path) -> None:
    write(tmp_path, "rules:\n  - id: EXC-1\n", "x.yaml")
    config = write(tmp_path, "exceptions:\n  file: x.yaml\n  warn_days: many\n")
    paths = [p.path for p in problems(config)]
    assert paths[0] == "exceptions.warn_days"
    assert "x.yaml:rules[0].reason" in paths and "x.yaml:rules[0].expires" in paths


# --- through the command line ------------------------------------------------------------------


def _bad_config(tmp_path: Path) -> Path:
    today = datetime.now(UTC).date()
    far = (today + timedelta(days=400)).isoformat()
    write(tmp_path, yaml.safe_dump({"rules": [rule_yaml("EXC-2", approved_by="nobody")]}), "x.yaml")
    return write(
        tmp_path,
        config_with(
            [rule_yaml("EXC-1", expires=far), rule_yaml("EXC-1", accounts=None)], file="x.yaml"
        ),
    )


def test_validate_config_reports_every_exception_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate-config", "-c", str(_bad_config(tmp_path))]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    for expected in (
        "exceptions.rules[0].expires: more than 365 days ahead",
        "exceptions.rules[1]: no matcher",
        "exceptions.rules[1].id: duplicate id (also exceptions.rules[0])",
        "x.yaml:rules[0].approved_by: not an e-mail address (got 'nobody')",
    ):
        assert expected in captured.err
    assert "Traceback" not in captured.err


def test_the_installed_command_exits_2_without_a_traceback(tmp_path: Path) -> None:
    command = ROOT / ".venv" / "bin" / "access-reporter"
    out = subprocess.run(
        [str(command), "validate-config", "-c", str(_bad_config(tmp_path))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2, out.stderr
    assert "4 configuration problem(s)" in out.stderr
    assert "x.yaml:rules[0].approved_by" in out.stderr
    assert "Traceback" not in out.stderr


def test_validate_config_accepts_valid_exceptions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    soon = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
    write(tmp_path, yaml.safe_dump({"rules": [rule_yaml("EXC-2", expires=soon)]}), "x.yaml")
    config = write(tmp_path, config_with([rule_yaml("EXC-1", expires=soon)], file="x.yaml"))
    assert main(["validate-config", "-c", str(config)]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["exceptions"]["file"] == "x.yaml"
    assert [r["id"] for r in shown["exceptions"]["rules"]] == ["EXC-1"]


def test_an_approver_without_findings_gets_a_report_of_their_notices() -> None:
    from reporter.aggregate import by_owner
    from tests import factories as fx

    outcome, owner_of, _ = _notice_world()
    soon, stale = outcome.notices
    items = fx.many_items(2)
    grouped = notices_by_recipient(outcome, owner_of, lambda a: a.endswith("@example.com"))
    reports = by_owner(items, (), fx.make_context(), (), notices_by_recipient=grouped)
    approver = {r.owner: r for r in reports}["approver@example.com"]
    assert approver.items == () and approver.accounts == () and approver.coverage == ()
    assert approver.exception_notices == (soon, stale)


def test_an_approver_spelled_with_capitals_is_the_same_recipient_as_the_owner() -> None:
    outcome, owner_of, _ = _notice_world()
    soon, _ = outcome.notices
    shouting = replace(soon, approved_by="Alice@Example.com")
    assert recipients_for_notice(shouting, outcome, owner_of, lambda a: True) == (
        "alice@example.com",
        "bob@example.com",
    )
