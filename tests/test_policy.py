"""The IAM policies in deploy/iam/ allow exactly what the code calls, and no IAM write, ever.

Two full runs on the sandbox organization record every AWS operation the product makes: a
botocore `before-parameter-build` handler on every session the run's `SessionFactory` hands out
(the base session and each assumed role), the same hook the sandbox uses to put its stand-ins
in. Each call is tied to the principal that made it (the runtime identity, or the role whose
credentials signed it) and mapped to the IAM action(s) AWS authorizes it as. Every call must be
allowed by the policies attached to that principal in that deployment, evaluated here by a tiny
evaluator (Allow statements, `*`/`?` wildcards; the shipped policies have no Deny). Conversely,
every action a shipped policy grants must have been needed by some recorded call, or be listed
in `NOT_CALLED_BUT_NEEDED` with the reason.

Deployment "roles": every feature on, each principal its own role (the recommended layout).
Deployment "base": no management role (the runtime identity reads Organizations itself), an
ExternalId on every AssumeRole, recommendations off and mail to the outbox, with only the
non-optional policies attached: proof that the optional ones are needed only by their feature.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from reporter.config import load_data
from reporter.models import RunResult
from reporter.pipeline import Dependencies, run
from reporter.sandbox import Sandbox, SandboxSpec
from reporter.session import AwsOptions, SessionFactory

ROOT = Path(__file__).resolve().parents[1]
IAM_DIR = ROOT / "deploy" / "iam"
TRUST_FILES = ("trust-policy.json", "trust-policy-external-id.json")
STACKSET = IAM_DIR / "member-role-stackset.yaml"

MANAGEMENT_ROLE = "UnusedAccessReporterOrganizationsReader"
ADMIN_ROLE = "UnusedAccessReporterFindingsReader"
MEMBER_ROLE = "UnusedAccessReporterReadOnly"
# The runtime identity, as the trust policies name it (the sandbox signs with the management
# account's default key; this stands for the role the reporter runs as).
REPORTER_ROLE_ARN = "arn:aws:iam::123456789012:role/UnusedAccessReporter"
EXTERNAL_ID = "reporter-7f3a9c21"
BUCKET = "reporter-evidence"
SES_DOMAIN = "example.com"
CONFIGURATION_SET = "reporter"

RUNTIME, ADMIN, MANAGEMENT, MEMBER = "runtime", "delegated-admin", "management", "member"
PRINCIPAL_OF_ROLE = {ADMIN_ROLE: ADMIN, MANAGEMENT_ROLE: MANAGEMENT, MEMBER_ROLE: MEMBER}

# Which shipped policies each principal has in each deployment (deploy/iam/README.md says the same).
ATTACHED: dict[str, dict[str, tuple[str, ...]]] = {
    "roles": {
        RUNTIME: (
            "runtime-base.json",
            "runtime-optional-ses.json",
            "runtime-optional-evidence-s3.json",
            "runtime-optional-large-attachments.json",
        ),
        ADMIN: (
            "delegated-admin-reader.json",
            "delegated-admin-optional-recommendations.json",
            "delegated-admin-optional-mark-notified.json",
        ),
        MANAGEMENT: ("organizations-reader.json",),
        MEMBER: ("member-reader.json",),
    },
    "base": {
        RUNTIME: ("runtime-base.json", "organizations-reader.json"),
        ADMIN: ("delegated-admin-reader.json",),
        MEMBER: ("member-reader.json",),
    },
}
TRUST = {"roles": "trust-policy.json", "base": "trust-policy-external-id.json"}

# Granted, but never the action of a call botocore makes: (policy file, action) → why.
NOT_CALLED_BUT_NEEDED: dict[tuple[str, str], str] = {
    ("runtime-optional-evidence-s3.json", "s3:ListBucket"): (
        "without it S3 answers GetObject on a missing key with 403 AccessDenied instead of 404 "
        "NoSuchKey; publish_run reads the run's manifest key first to refuse a second upload"
    ),
    ("runtime-optional-evidence-kms.json", "kms:GenerateDataKey"): (
        "S3 calls KMS on the caller's behalf when evidence.s3.sse is aws:kms (PutObject)"
    ),
    ("runtime-optional-evidence-kms.json", "kms:Decrypt"): (
        "S3 calls KMS on the caller's behalf to read an aws:kms object back (GetObject)"
    ),
}

# IAM actions whose names do not say "read" but are: the IAM source's one such action.
IAM_READ_EXCEPTIONS = {
    # Builds the account's credential report (at most every 4 hours); creates, changes and
    # grants nothing. The report is what GetCredentialReport returns (reference §4.1).
    "iam:GenerateCredentialReport",
}
READ_VERBS = ("Get", "List", "Describe", "BatchGet")
# Actions that write but are the point of a base policy, with the reason.
BASE_WRITE_EXCEPTIONS = {
    "sts:AssumeRole": "how the runtime identity becomes each reader role",
    "iam:GenerateCredentialReport": "see IAM_READ_EXCEPTIONS",
}


# --------------------------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------------------------

# The request parameters that decide an action or a resource; nothing else is kept.
_KEPT = (
    "RoleArn",
    "ExternalId",
    "Bucket",
    "Key",
    "VersionId",
    "ObjectLockMode",
    "ObjectLockRetainUntilDate",
    "ObjectLockLegalHoldStatus",
    "FromEmailAddress",
    "ConfigurationSetName",
)


@dataclass(frozen=True)
class Call:
    principal: str  # RUNTIME, ADMIN, MANAGEMENT or MEMBER
    service: str  # the service model's signing name (the IAM prefix, mostly)
    operation: str
    region: str
    account: str  # the account whose credentials signed the call
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.service}:{self.operation}"


class Recorder:
    """A `SessionFactory(configure=...)` hook: the sandbox's own, plus a recording handler."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.calls: list[Call] = []
        self._roles: dict[str, str] = {}  # access key id → role ARN it was issued for

    def configure(self, session: boto3.Session) -> None:
        self.sandbox.configure_session(session)
        credentials = session.get_credentials()
        assert credentials is not None
        role_arn = self._roles.get(credentials.access_key, "")
        role_name = role_arn.rsplit("/", 1)[-1]
        principal = PRINCIPAL_OF_ROLE[role_name] if role_arn else RUNTIME
        account = role_arn.split(":")[4] if role_arn else self.sandbox.management_account_id

        def record(model: Any, params: Mapping[str, Any], context: Any, **_: Any) -> None:
            kept = {k: params[k] for k in _KEPT if k in params}
            content = params.get("Content")
            if isinstance(content, Mapping):
                kept["Content"] = sorted(content)
            service = model.service_model
            self.calls.append(
                Call(
                    principal,
                    service.signing_name or service.endpoint_prefix,
                    model.name,
                    str(context.get("client_region") or ""),
                    account,
                    kept,
                )
            )
            if model.name == "AssumeRole":
                context["policy_test_role"] = params["RoleArn"]

        def issued(parsed: Mapping[str, Any], context: Any, **_: Any) -> None:
            if "Credentials" in parsed:
                self._roles[parsed["Credentials"]["AccessKeyId"]] = context["policy_test_role"]

        # Presigning a URL emits this event too, without a request: rightly recorded, since
        # the recipient's download is authorized as the signer's s3:GetObject.
        session.events.register("before-parameter-build", record, unique_id="policy-test")
        session.events.register("after-call.sts.AssumeRole", issued, unique_id="policy-test-issued")


@dataclass(frozen=True)
class Deployment:
    name: str
    calls: tuple[Call, ...]
    result: RunResult
    values: Mapping[str, str]  # placeholder → value in this deployment


def _settings(sandbox: Sandbox, out: Path, deployment: str) -> Any:
    org: dict[str, Any] = {
        "home_region": sandbox.home_region,
        "delegated_admin_role_arn": sandbox.delegated_admin_role_arn,
        "member_role_name": sandbox.member_role_name,
    }
    sources: dict[str, Any] = {
        "security_hub": {"enabled": True},
        "access_analyzer": {"enabled": True},
        # `always`: every account is read through its member role, not only the uncovered.
        "iam": {"enabled": True, "mode": "always"},
    }
    data: dict[str, Any] = {
        "organization": org,
        "sources": sources,
        "reports": {"output_dir": str(out), "render_workers": 1},
        "state": {"database_url": f"sqlite:///{out / 'state.db'}"},
    }
    if deployment == "roles":
        org["management_role_arn"] = (
            f"arn:aws:iam::{sandbox.management_account_id}:role/{MANAGEMENT_ROLE}"
        )
        sources["security_hub_v2"] = {"enabled": True}
        data["mail"] = {
            "transport": "ses",
            "ses": {"configuration_set": CONFIGURATION_SET},
            # Small enough that the PDFs go by presigned link, large enough for the text.
            "max_message_bytes": 40_000,
            "security_hub": {"mark_notified": True},
        }
        data["evidence"] = {
            "store": "s3",
            "s3": {"bucket": BUCKET, "object_lock_mode": "GOVERNANCE", "object_lock_days": 1},
        }
    else:
        org["external_id"] = EXTERNAL_ID
        sources["access_analyzer"]["recommendations"] = False
    return load_data(data, environ={}, source=f"policy test ({deployment})")


def _run(sandbox: Sandbox, out: Path, deployment: str) -> Deployment:
    settings = _settings(sandbox, out, deployment)
    recorder = Recorder(sandbox)
    org = settings.organization
    options = AwsOptions(
        region=org.home_region,
        external_id=org.external_id.get_secret_value() if org.external_id else None,
    )
    sessions = SessionFactory(sandbox.session(), options, recorder.configure)
    result = run(settings, Dependencies(sessions=sessions, output_dir=out), datetime.now(UTC))
    values = {
        "SECURITY_ACCOUNT_ID": sandbox.security_account_id,
        "MANAGEMENT_ACCOUNT_ID": sandbox.management_account_id,
        "REPORTER_ACCOUNT_ID": sandbox.management_account_id,
        "REPORTER_ROLE_ARN": REPORTER_ROLE_ARN,
        "EXTERNAL_ID": EXTERNAL_ID,
        "SES_REGION": sandbox.home_region,
        "SES_IDENTITY": SES_DOMAIN,
        "SES_CONFIGURATION_SET": CONFIGURATION_SET,
        "EVIDENCE_BUCKET": BUCKET,
        "EVIDENCE_PREFIX": settings.evidence.s3.prefix,
        "LINKS_BUCKET": BUCKET,  # large_attachments.bucket null: the evidence bucket
        "LINKS_PREFIX": settings.mail.large_attachments.prefix,
    }
    return Deployment(deployment, tuple(recorder.calls), result, values)


@pytest.fixture(scope="module")
def deployments(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Deployment]:
    """Both deployments, run one after the other on one sandbox organization."""
    with Sandbox(SandboxSpec(member_accounts=3)) as sandbox:
        base = sandbox.session()
        base.client("sesv2").create_email_identity(EmailIdentity=SES_DOMAIN)
        base.client("sesv2").create_configuration_set(ConfigurationSetName=CONFIGURATION_SET)
        base.client("s3").create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
        base.client("iam").create_role(
            RoleName=MANAGEMENT_ROLE,
            AssumeRolePolicyDocument=json.dumps(trust_policy("trust-policy.json", {})),
        )
        return {
            name: _run(sandbox, tmp_path_factory.mktemp(name), name) for name in ("roles", "base")
        }


# --------------------------------------------------------------------------------------------
# Operation → IAM action(s) and resource
# --------------------------------------------------------------------------------------------

# Operations authorized under another action name (service authorization reference, API docs).
_RENAMED: dict[str, tuple[str, ...]] = {
    "sts:GetCallerIdentity": (),  # needs no permission; cannot be denied
    "access-analyzer:ListFindingsV2": ("access-analyzer:ListFindings",),
    "access-analyzer:GetFindingV2": ("access-analyzer:GetFinding",),
    # The API reference says GetFindingsV2 is authorized as securityhub:GetFindings; the
    # Security Hub user guide's example policy grants securityhub:GetFindingsV2. The policy
    # grants both, so it works whichever IAM evaluates.
    "securityhub:GetFindingsV2": ("securityhub:GetFindings", "securityhub:GetFindingsV2"),
    "s3:HeadObject": ("s3:GetObject",),
    "s3:ListObjectsV2": ("s3:ListBucket",),
    "s3:ListObjectVersions": ("s3:ListBucketVersions",),
}


def required(call: Call) -> list[tuple[str, str]]:
    """(IAM action, resource ARN or "*") pairs a call needs; all must be allowed."""
    actions = list(_RENAMED.get(call.name, (call.name,)))
    p = call.params
    if call.service == "s3":
        versioned = "VersionId" in p
        if versioned and call.operation in ("GetObject", "HeadObject", "DeleteObject"):
            verb = "Delete" if call.operation == "DeleteObject" else "Get"
            actions = [f"s3:{verb}ObjectVersion"]
        if "ObjectLockMode" in p or "ObjectLockRetainUntilDate" in p:
            actions.append("s3:PutObjectRetention")
        if "ObjectLockLegalHoldStatus" in p:
            actions.append("s3:PutObjectLegalHold")
        resource = f"arn:aws:s3:::{p['Bucket']}" + (f"/{p['Key']}" if "Key" in p else "")
        return [(a, resource) for a in actions]
    if call.name == "ses:SendEmail":
        # SES v2 SendEmail is ses:SendEmail in the authorization reference; with raw content
        # SES also checks ses:SendRawEmail (AccessDenied reports name it). The identity is
        # the From domain; a configuration set is a resource of the call too.
        if "Raw" in p.get("Content", ()):
            actions.append("ses:SendRawEmail")
        arn = f"arn:aws:ses:{call.region}:{call.account}:"
        domain = str(p["FromEmailAddress"]).rsplit("@", 1)[-1].rstrip(">")
        resources = [arn + f"identity/{domain}"]
        if "ConfigurationSetName" in p:
            resources.append(arn + f"configuration-set/{p['ConfigurationSetName']}")
        return [(a, r) for a in actions for r in resources]
    if call.name == "sts:AssumeRole":
        return [(a, str(p["RoleArn"])) for a in actions]
    return [(a, "*") for a in actions]


# --------------------------------------------------------------------------------------------
# Policies and the evaluator
# --------------------------------------------------------------------------------------------


def _substitute(text: str, values: Mapping[str, str]) -> str:
    for token, value in values.items():
        text = text.replace(token, value)
    return text


def policy(name: str, values: Mapping[str, str]) -> list[dict[str, Any]]:
    """The statements of a shipped policy file, placeholders replaced by `values`."""
    document = json.loads(_substitute((IAM_DIR / name).read_text(encoding="utf-8"), values))
    assert document["Version"] == "2012-10-17", name
    statements = document["Statement"]
    return statements if isinstance(statements, list) else [statements]


def trust_policy(name: str, values: Mapping[str, str]) -> dict[str, Any]:
    defaults = {"REPORTER_ROLE_ARN": REPORTER_ROLE_ARN, "EXTERNAL_ID": EXTERNAL_ID}
    text = _substitute((IAM_DIR / name).read_text(encoding="utf-8"), {**defaults, **values})
    document: dict[str, Any] = json.loads(text)
    return document


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def statement_allows(statement: Mapping[str, Any], action: str, resource: str) -> bool:
    assert statement["Effect"] == "Allow", "the evaluator knows Allow only; ship no Deny"
    assert "NotAction" not in statement and "NotResource" not in statement
    # Action names are case-insensitive in IAM; resource ARNs are not.
    if not any(
        fnmatch.fnmatchcase(action.lower(), pattern.lower())
        for pattern in _listed(statement["Action"])
    ):
        return False
    return any(fnmatch.fnmatchcase(resource, pattern) for pattern in _listed(statement["Resource"]))


def allowed_by(
    files: tuple[str, ...], values: Mapping[str, str], action: str, resource: str
) -> list[str]:
    """The files among `files` with a statement that allows `action` on `resource`."""
    return [
        name
        for name in files
        if any(statement_allows(s, action, resource) for s in policy(name, values))
    ]


def trust_allows(document: Mapping[str, Any], caller_arn: str, params: Mapping[str, Any]) -> bool:
    for statement in document["Statement"]:
        if statement["Effect"] != "Allow" or "sts:AssumeRole" not in _listed(statement["Action"]):
            continue
        if caller_arn not in _listed(statement["Principal"]["AWS"]):
            continue
        condition = statement.get("Condition", {})
        assert set(condition) <= {"StringEquals"}, "the evaluator knows StringEquals only"
        wanted = condition.get("StringEquals", {})
        assert set(wanted) <= {"sts:ExternalId"}
        if "sts:ExternalId" in wanted and params.get("ExternalId") != wanted["sts:ExternalId"]:
            continue
        return True
    return False


def permission_files() -> list[str]:
    return sorted(p.name for p in IAM_DIR.glob("*.json") if p.name not in TRUST_FILES)


def stackset_statements() -> list[dict[str, Any]]:
    template = yaml.safe_load(STACKSET.read_text(encoding="utf-8"))
    (role,) = template["Resources"].values()
    (inline,) = role["Properties"]["Policies"]
    statements: list[dict[str, Any]] = inline["PolicyDocument"]["Statement"]
    return statements


def all_statements() -> Iterator[tuple[str, dict[str, Any]]]:
    for name in permission_files():
        for statement in policy(name, {}):
            yield name, statement
    for statement in stackset_statements():
        yield STACKSET.name, statement


# --------------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------------


def test_the_runs_exercise_every_feature_that_needs_a_permission(
    deployments: dict[str, Deployment],
) -> None:
    roles, base = deployments["roles"], deployments["base"]
    names = {(c.principal, c.name) for c in roles.calls}
    for expected in [
        (ADMIN, "access-analyzer:GenerateFindingRecommendation"),
        (ADMIN, "access-analyzer:GetFindingRecommendation"),
        (ADMIN, "securityhub:GetFindings"),
        (ADMIN, "securityhub:GetFindingsV2"),
        (ADMIN, "securityhub:BatchUpdateFindings"),
        (MANAGEMENT, "organizations:ListAccounts"),
        (MANAGEMENT, "account:GetAlternateContact"),
        (MEMBER, "iam:GenerateCredentialReport"),
        (MEMBER, "iam:GetRole"),
        (RUNTIME, "ses:SendEmail"),
        (RUNTIME, "s3:PutObject"),
    ]:
        assert expected in names, f"{expected} was not called: the run no longer covers it"
    puts = [c.params for c in roles.calls if c.name == "s3:PutObject"]
    links = roles.values["LINKS_PREFIX"]
    assert any(p["Key"].startswith(links) for p in puts), "no attachment went by link"
    assert any("ObjectLockMode" in p for p in puts), "no evidence object was locked"
    assert roles.result.undelivered == () and roles.result.exit_code == 0
    # Everything the IAM source reads came through the member role of every active account.
    member_accounts = {c.account for c in roles.calls if c.principal == MEMBER}
    assert member_accounts == {c.account_id for c in roles.result.coverage if c.state == "ACTIVE"}
    # Without a management role the runtime identity reads Organizations; without
    # recommendations nothing asks for one.
    base_names = {(c.principal, c.name) for c in base.calls}
    assert (RUNTIME, "organizations:ListAccounts") in base_names
    assert not any(c.principal == MANAGEMENT for c in base.calls)
    assert not any(n == "access-analyzer:GenerateFindingRecommendation" for _, n in base_names)
    assert base.result.exit_code == 0


@pytest.mark.parametrize("name", ["roles", "base"])
def test_every_call_is_allowed_for_the_principal_that_makes_it(
    deployments: dict[str, Deployment], name: str
) -> None:
    deployment = deployments[name]
    attached = ATTACHED[name]
    denied = []
    for call in deployment.calls:
        files = attached.get(call.principal, ())
        for action, resource in required(call):
            if not allowed_by(files, deployment.values, action, resource):
                denied.append(f"{call.principal}: {call.name} needs {action} on {resource}")
    assert not denied, "not allowed by deploy/iam/:\n" + "\n".join(sorted(set(denied)))


@pytest.mark.parametrize("name", ["roles", "base"])
def test_every_role_trusts_the_reporter_and_only_with_its_external_id(
    deployments: dict[str, Deployment], name: str
) -> None:
    deployment = deployments[name]
    trust = trust_policy(TRUST[name], deployment.values)
    assume = [c for c in deployment.calls if c.name == "sts:AssumeRole"]
    assert {c.principal for c in assume} == {RUNTIME}, "only the runtime identity assumes roles"
    assert {str(c.params["RoleArn"]).rsplit("/", 1)[-1] for c in assume} >= {
        ADMIN_ROLE,
        MEMBER_ROLE,
    }
    for call in assume:
        assert trust_allows(trust, REPORTER_ROLE_ARN, call.params), call.params
        assert not trust_allows(trust, "arn:aws:iam::999999999999:role/Other", call.params)
    if name == "base":
        assert all(c.params.get("ExternalId") == EXTERNAL_ID for c in assume)
        assert not trust_allows(trust, REPORTER_ROLE_ARN, {"ExternalId": "guessed"})
        assert not trust_allows(trust, REPORTER_ROLE_ARN, {})


def test_every_granted_action_is_called_or_documented(
    deployments: dict[str, Deployment],
) -> None:
    used: set[tuple[str, str]] = set()  # (policy file, granted action pattern)
    for deployment in deployments.values():
        attached = ATTACHED[deployment.name]
        for call in deployment.calls:
            files = attached.get(call.principal, ())
            for action, resource in required(call):
                for name in files:
                    for statement in policy(name, deployment.values):
                        if statement_allows(statement, action, resource):
                            used.update(
                                (name, granted)
                                for granted in _listed(statement["Action"])
                                if granted.lower() == action.lower()
                            )
    # The StackSet's inline policy is member-reader.json (checked below): used alike.
    used |= {(STACKSET.name, a) for name, a in used if name == "member-reader.json"}
    granted = {(name, a) for name, s in all_statements() for a in _listed(s["Action"])}
    unexplained = granted - used - set(NOT_CALLED_BUT_NEEDED)
    assert not unexplained, f"granted but never needed: {sorted(unexplained)}"
    stale = set(NOT_CALLED_BUT_NEEDED) - granted
    assert not stale, f"documented but no longer granted: {sorted(stale)}"
    called_anyway = set(NOT_CALLED_BUT_NEEDED) & used
    assert not called_anyway, f"documented as not called, but called: {sorted(called_anyway)}"


def test_no_policy_allows_an_iam_write_or_a_wildcard() -> None:
    for name, statement in all_statements():
        assert statement["Effect"] == "Allow" and "NotAction" not in statement, name
        for action in _listed(statement["Action"]):
            assert "*" not in action and "?" not in action, f"{name}: wildcard action {action}"
            prefix, _, verb = action.partition(":")
            if prefix.lower() == "iam":
                assert verb.startswith(("Get", "List")) or action in IAM_READ_EXCEPTIONS, (
                    f"{name}: IAM write action {action}"
                )


def test_write_actions_live_only_in_optional_policies() -> None:
    for name, statement in all_statements():
        for action in _listed(statement["Action"]):
            verb = action.partition(":")[2]
            if verb.startswith(READ_VERBS) or action in BASE_WRITE_EXCEPTIONS:
                continue
            assert "-optional-" in name, f"{name}: write action {action} in a base policy"


def test_every_placeholder_is_documented_and_replaced() -> None:
    readme = (IAM_DIR / "README.md").read_text(encoding="utf-8")
    token = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")
    for path in sorted(IAM_DIR.glob("*.json")):
        for placeholder in set(token.findall(path.read_text(encoding="utf-8"))):
            assert f"`{placeholder}`" in readme, f"{path.name}: {placeholder} not in README.md"
    for name in permission_files():
        for statement in policy(name, {}):
            assert statement.get("Sid"), f"{name}: every statement says what it is for"


def test_the_stackset_role_carries_exactly_the_member_policy_and_trust() -> None:
    template = yaml.safe_load(STACKSET.read_text(encoding="utf-8"))
    assert set(template["Parameters"]) == {"ReporterRoleArn", "ExternalId", "RoleName"}
    assert template["Parameters"]["RoleName"]["Default"] == MEMBER_ROLE
    assert stackset_statements() == policy("member-reader.json", {})


@pytest.mark.parametrize("external_id", ["", EXTERNAL_ID])
def test_the_stackset_template_instantiates_to_the_shipped_trust_and_policy(
    external_id: str,
) -> None:
    """The template with its parameters filled in (Ref, Fn::If, Fn::Not, Fn::Equals and
    AWS::NoValue resolved as CloudFormation does) is the shipped trust and member policy."""
    template = yaml.safe_load(STACKSET.read_text(encoding="utf-8"))
    parameters = {
        "ReporterRoleArn": REPORTER_ROLE_ARN,
        "ExternalId": external_id,
        "RoleName": template["Parameters"]["RoleName"]["Default"],
    }
    conditions = {
        name: _resolve(body, parameters, {}) for name, body in template["Conditions"].items()
    }
    (role,) = template["Resources"].values()
    assert role["Type"] == "AWS::IAM::Role"
    properties = _resolve(role["Properties"], parameters, conditions)
    assert properties["RoleName"] == MEMBER_ROLE
    expected = trust_policy(TRUST_FILES[1] if external_id else TRUST_FILES[0], {})
    assert _plain(properties["AssumeRolePolicyDocument"]) == _plain(expected)
    (inline,) = properties["Policies"]
    assert _plain(inline["PolicyDocument"]["Statement"]) == _plain(policy("member-reader.json", {}))


_NO_VALUE = object()


def _resolve(node: Any, parameters: Mapping[str, str], conditions: Mapping[str, bool]) -> Any:
    if isinstance(node, list):
        items = [_resolve(v, parameters, conditions) for v in node]
        return [v for v in items if v is not _NO_VALUE]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"}:
        return _NO_VALUE if node["Ref"] == "AWS::NoValue" else parameters[node["Ref"]]
    if set(node) == {"Fn::If"}:
        name, then, otherwise = node["Fn::If"]
        return _resolve(then if conditions[name] else otherwise, parameters, conditions)
    if set(node) == {"Fn::Not"}:
        return not _resolve(node["Fn::Not"][0], parameters, conditions)
    if set(node) == {"Fn::Equals"}:
        left, right = (_resolve(v, parameters, conditions) for v in node["Fn::Equals"])
        return left == right
    assert not any(k.startswith("Fn::") for k in node), f"unknown intrinsic in {node}"
    resolved = {k: _resolve(v, parameters, conditions) for k, v in node.items()}
    return {k: v for k, v in resolved.items() if v is not _NO_VALUE}


def _plain(value: Any) -> Any:
    """A policy with the `Sid`s left out and one-element lists as their element."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != "Sid"}
    if isinstance(value, list):
        items = [_plain(v) for v in value]
        return items[0] if len(items) == 1 else items
    return value


def operation_counts(deployments: Mapping[str, Deployment]) -> dict[str, int]:
    """Distinct operations per principal over both runs (the README states these)."""
    seen: dict[str, set[str]] = {}
    for deployment in deployments.values():
        for call in deployment.calls:
            seen.setdefault(call.principal, set()).add(call.name)
    return {principal: len(names) for principal, names in sorted(seen.items())}


def test_operation_counts_per_principal(
    deployments: dict[str, Deployment], record_property: Callable[[str, object], None]
) -> None:
    counts = operation_counts(deployments)
    record_property("operations_per_principal", counts)
    assert set(counts) == {RUNTIME, ADMIN, MANAGEMENT, MEMBER}
    assert all(n > 0 for n in counts.values())


# --------------------------------------------------------------------------------------------
# Supply chain: the lock files, the Makefile and the image (Docker is not run here)
# --------------------------------------------------------------------------------------------

LOCKS = {
    "runtime": ROOT / "requirements" / "lock.txt",
    "dev": ROOT / "requirements" / "dev-lock.txt",
}


def _pins(path: Path) -> dict[str, str]:
    """Package name (normalised) → pinned version; asserts every pin carries a hash."""
    pins: dict[str, str] = {}
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = line.split(";", 1)[0].split()[0]
        name, sep, version = requirement.partition("==")
        assert sep, f"{path.name}: not pinned: {line}"
        assert "--hash=sha256:" in line, f"{path.name}: {name} has no hash"
        pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def _declared(extra: str | None = None) -> set[str]:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = project["dependencies"] + (
        project["optional-dependencies"][extra] if extra else []
    )
    names = (re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", r) for r in requirements)
    return {re.sub(r"[-_.]+", "-", m.group(0)).lower() for m in names if m}


def test_the_locks_pin_every_declared_dependency_with_hashes() -> None:
    runtime, dev = _pins(LOCKS["runtime"]), _pins(LOCKS["dev"])
    missing = _declared() - set(runtime)
    assert not missing, f"run `make lock`: {sorted(missing)} not in requirements/lock.txt"
    missing = _declared("dev") - set(dev)
    assert not missing, f"run `make lock`: {sorted(missing)} not in requirements/dev-lock.txt"
    # The image and `make demo` run what the tests ran: the same version of every package.
    assert {name: dev[name] for name in runtime} == runtime


def test_make_installs_from_the_locks_and_test_audits_them() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    target = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^([\w-]+):([^\n]*)\n((?:\t[^\n]*\n)*)", makefile, re.M)
    }
    assert "audit" in target["test"].split()
    assert (
        "--require-hashes -r $(LOCK)" in makefile and "--require-hashes -r $(DEV_LOCK)" in makefile
    )
    # Every install is a hash-pinned lock or the project itself without dependencies (the dev
    # venv, the runtime one, the benchmark's), apart from pip upgrading itself.
    installs = re.findall(r"pip install (.*)", makefile)
    allowed = re.compile(
        r"--quiet (--require-hashes -r \$\((LOCK|DEV_LOCK)\)|--no-deps -e \.|--upgrade pip)"
    )
    assert len(installs) >= 5 and all(allowed.fullmatch(i) for i in installs), installs
    assert re.search(r"^\t\$\(BIN\)/pip-audit --requirement \$\(DEV_LOCK\)", makefile, re.M)


def test_the_image_installs_the_lock_and_runs_as_non_root_on_a_read_only_root() -> None:
    from tests.test_packaging import dockerfile_instructions

    instructions = dockerfile_instructions()
    runs = " ".join(rest for op, rest in instructions if op == "RUN")
    assert "pip install --no-cache-dir --require-hashes -r requirements/lock.txt" in runs
    assert "pip install --no-cache-dir --no-deps ." in runs
    (user,) = [rest for op, rest in instructions if op == "USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
    env = " ".join(rest for op, rest in instructions if op == "ENV")
    for setting in ("HOME=/tmp", "XDG_CACHE_HOME=/tmp/", "XDG_CONFIG_HOME=/tmp/"):
        assert setting in env, f"{setting}: caches must go to the --tmpfs /tmp"
    (volume,) = [json.loads(rest) for op, rest in instructions if op == "VOLUME"]
    # The defaults of reports.output_dir and state.database_url, relative to WORKDIR.
    workdir = [rest for op, rest in instructions if op == "WORKDIR"][-1]
    settings = load_data({}, environ={}, source="defaults")
    assert f"{workdir}/{settings.reports.output_dir}" in volume
    state = settings.state.database_url.removeprefix("sqlite:///").rsplit("/", 1)[0]
    assert f"{workdir}/{state}" in volume
