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
)


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
    items: Sequence[ReportItem], accounts: Sequence[Account]
) -> tuple[AccountSection, ...]:
    """Findings grouped by account, in the order aggregate gave the accounts.

    Items keep their order within an account. An item whose account is missing from `accounts`
    still gets a section (after the others): a report must never drop a finding.
    """
    grouped: dict[str, list[ReportItem]] = {a.id: [] for a in accounts}
    known = {a.id: a for a in accounts}
    for item in items:
        account_id = item.finding.account_id
        if account_id not in grouped:
            grouped[account_id] = []
            known[account_id] = item.account
        grouped[account_id].append(item)
    return tuple(AccountSection(known[k], tuple(v)) for k, v in grouped.items() if v)


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
    )


def all_items(summary: OrgSummary) -> tuple[ReportItem, ...]:
    """Every finding of the run: `items`, plus any unowned one not already among them.

    The model does not say whether `items` includes `unowned`; taking the union by key makes
    the summary complete either way.
    """
    seen = {i.finding.key for i in summary.items}
    return summary.items + tuple(i for i in summary.unowned if i.finding.key not in seen)
