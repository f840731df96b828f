"""Render plans into the payloads the two sources return: ASFF records and Access Analyzer JSON.

Shapes follow the AWS samples in `shared/reference/samples/` (reference §1.5-1.8 and §2.1-2.5).
Where AWS published nothing, the choice is marked "(unverified)" and kept as close to the
published neighbours as possible:

- ASFF `Id` suffixes: `UnusedPermissions` (AWS sample) and `UnusedIAMRole` (third-party fixture);
  `UnusedIAMUserAccessKey` and `UnusedIAMUserPassword` (unverified).
- Title/Description for the three non-permission types follow the §2.2 table in the style of the
  UnusedPermission sample (unverified wording); `Resources[0].Type` is `AwsIamUser` for users.
- Severity per type (no AWS table exists): LOW for permissions and passwords (AWS sample),
  MEDIUM for roles (third-party fixture) and access keys.
- `unusedPermissionDetails`: one element per namespace; a namespace nobody touched has an old
  `lastAccessed` or none; a partly used one has a recent `lastAccessed` and lists only its unused
  actions; service-level-only namespaces carry no `actions` (inferred, §1.6).
- `numberOfUnusedServices` counts wholly unused namespaces, `numberOfUnusedActions` the listed
  actions (the EventBridge sample's 0 services / 1 action suggests this split).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from functools import cache, lru_cache
from typing import Any
from urllib.parse import quote

from reporter.models import FindingType

from . import catalog
from .data import (
    ExternalFindingPlan,
    FindingPlan,
    InlinePolicy,
    PrincipalPlan,
    days_between,
    randint,
)

ASFF_TYPE_PREFIX = "Software and Configuration Checks/AWS Security Best Practices/"
ASFF_TYPES = {
    FindingType.UNUSED_PERMISSION.value: ASFF_TYPE_PREFIX + "Unused Permission",
    FindingType.UNUSED_ROLE.value: ASFF_TYPE_PREFIX + "Unused IAM Role",
    FindingType.UNUSED_PASSWORD.value: ASFF_TYPE_PREFIX + "Unused IAM User Password",
    FindingType.UNUSED_ACCESS_KEY.value: ASFF_TYPE_PREFIX + "Unused IAM User Access Key",
}
_ID_SUFFIX = {
    FindingType.UNUSED_PERMISSION.value: "UnusedPermissions",
    FindingType.UNUSED_ROLE.value: "UnusedIAMRole",
    FindingType.UNUSED_PASSWORD.value: "UnusedIAMUserPassword",
    FindingType.UNUSED_ACCESS_KEY.value: "UnusedIAMUserAccessKey",
}
_TITLE = {
    FindingType.UNUSED_PERMISSION.value: "contains unused permissions",
    FindingType.UNUSED_ROLE.value: "contains unused IAM role",
    FindingType.UNUSED_PASSWORD.value: "contains unused IAM user password",
    FindingType.UNUSED_ACCESS_KEY.value: "contains unused IAM user access key",
}
# Only the UnusedPermission description is published; the others repeat the title phrase.
_DESCRIPTION = {
    **_TITLE,
    FindingType.UNUSED_PERMISSION.value: "contains unused service and action-level permissions",
}
_SEVERITY = {
    FindingType.UNUSED_PERMISSION.value: ("LOW", 1),
    FindingType.UNUSED_ROLE.value: ("MEDIUM", 40),
    FindingType.UNUSED_PASSWORD.value: ("LOW", 1),
    FindingType.UNUSED_ACCESS_KEY.value: ("MEDIUM", 40),
}
_REMEDIATION = {
    # The first text is AWS's, verbatim from the sample; the others follow its pattern.
    FindingType.UNUSED_PERMISSION.value: (
        "If the unused permissions aren’t required, delete the permissions to refine access to "
        "your account. Use the IAM console to modify or remove the policy that grants the unused "
        "permissions. If all the unused permissions are removed, the status of the finding "
        "changes to Resolved."
    ),
    FindingType.UNUSED_ROLE.value: (
        "If the role isn’t required, delete it. Use the IAM console to review and delete the "
        "role. If the role is deleted, the status of the finding changes to Resolved."
    ),
    FindingType.UNUSED_PASSWORD.value: (
        "If the console password isn’t required, delete it. Use the IAM console to remove "
        "console access for the user. If the password is removed, the status of the finding "
        "changes to Resolved."
    ),
    FindingType.UNUSED_ACCESS_KEY.value: (
        "If the access key isn’t required, deactivate and then delete it. Use the IAM console "
        "to manage the user's access keys. If the key is removed, the status of the finding "
        "changes to Resolved."
    ),
}
_EXTERNAL_REMEDIATION = (
    "If the access isn't intended, it indicates a potential security risk. Use the console for "
    "the resource to modify or remove the policy that grants the unintended access. You can use "
    "the Rescan button on the Finding details page in the Access Analyzer console to confirm "
    "whether the change removed the access. If the access is removed, the status changes to "
    "Resolved."
)
PRODUCT_NAME = "IAM Access Analyzer"


@dataclass(frozen=True)
class AnalyzerRef:
    arn: str
    name: str
    account_id: str
    region: str

    @property
    def product_arn(self) -> str:
        return f"arn:aws:securityhub:{self.region}::product/aws/access-analyzer"


def asff_time(moment: datetime) -> str:
    """ASFF timestamps as AWS writes them: milliseconds and a `Z`."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def asff_id(finding: FindingPlan | ExternalFindingPlan, analyzer: AnalyzerRef) -> str:
    """`analyzer/<name>/<resource ARN>[/<suffix>]`: unused findings carry a per-type suffix."""
    if isinstance(finding, ExternalFindingPlan):
        return f"{analyzer.arn}/{finding.resource}"
    return f"{analyzer.arn}/{finding.principal.arn}/{_ID_SUFFIX[finding.finding_type]}"


def asff_record(finding: FindingPlan, analyzer: AnalyzerRef, now: datetime) -> dict[str, Any]:
    """The Security Hub CSPM record of one unused-access finding (AWS sample shape)."""
    principal = finding.principal
    kind = finding.finding_type
    resource_type = "AwsIamUser" if principal.kind == "user" else "AwsIamRole"
    record_id = asff_id(finding, analyzer)
    fields: dict[str, str] = {}
    if kind == FindingType.UNUSED_PERMISSION.value:
        usage = permission_usage(principal, now)
        fields["numberOfUnusedActions"] = str(usage.unused_actions)
        fields["numberOfUnusedServices"] = str(usage.unused_services)
    owner_key = "ResourceOwnerAccount" if finding.capital_owner_key else "resourceOwnerAccount"
    fields[owner_key] = principal.account_id
    fields["findingId"] = finding.id
    fields["findingType"] = kind
    fields["aws/securityhub/FindingId"] = f"{analyzer.product_arn}/{record_id}"
    fields["aws/securityhub/ProductName"] = PRODUCT_NAME
    fields["aws/securityhub/CompanyName"] = "AWS"
    label, score = _SEVERITY[kind]
    region = analyzer.region
    return {
        "SchemaVersion": "2018-10-08",
        "Id": record_id,
        "ProductArn": analyzer.product_arn,
        "ProductName": PRODUCT_NAME,
        "CompanyName": "AWS",
        "Region": region,
        "GeneratorId": "aws/access-analyzer",
        "AwsAccountId": analyzer.account_id,
        "Types": [ASFF_TYPES[kind]],
        "FirstObservedAt": asff_time(finding.created_at),
        "CreatedAt": asff_time(finding.created_at),
        "UpdatedAt": asff_time(finding.updated_at),
        "Severity": {"Product": score, "Label": label, "Normalized": score},
        "Title": f"{resource_type}/{principal.arn}/ {_TITLE[kind]}",
        "Description": f"{principal.resource_type}/{principal.arn}/ {_DESCRIPTION[kind]}",
        "Remediation": {"Recommendation": {"Text": _REMEDIATION[kind]}},
        "SourceUrl": (
            f"https://{region}.console.aws.amazon.com/access-analyzer/home?region={region}"
            f"#/unused-access-findings?resource={quote(principal.arn, safe='')}"
        ),
        "ProductFields": fields,
        "Resources": [{"Type": resource_type, "Id": principal.arn}],
        "WorkflowState": "NEW",
        "Workflow": {"Status": finding.workflow},
        "RecordState": "ACTIVE" if finding.active else "ARCHIVED",
        "FindingProviderFields": {"Severity": {"Label": label}, "Types": [ASFF_TYPES[kind]]},
    }


def lookalike_record(
    finding: FindingPlan, analyzer: AnalyzerRef, importer: str, now: datetime
) -> dict[str, Any]:
    """A look-alike of `finding`'s record, as account `importer` can import it (issue 17).

    Any account may call BatchImportFindings under its own default product, with AwsAccountId
    its own (the API requires it for that product), and write ProductName, CompanyName,
    GeneratorId and ProductFields as it likes (SH-API): everything here is the real record's,
    naming the same principal in another account, but for the ProductArn Security Hub assigns
    and the `aws/securityhub/FindingId` it derives from it. The Id is the importer's own:
    Security Hub keys findings by ProductArn and Id, moto by Id alone.
    """
    record = asff_record(finding, analyzer, now)
    product = f"arn:aws:securityhub:{analyzer.region}:{importer}:product/{importer}/default"
    record_id = f"{importer}/imported/{finding.id}"
    record["Id"] = record_id
    record["ProductArn"] = product
    record["AwsAccountId"] = importer
    record["ProductFields"]["aws/securityhub/FindingId"] = f"{product}/{record_id}"
    return record


def asff_external_record(finding: ExternalFindingPlan, analyzer: AnalyzerRef) -> dict[str, Any]:
    """An external-access record, key for key the S3 sample's shape."""
    if finding.is_public:
        types = ["Effects/Data Exposure/External Access Granted"]
        verb = "allows public access"
        principal = "*"
    else:
        types = [ASFF_TYPE_PREFIX + "External Access Granted"]
        verb = "allows cross-account access"
        principal = catalog.EXTERNAL_ACCOUNT
    description = f"{finding.resource_type}/{finding.resource}/ {verb}"
    if not finding.is_public:
        description += f" from AWS {catalog.EXTERNAL_ACCOUNT}"
    return {
        "SchemaVersion": "2018-10-08",
        "Id": asff_id(finding, analyzer),
        "ProductArn": analyzer.product_arn,
        "GeneratorId": "aws/access-analyzer",
        "AwsAccountId": analyzer.account_id,
        "Types": types,
        "CreatedAt": asff_time(finding.created_at),
        "UpdatedAt": asff_time(finding.updated_at),
        "Severity": {"Product": 1, "Label": "LOW", "Normalized": 1},
        "Title": f"{finding.asff_type}/{finding.resource}/ {verb}",
        "Description": description,
        "Remediation": {"Recommendation": {"Text": _EXTERNAL_REMEDIATION}},
        "SourceUrl": (
            f"https://console.aws.amazon.com/access-analyzer/home?region={analyzer.region}"
            f"#/findings/details/{finding.id}"
        ),
        "Resources": [
            {
                "Type": finding.asff_type,
                "Id": finding.resource,
                "Details": {
                    "Other": {
                        "External Principal Type": "AWS",
                        "Condition": "none",
                        "Action Granted": ",".join(finding.actions),
                        "External Principal": principal,
                    }
                },
            }
        ],
        "WorkflowState": "NEW",
        "Workflow": {"Status": "NEW"},
        "RecordState": "ACTIVE",
    }


def aa_summary(finding: FindingPlan | ExternalFindingPlan) -> dict[str, Any]:
    """A `FindingSummaryV2` (ListFindingsV2 item); timestamps stay datetimes until serialised."""
    if isinstance(finding, FindingPlan):
        resource, resource_type = finding.principal.arn, finding.principal.resource_type
        finding_type = finding.finding_type
    else:
        resource, resource_type, finding_type = (
            finding.resource,
            finding.resource_type,
            "ExternalAccess",
        )
    return {
        "analyzedAt": finding.analyzed_at,
        "createdAt": finding.created_at,
        "id": finding.id,
        "resource": resource,
        "resourceType": resource_type,
        "resourceOwnerAccount": finding.account_id,
        "status": finding.status,
        "updatedAt": finding.updated_at,
        "findingType": finding_type,
    }


def aa_details(finding: FindingPlan | ExternalFindingPlan, now: datetime) -> list[dict[str, Any]]:
    """The `findingDetails` list of GetFindingV2 (reference §1.6)."""
    if isinstance(finding, ExternalFindingPlan):
        principal = {"AWS": "*" if finding.is_public else catalog.EXTERNAL_ACCOUNT}
        return [
            {
                "externalAccessDetails": {
                    "action": list(finding.actions),
                    "condition": {},
                    "isPublic": finding.is_public,
                    "principal": principal,
                    "sources": [{"type": "POLICY"}],
                }
            }
        ]
    kind = finding.finding_type
    principal_plan = finding.principal
    if kind == FindingType.UNUSED_PERMISSION.value:
        return [
            {"unusedPermissionDetails": d} for d in permission_usage(principal_plan, now).details
        ]
    if kind == FindingType.UNUSED_ACCESS_KEY.value:
        return [
            {"unusedIamUserAccessKeyDetails": _with_last({"accessKeyId": key.id}, key.last_used)}
            for key in finding.unused_keys
        ]
    key = (
        "unusedIamRoleDetails"
        if kind == FindingType.UNUSED_ROLE.value
        else "unusedIamUserPasswordDetails"
    )
    return [{key: _with_last({}, principal_plan.last_used)}]


def _with_last(item: dict[str, Any], last: datetime | None) -> dict[str, Any]:
    if last is not None:
        item["lastAccessed"] = last
    return item


@dataclass(frozen=True)
class PermissionUsage:
    """What a principal's policies grant and which of it went unused."""

    details: tuple[dict[str, Any], ...]
    unused_services: int
    unused_actions: int
    # Per policy with unused grants: (id, update date if AWS-managed, inline Sid, used actions)
    policies: tuple[tuple[str, datetime | None, str, tuple[str, ...]], ...]

    @property
    def namespaces(self) -> tuple[str, ...]:
        return tuple(d["serviceNamespace"] for d in self.details)


_Grant = tuple[str, str, dict[str, tuple[str, ...]]]  # (policy id, managed name or "", grants)
_DATES = 0x5DEECE66D  # mixed into the seed: dates get their own stream, decisions stay put


@dataclass(frozen=True)
class _Unused:
    grants: tuple[_Grant, ...]
    actions: dict[str, tuple[str, ...]]  # namespace → unused actions, namespaces sorted
    fully_unused: frozenset[str]


@lru_cache(maxsize=4096)
def _unused(principal: PrincipalPlan) -> _Unused:
    """Which granted namespaces/actions went unused: a pure function of the principal."""
    rng = random.Random(principal.seed)
    grants = [
        (_managed_id(name), name, _policy_grants(name)) for name in principal.managed_policies
    ]
    grants += [(inline.name, "", _inline_grants(inline)) for inline in principal.inline_policies]
    granted: dict[str, set[str]] = {}
    for _, _, policy in grants:
        for namespace, actions in policy.items():
            granted.setdefault(namespace, set()).update(actions)
    namespaces = sorted(granted)
    unused: dict[str, tuple[str, ...]] = {}
    fully_unused: set[str] = set()
    broad = len(namespaces) > 12  # AdministratorAccess / ReadOnlyAccess: most of it idle
    for namespace in namespaces:
        actions = tuple(sorted(granted[namespace]))
        roll = rng.random()
        if (
            (broad and roll < 0.8)
            or (not broad and roll < 0.45)
            or namespace in catalog.SERVICE_LEVEL_ONLY
        ):
            unused[namespace] = actions
            fully_unused.add(namespace)
        elif roll < (0.9 if broad else 0.75) and len(actions) > 1:
            chosen = rng.sample(actions, randint(rng, 1, len(actions) - 1))
            unused[namespace] = tuple(sorted(chosen))
    if not unused and namespaces:
        unused[namespaces[0]] = tuple(sorted(granted[namespaces[0]]))
        fully_unused.add(namespaces[0])
    return _Unused(tuple(grants), unused, frozenset(fully_unused))


def unused_namespaces(principal: PrincipalPlan) -> tuple[str, ...]:
    """The namespaces an UnusedPermission finding of this principal lists, in order."""
    return tuple(_unused(principal).actions)


@lru_cache(maxsize=2048)
def permission_usage(principal: PrincipalPlan, now: datetime) -> PermissionUsage:
    """Details, counters and per-policy trims of the principal's unused permissions.

    Deterministic per principal (its own seed), so details, ASFF counters and recommendations
    agree however often and in whatever order they are asked for.
    """
    unused = _unused(principal)
    rng = random.Random(principal.seed ^ _DATES)
    details = []
    listed_actions = 0
    for namespace, actions in unused.actions.items():
        item: dict[str, Any] = {"serviceNamespace": namespace}
        if namespace in unused.fully_unused:
            if rng.random() < 0.7:
                item["lastAccessed"] = now - days_between(rng, 30, 400)
        else:
            item["lastAccessed"] = now - days_between(rng, 0, 20)
        if namespace not in catalog.SERVICE_LEVEL_ONLY:
            action_items = []
            for action in actions:
                entry: dict[str, Any] = {"action": action}
                if rng.random() < 0.55:
                    entry["lastAccessed"] = now - days_between(rng, 30, 400)
                action_items.append(entry)
            item["actions"] = action_items
            listed_actions += len(action_items)
        details.append(item)
    unused_all = {a for actions in unused.actions.values() for a in actions}
    policies = []
    for policy_id, managed_name, policy in unused.grants:
        policy_actions = {a for actions in policy.values() for a in actions}
        if not policy_actions & unused_all:
            continue
        updated = (
            datetime.fromisoformat(catalog.managed_policy(managed_name)["UpdateDate"])
            if managed_name
            else None
        )
        sid = next((i.sid for i in principal.inline_policies if i.name == policy_id), "")
        used = tuple(sorted(policy_actions - unused_all))
        policies.append((policy_id, updated, sid, used))
    return PermissionUsage(
        details=tuple(details),
        unused_services=len(unused.fully_unused),
        unused_actions=listed_actions,
        policies=tuple(policies),
    )


def recommended_steps(principal: PrincipalPlan, now: datetime) -> list[dict[str, Any]]:
    """`recommendedSteps` like the blog sample: CREATE_POLICY (trimmed) then DETACH_POLICY."""
    steps: list[dict[str, Any]] = []
    for policy_id, updated, sid, used in permission_usage(principal, now).policies:
        base: dict[str, Any] = {}
        if updated is not None:
            base["policyUpdatedAt"] = updated
        if used:
            statement: dict[str, Any] = {"Effect": "Allow", "Action": list(used), "Resource": "*"}
            if sid:
                statement = {"Sid": sid, **statement}
            document = json.dumps(
                {"Version": "2012-10-17", "Statement": [statement]}, separators=(",", ":")
            )
            steps.append(
                {
                    "unusedPermissionsRecommendedStep": {
                        **base,
                        "recommendedAction": "CREATE_POLICY",
                        "recommendedPolicy": document,
                        "existingPolicyId": policy_id,
                    }
                }
            )
        steps.append(
            {
                "unusedPermissionsRecommendedStep": {
                    **base,
                    "recommendedAction": "DETACH_POLICY",
                    "existingPolicyId": policy_id,
                }
            }
        )
    return steps


def inline_document(policy: InlinePolicy) -> str:
    statement: dict[str, Any] = {"Effect": "Allow", "Action": list(policy.actions), "Resource": "*"}
    if policy.sid:
        statement = {"Sid": policy.sid, **statement}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def _managed_id(name: str) -> str:
    path = catalog.managed_policy(name)["Path"]
    return f"arn:aws:iam::aws:policy{path}{name}"


@cache
def _policy_grants(name: str) -> dict[str, tuple[str, ...]]:
    return _expand(catalog.policy_actions(name))


@cache
def _inline_grants(policy: InlinePolicy) -> dict[str, tuple[str, ...]]:
    return _expand(policy.actions)


def _expand(patterns: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Policy action patterns → the concrete catalogue actions they grant, per namespace."""
    expanded: dict[str, set[str]] = {}
    for pattern in patterns:
        if pattern == "*":
            for namespace, pool in catalog.NAMESPACE_ACTIONS.items():
                expanded.setdefault(namespace, set()).update(pool)
            continue
        namespace, _, wanted = pattern.lower().partition(":")
        known = catalog.NAMESPACE_ACTIONS.get(namespace, ())
        if known:
            matches = {a for a in known if fnmatchcase(a.split(":", 1)[1].lower(), wanted)}
            if matches:
                expanded.setdefault(namespace, set()).update(matches)
    return {namespace: tuple(sorted(actions)) for namespace, actions in expanded.items()}
