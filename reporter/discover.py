"""Discover the organization: accounts (by `State`), their OU path and tags, and the scope.

Fetch and parse are split: `fetch_organization` makes the AWS calls and returns plain data,
`parse_accounts`, `split_scope` and `coverage_for` are pure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .models import Account, AccountCoverage


@dataclass(frozen=True)
class Scope:
    include_accounts: frozenset[str] = frozenset()
    exclude_accounts: frozenset[str] = frozenset()
    include_ous: frozenset[str] = frozenset()
    exclude_ous: frozenset[str] = frozenset()


@dataclass(frozen=True)
class OrganizationData:
    """What Organizations returned, before parsing."""

    accounts: tuple[dict[str, Any], ...]
    # account id -> (ids, names) of the root and OUs above it, outermost first
    parents: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)


def fetch_organization(org: Any) -> OrganizationData:
    """Read accounts, the OU tree and account tags with as few calls as the API allows.

    Walking the tree top-down costs one call per OU; asking ListParents per account would
    cost one per account and level.
    """
    accounts = tuple(
        account
        for page in org.get_paginator("list_accounts").paginate()
        for account in page["Accounts"]
    )
    parents: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for root in org.list_roots()["Roots"]:
        _walk(org, root["Id"], (root["Id"],), (), parents)
    tags: dict[str, dict[str, str]] = {}
    for account in accounts:
        pages = org.get_paginator("list_tags_for_resource").paginate(ResourceId=account["Id"])
        tags[account["Id"]] = {t["Key"]: t["Value"] for page in pages for t in page["Tags"]}
    return OrganizationData(accounts=accounts, parents=parents, tags=tags)


def management_account_id(data: OrganizationData) -> str | None:
    """The management account, read from any account's ARN, which names it:
    `arn:aws:organizations::<management account>:account/o-…/<account>` (the Organizations
    ARN format; no extra call, no extra permission). None when no ARN says."""
    for account in data.accounts:
        parts = str(account.get("Arn", "")).split(":")
        if len(parts) >= 6 and parts[2] == "organizations" and parts[4].isdigit():
            return parts[4]
    return None


def _walk(
    org: Any,
    parent_id: str,
    ids: tuple[str, ...],
    names: tuple[str, ...],
    out: dict[str, tuple[tuple[str, ...], tuple[str, ...]]],
) -> None:
    for page in org.get_paginator("list_accounts_for_parent").paginate(ParentId=parent_id):
        for account in page["Accounts"]:
            out[account["Id"]] = (ids, names)
    for page in org.get_paginator("list_organizational_units_for_parent").paginate(
        ParentId=parent_id
    ):
        for ou in page["OrganizationalUnits"]:
            _walk(org, ou["Id"], (*ids, ou["Id"]), (*names, ou["Name"]), out)


def parse_accounts(data: OrganizationData) -> list[Account]:
    """Organizations data → Accounts, sorted by id. `State` is used; `Status` is retired."""
    result = []
    for raw in data.accounts:
        ids, names = data.parents.get(raw["Id"], ((), ()))
        result.append(
            Account(
                id=raw["Id"],
                name=raw.get("Name", raw["Id"]),
                email=raw.get("Email", ""),
                state=raw.get("State") or raw.get("Status", "ACTIVE"),
                ou_path=names,
                ou_ids=ids,
                tags=data.tags.get(raw["Id"], {}),
                joined_at=_aware(raw.get("JoinedTimestamp")),
            )
        )
    return sorted(result, key=lambda a: a.id)


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def in_scope(account: Account, scope: Scope) -> str:
    """Why an account is out of scope, or "" when it is in scope."""
    if not account.active:
        return f"account is {account.state}"
    if account.id in scope.exclude_accounts:
        return "excluded by config (organization.exclude_accounts)"
    if scope.exclude_ous.intersection(account.ou_ids):
        return "excluded by config (organization.exclude_ous)"
    if scope.include_accounts or scope.include_ous:
        listed = account.id in scope.include_accounts
        under = bool(scope.include_ous.intersection(account.ou_ids))
        if not (listed or under):
            return "not included by config (organization.include_accounts / include_ous)"
    return ""


def split_scope(
    accounts: Iterable[Account], scope: Scope
) -> tuple[list[Account], list[AccountCoverage]]:
    """Accounts to assess, and coverage entries for the ones we list but do not assess."""
    assess: list[Account] = []
    skipped: list[AccountCoverage] = []
    for account in accounts:
        reason = in_scope(account, scope)
        if reason:
            skipped.append(
                AccountCoverage(
                    account_id=account.id,
                    account_name=account.name,
                    state=account.state,
                    covered=False,
                    reason=reason,
                    in_scope=False,
                )
            )
        else:
            assess.append(account)
    return assess, skipped


def coverage_for(accounts: Sequence[Account], sources: Sequence[str]) -> list[AccountCoverage]:
    """Every account covered by all of `sources` (exported files: whatever they name)."""
    return [
        AccountCoverage(a.id, a.name, a.state, covered=True, sources=tuple(sorted(sources)))
        for a in accounts
    ]


# A source's verdict on one account: "" = covered, a reason = not covered, None = the source
# is not meant for this account (the IAM fallback where the analyzer covers).
Verdict = Callable[[Account], str | None]


def combine_coverage(
    accounts: Sequence[Account], verdicts: Mapping[str, Verdict]
) -> list[AccountCoverage]:
    """Per account, the sources that covered it; if none did, every source's reason.

    Covered by one source is covered: the finding types overlap. The reasons of the sources
    that missed a covered account are kept too ("not by iam: ..."), so a partial gap is visible.
    """
    result = []
    for account in accounts:
        covering: list[str] = []
        reasons: list[str] = []
        for name, verdict in sorted(verdicts.items()):
            reason = verdict(account)
            if reason:
                reasons.append(f"{name}: {reason}")
            elif reason is not None:
                covering.append(name)
        if not covering and not reasons:
            reasons.append("no enabled source reads this account")
        text = "; ".join(reasons)
        result.append(
            AccountCoverage(
                account.id,
                account.name,
                account.state,
                covered=bool(covering),
                sources=tuple(covering),
                reason=f"not by {text}" if covering and text else text,
            )
        )
    return result
