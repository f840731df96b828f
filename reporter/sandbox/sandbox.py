"""`Sandbox`: start moto, build the organization from the plan, hand out ordinary sessions."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import boto3
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID

from reporter.models import Account, FindingType
from reporter.ratelimit import DOCUMENTED_RATES, Rate

from . import contacts, iam, moto_patches, org, records, security_hub
from .access_analyzer import AccessAnalyzerStandIn, Analyzer
from .data import (
    ADMIN_ROLE_NAME,
    ANALYZER_AGE_DAYS,
    MEMBER_ROLE_NAME,
    RESOLVED,
    TRACKING_DAYS,
    ExternalFindingPlan,
    FindingPlan,
    OrgPlan,
    build_plan,
)
from .faults import SERVICES, Faults
from .spec import ExpectedFinding, SandboxSpec

UNUSED_ANALYZER_NAME = "org-unused-access"
EXTERNAL_ANALYZER_NAME = "org-external-access"
_STUB_ID = "reporter-sandbox-access-analyzer"
_CONTACTS_STUB_ID = "reporter-sandbox-account"
_SECURITY_HUB_V2_STUB_ID = "reporter-sandbox-security-hub-v2"
# Any key moto does not know acts as its default account, which is the management account.
_MANAGEMENT_KEY = "testing"


class Sandbox:
    """A deterministic AWS organization on moto; use as a context manager.

    The product talks to it with ordinary boto3 sessions: `session()` for the management
    account, AssumeRole (of `delegated_admin_role_arn` or the member role) for the others.
    Every session that should reach Access Analyzer must go through `configure_session`.
    """

    management_account_id: str
    security_account_id: str
    delegated_admin_role_arn: str
    member_role_name: str
    analyzer_arn: str
    external_analyzer_arn: str
    home_region: str
    organization_id: str
    now: datetime
    accounts: tuple[Account, ...]
    expected: tuple[ExpectedFinding, ...]
    external_finding_ids: tuple[str, ...]
    # Account id → its SECURITY alternate contact address (Account Management stand-in).
    security_contacts: dict[str, str]
    _plan: OrgPlan
    _open = False

    def __init__(self, spec: SandboxSpec = SandboxSpec()) -> None:  # noqa: B008 - frozen
        self.spec = spec
        self.home_region = spec.home_region
        self.member_role_name = MEMBER_ROLE_NAME
        self.management_account_id = DEFAULT_ACCOUNT_ID
        self._stack: ExitStack | None = None
        self._stand_in: AccessAnalyzerStandIn | None = None
        # Denied roles, throttling and rate limits; armed once the organization is built.
        self.faults = Faults(spec.deny_assume_role, dict(spec.throttle), _enforced_rates(spec))
        self._contacts: contacts.ContactsStandIn | None = None
        self._security_hub_v2: security_hub.SecurityHubV2StandIn | None = None

    def __enter__(self) -> Sandbox:
        if Sandbox._open:
            # moto's state is process-wide: a second organization would land on the first.
            raise RuntimeError("another Sandbox is open; close it before building a new one")
        stack = ExitStack()
        try:
            stack.enter_context(mock_aws())
            stack.enter_context(moto_patches.patched_moto())
            self._build()
            self.faults.armed = True
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        Sandbox._open = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._stand_in is not None:
            self._stand_in.closed = True
        if self._contacts is not None:
            self._contacts.closed = True
        if self._security_hub_v2 is not None:
            self._security_hub_v2.closed = True
        if self._stack is not None:
            self._stack.close()
            self._stack = None
            Sandbox._open = False

    def session(self) -> boto3.Session:
        """A session acting as the management account, Access Analyzer stand-in registered."""
        session = boto3.Session(
            aws_access_key_id=_MANAGEMENT_KEY,
            aws_secret_access_key=_MANAGEMENT_KEY,
            region_name=self.home_region,
        )
        self.configure_session(session)
        return session

    def configure_session(self, session: boto3.Session) -> None:
        """Register the Access Analyzer stand-in; call before creating clients. Idempotent."""
        if self._stand_in is None:
            raise RuntimeError("enter the Sandbox (use `with Sandbox(...)`) before using it")
        # Faults first: registered ahead of the stand-in (and of moto, which listens on the
        # unqualified event), they answer before the emulator does.
        for service in SERVICES:
            session.events.register_first(
                f"before-send.{service}", self.faults, unique_id=f"{_STUB_ID}-faults-{service}"
            )
        session.events.register_first(
            "before-send.accessanalyzer", self._stand_in.stub, unique_id=_STUB_ID
        )
        if self._contacts is not None:
            session.events.register_first(
                "before-send.account", self._contacts.stub, unique_id=_CONTACTS_STUB_ID
            )
        if self._security_hub_v2 is not None:
            # Serves only GetFindingsV2 (moto has none); other Security Hub calls reach moto.
            session.events.register_first(
                "before-send.securityhub",
                self._security_hub_v2,
                unique_id=_SECURITY_HUB_V2_STUB_ID,
            )

    def assumed_session(self, role_arn: str, session_name: str = "sandbox") -> boto3.Session:
        """AssumeRole from the management account; the session is configured already."""
        credentials = (
            self.session()
            .client("sts")
            .assume_role(RoleArn=role_arn, RoleSessionName=session_name)["Credentials"]
        )
        session = boto3.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=self.home_region,
        )
        self.configure_session(session)
        return session

    def member_role_arn(self, account_id: str) -> str:
        return f"arn:aws:iam::{account_id}:role/{self.member_role_name}"

    def account(self, account_id: str) -> Account:
        return next(a for a in self.accounts if a.id == account_id)

    @property
    def reportable(self) -> tuple[ExpectedFinding, ...]:
        """The findings a correct report lists: active, in an ACTIVE account."""
        active_accounts = {a.id for a in self.accounts if a.active}
        return tuple(e for e in self.expected if e.active and e.account_id in active_accounts)

    def resolve(self, finding_ids: Iterable[str], at: datetime | None = None) -> None:
        """The owners fixed these findings: as at the analyzer's next run, Access Analyzer
        marks them RESOLVED and Security Hub archives them (reference §1.7). Both stand-ins
        and moto's Security Hub then answer accordingly; `expected` follows."""
        wanted = set(finding_ids)
        when = at or self.now
        fixed = {
            f.id: replace(f, status=RESOLVED, updated_at=when)
            for f in self._plan.findings
            if f.id in wanted
        }
        if missing := wanted - set(fixed):
            raise KeyError(f"no such sandbox finding: {sorted(missing)}")
        findings = tuple(fixed.get(f.id, f) for f in self._plan.findings)
        self._plan = replace(self._plan, findings=findings)
        if self._stand_in is not None:
            for analyzer in self._stand_in.analyzers:
                if analyzer.ref.arn == self.analyzer_arn:
                    analyzer.findings = findings
        if self._security_hub_v2 is not None:
            self._security_hub_v2.replace_items((*findings, *self._plan.external))
        unused = self._analyzer_ref(UNUSED_ANALYZER_NAME)
        renderer = _AsffRenderer(unused, self._analyzer_ref(EXTERNAL_ANALYZER_NAME), when)
        security = self.assumed_session(self.delegated_admin_role_arn)
        # BatchImportFindings with an existing Id updates that finding in place.
        security_hub.import_via_api(security, [renderer.record(f) for f in fixed.values()])
        self.expected = tuple(
            replace(e, active=False, status=RESOLVED) if e.finding_id in fixed else e
            for e in self.expected
        )

    def import_lookalike(self, finding_id: str, importer: str) -> dict[str, Any]:
        """Account `importer` imports a look-alike of finding `finding_id` (another account's
        principal) under its own default product, through its member role; the record is
        returned. moto keeps an account's imports to itself, while Security Hub shows every
        member's findings to the administrator, so the record is relayed to the
        administrator's store as well, unchanged."""
        finding = next(f for f in self._plan.findings if f.id == finding_id)
        if finding.account_id == importer:
            raise ValueError("a look-alike names a principal in another account")
        record = records.lookalike_record(
            finding, self._analyzer_ref(UNUSED_ANALYZER_NAME), importer, self.now
        )
        member = self.assumed_session(self.member_role_arn(importer))
        security_hub.import_via_api(member, [record])
        security = self.assumed_session(self.delegated_admin_role_arn)
        security_hub.import_via_api(security, [record])
        return record

    @property
    def plan(self) -> OrgPlan:
        """The generator's full plan (principals, dates, details) behind every source."""
        return self._plan

    def _build(self) -> None:
        spec = self.spec
        self.now = spec.now or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        plan = build_plan(spec, self.management_account_id, self.now)
        if spec.analyzer_exclusions:
            # An excluded account is not analysed: neither source has findings from it.
            kept = tuple(f for f in plan.findings if f.account_id not in spec.analyzer_exclusions)
            plan = replace(plan, findings=kept)
        self._plan = plan
        self.security_account_id = plan.security.id
        self.accounts = plan.accounts
        self.delegated_admin_role_arn = f"arn:aws:iam::{plan.security.id}:role/{ADMIN_ROLE_NAME}"
        unused = self._analyzer_ref(UNUSED_ANALYZER_NAME)
        external = self._analyzer_ref(EXTERNAL_ANALYZER_NAME)
        self.analyzer_arn, self.external_analyzer_arn = unused.arn, external.arn
        created = plan.now - timedelta(days=ANALYZER_AGE_DAYS)
        configuration: dict[str, Any] = {"unusedAccess": {"unusedAccessAge": TRACKING_DAYS}}
        if spec.analyzer_exclusions:
            configuration["unusedAccess"]["analysisRule"] = {
                "exclusions": [{"accountIds": sorted(spec.analyzer_exclusions)}]
            }
        self._stand_in = AccessAnalyzerStandIn(
            [
                Analyzer(
                    unused, "ORGANIZATION_UNUSED_ACCESS", created, plan.findings, configuration
                ),
                Analyzer(external, "ORGANIZATION", created, plan.external),
            ],
            plan.now,
            moto_patches.account_for_access_key,
        )
        planned_contacts = contacts.plan_contacts(plan)
        self.security_contacts = {k: c.email for k, c in planned_contacts.items()}
        self._contacts = contacts.ContactsStandIn(
            planned_contacts, self.management_account_id, moto_patches.account_for_access_key
        )
        self._security_hub_v2 = security_hub.SecurityHubV2StandIn(
            (*plan.findings, *plan.external), unused, moto_patches.account_for_access_key
        )
        with moto_patches.seeded_ids(spec.seed):
            self.organization_id = org.build_organization(plan, self.session())
            iam.build_iam(plan, principals=spec.builds_iam)
        # Trusted access for Account Management, as an organization reading contacts has it.
        self.session().client("organizations").enable_aws_service_access(
            ServicePrincipal=contacts.ACCOUNT_PRINCIPAL
        )
        security = self.assumed_session(self.delegated_admin_role_arn)
        security_hub.enable(self.session(), security, plan.security.id)
        members = [
            {"AccountId": a.id, "Email": a.email}
            for a in plan.accounts
            if a.id != plan.security.id and a.id not in spec.security_hub_off
        ]
        hub = security.client("securityhub")
        for start in range(0, len(members), 50):  # CreateMembers takes 50 accounts a call
            hub.create_members(AccountDetails=members[start : start + 50])
        self._import_findings(plan, security, unused, external)
        owners = {a.id: a.tags.get("owner") for a in plan.accounts}
        self.expected = tuple(_expected(f, owners[f.account_id]) for f in plan.findings)
        self.external_finding_ids = tuple(f.id for f in plan.external)

    def _analyzer_ref(self, name: str) -> records.AnalyzerRef:
        arn = f"arn:aws:access-analyzer:{self.home_region}:{self._plan.security.id}:analyzer/{name}"
        return records.AnalyzerRef(arn, name, self._plan.security.id, self.home_region)

    def _import_findings(
        self,
        plan: OrgPlan,
        security: boto3.Session,
        unused: records.AnalyzerRef,
        external: records.AnalyzerRef,
    ) -> None:
        items: tuple[FindingPlan | ExternalFindingPlan, ...] = (*plan.findings, *plan.external)
        renderer = _AsffRenderer(unused, external, plan.now)
        via_api = self.spec.security_hub_via_api
        if via_api is None:
            via_api = len(items) <= security_hub.BULK_THRESHOLD
        if via_api:
            security_hub.import_via_api(security, [renderer.record(item) for item in items])
        else:
            security_hub.seed_store(plan.security.id, self.home_region, items, renderer)


@dataclass(frozen=True)
class _AsffRenderer:
    unused: records.AnalyzerRef
    external: records.AnalyzerRef
    now: datetime

    def asff_id(self, item: FindingPlan | ExternalFindingPlan) -> str:
        if isinstance(item, ExternalFindingPlan):
            return records.asff_id(item, self.external)
        return records.asff_id(item, self.unused)

    def record(self, item: FindingPlan | ExternalFindingPlan) -> dict[str, Any]:
        if isinstance(item, ExternalFindingPlan):
            return records.asff_external_record(item, self.external)
        return records.asff_record(item, self.unused, self.now)


def _expected(finding: FindingPlan, owner: str | None) -> ExpectedFinding:
    principal = finding.principal
    namespaces: tuple[str, ...] = ()
    if finding.finding_type == FindingType.UNUSED_PERMISSION.value:
        namespaces = records.unused_namespaces(principal)
    return ExpectedFinding(
        account_id=principal.account_id,
        principal_arn=principal.arn,
        finding_type=finding.finding_type,
        owner=owner,
        active=finding.active,
        finding_id=finding.id,
        status=finding.status,
        access_key_ids=tuple(k.id for k in finding.unused_keys),
        service_namespaces=namespaces,
    )


def _enforced_rates(spec: SandboxSpec) -> dict[str, Rate] | None:
    if spec.rate_scale is None:
        return None
    rates = {key: rate.scaled(spec.rate_scale) for key, rate in DOCUMENTED_RATES.items()}
    aa = spec.access_analyzer_rate * spec.rate_scale
    rates["accessanalyzer.*"] = Rate(aa, max(1, int(spec.access_analyzer_rate)))
    return rates
