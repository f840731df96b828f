"""Enrich: owner, links, remediation and priority for each finding. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime

from .exceptions import status_for
from .history import age
from .links import links_for
from .models import (
    Account,
    ExceptionMatch,
    Finding,
    FindingStatus,
    ObservationWindow,
    RemediationStep,
    ReportItem,
)
from .orgaccess import Rules, classify, window_for
from .owners import OwnerRules, resolve_owner
from .priority import priority
from .remediation import OrganizationAccessRemediation, Remediation


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
    organization: Rules | None = None,
    windows: Mapping[str, ObservationWindow] | None = None,
    exception_approver: str = "",
    exception_expires: date | None = None,
) -> list[ReportItem]:
    """One ReportItem per finding.

    `first_seen` and `new_keys` come from the history; without one, the source's creation date
    stands in for first seen. `exceptions` maps finding keys to the exception covering them
    (`exceptions.apply_exceptions`); an excepted finding keeps its place in the reports, in
    its own section, at a lower priority.

    With `organization` (`orgaccess.rules_from_settings`), organization access principals are
    recognised: read-only steps instead of removal (with an exception suggested for
    `exception_approver` until `exception_expires`), a priority below every actionable finding,
    and no SLA. `windows` (the collection's, per source) give each finding its observation window.
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
        access = classify(finding, organization) if organization is not None else None
        steps: Sequence[RemediationStep] = (
            Remediation(finding, links)
            if access is None
            else OrganizationAccessRemediation(
                finding, links, access, exception_approver, exception_expires
            )
        )
        items.append(
            ReportItem(
                finding=finding,
                account=account,
                owner=resolve_owner(finding, account, rules, contacts or {}, contact_errors or {}),
                links=links,
                remediation=steps,
                priority=priority(
                    finding,
                    days,
                    excepted=status is FindingStatus.EXCEPTED,
                    organization_access=access is not None,
                ),
                status=status,
                first_seen=seen,
                unused_days=days,
                exception=match,
                age_days=open_for.days,
                sla_days=open_for.sla_days,
                # An excepted finding is accepted risk until its exception expires; organization
                # access is not to be removed, so no removal deadline applies.
                sla_breached=open_for.breached
                and status is not FindingStatus.EXCEPTED
                and access is None,
                new=finding.key in new_keys,
                organization_access=access,
                window=window_for(finding, windows or {}),
            )
        )
    return items
