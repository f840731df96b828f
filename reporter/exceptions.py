"""Exceptions as code: which findings an approved exception covers, and which exceptions to flag.

Pure. The config (`exceptions` section and `exceptions.file`) is validated by `reporter.config`;
here the rules become plain frozen values and are matched against findings.

Semantics:
- A rule matches a finding when every matcher it has matches (accounts, principal ARN glob,
  finding types, principal tags); a rule without matchers cannot be written (config error).
- `expires` is the last day the exception applies: on `expires + 1` it is expired.
- A finding takes the first matching rule that has not expired; only when every matching rule
  has expired does it take the first of those, flagged `expired` (it is active again).
- One notice per rule that needs attention: `expired`, else `stale` (matches no finding),
  else `expiring` (expires within `warn_days`). `matched` counts the findings a rule matches.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from .models import ExceptionMatch, ExceptionNotice, Finding, FindingStatus, FindingType

if TYPE_CHECKING:
    from .config import ExceptionsSettings

__all__ = [
    "ExceptionOutcome",
    "ExceptionRule",
    "apply_exceptions",
    "notices_by_recipient",
    "notices_for",
    "recipients_for_notice",
    "rules_from_settings",
    "status_for",
]

EXPIRED = "expired"
EXPIRING = "expiring"
STALE = "stale"


@dataclass(frozen=True)
class ExceptionRule:
    """One approved exception. Empty matchers are "any"; at least one is set (config checks)."""

    id: str
    reason: str
    approved_by: str
    expires: date
    accounts: frozenset[str] = frozenset()
    principal_arn: str | None = None
    types: frozenset[FindingType] = frozenset()
    # Pairs rather than a dict, so that the rule stays hashable.
    principal_tags: tuple[tuple[str, str], ...] = ()
    # Where the rule is written, e.g. `exceptions.rules[2]` or `exceptions.yaml:rules[0]`.
    source: str = ""

    def matches(self, finding: Finding) -> bool:
        if self.accounts and finding.account_id not in self.accounts:
            return False
        if self.types and finding.type not in self.types:
            return False
        # fnmatchcase: ARNs are case-sensitive, and `*` deliberately spans `/` so that
        # `role/*` also covers roles under a path such as `role/team/app`.
        if self.principal_arn is not None and not fnmatchcase(
            finding.principal_arn, self.principal_arn
        ):
            return False
        tags = finding.principal_tags
        return all(tags.get(key) == value for key, value in self.principal_tags)

    def expired_on(self, today: date) -> bool:
        return today > self.expires

    def as_match(self, today: date) -> ExceptionMatch:
        return ExceptionMatch(
            id=self.id,
            reason=self.reason,
            approved_by=self.approved_by,
            expires=self.expires,
            expired=self.expired_on(today),
        )


@dataclass(frozen=True)
class ExceptionOutcome:
    """What the exceptions did to one run's findings."""

    # finding.key → the exception covering it (expired=True: it no longer does; flag it).
    by_key: Mapping[str, ExceptionMatch] = field(default_factory=dict)
    # One notice per rule that needs attention, in rule order.
    notices: tuple[ExceptionNotice, ...] = ()
    # rule id → keys of every finding the rule matches (chosen or not), in finding order.
    matched_keys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def rules_from_settings(settings: ExceptionsSettings) -> tuple[ExceptionRule, ...]:
    """The validated rules of the config and of `exceptions.file`, in matching order."""
    return tuple(
        ExceptionRule(
            id=rule.id,
            reason=rule.reason,
            approved_by=rule.approved_by,
            expires=rule.expires,
            accounts=frozenset(rule.accounts),
            principal_arn=rule.principal_arn,
            types=frozenset(rule.types),
            principal_tags=tuple(sorted(rule.principal_tags.items())),
            source=source,
        )
        for source, rule in settings.all_rules()
    )


def apply_exceptions(
    findings: Sequence[Finding],
    rules: Sequence[ExceptionRule],
    today: date,
    warn_days: int,
) -> ExceptionOutcome:
    """Match every finding against the rules; list the rules to flag."""
    matched: dict[str, list[str]] = defaultdict(list)
    by_key: dict[str, ExceptionMatch] = {}
    for finding in findings:
        matching = [rule for rule in rules if rule.matches(finding)]
        for rule in matching:
            matched[rule.id].append(finding.key)
        live = [rule for rule in matching if not rule.expired_on(today)]
        chosen = (live or matching)[:1]
        if chosen:
            by_key[finding.key] = chosen[0].as_match(today)
    notices = []
    for rule in rules:
        count = len(matched.get(rule.id, ()))
        kind = _notice_kind(rule, count, today, warn_days)
        if kind:
            notices.append(
                ExceptionNotice(
                    id=rule.id,
                    kind=kind,
                    expires=rule.expires,
                    approved_by=rule.approved_by,
                    reason=rule.reason,
                    matched=count,
                )
            )
    return ExceptionOutcome(
        by_key=by_key,
        notices=tuple(notices),
        matched_keys={rule_id: tuple(keys) for rule_id, keys in matched.items()},
    )


def _notice_kind(rule: ExceptionRule, matched: int, today: date, warn_days: int) -> str:
    if rule.expired_on(today):
        return EXPIRED
    if matched == 0:
        return STALE
    if (rule.expires - today).days <= warn_days:
        return EXPIRING
    return ""


def status_for(match: ExceptionMatch | None) -> FindingStatus:
    """EXCEPTED while a live exception covers the finding; an expired one puts it back."""
    return (
        FindingStatus.EXCEPTED if match is not None and not match.expired else FindingStatus.ACTIVE
    )


def notices_for(keys: Iterable[str], outcome: ExceptionOutcome) -> tuple[ExceptionNotice, ...]:
    """The notices of exceptions that match any of these findings (e.g. one owner's)."""
    wanted = set(keys)
    return tuple(
        notice
        for notice in outcome.notices
        if wanted.intersection(outcome.matched_keys.get(notice.id, ()))
    )


def recipients_for_notice(
    notice: ExceptionNotice,
    outcome: ExceptionOutcome,
    owner_of: Mapping[str, str | None],
    allows: Callable[[str], bool],
) -> tuple[str, ...]:
    """Who must hear about a notice: its approver and the owners of the findings it matches.

    `owner_of` maps finding.key → resolved owner address (None = unowned). `allows` is the
    `allowed_domains` rule (`settings.owners.allows`): an approver outside it is never mailed.
    A stale exception matches no finding, so it goes to its approver only.
    """
    recipients = {
        owner
        for key in outcome.matched_keys.get(notice.id, ())
        if (owner := owner_of.get(key)) is not None
    }
    if allows(notice.approved_by):
        # Lower-cased as the owner ladder does its addresses: `Dave@example.com` in a rule is
        # the owner `dave@example.com`, one report and one e-mail, not two.
        recipients.add(notice.approved_by.lower())
    return tuple(sorted(recipients))


def notices_by_recipient(
    outcome: ExceptionOutcome,
    owner_of: Mapping[str, str | None],
    allows: Callable[[str], bool],
) -> Mapping[str, tuple[ExceptionNotice, ...]]:
    """recipient → the notices they must see, in rule order (for OwnerReport.exception_notices)."""
    grouped: dict[str, list[ExceptionNotice]] = defaultdict(list)
    for notice in outcome.notices:
        for recipient in recipients_for_notice(notice, outcome, owner_of, allows):
            grouped[recipient].append(notice)
    return {recipient: tuple(notices) for recipient, notices in sorted(grouped.items())}
