"""The owner ladder (DESIGN.md §Owners), step by step, and the SECURITY contacts it may read."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import boto3
import pytest
from botocore.config import Config

from reporter.config import load_data
from reporter.contacts import ContactsResult, fetch_security_contacts
from reporter.models import Account, Finding, FindingType
from reporter.owners import (
    DEFAULT_LADDER,
    OwnerRules,
    Step,
    needs_contacts,
    resolve_owner,
    rules_from_settings,
)
from reporter.sandbox import Sandbox, SandboxSpec
from reporter.sandbox.contacts import OUTSIDE_SOC

ACCOUNT_ID = "111111111111"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/app"
ROOT, PARENT, CHILD = "r-ab12", "ou-ab12-11111111", "ou-ab12-22222222"

RULES = OwnerRules(
    principal_tag_keys=("owner",),
    account_tag_keys=("owner", "team-owner"),
    ous={ROOT: "root-team@example.com", PARENT: "Platform Team", CHILD: "payments@example.com"},
    accounts={ACCOUNT_ID: "map-owner@example.com"},
    names={"Platform Team": "platform@example.com", "Outsider": "o@elsewhere.test"},
    managers={"Alice@Example.com": "boss@example.com", "bob@example.com": "eve@evil.test"},
    allowed_domains=("example.com",),
    fallback=("security@example.com",),
)


def finding(tags: dict[str, str] | None = None, account_id: str = ACCOUNT_ID) -> Finding:
    return Finding(
        FindingType.UNUSED_ROLE,
        account_id,
        f"arn:aws:iam::{account_id}:role/app",
        principal_tags=tags or {},
    )


def account(
    tags: dict[str, str] | None = None,
    ou_ids: tuple[str, ...] = (ROOT, PARENT, CHILD),
    account_id: str = ACCOUNT_ID,
) -> Account:
    names = ("Engineering", "Payments")[: max(0, len(ou_ids) - 1)]
    return Account(id=account_id, name="prod", tags=tags or {}, ou_ids=ou_ids, ou_path=names)


def only(*steps: Step) -> OwnerRules:
    return replace(RULES, ladder=(*steps, Step.FALLBACK))


# --- each step on its own ----------------------------------------------------------------------


def test_principal_tag_alone() -> None:
    result = resolve_owner(
        finding({"owner": "Dev@Example.com"}), account({"owner": "x@example.com"}),
        only(Step.PRINCIPAL_TAG),
    )  # fmt: skip
    assert (result.owner, result.rule) == (
        "dev@example.com",
        f"principal tag `owner` on {ROLE_ARN}",
    )
    assert result.notes == ()


def test_account_tag_alone_uses_keys_in_order() -> None:
    rules = only(Step.ACCOUNT_TAG)
    result = resolve_owner(finding(), account({"team-owner": "Bob@Example.com"}), rules)
    assert (result.owner, result.rule) == (
        "bob@example.com",
        f"account tag `team-owner` on {ACCOUNT_ID}",
    )
    both = account({"owner": "first@example.com", "team-owner": "second@example.com"})
    assert resolve_owner(finding(), both, rules).owner == "first@example.com"


def test_ou_alone_nearest_ou_wins() -> None:
    rules = only(Step.OU)
    result = resolve_owner(finding(), account(), rules)
    assert (result.owner, result.rule) == ("payments@example.com", f"OU {CHILD} (Payments)")
    # The child OU has no entry: its parent's (a name mapped in owners.names) applies.
    parent = resolve_owner(finding(), account(ou_ids=(ROOT, PARENT)), rules)
    assert (parent.owner, parent.rule) == ("platform@example.com", f"OU {PARENT} (Engineering)")
    at_root = resolve_owner(finding(), account(ou_ids=(ROOT,)), rules)
    assert (at_root.owner, at_root.rule) == ("root-team@example.com", f"OU {ROOT} (Root)")
    outside = resolve_owner(finding(), account(ou_ids=("r-zz99", "ou-zz99-33333333")), rules)
    assert outside.owner is None


def test_nearest_ou_that_cannot_be_mailed_does_not_fall_back_to_its_parent() -> None:
    rules = replace(only(Step.OU), ous={PARENT: "platform@example.com", CHILD: "Nobody"})
    result = resolve_owner(finding(), account(), rules)
    assert result.owner is None
    assert result.notes == (
        f"OU {CHILD} (Payments): names 'Nobody', who has no address in owners.names",
    )


def test_owner_map_alone() -> None:
    result = resolve_owner(finding(), account(), only(Step.OWNER_MAP))
    assert (result.owner, result.rule) == (
        "map-owner@example.com",
        f"owner map entry for {ACCOUNT_ID}",
    )
    assert resolve_owner(finding(account_id="222222222222"), account(account_id="222222222222"),
                         only(Step.OWNER_MAP)).owner is None  # fmt: skip


def test_alternate_contact_alone() -> None:
    rules = only(Step.ALTERNATE_CONTACT)
    result = resolve_owner(finding(), account(), rules, {ACCOUNT_ID: " SecOps@Example.com "})
    assert (result.owner, result.rule) == (
        "secops@example.com", f"SECURITY alternate contact of {ACCOUNT_ID}",
    )  # fmt: skip
    assert resolve_owner(finding(), account(), rules).owner is None


def test_contact_that_could_not_be_read_is_noted() -> None:
    errors = {ACCOUNT_ID: "AccessDeniedException: not authorized"}
    result = resolve_owner(finding(), account(), only(Step.ALTERNATE_CONTACT), {}, errors)
    assert result.owner is None
    assert result.notes == (
        f"SECURITY alternate contact of {ACCOUNT_ID} could not be read: "
        "'AccessDeniedException: not authorized'",
    )


def test_fallback_alone_leaves_every_finding_unowned() -> None:
    result = resolve_owner(
        finding({"owner": "a@example.com"}), account({"owner": "a@example.com"}),
        OwnerRules(ladder=(Step.FALLBACK,), allowed_domains=("example.com",)),
    )  # fmt: skip
    assert result.owner is None and result.manager is None
    assert result.rule.startswith("fallback:")
    assert result.notes == ()


# --- order --------------------------------------------------------------------------------------


def test_default_order_principal_tag_beats_everything() -> None:
    assert RULES.ladder == DEFAULT_LADDER
    result = resolve_owner(
        finding({"owner": "dev@example.com"}), account({"owner": "acct@example.com"}), RULES,
        {ACCOUNT_ID: "sec@example.com"},
    )  # fmt: skip
    assert result.owner == "dev@example.com"


@pytest.mark.parametrize(
    ("ladder", "owner"),
    [
        ((Step.ACCOUNT_TAG, Step.PRINCIPAL_TAG), "acct@example.com"),
        ((Step.OWNER_MAP, Step.ACCOUNT_TAG), "map-owner@example.com"),
        ((Step.ALTERNATE_CONTACT, Step.OU, Step.OWNER_MAP), "sec@example.com"),
        ((Step.OU, Step.ALTERNATE_CONTACT), "payments@example.com"),
    ],
)
def test_configured_order_decides(ladder: tuple[Step, ...], owner: str) -> None:
    result = resolve_owner(
        finding({"owner": "dev@example.com"}), account({"owner": "acct@example.com"}),
        only(*ladder), {ACCOUNT_ID: "sec@example.com"},
    )  # fmt: skip
    assert result.owner == owner


def test_a_step_left_out_of_the_ladder_is_never_used() -> None:
    rules = only(Step.PRINCIPAL_TAG, Step.OWNER_MAP)
    result = resolve_owner(finding(), account({"owner": "acct@example.com"}), rules)
    assert result.rule == f"owner map entry for {ACCOUNT_ID}"


# --- values that cannot be mailed fall through, with the reason -------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("mallory@evil.test", "mallory@evil.test is outside owners.allowed_domains"),
        ("a@eu.example.com", "a@eu.example.com is outside owners.allowed_domains"),
        ("Unknown Team", "names 'Unknown Team', who has no address in owners.names"),
        ("Outsider", "names 'Outsider' → o@elsewhere.test is outside owners.allowed_domains"),
        ("evil@x.test a@example.com",
         "'evil@x.test a@example.com' is not a single plain e-mail address"),
        ("evil@x.test,a@example.com",
         "'evil@x.test,a@example.com' is not a single plain e-mail address"),
        ("Eve <a@example.com>", "'Eve <a@example.com>' is not a single plain e-mail address"),
    ],
)  # fmt: skip
def test_unusable_account_tag_falls_through_to_the_next_rule(value: str, reason: str) -> None:
    rules = only(Step.ACCOUNT_TAG, Step.OWNER_MAP)
    result = resolve_owner(finding(), account({"owner": value}), rules)
    assert result.owner == "map-owner@example.com"
    assert result.rule == f"owner map entry for {ACCOUNT_ID}"
    assert result.notes == (f"account tag `owner` on {ACCOUNT_ID}: {reason}",)


def test_unusable_first_tag_key_falls_through_to_the_second() -> None:
    tags = {"owner": "mallory@evil.test", "team-owner": "Platform Team"}
    result = resolve_owner(finding(), account(tags), only(Step.ACCOUNT_TAG))
    assert result.owner == "platform@example.com"
    assert result.rule == f"account tag `team-owner` on {ACCOUNT_ID}"
    assert len(result.notes) == 1 and "mallory@evil.test" in result.notes[0]


def test_unowned_keeps_every_reason_in_ladder_order() -> None:
    rules = replace(RULES, ous={}, accounts={ACCOUNT_ID: "Ghost"})
    result = resolve_owner(
        finding({"owner": "evil@x.test a@example.com"}), account({"owner": "m@evil.test"}),
        rules, {ACCOUNT_ID: OUTSIDE_SOC},
    )  # fmt: skip
    assert result.owner is None and result.manager is None
    assert result.rule.startswith("fallback:")
    assert [note.split(": ")[0] for note in result.notes] == [
        f"principal tag `owner` on {ROLE_ARN}",
        f"account tag `owner` on {ACCOUNT_ID}",
        f"owner map entry for {ACCOUNT_ID}",
        f"SECURITY alternate contact of {ACCOUNT_ID}",
    ]


def test_a_long_untrusted_value_is_quoted_shortened() -> None:
    value = "x" * 300 + "@evil.test"
    (note,) = resolve_owner(finding(), account({"owner": value}), only(Step.ACCOUNT_TAG)).notes
    assert len(note) < 200 and "…" in note


# --- managers -----------------------------------------------------------------------------------


def test_manager_comes_from_the_map_case_insensitively() -> None:
    result = resolve_owner(finding(), account({"owner": "ALICE@example.com"}), RULES)
    assert (result.owner, result.manager) == ("alice@example.com", "boss@example.com")
    assert resolve_owner(finding(), account({"owner": "carol@example.com"}), RULES).manager is None


def test_manager_outside_allowed_domains_is_not_used() -> None:
    result = resolve_owner(finding(), account({"owner": "bob@example.com"}), RULES)
    assert (result.owner, result.manager) == ("bob@example.com", None)
    assert result.notes == (
        "manager 'eve@evil.test' of bob@example.com is outside owners.allowed_domains",
    )


# --- which accounts need their contact read -----------------------------------------------------


def test_needs_contacts_only_where_earlier_rules_found_nobody() -> None:
    accounts = {
        "111111111111": account({"owner": "a@example.com"}, account_id="111111111111"),
        "222222222222": account({}, ou_ids=(), account_id="222222222222"),
        "333333333333": account({}, ou_ids=(), account_id="333333333333"),
        "444444444444": account({"owner": "m@evil.test"}, ou_ids=(), account_id="444444444444"),
    }
    findings = [
        finding(account_id="111111111111"),
        finding({"owner": "dev@example.com"}, account_id="222222222222"),
        finding({"owner": "dev@example.com"}, account_id="333333333333"),
        finding({}, account_id="333333333333"),  # one finding of the account has no owner
        finding(account_id="444444444444"),
        finding(account_id="555555555555"),  # an account Organizations did not list
    ]
    rules = replace(RULES, accounts={})
    assert needs_contacts(findings, accounts, rules) == [
        "333333333333", "444444444444", "555555555555",
    ]  # fmt: skip
    assert needs_contacts(findings, accounts, only(Step.ACCOUNT_TAG, Step.OU)) == []
    # Contacts first: every account with a finding needs one.
    first = only(Step.ALTERNATE_CONTACT, Step.ACCOUNT_TAG)
    assert len(needs_contacts(findings, accounts, first)) == 5


# --- from the config ----------------------------------------------------------------------------


def test_rules_from_settings_carry_every_key() -> None:
    settings = load_data(
        {
            "owners": {
                "ladder": ["owner_map", "ou", "fallback"],
                "principal_tag_keys": ["Owner"],
                "account_tag_keys": ["team"],
                "ous": {CHILD: "platform"},
                "accounts": {ACCOUNT_ID: "Map@example.com"},
                "names": {"platform": "platform@example.com"},
                "managers": {"map@example.com": "boss@example.com"},
                "allowed_domains": ["example.com"],
            }
        },
        {},
    )
    rules = rules_from_settings(settings.owners)
    assert rules.ladder == (Step.OWNER_MAP, Step.OU, Step.FALLBACK)
    assert (rules.principal_tag_keys, rules.account_tag_keys) == (("Owner",), ("team",))
    assert rules.fallback == ("security-team@example.com",)
    result = resolve_owner(finding(), account(), rules)
    assert (result.owner, result.manager) == ("map@example.com", "boss@example.com")
    other = resolve_owner(
        finding(account_id="222222222222"), account(account_id="222222222222"), rules
    )
    assert (other.owner, other.rule) == ("platform@example.com", f"OU {CHILD} (Payments)")


def test_default_settings_give_the_default_ladder() -> None:
    rules = rules_from_settings(load_data({}, {}).owners)
    assert rules.ladder == DEFAULT_LADDER
    assert rules.principal_tag_keys == rules.account_tag_keys == ("owner",)


# --- SECURITY alternate contacts against the sandbox -------------------------------------------


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(SandboxSpec(member_accounts=4, ous=2, findings_per_account=0)) as sb:
        yield sb


def test_fetch_contacts_with_one_missing_and_one_denied(sandbox: Sandbox) -> None:
    members = [a for a in sandbox.accounts if a.id not in
               (sandbox.management_account_id, sandbox.security_account_id)]  # fmt: skip
    with_contact = next(a.id for a in members if a.id in sandbox.security_contacts)
    without = next(a.id for a in members if a.id not in sandbox.security_contacts)
    outsider = "999999999999"  # not a member of the organization
    client = sandbox.session().client("account")
    result = fetch_security_contacts(
        client, [sandbox.management_account_id, with_contact, without, outsider, with_contact],
        sandbox.management_account_id,
    )  # fmt: skip
    assert result.contacts == {
        sandbox.management_account_id: sandbox.security_contacts[sandbox.management_account_id],
        with_contact: sandbox.security_contacts[with_contact],
    }
    assert result.missing == (without,)
    assert list(result.failed) == [outsider]
    assert result.failed[outsider].startswith("AccessDeniedException: ")
    assert "not a member of the organization" in result.failed[outsider]


def test_fetch_contacts_from_a_member_is_denied_per_account(sandbox: Sandbox) -> None:
    # Only the management account may read other accounts' contacts.
    client = sandbox.assumed_session(sandbox.delegated_admin_role_arn).client("account")
    ids = [a.id for a in sandbox.accounts if a.id != sandbox.management_account_id]
    result = fetch_security_contacts(client, ids, sandbox.management_account_id)
    assert result.contacts == {} and result.missing == ()
    assert sorted(result.failed) == sorted(ids)
    assert all("not the management account" in reason for reason in result.failed.values())


def test_untagged_sandbox_account_has_a_contact_the_ladder_must_skip(sandbox: Sandbox) -> None:
    (untagged,) = [a for a in sandbox.accounts if a.active and "owner" not in a.tags]
    fetched = fetch_security_contacts(
        sandbox.session().client("account"), [untagged.id], sandbox.management_account_id
    )
    assert fetched.contacts == {untagged.id: OUTSIDE_SOC}
    rules = OwnerRules(allowed_domains=("example.com",), fallback=("security@example.com",))
    result = resolve_owner(finding(account_id=untagged.id), untagged, rules, fetched.contacts)
    assert result.owner is None
    assert result.notes == (
        f"SECURITY alternate contact of {untagged.id}: {OUTSIDE_SOC} is outside "
        "owners.allowed_domains",
    )


def test_an_unreachable_endpoint_is_tried_once_and_recorded_for_all() -> None:
    # Nothing listens on port 1: the real client fails to connect, a botocore error, not AWS's.
    client = boto3.client(
        "account",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:1",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=2),
    )
    calls: list[str] = []
    client.meta.events.register("before-send.account", lambda **kw: calls.append("sent"))
    result = fetch_security_contacts(client, ["111111111111", "222222222222"], "333333333333")
    assert calls == ["sent"]
    reason = result.failed["111111111111"]
    assert reason.startswith("EndpointConnectionError: ")
    assert result == ContactsResult(
        contacts={}, missing=(), failed={"111111111111": reason, "222222222222": reason}
    )
