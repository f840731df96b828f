"""Finding history across runs: first seen, last seen, resolved; ages and SLA. Pure.

The store that keeps it is `reporter.state.history.HistoryStore`. AWS deletes resolved findings
90 days after their last update; the history keeps them, so age and resolution survive that.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

from .models import FindingType, ResolvedFinding


@dataclass(frozen=True)
class Seen:
    """What the history knows of one finding key."""

    key: str
    account_id: str
    first_seen: datetime
    last_seen: datetime
    resolved_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.resolved_at is None


@dataclass(frozen=True)
class HistoryDiff:
    """This run against the history: every current key's record, and what changed."""

    rows: Mapping[str, Seen]
    new: frozenset[str]
    still_open: frozenset[str]
    resolved: frozenset[str]


def diff(
    previous: Mapping[str, Seen],
    current: Iterable[tuple[str, str, datetime | None]],
    covered_accounts: frozenset[str],
    now: datetime,
) -> HistoryDiff:
    """`current` is (key, account id, the source's creation date) triples. A new finding's first
    sighting is the source's creation date when that is earlier than this run. A finding
    missing from this run counts as resolved only if its account was covered: an account we
    could not read resolves nothing."""
    rows: dict[str, Seen] = {}
    new: set[str] = set()
    still: set[str] = set()
    for key, account_id, created in current:
        before = previous.get(key)
        if before is None or not before.open:
            new.add(key)
            first = min(now, created) if created and before is None else now
            rows[key] = Seen(key, account_id, first, now)
        else:
            still.add(key)
            rows[key] = Seen(key, account_id, before.first_seen, now)
    resolved = set()
    for key, before in previous.items():
        if before.open and key not in rows and before.account_id in covered_accounts:
            resolved.add(key)
            rows[key] = Seen(key, before.account_id, before.first_seen, before.last_seen, now)
    return HistoryDiff(rows, frozenset(new), frozenset(still), frozenset(resolved))


def split_key(key: str) -> tuple[str, str, str]:
    """(account id, finding type, principal ARN) of a finding key (`models.Finding.key`)."""
    account_id, type_, arn = key.split("/", 2)
    return account_id, type_, arn


def resolved_findings(changes: HistoryDiff) -> tuple[ResolvedFinding, ...]:
    """The findings this run resolved, as the reports show them, oldest first."""
    found = []
    for key in sorted(changes.resolved):
        seen = changes.rows[key]
        account_id, type_, arn = split_key(key)
        found.append(
            ResolvedFinding(
                key=key,
                account_id=account_id,
                type=type_,
                principal_arn=arn,
                first_seen=seen.first_seen,
                resolved_at=seen.resolved_at or seen.last_seen,
            )
        )
    return tuple(sorted(found, key=lambda r: (r.first_seen, r.key)))


@dataclass(frozen=True)
class Age:
    days: int | None
    sla_days: int | None
    breached: bool


def age(
    first_seen: date | None, today: date, type_: FindingType, sla_days: Mapping[str, int]
) -> Age:
    """Days open since first seen, against the SLA for the finding's type (config
    `reports.sla_days`). A finding open exactly `sla_days` days is not yet in breach."""
    days = None if first_seen is None else max(0, (today - first_seen).days)
    sla = sla_days.get(type_.value)
    return Age(days, sla, days is not None and sla is not None and days > sla)
