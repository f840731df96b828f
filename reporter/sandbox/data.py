"""Deterministic generator: a `SandboxSpec` becomes an `OrgPlan`, with no AWS or moto involved.

Everything downstream (Organizations, IAM, Security Hub, the Access Analyzer stand-in and the
`expected` ground truth) is rendered from one plan, so the sources agree with each other by
construction. Randomness comes only from `random.Random` seeded with strings derived from the
spec seed, which Python hashes the same way in every process.
"""

from __future__ import annotations

import base64
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal, TypeVar

from reporter.models import Account, FindingType

from . import catalog
from .spec import SandboxSpec

MANAGEMENT_NAME = "org-management"
SECURITY_NAME = "security-tooling"
MEMBER_ROLE_NAME = "UnusedAccessReporterReadOnly"
ADMIN_ROLE_NAME = "UnusedAccessReporterFindingsReader"
ORG_ACCESS_ROLE = "OrganizationAccountAccessRole"
VENDOR_ROLE = "vendor-audit-access"
# Organization access roles besides OrganizationAccountAccessRole (reporter.orgaccess), one
# group per account of the first active members: (role name, trusted by management?, admin?).
# `central-operations-access` matches no built-in name: only its trust policy (the management
# account) tells what it is. `break-glass-admin` is the demo's protected principal.
CONTROL_TOWER_ROLES = ("AWSControlTowerExecution", "aws-controltower-ReadOnlyExecutionRole")
STACKSET_ROLE = "AWSCloudFormationStackSetExecutionRole"
TRUSTED_BY_MANAGEMENT_ROLE = "central-operations-access"
BREAK_GLASS_ROLE = "break-glass-admin"
# The analyzer reports access unused for at least this many days (its "tracking period").
TRACKING_DAYS = 30
ANALYZER_AGE_DAYS = 420

ACTIVE, ARCHIVED, RESOLVED = "ACTIVE", "ARCHIVED", "RESOLVED"
Kind = Literal["user", "role"]
T = TypeVar("T")
# Equal policy lists are stored once: at scale 100,000 principals draw from a few hundred.
_SHARED: dict[object, object] = {}


def _shared(value: T) -> T:
    return _SHARED.setdefault(value, value)  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class InlinePolicy:
    name: str
    actions: tuple[str, ...]
    sid: str = ""


@dataclass(frozen=True, slots=True)
class AccessKeyPlan:
    id: str
    created: datetime
    last_used: datetime | None
    last_service: str = ""
    last_region: str = ""


@dataclass(frozen=True, slots=True)
class PrincipalPlan:
    """An IAM user or role; `last_used` is RoleLastUsed for roles, PasswordLastUsed for users."""

    account_id: str
    kind: Kind
    name: str
    path: str
    created: datetime
    last_used: datetime | None
    last_region: str
    seed: int  # drives the details derived later (records.permission_usage)
    trust: str = ""  # roles: a service principal, an account id, or "saml"
    password: bool = False
    keys: tuple[AccessKeyPlan, ...] = ()
    managed_policies: tuple[str, ...] = ()  # AWS managed policy names
    inline_policies: tuple[InlinePolicy, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    linked_service: str = ""
    precreated: bool = False  # made by moto itself (OrganizationAccountAccessRole)

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:{self.kind}{self.path}{self.name}"

    @property
    def resource_type(self) -> str:
        return "AWS::IAM::User" if self.kind == "user" else "AWS::IAM::Role"

    @property
    def is_sso(self) -> bool:
        return self.path.startswith("/aws-reserved/sso.amazonaws.com/")


@dataclass(frozen=True, slots=True)
class FindingPlan:
    """One unused-access finding; its details are derived on demand (see records.py)."""

    id: str
    finding_type: str
    principal: PrincipalPlan
    status: str
    created_at: datetime
    updated_at: datetime
    analyzed_at: datetime
    workflow: str  # Security Hub Workflow.Status
    capital_owner_key: bool  # ASFF spells ProductFields.ResourceOwnerAccount with a capital R
    unused_keys: tuple[AccessKeyPlan, ...] = ()

    @property
    def account_id(self) -> str:
        return self.principal.account_id

    @property
    def active(self) -> bool:
        return self.status == ACTIVE


@dataclass(frozen=True, slots=True)
class ExternalFindingPlan:
    """An external-access finding (S3 sample shape): a decoy that is not unused access."""

    id: str
    account_id: str
    resource: str
    resource_type: str  # Access Analyzer spelling, e.g. AWS::S3::Bucket
    asff_type: str  # ASFF Resources[].Type, e.g. AwsS3Bucket
    actions: tuple[str, ...]
    is_public: bool
    created_at: datetime
    updated_at: datetime
    analyzed_at: datetime
    status: str = ACTIVE


@dataclass(frozen=True)
class OrgPlan:
    now: datetime
    management: Account
    security: Account
    members: tuple[Account, ...]
    ou_paths: tuple[tuple[str, ...], ...]  # every OU, parents before children
    principals: tuple[PrincipalPlan, ...]
    findings: tuple[FindingPlan, ...]
    external: tuple[ExternalFindingPlan, ...]

    @property
    def accounts(self) -> tuple[Account, ...]:
        return (self.management, self.security, *self.members)


def build_plan(spec: SandboxSpec, management_id: str, now: datetime) -> OrgPlan:
    rng = random.Random(f"sandbox/{spec.seed}")
    ids = _account_ids(rng, spec.member_accounts + 1, management_id)
    security_id, member_ids = ids[0], ids[1:]
    leaves = _leaf_ous(spec.ous)
    management = Account(
        id=management_id,
        name=MANAGEMENT_NAME,
        email=f"aws-management@{catalog.EMAIL_DOMAIN}",
        tags={"owner": f"cloud-platform@{catalog.EMAIL_DOMAIN}", "cost-center": "CC-1000"},
    )
    security = Account(
        id=security_id,
        name=SECURITY_NAME,
        email=f"aws+{SECURITY_NAME}@{catalog.EMAIL_DOMAIN}",
        ou_path=catalog.SECURITY_OU,
        tags={"owner": f"security-team@{catalog.EMAIL_DOMAIN}", "cost-center": "CC-1100"},
    )
    members = _members(rng, member_ids, leaves)
    active = [a for a in members if a.state == "ACTIVE"]
    vendor_account = active[len(active) // 2].id
    extra = _organization_roles(spec, active, management_id, security_id)
    principals: list[PrincipalPlan] = []
    findings: list[FindingPlan] = []
    for account in members:
        account_principals, account_findings = _AccountGenerator(
            spec,
            account,
            management_id,
            now,
            vendor_role=account.id == vendor_account,
            organization_roles=extra.get(account.id, ()),
        ).generate()
        principals.extend(account_principals)
        findings.extend(account_findings)
    _ensure_inactive(findings, {a.id for a in members if a.state != "ACTIVE"})
    return OrgPlan(
        now=now,
        management=management,
        security=security,
        members=members,
        ou_paths=_all_ou_paths((*leaves, catalog.SECURITY_OU)),
        principals=tuple(principals),
        findings=tuple(findings),
        external=_external_findings(rng, active, principals, now),
    )


def _organization_roles(
    spec: SandboxSpec, active: Sequence[Account], management_id: str, security_id: str
) -> dict[str, tuple[tuple[str, str, bool], ...]]:
    """Account id -> (role, trusted account, admin) for the organization access roles; only in
    the realistic default mix (scale runs keep their exact finding counts)."""
    if spec.findings_per_account is not None or len(active) < 4:
        return {}
    groups = (
        (
            (CONTROL_TOWER_ROLES[0], management_id, True),
            (CONTROL_TOWER_ROLES[1], security_id, False),
        ),
        ((STACKSET_ROLE, management_id, True),),
        ((TRUSTED_BY_MANAGEMENT_ROLE, management_id, True),),
        ((BREAK_GLASS_ROLE, security_id, True),),
    )
    return {account.id: group for account, group in zip(active, groups, strict=False)}


def _account_ids(rng: random.Random, count: int, management_id: str) -> list[str]:
    ids: list[str] = []
    seen = {management_id}
    while len(ids) < count:
        candidate = str(rng.randrange(10**11, 10**12))
        if candidate not in seen:
            seen.add(candidate)
            ids.append(candidate)
    return ids


def _leaf_ous(count: int) -> list[tuple[str, ...]]:
    fixed = list(catalog.LEAF_OUS[:count])
    return fixed + [("Workloads", f"Team{n:03d}") for n in range(len(fixed), count)]


def _all_ou_paths(leaves: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
    paths: dict[tuple[str, ...], None] = {}
    for leaf in leaves:
        for depth in range(1, len(leaf) + 1):
            paths[leaf[:depth]] = None
    return tuple(paths)


def _members(
    rng: random.Random, ids: list[str], leaves: list[tuple[str, ...]]
) -> tuple[Account, ...]:
    names = _NameAllocator()
    placed = [(account_id, leaves[i % len(leaves)]) for i, account_id in enumerate(ids)]
    owners = _owner_emails(_owner_count(len(ids)))
    # Exactly one ACTIVE account without an owner tag and exactly one SUSPENDED account.
    unowned, suspended = rng.sample(range(len(ids)), 2)
    owned = [i for i in range(len(ids)) if i != unowned]
    rng.shuffle(owned)
    owner_of: dict[int, str] = {}
    for n, index in enumerate(owned):
        # Everyone owns one account; the rest go mostly to the first half, so a few people own
        # several accounts and per-owner aggregation across accounts matters.
        if n < len(owners):
            owner_of[index] = owners[n]
        else:
            pool = owners[: max(1, len(owners) // 2)] if rng.random() < 0.7 else owners
            owner_of[index] = pick(rng, pool)
    accounts: list[Account] = []
    for index, (account_id, leaf) in enumerate(placed):
        team, name = names.account_name(rng, leaf)
        tags = {"cost-center": f"CC-{2000 + (catalog.TEAMS.index(team) * 379) % 7000}"}
        environment = catalog.ENVIRONMENTS.get(catalog.OU_SUFFIX.get(leaf[-1], ""))
        if environment:
            tags["environment"] = environment
        if index in owner_of:
            tags = {"owner": owner_of[index], **tags}
        accounts.append(
            Account(
                id=account_id,
                name=name,
                email=f"aws+{name}@{catalog.EMAIL_DOMAIN}",
                state="SUSPENDED" if index == suspended else "ACTIVE",
                ou_path=leaf,
                tags=tags,
            )
        )
    return tuple(accounts)


def _owner_count(members: int) -> int:
    # ~5 owners for the default 12 accounts; ~500 for 2,000 (the design's scale target).
    return max(2, round(members / 2.4)) if members <= 48 else members // 4


def _owner_emails(count: int) -> list[str]:
    firsts, lasts = catalog.FIRST_NAMES, catalog.LAST_NAMES
    if count <= len(firsts):
        return [f"{first}@{catalog.EMAIL_DOMAIN}" for first in firsts[:count]]
    emails = []
    for n in range(count):
        first, last = firsts[n % len(firsts)], lasts[(n // len(firsts)) % len(lasts)]
        serial = n // (len(firsts) * len(lasts))
        emails.append(f"{first}.{last}{serial or ''}@{catalog.EMAIL_DOMAIN}")
    return emails


class _NameAllocator:
    """Unique, realistic names; appends a serial once a pool is used up."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def unique(self, base: str) -> str:
        name, serial = base, 1
        while name in self._used:
            serial += 1
            name = f"{base}-{serial:02d}"
        self._used.add(name)
        return name

    def account_name(self, rng: random.Random, leaf: tuple[str, ...]) -> tuple[str, str]:
        team = pick(rng, catalog.TEAMS)
        if leaf == ("Infrastructure",):
            free = [n for n in catalog.INFRA_ACCOUNTS if n not in self._used]
            return team, self.unique(free[0] if free else "infra")
        suffix = catalog.OU_SUFFIX.get(leaf[-1], leaf[-1].lower())
        return team, self.unique(f"{team}-{suffix}")


def randint(rng: random.Random, low: int, high: int) -> int:
    """`rng.randint`, five times cheaper; the 100,000-finding build draws millions."""
    return low + int(rng.random() * (high - low + 1))


def pick(rng: random.Random, items: Sequence[T]) -> T:
    return items[int(rng.random() * len(items))]


def days_between(rng: random.Random, low: int, high: int) -> timedelta:
    """A duration of `low` to `high` days plus a random time of day."""
    return timedelta(seconds=low * 86_400 + int(rng.random() * (high - low + 1) * 86_400))


class _AccountGenerator:
    """Principals and findings of one member account, from a per-account RNG."""

    def __init__(
        self,
        spec: SandboxSpec,
        account: Account,
        management_id: str,
        now: datetime,
        *,
        vendor_role: bool = False,
        organization_roles: tuple[tuple[str, str, bool], ...] = (),
    ):
        self.vendor_role = vendor_role
        self.organization_roles = organization_roles
        self.rng = random.Random(f"sandbox/{spec.seed}/{account.id}")
        self.spec = spec
        self.account = account
        self.management_id = management_id
        self.now = now
        self.names = _NameAllocator()
        self.analyzer_created = now - timedelta(days=ANALYZER_AGE_DAYS)
        if spec.findings_per_account is not None:
            self.target = spec.findings_per_account
        elif account.state != "ACTIVE":
            self.target = 2  # stale findings linger in a suspended account
        else:
            self.target = randint(self.rng, 5, 9)

    def generate(self) -> tuple[list[PrincipalPlan], list[FindingPlan]]:
        principals: list[PrincipalPlan] = []
        findings: list[FindingPlan] = []
        # Scale runs need exactly the asked-for count; the default mix keeps every finding of
        # the last principal, so IAM never shows unused credentials the analyzer did not report.
        exact = self.spec.findings_per_account is not None
        for principal, types in self._principals():
            principals.append(principal)
            for finding_type in types:
                if not exact or len(findings) < self.target:
                    findings.append(self._finding(principal, finding_type))
            # The fixed principals (reporter, SSO, service-linked...) come first; always make them.
            if len(findings) >= self.target and len(principals) >= 6:
                break
        # Organization access roles, unused as they are by design, from a random stream of their
        # own so that every other principal of the account stays as it was.
        main = self.rng
        self.rng = random.Random(f"sandbox/{self.spec.seed}/{self.account.id}/organization-access")
        try:
            for name, trusted, admin in self.organization_roles:
                principal, types = self._role(name, trust=trusted, admin=admin, used_bias=0.0)
                principals.append(principal)
                findings.extend(self._finding(principal, t) for t in types)
        finally:
            self.rng = main
        return principals, findings

    def _principals(self) -> Iterator[tuple[PrincipalPlan, list[str]]]:
        yield self._reporter_role()
        yield self._role(ORG_ACCESS_ROLE, trust=self.management_id, admin=True, precreated=True)
        service, slr_name = pick(self.rng, catalog.SERVICE_LINKED_ROLES)
        yield self._role(slr_name, path=f"/aws-service-role/{service}/", linked=service)
        permission_set = pick(self.rng, catalog.SSO_PERMISSION_SETS)
        sso_name = f"AWSReservedSSO_{permission_set}_{self.rng.getrandbits(64):016x}"
        region = "" if self.rng.random() < 0.6 else f"{pick(self.rng, catalog.AWS_REGIONS)}/"
        yield self._role(
            sso_name,
            path=f"/aws-reserved/sso.amazonaws.com/{region}",
            trust="saml",
            admin=permission_set == "AdministratorAccess",
            used_bias=0.9,
        )
        stack, logical = pick(self.rng, catalog.CFN_STACKS)
        suffix = "".join(self.rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", k=12))
        stack_id = (
            f"arn:aws:cloudformation:{self.spec.home_region}:{self.account.id}:stack/{stack}/"
            f"{uuid.UUID(int=self.rng.getrandbits(128), version=4)}"
        )
        cfn_tags = (
            ("aws:cloudformation:stack-name", stack),
            ("aws:cloudformation:logical-id", logical),
            ("aws:cloudformation:stack-id", stack_id),
        )
        yield self._role(
            f"{stack}-{logical}-{suffix}", trust="ecs-tasks.amazonaws.com", tags=cfn_tags
        )
        if self.vendor_role:
            # Trusted by an account outside the organization: the external-access decoy.
            yield self._role(VENDOR_ROLE, trust=catalog.EXTERNAL_ACCOUNT, used_bias=1.0)
        while True:
            roll = self.rng.random()
            if roll < 0.45:
                name = pick(self.rng, catalog.APP_ROLES)
                yield self._role(
                    name,
                    trust=pick(self.rng, catalog.APP_TRUST),
                    admin=name == "admin-breakglass",
                )
            elif roll < 0.7:
                yield self._user(pick(self.rng, catalog.HUMAN_USERS), human=True)
            else:
                yield self._user(pick(self.rng, catalog.SERVICE_USERS), human=False)

    def _policies(self, admin: bool) -> tuple[tuple[str, ...], tuple[InlinePolicy, ...]]:
        if admin:
            return (catalog.ADMIN_POLICY,), ()
        drawn = tuple(self.rng.sample(catalog.MANAGED_POLICIES, randint(self.rng, 1, 3)))
        managed = _shared(drawn)
        inline: tuple[InlinePolicy, ...] = ()
        if self.rng.random() < 0.5:
            namespace = pick(self.rng, ("lambda", "sqs", "dynamodb", "ssm", "kms"))
            pool = catalog.NAMESPACE_ACTIONS[namespace]
            actions = tuple(sorted(self.rng.sample(pool, randint(self.rng, 2, min(4, len(pool))))))
            title = namespace.capitalize()
            inline = _shared((InlinePolicy(f"InlinePolicy{title}", actions, sid=f"Inline{title}"),))
        return managed, inline

    def _usage(self, used_bias: float) -> tuple[datetime | None, bool]:
        """(last used, unused?) with the unused ages the analyzer reports (30-400 days)."""
        if self.rng.random() < used_bias:
            return self.now - days_between(self.rng, 0, TRACKING_DAYS - 3), False
        if self.rng.random() < 0.2:
            return None, True
        return self.now - days_between(self.rng, TRACKING_DAYS, 400), True

    def _created(self, last_used: datetime | None) -> datetime:
        # Only principals that existed for the whole tracking period are analysed.
        anchor = min(last_used or self.now, self.now - timedelta(days=TRACKING_DAYS + 15))
        return anchor - days_between(self.rng, 20, 1200)

    def _reporter_role(self) -> tuple[PrincipalPlan, list[str]]:
        last_used = self.now - days_between(self.rng, 0, 6)
        role = PrincipalPlan(
            account_id=self.account.id,
            kind="role",
            name=MEMBER_ROLE_NAME,
            path="/",
            created=self.now - days_between(self.rng, 200, 400),
            last_used=last_used,
            last_region=self.spec.home_region,
            seed=self.rng.getrandbits(48),
            trust=self.management_id,
            managed_policies=catalog.REPORTER_MEMBER_POLICIES,
        )
        return role, []

    def _role(
        self,
        base: str,
        *,
        path: str = "/",
        trust: str = "",
        admin: bool = False,
        tags: tuple[tuple[str, str], ...] = (),
        linked: str = "",
        precreated: bool = False,
        used_bias: float = 0.55,
    ) -> tuple[PrincipalPlan, list[str]]:
        name = self.names.unique(base)
        last_used, unused = self._usage(used_bias)
        managed, inline = ((), ()) if linked else self._policies(admin)
        role = PrincipalPlan(
            account_id=self.account.id,
            kind="role",
            name=name,
            path=path,
            created=self._created(last_used),
            last_used=last_used,
            last_region=pick(self.rng, catalog.AWS_REGIONS) if last_used else "",
            seed=self.rng.getrandbits(48),
            trust=trust or linked,
            managed_policies=managed,
            inline_policies=inline,
            tags=tags,
            linked_service=linked,
            precreated=precreated,
        )
        if unused:
            return role, [FindingType.UNUSED_ROLE.value]
        # Service-linked roles carry the owning service's policy; it is not ours to trim.
        wants_permission = not linked and self.rng.random() < 0.7
        return role, [FindingType.UNUSED_PERMISSION.value] if wants_permission else []

    def _user(self, base: str, *, human: bool) -> tuple[PrincipalPlan, list[str]]:
        name = self.names.unique(base)
        types: list[str] = []
        password_used: datetime | None = None
        if human:
            password_used, password_unused = self._usage(0.45)
            if password_unused:
                types.append(FindingType.UNUSED_PASSWORD.value)
        key_count = (1 if self.rng.random() < 0.3 else 0) if human else randint(self.rng, 1, 2)
        keys: list[AccessKeyPlan] = []
        unused_keys = False
        for _ in range(key_count):
            key_used, key_unused = self._usage(0.5)
            unused_keys |= key_unused
            keys.append(
                AccessKeyPlan(
                    id=_access_key_id(self.rng, self.account.id),
                    created=self._created(key_used),
                    last_used=key_used,
                    last_service=pick(self.rng, ("s3", "sts", "ec2", "dynamodb"))
                    if key_used
                    else "",
                    last_region=pick(self.rng, catalog.AWS_REGIONS) if key_used else "",
                )
            )
        if unused_keys:
            types.append(FindingType.UNUSED_ACCESS_KEY.value)
        recent = self.now - timedelta(days=TRACKING_DAYS)
        used_dates = [password_used, *(k.last_used for k in keys)]
        active_credential = any(d is not None and d > recent for d in used_dates)
        if active_credential and self.rng.random() < 0.6:
            types.append(FindingType.UNUSED_PERMISSION.value)
        managed, inline = self._policies(admin=False)
        created = min([self._created(password_used), *(k.created for k in keys)])
        user = PrincipalPlan(
            account_id=self.account.id,
            kind="user",
            name=name,
            path="/" if human or self.rng.random() < 0.6 else "/service/",
            created=created,
            last_used=password_used,
            last_region="",
            seed=self.rng.getrandbits(48),
            password=human,
            keys=tuple(keys),
            managed_policies=managed,
            inline_policies=inline,
        )
        return user, types

    def _finding(self, principal: PrincipalPlan, finding_type: str) -> FindingPlan:
        rng = self.rng
        unused_keys: tuple[AccessKeyPlan, ...] = ()
        if finding_type == FindingType.UNUSED_ACCESS_KEY.value:
            recent = self.now - timedelta(days=TRACKING_DAYS)
            unused_keys = tuple(
                k for k in principal.keys if k.last_used is None or k.last_used <= recent
            )
            activity = max((k.last_used or k.created) for k in unused_keys)
        elif finding_type == FindingType.UNUSED_PERMISSION.value:
            activity = self.now - days_between(rng, 40, 300)
        else:
            activity = principal.last_used or principal.created
        created_at = max(activity + timedelta(days=TRACKING_DAYS), self.analyzer_created)
        created_at = min(created_at + days_between(rng, 0, 2), self.now - timedelta(days=2))
        status = ACTIVE
        if self.account.state == "ACTIVE" and rng.random() < 0.08:
            status = pick(rng, (ARCHIVED, RESOLVED))
        if status == RESOLVED:
            updated_at = max(created_at, self.now - days_between(rng, 1, 20))
        else:
            updated_at = max(created_at, self.now - days_between(rng, 0, 5))
        analyzed_at = max(updated_at, self.now - timedelta(hours=randint(rng, 1, 20)))
        return FindingPlan(
            id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            finding_type=finding_type,
            principal=principal,
            status=status,
            created_at=created_at,
            updated_at=updated_at,
            analyzed_at=analyzed_at,
            workflow="NOTIFIED" if status == ACTIVE and rng.random() < 0.2 else "NEW",
            capital_owner_key=rng.random() < 0.15,
            unused_keys=unused_keys,
        )


def _access_key_id(rng: random.Random, account_id: str) -> str:
    """An AKIA key id that encodes its account the way AWS key ids do (and moto copies)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    number = int(account_id)
    account_part = base64.b32encode((number // 2 + 549_755_813_888).to_bytes(5, "big")).decode()
    middle = pick(rng, alphabet[16:] if number % 2 else alphabet[:16])
    head = "AKIA" + account_part + middle
    return head + "".join(rng.choices(alphabet, k=20 - len(head)))


def _ensure_inactive(findings: list[FindingPlan], suspended: set[str]) -> None:
    """Give every organization an ARCHIVED and a RESOLVED finding; small ones may draw none."""
    present = {f.status for f in findings}
    candidates = (i for i, f in enumerate(findings) if f.active and f.account_id not in suspended)
    for status in (ARCHIVED, RESOLVED):
        index = None if status in present else next(candidates, None)
        if index is not None:
            finding = findings[index]
            updated = max(finding.created_at, finding.analyzed_at - timedelta(days=3))
            findings[index] = replace(finding, status=status, workflow="NEW", updated_at=updated)


def _external_findings(
    rng: random.Random,
    active: list[Account],
    principals: list[PrincipalPlan],
    now: datetime,
) -> tuple[ExternalFindingPlan, ...]:
    """Three external-access findings: two S3 buckets and a role trusted by an outside account."""
    shared, public = active[0], active[-1]
    vendor = next(p for p in principals if p.name == VENDOR_ROLE)
    grants = [
        (
            shared.id,
            f"arn:aws:s3:::{shared.name}-exports",
            "AWS::S3::Bucket",
            "AwsS3Bucket",
            ("s3:GetObject", "s3:GetObjectVersion"),
            False,
        ),
        (
            public.id,
            f"arn:aws:s3:::{public.name}-static-site",
            "AWS::S3::Bucket",
            "AwsS3Bucket",
            ("s3:GetObject",),
            True,
        ),
        (vendor.account_id, vendor.arn, "AWS::IAM::Role", "AwsIamRole", ("sts:AssumeRole",), False),
    ]
    plans = []
    for account_id, resource, resource_type, asff_type, actions, is_public in grants:
        created = now - days_between(rng, 60, 500)
        updated = max(created, now - days_between(rng, 1, 30))
        plans.append(
            ExternalFindingPlan(
                id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                account_id=account_id,
                resource=resource,
                resource_type=resource_type,
                asff_type=asff_type,
                actions=actions,
                is_public=is_public,
                created_at=created,
                updated_at=updated,
                analyzed_at=max(updated, now - timedelta(hours=randint(rng, 1, 20))),
            )
        )
    return tuple(plans)
