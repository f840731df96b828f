"""SECURITY alternate contacts of accounts, for the `alternate_contact` step of the owner ladder.

I/O edge: one Account Management GetAlternateContact call per account asked for (the API has
no batch form), so the caller asks only for the accounts the ladder could not place otherwise
(`owners.needs_contacts`). An account without a SECURITY contact, or one the API refuses, is
recorded and never ends the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

CONTACT_TYPE = "SECURITY"


@dataclass(frozen=True)
class ContactsResult:
    """What GetAlternateContact said for each account asked about."""

    # Account id → the contact's EmailAddress as AWS returned it (untrusted: the ladder checks it).
    contacts: Mapping[str, str] = field(default_factory=dict)
    # Accounts that have no SECURITY contact (ResourceNotFoundException).
    missing: tuple[str, ...] = ()
    # Account id → why the contact could not be read ("AccessDeniedException: …").
    failed: Mapping[str, str] = field(default_factory=dict)


def fetch_security_contacts(
    client: Any, account_ids: Iterable[str], management_account_id: str
) -> ContactsResult:
    """The SECURITY alternate contact of each account, via an `account` client.

    `client` must act as `management_account_id` (the Account Management delegated
    administrator would do too). The caller may not name its own account in `AccountId` (the
    API requires the parameter to be left out for it), so that account is asked without one.
    """
    contacts: dict[str, str] = {}
    missing: list[str] = []
    failed: dict[str, str] = {}
    broken = ""
    for account_id in dict.fromkeys(account_ids):
        if broken:
            # The endpoint itself failed (no network, bad endpoint URL): asking again per
            # account would only repeat the wait; every remaining account gets the same reason.
            failed[account_id] = broken
            continue
        kwargs = {"AlternateContactType": CONTACT_TYPE}
        if account_id != management_account_id:
            kwargs["AccountId"] = account_id
        try:
            response = client.get_alternate_contact(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "")) or "Error"
            if code == "ResourceNotFoundException":
                missing.append(account_id)
            else:
                failed[account_id] = f"{code}: {error.get('Message', '')}".rstrip(": ")
            continue
        except BotoCoreError as exc:
            broken = f"{type(exc).__name__}: {exc}"
            failed[account_id] = broken
            continue
        address = str(response.get("AlternateContact", {}).get("EmailAddress", "")).strip()
        if address:
            contacts[account_id] = address
        else:
            missing.append(account_id)
    return ContactsResult(contacts=contacts, missing=tuple(missing), failed=failed)
