"""Frozen dataclasses that travel between pipeline stages.

Raw boto3 dicts stop at `normalise`; everything after it sees only these types.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any


class FindingType(StrEnum):
    """The four Access Analyzer unused-access finding types (reference §1.7)."""

    UNUSED_ROLE = "UnusedIAMRole"
    UNUSED_ACCESS_KEY = "UnusedIAMUserAccessKey"
    UNUSED_PASSWORD = "UnusedIAMUserPassword"
    UNUSED_PERMISSION = "UnusedPermission"

    @property
    def label(self) -> str:
        return _TYPE_LABELS[self]


_TYPE_LABELS = {
    FindingType.UNUSED_ROLE: "Unused role",
    FindingType.UNUSED_ACCESS_KEY: "Unused access key",
    FindingType.UNUSED_PASSWORD: "Unused console password",
    FindingType.UNUSED_PERMISSION: "Unused permissions",
}


class FindingStatus(StrEnum):
    ACTIVE = "active"
    EXCEPTED = "excepted"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Account:
    """An AWS account as Organizations describes it."""

    id: str
    name: str
    email: str = ""
    state: str = "ACTIVE"
    ou_path: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    # Ids of the root and every OU above the account, outermost first (for scope filters).
    ou_ids: tuple[str, ...] = ()
    # When the account joined the organization (Organizations JoinedTimestamp), if known.
    joined_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.state == "ACTIVE"


@dataclass(frozen=True)
class RawRecord:
    """One record exactly as a source returned it; `normalise` turns it into a Finding."""

    source: str
    payload: Mapping[str, Any]
    origin: str = ""


@dataclass(frozen=True)
class SourceRef:
    """Where a finding was reported: the source name, its id there, and the product ARN."""

    source: str
    id: str
    product_arn: str = ""


@dataclass(frozen=True)
class UnusedAction:
    action: str
    last_accessed: datetime | None = None


@dataclass(frozen=True)
class UnusedService:
    namespace: str
    last_accessed: datetime | None = None
    actions: tuple[UnusedAction, ...] = ()


@dataclass(frozen=True)
class RecommendedStep:
    """One step of an Access Analyzer unused-permissions recommendation (reference §1.8)."""

    action: str  # CREATE_POLICY | DETACH_POLICY
    # Policy ARN for managed policies, policy name for inline policies.
    existing_policy_id: str = ""
    # Policy JSON text; only on CREATE_POLICY.
    recommended_policy: str = ""
    policy_updated_at: datetime | None = None


@dataclass(frozen=True)
class Recommendation:
    """What Access Analyzer recommends for an UnusedPermission finding."""

    status: str  # SUCCEEDED | FAILED | IN_PROGRESS
    steps: tuple[RecommendedStep, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class Finding:
    """One unit of unused access, normalised from one or more sources.

    `key` is stable across runs and sources: account, finding type and principal ARN. The
    access-key id and service namespaces are details of the finding, not part of its key,
    because Security Hub's ASFF record of the same access carries neither.
    """

    type: FindingType
    account_id: str
    principal_arn: str
    severity: str = "LOW"
    region: str = ""
    last_accessed: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    access_key_ids: tuple[str, ...] = ()
    services: tuple[UnusedService, ...] = ()
    sources: tuple[SourceRef, ...] = ()
    principal_tags: Mapping[str, str] = field(default_factory=dict)
    recommendation: Recommendation | None = None
    # Managed policy ARNs attached to the principal, where a source knew them.
    attached_policies: tuple[str, ...] = ()
    # Existing policy id (ARN or inline name) -> its JSON text, where a source fetched it;
    # the "before" side of a recommendation diff.
    policy_documents: Mapping[str, str] = field(default_factory=dict)
    # A role's trust policy (JSON text) where the member role read it (GetRole); "" = not read.
    trust_policy: str = ""

    @property
    def key(self) -> str:
        return f"{self.account_id}/{self.type.value}/{self.principal_arn}"

    @property
    def principal_type(self) -> str:
        return "user" if ":user/" in self.principal_arn else "role"

    @property
    def principal_path(self) -> str:
        """The IAM path, e.g. `/aws-service-role/ecs.amazonaws.com/`."""
        resource = self.principal_arn.split(":", 5)[-1]
        _, _, rest = resource.partition("/")
        path, _, _ = rest.rpartition("/")
        return f"/{path}/" if path else "/"

    @property
    def principal_name(self) -> str:
        return self.principal_arn.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ObservationWindow:
    """What "unused" was measured over: the period the source looks back, and since when.

    `source` names where the number comes from: `analyzer_configuration` (the analyzer's
    `unusedAccessAge`), `service_linked_analyzer` (Security Hub's analyzer, fixed 90 days),
    `iam` (`sources.iam.unused_after_days` over IAM's last-used data) or `unknown`.
    """

    days: int | None
    source: str
    # When the analyzer was created (Access Analyzer) or since when IAM tracks; None = unknown.
    since: date | None = None


@dataclass(frozen=True)
class OrganizationAccess:
    """Why a principal holds the organization together and must not be removed.

    `kind`: `organizations_account_access`, `control_tower`, `stacksets_execution`,
    `reporter`, `protected` (config `remediation.protected_principals`) or `trusts_management`
    (its trust policy trusts the management or a security-tooling account).
    """

    kind: str
    reason: str
    # The AWS documentation that names the role, or "" for the organization's own principals.
    source_doc: str = ""


@dataclass(frozen=True)
class OwnerResolution:
    """Who owns a finding and which rule of the ladder said so."""

    owner: str | None
    rule: str
    # Escalation address for SLA breaches, from config.
    manager: str | None = None
    # Rules tried before the one that matched and why each fell through (shown in reports).
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RemediationStep:
    """One step: running the `command`s of all steps in order removes the access."""

    title: str
    command: str
    console_url: str = ""
    rollback: str = ""
    # Multi-line text to read before running the step: a recommended policy's before/after
    # diff, or the unused services and actions to review. Never part of the command.
    detail: str = ""


@dataclass(frozen=True)
class Links:
    console: str
    access_analyzer: str
    security_hub: str = ""


@dataclass(frozen=True)
class ExceptionMatch:
    """The exception (config `exceptions`) that covers a finding."""

    id: str
    reason: str
    approved_by: str
    expires: date
    # An expired exception no longer hides anything: the finding is active again and flagged.
    expired: bool = False
    # `config` (exceptions.rules / exceptions.file) or `review` (an owner's Keep decision).
    source: str = "config"


@dataclass(frozen=True)
class Review:
    """The owner's decision in force on a finding (`decisions import`) and where it stands.

    `decision`: remove | keep | not_mine. `until`: a Keep's last day, a Remove's due date.
    `state`: pending | kept | expired | promised | overdue | triage | reassigned
    (`reporter.reviews.decisions`)."""

    id: int
    decision: str
    by: str
    at: datetime
    until: date | None
    reason: str
    state: str
    approved_by: str | None = None

    @property
    def overdue(self) -> bool:
        return self.state == "overdue"


@dataclass(frozen=True)
class ReportItem:
    """A finding with everything the reports show about it."""

    finding: Finding
    account: Account
    owner: OwnerResolution
    links: Links
    # reporter.remediation.Remediation (steps derived when read) or a tuple of steps.
    remediation: Sequence[RemediationStep]
    priority: int
    status: FindingStatus = FindingStatus.ACTIVE
    first_seen: date | None = None
    unused_days: int | None = None
    exception: ExceptionMatch | None = None
    # Days since first seen, the SLA for its type (config), and whether it is past it.
    age_days: int | None = None
    sla_days: int | None = None
    sla_breached: bool = False
    new: bool = False
    # Set when the principal is organization access: reviewed with the security team, never
    # removed by following the report.
    organization_access: OrganizationAccess | None = None
    window: ObservationWindow | None = None
    # The owner's decision in force (access reviews), or None.
    review: Review | None = None


@dataclass(frozen=True)
class ResolvedFinding:
    """A finding open in the previous run and gone now (from the history)."""

    key: str
    account_id: str
    type: str
    principal_arn: str
    first_seen: datetime
    resolved_at: datetime


@dataclass(frozen=True)
class ExceptionNotice:
    """An exception the reports must mention: expiring soon, expired, or matching nothing."""

    id: str
    kind: str  # expiring | expired | stale
    expires: date
    approved_by: str
    reason: str
    matched: int = 0


@dataclass(frozen=True)
class TrendPoint:
    """One past run for the organization summary's trend."""

    run_id: str
    started_at: datetime
    findings: int
    new: int
    resolved: int


@dataclass(frozen=True)
class AccountCoverage:
    """Whether an account in scope was assessed, by which sources, and if not, why."""

    account_id: str
    account_name: str
    state: str
    covered: bool
    sources: tuple[str, ...] = ()
    reason: str = ""
    # False for accounts we list but are not meant to assess (suspended, excluded by config).
    in_scope: bool = True


@dataclass(frozen=True)
class Lookalike:
    """Who really produced a record that claims to be IAM Access Analyzer's (DESIGN.md, "Who
    produced a finding"): the product it came from and the account that put it there."""

    product: str  # ASFF ProductArn, OCSF metadata.product.uid, or an event's `source`
    account_id: str  # ASFF AwsAccountId, OCSF cloud.account.uid, or an event's `account`


@dataclass(frozen=True)
class Quarantined:
    """A record that could not be normalised, kept with the reason."""

    source: str
    origin: str
    reason: str
    record: Mapping[str, Any]
    # Set when the record is a look-alike: it claims to be Access Analyzer's but is not.
    lookalike: Lookalike | None = None


@dataclass(frozen=True)
class RunContext:
    """Identity of one run, shared by every report of it."""

    run_id: str
    generated_at: datetime
    period_start: date
    period_end: date
    scope: str


@dataclass(frozen=True)
class OwnerReport:
    """Everything one owner receives: all findings of all accounts they own."""

    owner: str
    context: RunContext
    items: tuple[ReportItem, ...]
    accounts: tuple[Account, ...]
    coverage: tuple[AccountCoverage, ...]
    resolved: tuple[ResolvedFinding, ...] = ()
    exception_notices: tuple[ExceptionNotice, ...] = ()

    @property
    def slug(self) -> str:
        return owner_slug(self.owner)


@dataclass(frozen=True)
class ReviewProgress:
    """One owner's access review: decisions in force, Keeps pending approval, overdue and
    verified removals, Not mine."""

    owner: str
    decided: int
    pending: int
    overdue: int
    removed: int
    not_mine: int = 0


@dataclass(frozen=True)
class OrgSummary:
    """The security team's view of the whole run."""

    context: RunContext
    owners: tuple[OwnerReport, ...]
    items: tuple[ReportItem, ...]
    unowned: tuple[ReportItem, ...]
    coverage: tuple[AccountCoverage, ...]
    skipped: int = 0
    quarantined: int = 0
    resolved: tuple[ResolvedFinding, ...] = ()
    exception_notices: tuple[ExceptionNotice, ...] = ()
    trend: tuple[TrendPoint, ...] = ()
    # Quarantined look-alikes by who produced them, with how many: a warning for the team.
    lookalikes: tuple[tuple[Lookalike, int], ...] = ()
    # What the organization access check could not see (trust policies not read, and why).
    organization_access_notes: tuple[str, ...] = ()
    # Access reviews: progress per owner, and the findings owners said are not theirs.
    review_progress: tuple[ReviewProgress, ...] = ()
    triage: tuple[ReportItem, ...] = ()


@dataclass(frozen=True)
class RunResult:
    """What `pipeline.run` returns to its caller (CLI or scheduler)."""

    context: RunContext
    run_dir: str
    owners: tuple[tuple[str, int], ...]
    findings: int
    files: int
    coverage: tuple[AccountCoverage, ...]
    skipped: int
    quarantined: int
    outbox: tuple[str, ...] = ()
    new: int = 0
    resolved: int = 0
    # (recipient, error) of every message this run could not deliver.
    undelivered: tuple[tuple[str, str], ...] = ()
    # Quarantined look-alikes of Access Analyzer findings, by who produced them (OrgSummary's).
    lookalikes: tuple[tuple[Lookalike, int], ...] = ()

    @property
    def exit_code(self) -> int:
        """0 ok; 1 finished but incomplete (an in-scope account not covered, or a message
        not delivered)."""
        incomplete = any(c.in_scope and not c.covered for c in self.coverage)
        return 1 if incomplete or self.undelivered else 0


def owner_slug(owner: str) -> str:
    """A file-system-safe, stable folder name for an owner (an e-mail address or a name)."""
    lowered = owner.lower()
    safe = "".join(ch if ch.isalnum() or ch in "._@-" else "_" for ch in lowered)
    safe = safe.strip("._") or "unowned"
    if safe != lowered:
        # Keep distinct owners apart: `a+b@x` and `a_b@x` must never share a folder.
        safe += "-" + hashlib.sha256(owner.encode()).hexdigest()[:8]
    return safe
