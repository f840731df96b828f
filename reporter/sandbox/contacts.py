"""Account Management stand-in: SECURITY alternate contacts behind the real boto3 `account`
client, with the organization's access rules.

moto 5.2.5 stores alternate contacts but lets any caller read any account's, so the refusals
the product must survive could never happen. This stand-in answers Get/PutAlternateContact
before moto does and applies the rules AWS documents for `AccountId` (reference §3.2):

- Without `AccountId` the caller's own account is meant.
- With it, the caller must be the management account, trusted access for
  `account.amazonaws.com` must be enabled (read from moto's Organizations at call time), and
  the account must be a member of the organization; otherwise AccessDeniedException.
- The management account may not name itself. AWS documents the rule, not the error code; the
  sandbox answers AccessDeniedException.
- An account with no contact of the type asked for: ResourceNotFoundException, worded as moto
  words it.

Delegated administrators for Account Management are not modelled (moto's Organizations does
not accept `account.amazonaws.com` as a delegated service).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from moto.organizations.models import organizations_backends

from reporter.models import Account

from .catalog import EMAIL_DOMAIN
from .data import OrgPlan
from .restjson import Caller, RestJsonStub, ServiceError

ACCOUNT_PRINCIPAL = "account.amazonaws.com"
CONTACT_TYPES = ("BILLING", "OPERATIONS", "SECURITY")
# The SOC of the one account nobody tagged is a contractor: its address is outside the
# sandbox's domain, so the ladder must skip it and say so.
OUTSIDE_SOC = "soc@managed-soc.example.net"


@dataclass(frozen=True)
class Contact:
    name: str
    title: str
    email: str
    phone: str = "+1-555-0100"

    def shape(self, contact_type: str) -> dict[str, str]:
        return {
            "AlternateContactType": contact_type,
            "Name": self.name,
            "Title": self.title,
            "EmailAddress": self.email,
            "PhoneNumber": self.phone,
        }


def plan_contacts(plan: OrgPlan) -> dict[str, Contact]:
    """The SECURITY contact of each account that has one; deterministic from the plan.

    Management and security accounts have one; of the other ACTIVE tagged members every second
    (by id) has one and the rest have none; the untagged member has one outside the domain.
    """
    contacts = {
        plan.management.id: _contact("Cloud Security", f"aws-security@{EMAIL_DOMAIN}"),
        plan.security.id: _contact("Security Team", f"security-team@{EMAIL_DOMAIN}"),
    }
    tagged = sorted((a for a in plan.members if a.active and "owner" in a.tags), key=lambda a: a.id)
    for account in tagged[::2]:
        contacts[account.id] = _contact("SecOps", f"secops+{_local(account)}@{EMAIL_DOMAIN}")
    for account in plan.members:
        if account.active and "owner" not in account.tags:
            contacts[account.id] = _contact("Managed SOC", OUTSIDE_SOC)
    return contacts


def _contact(name: str, email: str) -> Contact:
    return Contact(name=name, title="Security contact", email=email)


def _local(account: Account) -> str:
    return "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in account.name.lower())


class ContactsStandIn:
    """Alternate contacts per account and type; `stub` is the botocore handler serving them."""

    def __init__(
        self,
        contacts: Mapping[str, Contact],
        management_account_id: str,
        resolve_account: Callable[[str], str],
    ) -> None:
        self._contacts: dict[tuple[str, str], dict[str, str]] = {
            (account_id, "SECURITY"): contact.shape("SECURITY")
            for account_id, contact in contacts.items()
        }
        self._management = management_account_id
        self._members: tuple[int, frozenset[str]] = (-1, frozenset())
        self.closed = False
        self.stub = RestJsonStub(
            "account",
            {
                "GetAlternateContact": self.get_alternate_contact,
                "PutAlternateContact": self.put_alternate_contact,
            },
            self._guard(resolve_account),
        )

    def _guard(self, resolve_account: Callable[[str], str]) -> Callable[[str], str]:
        def resolve(access_key: str) -> str:
            if self.closed:
                raise RuntimeError("this sandbox has been closed; build a new one")
            return resolve_account(access_key)

        return resolve

    def get_alternate_contact(self, params: dict[str, Any], caller: Caller) -> dict[str, Any]:
        key = self._target(params, caller, "GetAlternateContact")
        contact = self._contacts.get(key)
        if contact is None:
            raise ServiceError(
                "ResourceNotFoundException",
                "No contact of the inputted alternate contact type found.",
            )
        return {"AlternateContact": dict(contact)}

    def put_alternate_contact(self, params: dict[str, Any], caller: Caller) -> None:
        key = self._target(params, caller, "PutAlternateContact")
        self._contacts[key] = {
            "AlternateContactType": key[1],
            "Name": params["Name"],
            "Title": params["Title"],
            "EmailAddress": params["EmailAddress"],
            "PhoneNumber": params["PhoneNumber"],
        }

    def _target(self, params: dict[str, Any], caller: Caller, action: str) -> tuple[str, str]:
        contact_type = params["AlternateContactType"]
        if contact_type not in CONTACT_TYPES:
            raise ServiceError("ValidationException", "Invalid AlternateContactType.")
        account_id = params.get("AccountId")
        if account_id is None:
            return caller.account_id, contact_type
        denied = f"User is not authorized to perform: account:{action} on account {account_id}"
        if caller.account_id != self._management:
            raise ServiceError(
                "AccessDeniedException", f"{denied} (caller is not the management account)."
            )
        if account_id == self._management:
            raise ServiceError(
                "AccessDeniedException",
                f"{denied} (the management account must omit AccountId for itself).",
            )
        backend = organizations_backends[self._management]["aws"]
        if not any(s["ServicePrincipal"] == ACCOUNT_PRINCIPAL for s in backend.services):
            raise ServiceError(
                "AccessDeniedException",
                f"{denied} (trusted access for {ACCOUNT_PRINCIPAL} is not enabled).",
            )
        if account_id not in self._member_ids(backend):
            raise ServiceError(
                "AccessDeniedException", f"{denied} (not a member of the organization)."
            )
        return account_id, contact_type

    def _member_ids(self, backend: Any) -> frozenset[str]:
        # Cached by count: accounts join rarely, and a scan per call would cost O(accounts²).
        count = len(backend.accounts)
        if self._members[0] != count:
            self._members = (count, frozenset(a.id for a in backend.accounts))
        return self._members[1]
