"""The organization in moto: OUs, accounts with chosen ids and tags, trusted access, admins.

Accounts go in through moto's Organizations backend because CreateAccount picks random ids;
the backend's own `create_account` still runs (so moto also makes each account's
OrganizationAccountAccessRole, as AWS does) with the id generator swapped for ours. Service
access and delegated administrators go through the API, as the product would see them set.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import boto3
from moto.organizations import utils as org_utils
from moto.organizations.models import OrganizationsBackend, organizations_backends

from reporter.models import Account

from .data import OrgPlan
from .moto_patches import SECURITY_HUB_PRINCIPAL, naive_utc

ACCESS_ANALYZER_PRINCIPAL = "access-analyzer.amazonaws.com"


def build_organization(plan: OrgPlan, management: boto3.Session) -> str:
    """Create the organization as the management account; returns the organization id."""
    client = management.client("organizations")
    organization = client.create_organization(FeatureSet="ALL")["Organization"]
    root_id = client.list_roots()["Roots"][0]["Id"]
    backend = organizations_backends[plan.management.id]["aws"]
    ou_ids: dict[tuple[str, ...], str] = {}
    for path in plan.ou_paths:
        parent = ou_ids.get(path[:-1], root_id)
        created = backend.create_organizational_unit(Name=path[-1], ParentId=parent)
        ou_ids[path] = created["OrganizationalUnit"]["Id"]
    # JoinedTimestamp must be distinct: moto pages ListAccounts by it.
    joined = plan.now - timedelta(days=2_000)
    master = backend.get_account_by_id(plan.management.id)
    master.name = plan.management.name
    master.email = plan.management.email
    master.create_time = naive_utc(joined)
    master.tags.update(plan.management.tags)
    others = (plan.security, *plan.members)
    with _account_ids(a.id for a in others):
        for n, account in enumerate(others, start=1):
            offset = timedelta(seconds=n * 1_500 * 86_400 // len(others))
            _add_account(backend, account, ou_ids, joined + offset)
    for principal in (ACCESS_ANALYZER_PRINCIPAL, SECURITY_HUB_PRINCIPAL):
        client.enable_aws_service_access(ServicePrincipal=principal)
        client.register_delegated_administrator(
            AccountId=plan.security.id, ServicePrincipal=principal
        )
    return str(organization["Id"])


def _add_account(
    backend: OrganizationsBackend,
    account: Account,
    ou_ids: dict[tuple[str, ...], str],
    joined: datetime,
) -> None:
    tags = [{"Key": k, "Value": v} for k, v in account.tags.items()]
    backend.create_account(AccountName=account.name, Email=account.email, Tags=tags)
    fake = backend.accounts[-1]  # create_account appends; a lookup by id would scan them all
    fake.create_time = naive_utc(joined)
    if account.ou_path:
        fake.parent_id = ou_ids[account.ou_path]
    if account.state == "SUSPENDED":
        # CloseAccount is what suspends an account in AWS; moto sets State and Status to it.
        backend.close_account(AccountId=account.id)


@contextmanager
def _account_ids(ids: Iterator[str]) -> Iterator[None]:
    original = org_utils.make_random_account_id
    org_utils.make_random_account_id = ids.__next__
    try:
        yield
    finally:
        org_utils.make_random_account_id = original
