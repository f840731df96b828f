"""The figures the PDF and the workbook both show, computed once from the models.

Templates get these ready-made so an override changes presentation, not arithmetic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from reporter.models import (
    Account,
    AccountCoverage,
    FindingStatus,
    FindingType,
    OrgSummary,
    OwnerReport,
    ReportItem,
    TrendPoint,
)
from reporter.orgaccess import window_text


@dataclass(frozen=True)
class Count:
    """One bar of a chart: a label, an optional detail (an account id), and a number."""

    label: str
    count: int
    detail: str = ""
    anchor: str = ""

    def share(self, largest: int) -> float:
        """Fraction of the largest bar, for drawing; 0 when everything is 0."""
        return self.count / largest if largest else 0.0


@dataclass(frozen=True)
class AccountSection:
    account: Account
    items: tuple[ReportItem, ...]
    # Findings of this account left out of the PDF by a per-account cap (all are in the workbook).
    hidden: int = 0

    @property
    def anchor(self) -> str:
        return account_anchor(self.account.id)


@dataclass(frozen=True)
class OwnerRank:
    owner: str
    accounts: int
    findings: int
    active: int
    oldest_days: int | None
    sla_breached: int = 0
    new: int = 0
    organization_access: int = 0


@dataclass(frozen=True)
class Attention:
    """The counts a reader acts on first."""

    new: int
    sla_breached: int
    excepted: int
    exception_expired: int


@dataclass(frozen=True)
class CoverageView:
    covered: tuple[AccountCoverage, ...]
    not_covered: tuple[AccountCoverage, ...]
    out_of_scope: tuple[AccountCoverage, ...]

    @property
    def in_scope(self) -> int:
        return len(self.covered) + len(self.not_covered)


def account_anchor(account_id: str) -> str:
    # Account ids are 12 digits, but the anchor must stay a valid id whatever arrives.
    return "acct-" + "".join(ch for ch in account_id if ch.isalnum())


def by_type(items: Iterable[ReportItem]) -> tuple[Count, ...]:
    """Every finding type, in the enum's order, including those with no findings."""
    counts = Counter(i.finding.type for i in items)
    return tuple(Count(t.label, counts[t], t.value) for t in FindingType)


def by_status(items: Iterable[ReportItem]) -> dict[str, int]:
    counts = Counter(i.status for i in items)
    return {s.value: counts[s] for s in FindingStatus}


def sections(
    items: Sequence[ReportItem], accounts: Sequence[Account], limit: int | None = None
) -> tuple[AccountSection, ...]:
    """Findings grouped by account, in the order aggregate gave the accounts.

    Items keep their order within an account (highest priority first). An item whose account is
    missing from `accounts` still gets a section (after the others): a report must never drop a
    finding. With `limit`, a section keeps its first `limit` items and counts the rest as hidden.
    """
    grouped: dict[str, list[ReportItem]] = {a.id: [] for a in accounts}
    known = {a.id: a for a in accounts}
    for item in items:
        account_id = item.finding.account_id
        if account_id not in grouped:
            grouped[account_id] = []
            known[account_id] = item.account
        grouped[account_id].append(item)
    return tuple(
        AccountSection(known[k], tuple(v[:limit]), max(0, len(v) - limit) if limit else 0)
        for k, v in grouped.items()
        if v
    )


def active(items: Iterable[ReportItem]) -> tuple[ReportItem, ...]:
    """Findings that need a decision: everything not covered by a valid exception."""
    return tuple(i for i in items if i.status is not FindingStatus.EXCEPTED)


@dataclass(frozen=True)
class TrendBar:
    """One run in the trend chart, in the chart's 0..100 x 0..40 coordinates."""

    x: float
    width: float
    height: float
    label: str
    findings: int
    new: int
    resolved: int


def trend_bars(points: Sequence[TrendPoint]) -> tuple[TrendBar, ...]:
    """Bars for the recent runs, oldest first, scaled to the largest."""
    if not points:
        return ()
    largest = max(p.findings for p in points) or 1
    slot = 100 / len(points)
    width = slot * 0.6
    return tuple(
        TrendBar(
            x=n * slot + (slot - width) / 2,
            width=width,
            height=36 * p.findings / largest,
            label=p.started_at.strftime("%d %b"),
            findings=p.findings,
            new=p.new,
            resolved=p.resolved,
        )
        for n, p in enumerate(points)
    )


def by_account(items: Sequence[ReportItem], accounts: Sequence[Account]) -> tuple[Count, ...]:
    """Findings per account, most first; accounts without findings are listed with 0."""
    counts = Counter(i.finding.account_id for i in items)
    names = {a.id: a.name for a in accounts}
    for item in items:
        names.setdefault(item.finding.account_id, item.account.name)
    rows = [Count(names[k], counts[k], k, account_anchor(k)) for k in names]
    return tuple(sorted(rows, key=lambda c: (-c.count, c.label.lower(), c.detail)))


def oldest(items: Iterable[ReportItem], limit: int = 10) -> tuple[ReportItem, ...]:
    """The longest-unused findings; unknown ages last."""
    known = [i for i in items if i.unused_days is not None]
    known.sort(key=lambda i: (-(i.unused_days or 0), -i.priority, i.finding.key))
    return tuple(known[:limit])


def coverage(rows: Iterable[AccountCoverage]) -> CoverageView:
    rows = tuple(rows)
    return CoverageView(
        covered=tuple(c for c in rows if c.in_scope and c.covered),
        not_covered=tuple(c for c in rows if c.in_scope and not c.covered),
        out_of_scope=tuple(c for c in rows if not c.in_scope),
    )


def owner_ranking(summary: OrgSummary) -> tuple[OwnerRank, ...]:
    """Owners with the most findings first."""
    ranks = [_rank(r) for r in summary.owners]
    return tuple(sorted(ranks, key=lambda r: (-r.findings, -r.active, r.owner)))


def _rank(report: OwnerReport) -> OwnerRank:
    ages = [i.unused_days for i in report.items if i.unused_days is not None]
    return OwnerRank(
        owner=report.owner,
        accounts=len(report.accounts),
        findings=len(report.items),
        active=sum(1 for i in report.items if i.status is FindingStatus.ACTIVE),
        oldest_days=max(ages) if ages else None,
        sla_breached=sum(1 for i in report.items if i.sla_breached),
        new=sum(1 for i in report.items if i.new),
        organization_access=sum(1 for i in report.items if i.organization_access is not None),
    )


def attention(items: Iterable[ReportItem]) -> Attention:
    new = breached = excepted = expired = 0
    for i in items:
        new += i.new
        breached += i.sla_breached
        excepted += i.status is FindingStatus.EXCEPTED
        expired += i.exception is not None and i.exception.expired
    return Attention(new, breached, excepted, expired)


def sla_breaches(items: Iterable[ReportItem], limit: int) -> tuple[ReportItem, ...]:
    """Findings past their SLA, the most overdue first."""
    late = [i for i in items if i.sla_breached]
    late.sort(key=lambda i: (-((i.age_days or 0) - (i.sla_days or 0)), -i.priority, i.finding.key))
    return tuple(late[:limit])


def new_items(items: Iterable[ReportItem], limit: int) -> tuple[ReportItem, ...]:
    return tuple(i for i in items if i.new)[:limit]


def excepted(items: Iterable[ReportItem]) -> tuple[ReportItem, ...]:
    """Findings an exception covers, expired ones (active again) first."""
    covered = [i for i in items if i.exception is not None]
    covered.sort(key=lambda i: (not i.exception.expired if i.exception else True, i.finding.key))
    return tuple(covered)


def all_items(summary: OrgSummary) -> tuple[ReportItem, ...]:
    """Every finding of the run: `items`, plus any unowned one not already among them.

    The model does not say whether `items` includes `unowned`; taking the union by key makes
    the summary complete either way.
    """
    seen = {i.finding.key for i in summary.items}
    return summary.items + tuple(i for i in summary.unowned if i.finding.key not in seen)


def actionable(items: Iterable[ReportItem]) -> tuple[ReportItem, ...]:
    """Findings an owner may act on: everything but organization access."""
    return tuple(i for i in items if i.organization_access is None)


def organization_access(items: Iterable[ReportItem]) -> tuple[ReportItem, ...]:
    """Organization access findings (`reporter.orgaccess`), by account, principal and type:
    counted apart, listed for the security team, never given deletion commands."""
    found = [i for i in items if i.organization_access is not None]
    found.sort(key=lambda i: (i.finding.account_id, i.finding.principal_name, i.finding.type))
    return tuple(found)


def windows(items: Iterable[ReportItem]) -> tuple[str, ...]:
    """The observation windows of these findings, as sentences, the most common first."""
    counts = Counter(window_text(i.window) for i in items)
    return tuple(text for text, _ in sorted(counts.items(), key=lambda c: (-c[1], c[0])))
