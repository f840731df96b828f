"""Aggregate: one OwnerReport per recipient across all their accounts, and the org summary.

Pure and deterministic: owners sorted by address, items by priority (highest first) then key.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from .models import AccountCoverage, OrgSummary, OwnerReport, ReportItem, RunContext


def sort_items(items: Iterable[ReportItem]) -> tuple[ReportItem, ...]:
    return tuple(sorted(items, key=lambda i: (-i.priority, i.finding.key)))


def by_owner(
    items: Sequence[ReportItem],
    fallback: Sequence[str],
    context: RunContext,
    coverage: Sequence[AccountCoverage],
) -> tuple[OwnerReport, ...]:
    """Group items by recipient. Unowned items go to every fallback recipient.

    Each report carries coverage only for the accounts it covers, so an owner never learns
    about accounts that are not theirs.
    """
    grouped: dict[str, list[ReportItem]] = defaultdict(list)
    for item in items:
        for recipient in (item.owner.owner,) if item.owner.owner else tuple(fallback):
            grouped[recipient].append(item)
    reports = []
    for owner in sorted(grouped):
        owned = sort_items(grouped[owner])
        accounts = {i.account.id: i.account for i in owned}
        reports.append(
            OwnerReport(
                owner=owner,
                context=context,
                items=owned,
                accounts=tuple(accounts[a] for a in sorted(accounts)),
                coverage=tuple(c for c in coverage if c.account_id in accounts),
            )
        )
    return tuple(reports)


def summarise(
    items: Sequence[ReportItem],
    owners: Sequence[OwnerReport],
    context: RunContext,
    coverage: Sequence[AccountCoverage],
    skipped: int,
    quarantined: int,
) -> OrgSummary:
    return OrgSummary(
        context=context,
        owners=tuple(sorted(owners, key=lambda o: (-len(o.items), o.owner))),
        items=sort_items(items),
        unowned=sort_items(i for i in items if i.owner.owner is None),
        coverage=tuple(coverage),
        skipped=skipped,
        quarantined=quarantined,
    )
