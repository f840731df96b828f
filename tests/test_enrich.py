from __future__ import annotations

import shlex
from datetime import UTC, datetime, timedelta

import pytest

from reporter.aggregate import by_owner
from reporter.enrich import enrich, priority
from reporter.links import links_for
from reporter.models import Account, Finding, FindingType, RunContext
from reporter.owners import OwnerRules, resolve_owner
from reporter.remediation import remediation_for

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
RULES = OwnerRules(
    account_tag_keys=("owner", "team-owner"),
    names={"Platform Team": "platform@example.com"},
    allowed_domains=("example.com",),
    fallback=("security@example.com",),
)


def account(tags: dict[str, str], account_id: str = "111111111111") -> Account:
    return Account(id=account_id, name="prod", tags=tags)


def test_owner_from_first_matching_tag_with_rule_text() -> None:
    result = resolve_owner(account({"team-owner": "Bob@Example.com"}), RULES)
    assert result.owner == "bob@example.com"
    assert result.rule == "account tag `team-owner` on 111111111111"


def test_owner_name_mapped_to_address() -> None:
    assert resolve_owner(account({"owner": "Platform Team"}), RULES).owner == (
        "platform@example.com"
    )


def test_address_outside_allowed_domains_falls_through_and_says_so() -> None:
    result = resolve_owner(account({"owner": "mallory@evil.test"}), RULES)
    assert result.owner is None
    assert "outside owners.allowed_domains" in result.rule


@pytest.mark.parametrize(
    "value",
    [
        "a@eu.example.com",  # exact domains only, as owners.allowed_domains documents
        "a@badexample.com",
        "attacker@evil.test x@example.com",  # a mail parser would take the first address
        "attacker@evil.test,x@example.com",
        "Eve <x@example.com>",
    ],
)
def test_only_a_plain_address_in_an_allowed_domain_is_mailed(value: str) -> None:
    assert resolve_owner(account({"owner": value}), RULES).owner is None


def test_unowned_goes_to_fallback_recipients() -> None:
    finding = Finding(FindingType.UNUSED_ROLE, "111111111111", "arn:aws:iam::111111111111:role/x")
    items = enrich([finding], {"111111111111": account({})}, RULES, "us-east-1", NOW)
    ctx = RunContext("r", NOW, NOW.date(), NOW.date(), "whole organization")
    (report,) = by_owner(items, RULES.fallback, ctx, [])
    assert report.owner == "security@example.com"
    assert report.items[0].owner.rule.startswith("unowned (no owner tag")


@pytest.mark.parametrize(
    ("arn", "finding_type", "command"),
    [
        ("arn:aws:iam::111111111111:role/a=b+c@d,e.f", FindingType.UNUSED_ROLE, "delete-role"),
        ("arn:aws:iam::111111111111:user/x;rm -rf ~", FindingType.UNUSED_PASSWORD, "delete-login"),
        ("arn:aws:iam::111111111111:user/$(id)`id`", FindingType.UNUSED_PASSWORD, "delete-login"),
    ],
)
def test_commands_are_shell_quoted(arn: str, finding_type: FindingType, command: str) -> None:
    finding = Finding(finding_type, "111111111111", arn)
    steps = remediation_for(finding, links_for(finding, "us-east-1"))
    (step,) = [s for s in steps if s.command.startswith(f"aws iam {command}")]
    # bash would see the name as exactly one argument, whatever characters it holds
    assert shlex.split(step.command)[-1] == finding.principal_name
    for s in steps:
        shlex.split(s.command)  # every command is valid shell syntax


def test_unused_permissions_of_a_service_linked_role_never_delete_it() -> None:
    slr = Finding(
        FindingType.UNUSED_PERMISSION,
        "111111111111",
        "arn:aws:iam::111111111111:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS",
    )
    steps = remediation_for(slr, links_for(slr, "us-east-1"))
    assert not any("delete" in s.command for s in steps)


def test_access_key_steps_touch_only_the_keys_named() -> None:
    known = Finding(
        FindingType.UNUSED_ACCESS_KEY,
        "111111111111",
        "arn:aws:iam::111111111111:user/u",
        access_key_ids=("AKIAOLD",),
    )
    steps = remediation_for(known, links_for(known, "us-east-1"))
    assert all("AKIAOLD" in s.command for s in steps)
    assert not any("Status==`Inactive`" in s.command for s in steps)
    unknown = Finding(FindingType.UNUSED_ACCESS_KEY, "111111111111", known.principal_arn)
    guessed = remediation_for(unknown, links_for(unknown, "us-east-1"))
    assert not any("delete-access-key" in s.command for s in guessed)
    assert "<KEY_ID>" in guessed[-1].command  # the user picks the key; we never guess


def test_role_first_step_is_reversible_deny_all() -> None:
    finding = Finding(FindingType.UNUSED_ROLE, "111111111111", "arn:aws:iam::111111111111:role/x")
    first = remediation_for(finding, links_for(finding, "us-east-1"))[0]
    assert "attach-role-policy" in first.command and "AWSDenyAll" in first.command
    assert "detach-role-policy" in first.rollback
    assert "111111111111" in first.title


def test_service_linked_and_sso_roles_get_their_own_path() -> None:
    slr = Finding(
        FindingType.UNUSED_ROLE,
        "111111111111",
        "arn:aws:iam::111111111111:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS",
    )
    steps = remediation_for(slr, links_for(slr, "us-east-1"))
    assert "delete-service-linked-role" in steps[0].command
    sso = Finding(
        FindingType.UNUSED_ROLE,
        "111111111111",
        "arn:aws:iam::111111111111:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_0123",
    )
    sso_steps = remediation_for(sso, links_for(sso, "us-east-1"))
    assert all("aws iam" not in s.command for s in sso_steps)
    data_admin = Finding(
        FindingType.UNUSED_ROLE,
        "111111111111",
        "arn:aws:iam::111111111111:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Data_Admin_0a1b",
    )
    (step,) = remediation_for(data_admin, links_for(data_admin, "us-east-1"))
    assert "permission set Data_Admin" in step.command


def test_links_quote_names_and_point_at_the_region() -> None:
    finding = Finding(
        FindingType.UNUSED_ACCESS_KEY,
        "111111111111",
        "arn:aws:iam::111111111111:user/a+b",
        region="eu-west-1",
    )
    links = links_for(finding, "us-east-1")
    assert links.console.endswith("/users/details/a%2Bb?section=security_credentials")
    assert links.access_analyzer.startswith("https://eu-west-1.console.aws.amazon.com/")
    assert "arn%3Aaws%3Aiam%3A%3A111111111111%3Auser%2Fa%2Bb" in links.access_analyzer


def test_priority_grows_with_staleness_and_stays_bounded() -> None:
    f = Finding(FindingType.UNUSED_ACCESS_KEY, "111111111111", "arn:aws:iam::1:user/u")
    assert priority(f, 30) < priority(f, 300) <= 100
    old = Finding(
        FindingType.UNUSED_ROLE,
        "111111111111",
        "arn:aws:iam::111111111111:role/r",
        last_accessed=NOW - timedelta(days=200),
    )
    (item,) = enrich([old], {}, RULES, "us-east-1", NOW)
    assert item.unused_days == 200
    assert item.account.state == "UNKNOWN"  # not listed by Organizations, still reported
