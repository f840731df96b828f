"""Factories for the models, with immutable defaults (no shared mutable state between tests).

Every factory takes keyword arguments only and builds a realistic value when given none; the
`sample_*` and `hostile_*` helpers assemble whole reports for render tests.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from urllib.parse import quote

from reporter.models import (
    Account,
    AccountCoverage,
    ExceptionMatch,
    ExceptionNotice,
    Finding,
    FindingStatus,
    FindingType,
    Links,
    OrgSummary,
    OwnerReport,
    OwnerResolution,
    Recommendation,
    RecommendedStep,
    RemediationStep,
    ReportItem,
    ResolvedFinding,
    RunContext,
    SourceRef,
    TrendPoint,
    UnusedAction,
    UnusedService,
)

GENERATED_AT = datetime(2025, 3, 10, 6, 30, tzinfo=UTC)
RUN_ID = "20250310T063000Z-7f3a9c"
OWNER = "team-payments@example.com"

PROD = Account(
    id="111111111111",
    name="payments-prod",
    email="aws+payments-prod@example.com",
    ou_path=("Root", "Workloads", "Production"),
    tags=MappingProxyType({"owner": OWNER}),
)
STAGING = Account(
    id="222222222222",
    name="payments-staging",
    email="aws+payments-staging@example.com",
    ou_path=("Root", "Workloads", "Staging"),
)
SANDBOX = Account(id="333333333333", name="payments-sandbox", ou_path=("Root", "Sandbox"))

# Values a hostile or careless principal/tag author could put into AWS data.
SCRIPT = "<script>alert(1)</script>"
HYPERLINK = '=HYPERLINK("http://x")'
PLUS_CMD = "+cmd"
AT_SUM = "@SUM(1)"
MINUS = "-2+3"
RTL = "invoice\u202etxt.exe"
LONG = "x" * 500
TAB = "\tinjected"
HOSTILE_NAMES: tuple[str, ...] = (SCRIPT, HYPERLINK, PLUS_CMD, AT_SUM, MINUS, RTL, LONG, TAB)


def ago(days: int) -> datetime:
    return GENERATED_AT - timedelta(days=days)


def make_context(
    *,
    run_id: str = RUN_ID,
    generated_at: datetime = GENERATED_AT,
    period_start: date = date(2025, 3, 3),
    period_end: date = date(2025, 3, 9),
    scope: str = "organization o-a1b2c3d4e5 (all active accounts)",
) -> RunContext:
    return RunContext(run_id, generated_at, period_start, period_end, scope)


def make_account(
    *,
    id: str = PROD.id,
    name: str = PROD.name,
    ou_path: tuple[str, ...] = PROD.ou_path,
    tags: Mapping[str, str] = MappingProxyType({}),
) -> Account:
    return Account(id=id, name=name, email=f"aws+{id}@example.com", ou_path=ou_path, tags=tags)


def principal_arn(account_id: str, finding_type: FindingType, name: str, path: str = "/") -> str:
    kind = (
        "role"
        if finding_type in (FindingType.UNUSED_ROLE, FindingType.UNUSED_PERMISSION)
        else "user"
    )
    return f"arn:aws:iam::{account_id}:{kind}{path}{name}"


def make_finding(
    *,
    type: FindingType = FindingType.UNUSED_ROLE,
    account_id: str = PROD.id,
    name: str = "legacy-batch-runner",
    arn: str | None = None,
    severity: str = "LOW",
    last_accessed: datetime | None = GENERATED_AT - timedelta(days=214),
    access_key_ids: tuple[str, ...] = (),
    services: tuple[UnusedService, ...] = (),
    sources: tuple[SourceRef, ...] | None = None,
    recommendation: Recommendation | None = None,
    policy_documents: Mapping[str, str] = MappingProxyType({}),
    principal_tags: Mapping[str, str] = MappingProxyType({}),
) -> Finding:
    arn = arn or principal_arn(account_id, type, name)
    if sources is None:
        sources = (
            SourceRef(
                "access_analyzer",
                f"a1b2c3d4-{zlib.crc32(f'{arn}|{type.value}'.encode()):012d}",
                "arn:aws:securityhub:eu-west-1::product/aws/access-analyzer",
            ),
        )
    return Finding(
        type=type,
        account_id=account_id,
        principal_arn=arn,
        severity=severity,
        region="eu-west-1",
        last_accessed=last_accessed,
        created_at=GENERATED_AT - timedelta(days=40),
        updated_at=GENERATED_AT - timedelta(days=1),
        access_key_ids=access_key_ids,
        services=services,
        sources=sources,
        recommendation=recommendation,
        policy_documents=policy_documents,
        principal_tags=principal_tags,
    )


def console_url(finding: Finding) -> str:
    kind = "users" if finding.principal_type == "user" else "roles"
    return (
        f"https://console.aws.amazon.com/iam/home#/{kind}/details/{quote(finding.principal_name)}"
    )


def make_links(finding: Finding) -> Links:
    resource = quote(finding.principal_arn, safe="")
    return Links(
        console=console_url(finding),
        access_analyzer=(
            "https://eu-west-1.console.aws.amazon.com/access-analyzer/home?region=eu-west-1"
            f"#/unused-access-findings?resource={resource}"
        ),
        security_hub=(
            "https://eu-west-1.console.aws.amazon.com/securityhub/home?region=eu-west-1"
            f"#/findings?search=Id%3D%255Coperator%255C%253AEQUALS%255C%253A{resource}"
        ),
    )


def remediation_for(finding: Finding) -> tuple[RemediationStep, ...]:
    """Steps shaped like enrich's (reference §5.2), so the PDF shows real-looking commands."""
    name = finding.principal_name
    url = console_url(finding)
    if finding.type is FindingType.UNUSED_ACCESS_KEY:
        key = finding.access_key_ids[0] if finding.access_key_ids else "AKIAEXAMPLE"
        return (
            RemediationStep(
                "Deactivate the access key",
                f"aws iam update-access-key --user-name '{name}' --access-key-id {key} "
                "--status Inactive",
                url + "?section=security_credentials",
                f"aws iam update-access-key --user-name '{name}' --access-key-id {key} "
                "--status Active",
            ),
            RemediationStep(
                "Delete the access key after the grace period",
                f"aws iam delete-access-key --user-name '{name}' --access-key-id {key}",
            ),
        )
    if finding.type is FindingType.UNUSED_PASSWORD:
        return (
            RemediationStep(
                "Remove console sign-in",
                f"aws iam delete-login-profile --user-name '{name}'",
                url + "?section=security_credentials",
                f"aws iam create-login-profile --user-name '{name}' --password-reset-required "
                '--password "$(openssl rand -base64 24)"',
            ),
        )
    if finding.type is FindingType.UNUSED_PERMISSION:
        return (
            RemediationStep(
                "Replace the policy with the recommended one",
                f"aws iam put-role-policy --role-name '{name}' --policy-name recommended "
                "--policy-document file://recommended.json",
                url,
                f"aws iam delete-role-policy --role-name '{name}' --policy-name recommended",
            ),
        )
    return (
        RemediationStep(
            "Block the role reversibly (deny all)",
            f"aws iam attach-role-policy --role-name '{name}' "
            "--policy-arn arn:aws:iam::aws:policy/AWSDenyAll",
            url,
            f"aws iam detach-role-policy --role-name '{name}' "
            "--policy-arn arn:aws:iam::aws:policy/AWSDenyAll",
        ),
        RemediationStep(
            "Delete the role after the grace period",
            f"for p in $(aws iam list-attached-role-policies --role-name '{name}' "
            "--query 'AttachedPolicies[].PolicyArn' --output text); do "
            f"aws iam detach-role-policy --role-name '{name}' --policy-arn \"$p\"; done && "
            f"aws iam delete-role --role-name '{name}'",
        ),
    )


def make_item(
    *,
    finding: Finding | None = None,
    account: Account = PROD,
    owner: str | None = OWNER,
    rule: str = "account-tag:owner",
    priority: int = 50,
    status: FindingStatus = FindingStatus.ACTIVE,
    first_seen: date | None = date(2025, 1, 6),
    unused_days: int | None = 214,
    remediation: tuple[RemediationStep, ...] | None = None,
    links: Links | None = None,
    exception: ExceptionMatch | None = None,
    age_days: int | None = None,
    sla_days: int | None = None,
    sla_breached: bool = False,
    new: bool = False,
    manager: str | None = None,
    notes: tuple[str, ...] = (),
) -> ReportItem:
    finding = finding or make_finding(account_id=account.id)
    if age_days is None and first_seen is not None:
        age_days = (GENERATED_AT.date() - first_seen).days
    return ReportItem(
        finding=finding,
        account=account,
        owner=OwnerResolution(owner, rule, manager, notes),
        links=links or make_links(finding),
        remediation=remediation_for(finding) if remediation is None else remediation,
        priority=priority,
        status=status,
        first_seen=first_seen,
        unused_days=unused_days,
        exception=exception,
        age_days=age_days,
        sla_days=sla_days,
        sla_breached=sla_breached,
        new=new,
    )


def make_exception(
    *,
    id: str = "EXC-2025-007",
    reason: str = "Break-glass console user, reviewed quarterly",
    approved_by: str = "ciso@example.com",
    expires: date = date(2025, 9, 30),
    expired: bool = False,
) -> ExceptionMatch:
    return ExceptionMatch(id, reason, approved_by, expires, expired)


POLICY_BEFORE = (
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
    '"Action":["s3:*","dynamodb:*"],"Resource":"*"}]}'
)
POLICY_AFTER = (
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
    '"Action":["s3:GetObject","s3:ListBucket"],"Resource":"*"}]}'
)


def make_recommendation(
    *, policy_id: str = "arn:aws:iam::222222222222:policy/data-pipeline-access"
) -> Recommendation:
    """A SUCCEEDED recommendation shaped like GetFindingRecommendation (reference §1.8)."""
    return Recommendation(
        status="SUCCEEDED",
        steps=(
            RecommendedStep(
                "CREATE_POLICY", policy_id, POLICY_AFTER, GENERATED_AT - timedelta(days=3)
            ),
            RecommendedStep("DETACH_POLICY", policy_id),
        ),
    )


def make_resolved(
    *,
    account_id: str = PROD.id,
    name: str = "old-reporting-role",
    type: FindingType = FindingType.UNUSED_ROLE,
    days_open: int = 30,
) -> ResolvedFinding:
    arn = principal_arn(account_id, type, name)
    return ResolvedFinding(
        key=f"{account_id}/{type.value}/{arn}",
        account_id=account_id,
        type=type.value,
        principal_arn=arn,
        first_seen=GENERATED_AT - timedelta(days=days_open),
        resolved_at=GENERATED_AT,
    )


def make_notice(
    *,
    id: str = "EXC-2025-007",
    kind: str = "expiring",
    expires: date = date(2025, 3, 24),
    approved_by: str = "ciso@example.com",
    reason: str = "Break-glass console user, reviewed quarterly",
    matched: int = 1,
) -> ExceptionNotice:
    return ExceptionNotice(id, kind, expires, approved_by, reason, matched)


def make_trend(runs: int = 6) -> tuple[TrendPoint, ...]:
    """Weekly runs, oldest first, with findings falling as owners clean up."""
    return tuple(
        TrendPoint(
            run_id=f"{GENERATED_AT - timedelta(days=7 * (runs - n)):%Y%m%dT%H%M%SZ}-0000{n:02d}",
            started_at=GENERATED_AT - timedelta(days=7 * (runs - n)),
            findings=40 - 4 * n,
            new=3 + n % 2,
            resolved=6 + n % 3,
        )
        for n in range(runs)
    )


S3 = UnusedService(
    "s3",
    GENERATED_AT - timedelta(days=120),
    (
        UnusedAction("s3:DeleteObject", None),
        UnusedAction("s3:PutBucketPolicy", GENERATED_AT - timedelta(days=300)),
    ),
)
DYNAMODB = UnusedService("dynamodb", None, ())


def sample_items() -> tuple[ReportItem, ...]:
    """All four finding types across two accounts, plus one in a third account."""
    return (
        make_item(
            finding=make_finding(
                name="legacy-batch-runner", severity="MEDIUM", last_accessed=ago(420)
            ),
            priority=80,
            unused_days=420,
            sla_days=30,
            sla_breached=True,
        ),
        make_item(
            finding=make_finding(
                type=FindingType.UNUSED_ACCESS_KEY,
                name="ci-deployer",
                access_key_ids=("AKIAIOSFODNN7EXAMPLE",),
                last_accessed=ago(95),
            ),
            priority=70,
            unused_days=95,
            first_seen=GENERATED_AT.date(),
            new=True,
            sla_days=30,
            manager="payments-lead@example.com",
            notes=("principal tag owner: 'ci bot' is not an e-mail address",),
        ),
        make_item(
            finding=make_finding(
                type=FindingType.UNUSED_PASSWORD,
                account_id=STAGING.id,
                name="alice.admin",
                last_accessed=None,
            ),
            account=STAGING,
            priority=60,
            unused_days=None,
            first_seen=None,
            status=FindingStatus.EXCEPTED,
            exception=make_exception(),
        ),
        make_item(
            finding=make_finding(
                type=FindingType.UNUSED_PERMISSION,
                account_id=STAGING.id,
                name="data-pipeline",
                last_accessed=ago(120),
                services=(S3, DYNAMODB),
                recommendation=make_recommendation(),
                policy_documents=MappingProxyType(
                    {"arn:aws:iam::222222222222:policy/data-pipeline-access": POLICY_BEFORE}
                ),
            ),
            account=STAGING,
            priority=40,
            unused_days=120,
        ),
        make_item(
            finding=make_finding(
                account_id=SANDBOX.id,
                name="experiment-2023",
                severity="HIGH",
                last_accessed=ago(640),
            ),
            account=SANDBOX,
            priority=30,
            unused_days=640,
        ),
    )


def hostile_account() -> Account:
    return make_account(id="444444444444", name=SCRIPT, ou_path=(HYPERLINK, PLUS_CMD))


def hostile_items() -> tuple[ReportItem, ...]:
    """One finding per hostile name, in an account whose name is itself hostile.

    The ARN carries the raw name (IAM would refuse most of these, but tags, account names and
    imported files would not), and the name also reaches the remediation commands.
    """
    account = hostile_account()
    items = []
    for n, name in enumerate(HOSTILE_NAMES):
        finding_type = tuple(FindingType)[n % 4]
        finding = make_finding(
            type=finding_type,
            account_id=account.id,
            name=name,
            arn=f"arn:aws:iam::{account.id}:{'user' if n % 4 in (1, 2) else 'role'}/{name}",
            access_key_ids=(AT_SUM,) if finding_type is FindingType.UNUSED_ACCESS_KEY else (),
            services=(UnusedService(PLUS_CMD, None, (UnusedAction(HYPERLINK),)),)
            if finding_type is FindingType.UNUSED_PERMISSION
            else (),
            sources=(SourceRef("security_hub", HYPERLINK, MINUS),),
        )
        items.append(
            make_item(
                finding=finding,
                account=account,
                owner=OWNER,
                rule=HYPERLINK,
                priority=10 + n,
                remediation=(
                    RemediationStep(SCRIPT, f"{HYPERLINK} {LONG}", "javascript:alert(1)", PLUS_CMD),
                ),
            )
        )
    return tuple(items)


def coverage_for(
    accounts: Sequence[Account], *, failed: Mapping[str, str] = MappingProxyType({})
) -> tuple[AccountCoverage, ...]:
    """Coverage rows: every account covered by Access Analyzer unless named in `failed`."""
    return tuple(
        AccountCoverage(
            account_id=a.id,
            account_name=a.name,
            state=a.state,
            covered=a.id not in failed,
            sources=() if a.id in failed else ("access_analyzer",),
            reason=failed.get(a.id, ""),
        )
        for a in accounts
    )


UNCOVERED = Account(id="555555555555", name="payments-legacy", ou_path=("Root", "Legacy"))
UNCOVERED_REASON = "AssumeRole denied: arn:aws:iam::555555555555:role/ReporterRead (AccessDenied)"


def make_report(
    *,
    owner: str = OWNER,
    items: tuple[ReportItem, ...] | None = None,
    accounts: tuple[Account, ...] | None = None,
    coverage: tuple[AccountCoverage, ...] | None = None,
    context: RunContext | None = None,
    resolved: tuple[ResolvedFinding, ...] | None = None,
    exception_notices: tuple[ExceptionNotice, ...] | None = None,
) -> OwnerReport:
    items = sample_items() if items is None else items
    if accounts is None:
        accounts = tuple({i.account.id: i.account for i in items}.values())
    if coverage is None:
        coverage = coverage_for(
            (*accounts, UNCOVERED), failed=MappingProxyType({UNCOVERED.id: UNCOVERED_REASON})
        )
    return OwnerReport(
        owner,
        context or make_context(),
        items,
        accounts,
        coverage,
        resolved=(make_resolved(),) if resolved is None else resolved,
        exception_notices=(make_notice(),) if exception_notices is None else exception_notices,
    )


def make_summary(
    *,
    reports: tuple[OwnerReport, ...] | None = None,
    unowned: tuple[ReportItem, ...] | None = None,
    coverage: tuple[AccountCoverage, ...] | None = None,
    skipped: int = 3,
    quarantined: int = 1,
    trend: tuple[TrendPoint, ...] | None = None,
) -> OrgSummary:
    reports = (make_report(),) if reports is None else reports
    if unowned is None:
        orphan = make_account(id="666666666666", name="shared-services", ou_path=("Root", "Shared"))
        unowned = (
            make_item(
                finding=make_finding(account_id=orphan.id, name="old-jenkins"),
                account=orphan,
                owner=None,
                rule="no rule matched",
                unused_days=300,
            ),
        )
    owned = tuple(i for r in reports for i in r.items)
    if coverage is None:
        seen = {i.account.id: i.account for i in (*owned, *unowned)}
        coverage = coverage_for(
            (*seen.values(), UNCOVERED), failed=MappingProxyType({UNCOVERED.id: UNCOVERED_REASON})
        )
    return OrgSummary(
        context=reports[0].context if reports else make_context(),
        owners=reports,
        items=owned + unowned,
        unowned=unowned,
        coverage=coverage,
        skipped=skipped,
        quarantined=quarantined,
        resolved=tuple(r for report in reports for r in report.resolved),
        exception_notices=(
            make_notice(),
            make_notice(id="EXC-2024-031", kind="expired", expires=date(2025, 3, 1)),
            make_notice(id="EXC-2024-002", kind="stale", expires=date(2025, 12, 31), matched=0),
        ),
        trend=make_trend() if trend is None else trend,
    )


def many_items(count: int, accounts: int = 8) -> tuple[ReportItem, ...]:
    """`count` findings of all types spread over `accounts` accounts, for size and speed checks."""
    accts = [
        make_account(id=f"{900000000000 + n}", name=f"workload-{n:02d}", ou_path=("Root", "Load"))
        for n in range(accounts)
    ]
    types = tuple(FindingType)
    items = []
    for n in range(count):
        account = accts[n % accounts]
        finding_type = types[n % 4]
        finding = make_finding(
            type=finding_type,
            account_id=account.id,
            name=f"principal-{n:05d}",
            access_key_ids=("AKIAIOSFODNN7EXAMPL0",)
            if finding_type is FindingType.UNUSED_ACCESS_KEY
            else (),
            services=(S3,) if finding_type is FindingType.UNUSED_PERMISSION else (),
            sources=(SourceRef("access_analyzer", f"finding-{n}"),),
        )
        items.append(
            make_item(
                finding=finding, account=account, priority=100 - n % 100, unused_days=90 + n % 400
            )
        )
    return tuple(items)
