from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reporter.aggregate import by_owner
from reporter.enrich import enrich, priority
from reporter.links import links_for
from reporter.models import Account, Finding, FindingType, RunContext
from reporter.owners import OwnerRules

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
RULES = OwnerRules(
    account_tag_keys=("owner", "team-owner"),
    names={"Platform Team": "platform@example.com"},
    allowed_domains=("example.com",),
    fallback=("security@example.com",),
)


def account(tags: dict[str, str], account_id: str = "111111111111") -> Account:
    return Account(id=account_id, name="prod", tags=tags)


# Every rung of the owner ladder is tested in test_owners.py.


def test_unowned_goes_to_fallback_recipients() -> None:
    finding = Finding(FindingType.UNUSED_ROLE, "111111111111", "arn:aws:iam::111111111111:role/x")
    items = enrich([finding], {"111111111111": account({})}, RULES, "us-east-1", NOW)
    ctx = RunContext("r", NOW, NOW.date(), NOW.date(), "whole organization")
    (report,) = by_owner(items, RULES.fallback, ctx, [])
    assert report.owner == "security@example.com"
    assert report.items[0].owner.rule.startswith("fallback:")


# Remediation steps are tested case by case in test_remediation.py.


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
