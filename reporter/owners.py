"""Who owns a finding: a pure ladder that also says which rule decided (DESIGN.md §Owners).

The ladder runs its steps in the configured order and the first one that yields a usable
address wins. A value that cannot be mailed (outside `allowed_domains`, a name without an
address, anything but one plain address) never stops the ladder: it goes on, and the reason is
kept in `OwnerResolution.notes` so the report can say why the obvious owner was not chosen.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

# The ladder's steps and the allowed-address rule are the config's (`owners.ladder`,
# `owners.allowed_domains`), which checks the settings by them; re-exported here for the stages.
from .config import DEFAULT_LADDER, PLAIN_ADDRESS, OwnersSettings, Step, is_allowed
from .models import Account, Finding, OwnerResolution

_EMPTY: Mapping[str, str] = MappingProxyType({})
# Tag values and contacts come from AWS and may be long; a note quotes only the start.
_QUOTE_WIDTH = 80


@dataclass(frozen=True)
class OwnerRules:
    """The ladder and its data, as `rules_from_settings` builds it from `owners` in the config.

    Owner values (tags, `ous`, `accounts`) are an address or a name looked up in `names`.
    """

    ladder: tuple[Step, ...] = DEFAULT_LADDER
    principal_tag_keys: tuple[str, ...] = ("owner",)
    account_tag_keys: tuple[str, ...] = ("owner",)
    # OU or root id → owner; the OU nearest the account wins.
    ous: Mapping[str, str] = field(default_factory=dict)
    # Account id → owner.
    accounts: Mapping[str, str] = field(default_factory=dict)
    names: Mapping[str, str] = field(default_factory=dict)
    # Owner address → manager address, for escalation.
    managers: Mapping[str, str] = field(default_factory=dict)
    allowed_domains: tuple[str, ...] = ()
    fallback: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Owners are compared lower-cased (see `_usable`), so the manager lookup must be too.
        managers = {k.strip().lower(): v.strip() for k, v in self.managers.items()}
        object.__setattr__(self, "managers", MappingProxyType(managers))

    def before(self, step: Step) -> OwnerRules:
        """The same rules with the ladder cut just before `step` (then straight to fallback)."""
        if step not in self.ladder:
            return self
        kept = self.ladder[: self.ladder.index(step)]
        return replace(self, ladder=(*kept, Step.FALLBACK))


def rules_from_settings(owners: OwnersSettings) -> OwnerRules:
    """The `owners` section of the config as the ladder's rules."""
    return OwnerRules(
        ladder=tuple(Step(step) for step in owners.ladder),
        principal_tag_keys=tuple(owners.principal_tag_keys),
        account_tag_keys=tuple(owners.account_tag_keys),
        ous=dict(owners.ous),
        accounts=dict(owners.accounts),
        names=dict(owners.names),
        managers=dict(owners.managers),
        allowed_domains=tuple(owners.allowed_domains),
        fallback=tuple(owners.fallback),
    )


def resolve_owner(
    finding: Finding,
    account: Account,
    rules: OwnerRules,
    contacts: Mapping[str, str] = _EMPTY,
    contact_errors: Mapping[str, str] = _EMPTY,
) -> OwnerResolution:
    """First rule of the ladder that yields an allowed address wins; else the finding is unowned.

    `contacts` holds the SECURITY alternate contact address per account id (see
    `reporter.contacts`); `contact_errors` why an account's contact could not be read, which
    becomes a note when the ladder reaches that step.
    """
    notes: list[str] = []
    for step in rules.ladder:
        if step is Step.FALLBACK:
            break
        for where, value in _candidates(step, finding, account, rules, contacts, contact_errors):
            if value is None:
                notes.append(where)
                continue
            address, problem = _usable(value, rules)
            if address is None:
                notes.append(f"{where}: {problem}")
                continue
            return OwnerResolution(
                owner=address,
                rule=where,
                manager=_manager(address, rules, notes),
                notes=tuple(notes),
            )
    return OwnerResolution(
        owner=None,
        rule="fallback: no rule of the ladder named a usable owner; sent to the fallback "
        "recipients",
        notes=tuple(notes),
    )


def needs_contacts(
    findings: Iterable[Finding], accounts: Mapping[str, Account], rules: OwnerRules
) -> list[str]:
    """Account ids whose SECURITY alternate contact could decide an owner, sorted.

    That is every account with a finding that the rules before `alternate_contact` leave
    unowned; none at all when the ladder does not use alternate contacts. Only these need a
    GetAlternateContact call.
    """
    if Step.ALTERNATE_CONTACT not in rules.ladder:
        return []
    earlier = rules.before(Step.ALTERNATE_CONTACT)
    # Without principal tags in front, the answer is the same for every finding of an account.
    per_finding = Step.PRINCIPAL_TAG in earlier.ladder
    needed: set[str] = set()
    decided: set[str] = set()
    for finding in findings:
        account_id = finding.account_id
        if account_id in needed or (not per_finding and account_id in decided):
            continue
        account = accounts.get(account_id) or Account(id=account_id, name=account_id)
        decided.add(account_id)
        if resolve_owner(finding, account, earlier).owner is None:
            needed.add(account_id)
    return sorted(needed)


def _candidates(
    step: Step,
    finding: Finding,
    account: Account,
    rules: OwnerRules,
    contacts: Mapping[str, str],
    contact_errors: Mapping[str, str],
) -> Iterator[tuple[str, str | None]]:
    """(rule text, owner value) for each value this step offers, in order of preference.

    A value of None means the step could not be evaluated; the rule text then is the note.
    """
    if step is Step.PRINCIPAL_TAG:
        for key in rules.principal_tag_keys:
            value = finding.principal_tags.get(key, "").strip()
            if value:
                yield f"principal tag `{key}` on {finding.principal_arn}", value
    elif step is Step.ACCOUNT_TAG:
        for key in rules.account_tag_keys:
            value = account.tags.get(key, "").strip()
            if value:
                yield f"account tag `{key}` on {account.id}", value
    elif step is Step.OU:
        # Only the nearest mapped OU is offered: a team's OU overrides its parent's owner.
        for ou_id, name in reversed(_ou_names(account)):
            value = rules.ous.get(ou_id, "").strip()
            if value:
                yield f"OU {ou_id} ({name})", value
                return
    elif step is Step.OWNER_MAP:
        value = rules.accounts.get(account.id, "").strip()
        if value:
            yield f"owner map entry for {account.id}", value
    elif step is Step.ALTERNATE_CONTACT:
        value = contacts.get(account.id, "").strip()
        if value:
            yield f"SECURITY alternate contact of {account.id}", value
        elif account.id in contact_errors:
            yield (
                f"SECURITY alternate contact of {account.id} could not be read: "
                f"{_quote(contact_errors[account.id])}",
                None,
            )


def _ou_names(account: Account) -> list[tuple[str, str]]:
    """(id, name) of the root and each OU above the account, outermost first.

    `ou_ids` starts with the root, which has no entry in `ou_path`.
    """
    offset = len(account.ou_ids) - len(account.ou_path)
    result = []
    for index, ou_id in enumerate(account.ou_ids):
        name_index = index - offset
        name = account.ou_path[name_index] if 0 <= name_index < len(account.ou_path) else "Root"
        result.append((ou_id, name))
    return result


def _usable(value: str, rules: OwnerRules) -> tuple[str | None, str]:
    """The address to mail for an owner value, or None and why not."""
    if "@" in value:
        address, via = value, ""
    else:
        mapped = rules.names.get(value)
        if mapped is None:
            return None, f"names {_quote(value)}, who has no address in owners.names"
        address, via = mapped.strip(), f"names {_quote(value)} → "
    if not PLAIN_ADDRESS.match(address):
        return None, f"{via}{_quote(address)} is not a single plain e-mail address"
    if not is_allowed(address, rules.allowed_domains):
        return None, f"{via}{_short(address)} is outside owners.allowed_domains"
    return address.lower(), ""


def _manager(owner: str, rules: OwnerRules, notes: list[str]) -> str | None:
    manager = rules.managers.get(owner)
    if manager is None:
        return None
    if not is_allowed(manager, rules.allowed_domains):
        notes.append(f"manager {_quote(manager)} of {owner} is outside owners.allowed_domains")
        return None
    return manager.lower()


def _short(value: str) -> str:
    return value if len(value) <= _QUOTE_WIDTH else value[: _QUOTE_WIDTH - 1] + "…"


def _quote(value: str) -> str:
    return repr(_short(value))
