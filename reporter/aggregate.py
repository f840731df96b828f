"""Aggregate: one OwnerReport per recipient across all their accounts, and the org summary.

Pure and deterministic: owners sorted by address, items by priority (highest first) then key.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence

from .models import (
    AccountCoverage,
    ExceptionNotice,
    Lookalike,
    OrgSummary,
    OwnerReport,
    ReportItem,
    ResolvedFinding,
    ReviewProgress,
    RunContext,
    TrendPoint,
)


def sort_items(items: Iterable[ReportItem]) -> tuple[ReportItem, ...]:
    """Overdue promised removals first, then highest priority first; organization access after
    every actionable finding whatever its score (priority already puts it low; this keeps it
    there for a custom score)."""
    return tuple(
        sorted(
            items,
            key=lambda i: (
                i.organization_access is not None,
                not (i.review is not None and i.review.overdue),
                -i.priority,
                i.finding.key,
            ),
        )
    )


def by_owner(
    items: Sequence[ReportItem],
    fallback: Sequence[str],
    context: RunContext,
    coverage: Sequence[AccountCoverage],
    resolved: Sequence[ResolvedFinding] = (),
    notices: Sequence[ExceptionNotice] = (),
    resolved_owner: Callable[[ResolvedFinding], str | None] | None = None,
    notices_by_recipient: Mapping[str, Sequence[ExceptionNotice]] | None = None,
) -> tuple[OwnerReport, ...]:
    """Group items by recipient. Unowned items go to every fallback recipient.

    Each report carries coverage only for the accounts it covers, so an owner never learns
    about accounts that are not theirs. A resolved finding no longer has an owner; it goes to
    every owner with findings in its account. An exception notice goes to the owners whose
    findings the exception covers.

    With `resolved_owner` (the owner ladder run on what is left of a resolved finding), a
    resolved finding goes to that owner instead — even one with no open finding left in the
    account. With `notices_by_recipient` (`exceptions.notices_by_recipient`), notices go where
    it says, approvers included: an approver with no finding of their own gets a report of
    their notices alone, or an exception would expire without its approver hearing of it.
    """
    resolved_by_account: dict[str, list[ResolvedFinding]] = defaultdict(list)
    resolved_by_owner: dict[str, list[ResolvedFinding]] = defaultdict(list)
    for r in resolved:
        resolved_by_account[r.account_id].append(r)
        if resolved_owner is not None:
            owner = resolved_owner(r)
            for recipient in (owner,) if owner else tuple(fallback):
                resolved_by_owner[recipient].append(r)
    grouped: dict[str, list[ReportItem]] = defaultdict(list)
    for item in items:
        for recipient in (item.owner.owner,) if item.owner.owner else tuple(fallback):
            grouped[recipient].append(item)
    recipients = set(grouped)
    if notices_by_recipient is not None:
        recipients.update(r for r, notices in notices_by_recipient.items() if notices)
    reports = []
    for owner in sorted(recipients):
        owned = sort_items(grouped.get(owner, ()))
        accounts = {i.account.id: i.account for i in owned}
        exception_ids = {i.exception.id for i in owned if i.exception is not None}
        reports.append(
            OwnerReport(
                owner=owner,
                context=context,
                items=owned,
                accounts=tuple(accounts[a] for a in sorted(accounts)),
                coverage=tuple(c for c in coverage if c.account_id in accounts),
                resolved=(
                    tuple(resolved_by_owner.get(owner, ()))
                    if resolved_owner is not None
                    else tuple(r for a in sorted(accounts) for r in resolved_by_account[a])
                ),
                exception_notices=(
                    tuple(notices_by_recipient.get(owner, ()))
                    if notices_by_recipient is not None
                    else tuple(n for n in notices if n.id in exception_ids)
                ),
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
    resolved: Sequence[ResolvedFinding] = (),
    notices: Sequence[ExceptionNotice] = (),
    trend: Sequence[TrendPoint] = (),
    lookalikes: Sequence[tuple[Lookalike, int]] = (),
    organization_access_notes: Sequence[str] = (),
    review_progress: Sequence[ReviewProgress] = (),
) -> OrgSummary:
    return OrgSummary(
        context=context,
        owners=tuple(sorted(owners, key=lambda o: (-len(o.items), o.owner))),
        items=sort_items(items),
        unowned=sort_items(i for i in items if i.owner.owner is None),
        coverage=tuple(coverage),
        skipped=skipped,
        quarantined=quarantined,
        resolved=tuple(resolved),
        exception_notices=tuple(notices),
        trend=tuple(trend),
        lookalikes=tuple(sorted(lookalikes, key=lambda x: (-x[1], x[0].product, x[0].account_id))),
        organization_access_notes=tuple(organization_access_notes),
        review_progress=tuple(review_progress),
        # Owners said these are not theirs: the security team finds them a home.
        triage=sort_items(i for i in items if i.review is not None and i.review.state == "triage"),
    )
