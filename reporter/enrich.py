"""Enrich: owner, links, remediation and priority for each finding. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime

from .links import links_for
from .models import Account, Finding, FindingType, ReportItem
from .owners import OwnerRules, resolve_owner
from .remediation import remediation_for

# Priority 0–100. Type sets the base (a live key or password is an open door; unused
# permissions are the least urgent), staleness adds up to 40, severity up to 10.
_TYPE_WEIGHT = {
    FindingType.UNUSED_ACCESS_KEY: 50,
    FindingType.UNUSED_PASSWORD: 45,
    FindingType.UNUSED_ROLE: 40,
    FindingType.UNUSED_PERMISSION: 30,
}
_SEVERITY_WEIGHT = {"CRITICAL": 10, "HIGH": 7, "MEDIUM": 4, "LOW": 1}


def priority(finding: Finding, unused_days: int | None) -> int:
    staleness = 20 if unused_days is None else min(unused_days, 365) * 40 // 365
    return min(
        100,
        _TYPE_WEIGHT[finding.type] + staleness + _SEVERITY_WEIGHT.get(finding.severity, 0),
    )


def unused_days(finding: Finding, now: datetime) -> int | None:
    if finding.last_accessed is None:
        return None
    return max(0, (now - finding.last_accessed).days)


def unknown_account(account_id: str) -> Account:
    """A finding for an account Organizations did not list (left the org, or a file import)."""
    return Account(id=account_id, name=account_id, state="UNKNOWN")


def enrich(
    findings: Iterable[Finding],
    accounts: Mapping[str, Account],
    rules: OwnerRules,
    home_region: str,
    now: datetime,
    first_seen: Mapping[str, date] | None = None,
) -> list[ReportItem]:
    """`first_seen` comes from the history; without one, the source's creation date stands in."""
    first_seen = first_seen or {}
    items = []
    for finding in findings:
        account = accounts.get(finding.account_id) or unknown_account(finding.account_id)
        links = links_for(finding, home_region)
        days = unused_days(finding, now)
        items.append(
            ReportItem(
                finding=finding,
                account=account,
                owner=resolve_owner(account, rules),
                links=links,
                remediation=remediation_for(finding, links),
                priority=priority(finding, days),
                first_seen=first_seen.get(finding.key)
                or (finding.created_at.date() if finding.created_at else None),
                unused_days=days,
            )
        )
    return items
