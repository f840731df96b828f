"""Enrich: owner, links, remediation and priority for each finding. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime

from .exceptions import status_for
from .history import age
from .links import links_for
from .models import Account, ExceptionMatch, Finding, FindingStatus, ReportItem
from .owners import OwnerRules, resolve_owner
from .priority import priority
from .remediation import Remediation


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
    *,
    new_keys: frozenset[str] = frozenset(),
    exceptions: Mapping[str, ExceptionMatch] | None = None,
    sla_days: Mapping[str, int] | None = None,
    contacts: Mapping[str, str] | None = None,
    contact_errors: Mapping[str, str] | None = None,
) -> list[ReportItem]:
    """One ReportItem per finding.

    `first_seen` and `new_keys` come from the history; without one, the source's creation date
    stands in for first seen. `exceptions` maps finding keys to the exception covering them
    (`exceptions.apply_exceptions`); an excepted finding keeps its place in the reports, in
    its own section, at a lower priority.
    """
    first_seen = first_seen or {}
    exceptions = exceptions or {}
    items = []
    for finding in findings:
        account = accounts.get(finding.account_id) or unknown_account(finding.account_id)
        links = links_for(finding, home_region)
        days = unused_days(finding, now)
        match = exceptions.get(finding.key)
        status = status_for(match)
        seen = first_seen.get(finding.key) or (
            finding.created_at.date() if finding.created_at else None
        )
        open_for = age(seen, now.date(), finding.type, sla_days or {})
        items.append(
            ReportItem(
                finding=finding,
                account=account,
                owner=resolve_owner(finding, account, rules, contacts or {}, contact_errors or {}),
                links=links,
                remediation=Remediation(finding, links),
                priority=priority(finding, days, excepted=status is FindingStatus.EXCEPTED),
                status=status,
                first_seen=seen,
                unused_days=days,
                exception=match,
                age_days=open_for.days,
                sla_days=open_for.sla_days,
                # An excepted finding is accepted risk until its exception expires.
                sla_breached=open_for.breached and status is not FindingStatus.EXCEPTED,
                new=finding.key in new_keys,
            )
        )
    return items
