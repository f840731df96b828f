"""Who owns a finding: a pure ladder that also says which rule decided (DESIGN.md §Owners)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .models import Account, OwnerResolution


@dataclass(frozen=True)
class OwnerRules:
    account_tag_keys: tuple[str, ...] = ("owner",)
    names: Mapping[str, str] = field(default_factory=dict)
    allowed_domains: tuple[str, ...] = ()
    fallback: tuple[str, ...] = ()


# One plain address and nothing else: a tag value such as "evil@x.test a@example.com" must
# not pass as an address in example.com (a mail parser would take the first one).
_ADDRESS = re.compile(
    r"^[A-Za-z0-9.!#$%&*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$"
)


def is_allowed(address: str, allowed_domains: tuple[str, ...]) -> bool:
    """Mail only goes to a plain address in one of the configured domains (exact match, as
    `owners.allowed_domains` is documented)."""
    if not _ADDRESS.match(address):
        return False
    domain = address.rpartition("@")[2].lower()
    return domain in {d.lower() for d in allowed_domains}


def resolve_owner(account: Account, rules: OwnerRules) -> OwnerResolution:
    """First rule that yields an allowed address wins; otherwise the finding is unowned.

    A tag naming someone outside the allowed domains is not mailed: the ladder goes on and the
    rule text says why, so the report can show it.
    """
    notes: list[str] = []
    for key in rules.account_tag_keys:
        value = account.tags.get(key, "").strip()
        if not value:
            continue
        address = value if "@" in value else rules.names.get(value, "")
        where = f"account tag `{key}` on {account.id}"
        if not address:
            notes.append(f"{where} names {value!r}, who has no address in owners.names")
        elif not is_allowed(address, rules.allowed_domains):
            notes.append(f"{where} names {address}, outside owners.allowed_domains")
        else:
            return OwnerResolution(owner=address.lower(), rule=where)
    reason = "; ".join(notes) if notes else f"no owner tag on {account.id}"
    return OwnerResolution(owner=None, rule=f"unowned ({reason}): sent to fallback recipients")
