"""IAM in every account, written through moto's IAM backend (no HTTP round trips).

The backend still validates names, tags and policy documents. It is used instead of the API
because the plan fixes things the API cannot: access key ids, creation dates and last-used
dates (moto documents `last_used` as settable). AWS-managed policies are not loaded by moto by
default; the few the plan attaches are copied in from moto's own policy list.

One deliberate difference from AWS: moto accepts `aws:`-prefixed tag keys even through the
API (measured with moto 5.2.5); AWS reserves them for itself, which is why only CloudFormation
can set `aws:cloudformation:stack-name` - here the backend sets it.
"""

from __future__ import annotations

import json
from datetime import timedelta

from moto.iam.models import AccessKeyLastUsed, AWSManagedPolicy, IAMBackend, iam_backends

from . import catalog
from .data import (
    ADMIN_ROLE_NAME,
    MEMBER_ROLE_NAME,
    InlinePolicy,
    OrgPlan,
    PrincipalPlan,
)
from .moto_patches import naive_utc
from .records import inline_document

SANDBOX_PASSWORD = "Sandbox-Passw0rd!"  # a login profile needs one; it guards nothing
_SERVICE_ROLE_POLICIES = {
    "ecs.amazonaws.com": "AmazonECSServiceRolePolicy",
    "elasticloadbalancing.amazonaws.com": "AWSElasticLoadBalancingServiceRolePolicy",
    "rds.amazonaws.com": "AmazonRDSServiceRolePolicy",
    "autoscaling.amazonaws.com": "AutoScalingServiceRolePolicy",
}
_RECOMMENDATION_POLICY = InlinePolicy(
    "GenerateFindingRecommendation", ("access-analyzer:GenerateFindingRecommendation",)
)


def build_iam(plan: OrgPlan, *, principals: bool) -> None:
    """The reporter's roles everywhere; the plan's users and roles too when `principals`."""
    # The plan already holds the member accounts' reader role among their principals.
    covered = {a.id for a in plan.members} if principals else set()
    for account in plan.accounts:
        if account.id not in covered:
            _create_role(_backend(account.id), _reporter_role(plan, MEMBER_ROLE_NAME, account.id))
    if principals:
        for principal in plan.principals:
            _create(_backend(principal.account_id), principal)
    admin = _reporter_role(
        plan,
        ADMIN_ROLE_NAME,
        plan.security.id,
        catalog.REPORTER_ADMIN_POLICIES,
        (_RECOMMENDATION_POLICY,),
    )
    _create_role(_backend(plan.security.id), admin)


def _backend(account_id: str) -> IAMBackend:
    return iam_backends[account_id]["global"]


def _reporter_role(
    plan: OrgPlan,
    name: str,
    account_id: str,
    managed: tuple[str, ...] = catalog.REPORTER_MEMBER_POLICIES,
    inline: tuple[InlinePolicy, ...] = (),
) -> PrincipalPlan:
    """One of the reporter's own roles, assumable from the management account."""
    return PrincipalPlan(
        account_id=account_id,
        kind="role",
        name=name,
        path="/",
        created=plan.now - timedelta(days=300),
        last_used=None,
        last_region="",
        seed=0,
        trust=plan.management.id,
        managed_policies=managed,
        inline_policies=inline,
    )


def _create(backend: IAMBackend, principal: PrincipalPlan) -> None:
    if principal.kind == "role":
        _create_role(backend, principal)
    else:
        _create_user(backend, principal)


def _create_role(backend: IAMBackend, plan: PrincipalPlan) -> None:
    if plan.precreated:
        role = backend.get_role(plan.name)
    else:
        role = backend.create_role(
            role_name=plan.name,
            assume_role_policy_document=json.dumps(_trust_policy(plan)),
            path=plan.path,
            permissions_boundary=None,
            description="",
            tags=[{"Key": k, "Value": v} for k, v in plan.tags],
            max_session_duration="3600",
            linked_service=plan.linked_service or None,
        )
    role.create_date = naive_utc(plan.created)
    role.last_used = naive_utc(plan.last_used) if plan.last_used else None
    # moto annotates the region (and users' password_last_used) as always None; both are
    # fields it documents as settable by callers.
    role.last_used_region = plan.last_region or None  # type: ignore[assignment]
    service_policy = _SERVICE_ROLE_POLICIES.get(plan.linked_service)
    for name in (*plan.managed_policies, *([service_policy] if service_policy else [])):
        backend.attach_role_policy(_managed_arn(backend, name), plan.name)
    for policy in plan.inline_policies:
        backend.put_role_policy(plan.name, policy.name, inline_document(policy))


def _create_user(backend: IAMBackend, plan: PrincipalPlan) -> None:
    user = backend.create_user(backend.region_name, plan.name, plan.path, tags=[])
    user.create_date = naive_utc(plan.created)
    if plan.password:
        backend.create_login_profile(plan.name, SANDBOX_PASSWORD)
        last_used = naive_utc(plan.last_used) if plan.last_used else None
        user.password_last_used = last_used  # type: ignore[assignment]
    for key_plan in plan.keys:
        key = backend.create_access_key(plan.name)
        # The plan chose the id (findings quote it); re-key moto's index to match.
        del backend.access_keys[key.access_key_id]
        key.access_key_id = key_plan.id
        backend.access_keys[key_plan.id] = key
        key.create_date = naive_utc(key_plan.created)
        if key_plan.last_used is not None:
            key.last_used = AccessKeyLastUsed(
                naive_utc(key_plan.last_used), key_plan.last_service, key_plan.last_region
            )
    for name in plan.managed_policies:
        backend.attach_user_policy(_managed_arn(backend, name), plan.name)
    for policy in plan.inline_policies:
        backend.put_user_policy(plan.name, policy.name, inline_document(policy))


def _managed_arn(backend: IAMBackend, name: str) -> str:
    """Copy an AWS managed policy into this account's backend once; return its ARN."""
    data = catalog.managed_policy(name)
    arn = f"arn:aws:iam::aws:policy{data['Path']}{name}"
    if arn not in backend.managed_policies:
        policy = AWSManagedPolicy.from_data(name, backend.account_id, backend.region_name, data)
        backend.managed_policies[arn] = policy
        backend.aws_managed_policies.append(policy)
    return arn


def _trust_policy(plan: PrincipalPlan) -> dict[str, object]:
    trust = plan.trust
    statement: dict[str, object]
    if trust == "saml":
        provider = (
            f"arn:aws:iam::{plan.account_id}:saml-provider/AWSSSO_{plan.seed:016x}_DO_NOT_DELETE"
        )
        statement = {
            "Effect": "Allow",
            "Principal": {"Federated": provider},
            "Action": ["sts:AssumeRoleWithSAML", "sts:TagSession"],
            "Condition": {"StringEquals": {"SAML:aud": "https://signin.aws.amazon.com/saml"}},
        }
    elif trust.isdigit():
        statement = {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{trust}:root"},
            "Action": "sts:AssumeRole",
        }
    else:
        statement = {"Effect": "Allow", "Principal": {"Service": trust}, "Action": "sts:AssumeRole"}
    return {"Version": "2012-10-17", "Statement": [statement]}
