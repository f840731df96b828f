"""Raw source records → `Finding`s: pure, and the last place raw dicts are seen.

A record is either a Finding, *skipped* (valid but not unused access: external access,
archived, suppressed), or *quarantined* (malformed) with its reason. Nothing here raises on bad
input; one broken record never stops a run.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from .models import (
    Finding,
    FindingType,
    Quarantined,
    RawRecord,
    SourceRef,
    UnusedAction,
    UnusedService,
)

# The account in an IAM principal's ARN is the account that owns it. We take the owner from
# here rather than from `resourceOwnerAccount`/`accountId`, which AWS's own published
# EventBridge sample gets wrong (a 123456789012 role with accountId 444455556666).
_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):(user|role)/(.+)$")

# ASFF `Types` suffixes, reference §2.2.
_ASFF_TYPES = {
    "Unused Permission": FindingType.UNUSED_PERMISSION,
    "Unused IAM Role": FindingType.UNUSED_ROLE,
    "Unused IAM User Password": FindingType.UNUSED_PASSWORD,
    "Unused IAM User Access Key": FindingType.UNUSED_ACCESS_KEY,
}
_SEVERITY_ORDER = ["INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"]


class Malformed(ValueError):
    """A record we cannot turn into a Finding; the message is the quarantine reason."""


@dataclass(frozen=True)
class Skip:
    reason: str


@dataclass(frozen=True)
class Normalised:
    findings: tuple[Finding, ...]
    skipped: Mapping[str, int]
    quarantined: tuple[Quarantined, ...]

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


def normalise(records: Iterable[RawRecord]) -> Normalised:
    """Parse every record and merge the findings that describe the same access."""
    merged: dict[str, Finding] = {}
    skipped: Counter[str] = Counter()
    quarantined: list[Quarantined] = []
    for record in records:
        try:
            outcome = parse_record(record)
        # The parsers check shapes as they go; the wider net keeps any shape they did not
        # foresee from aborting the run: the record is quarantined with the error instead.
        except (Malformed, TypeError, ValueError, KeyError, AttributeError) as exc:
            quarantined.append(
                Quarantined(record.source, record.origin, str(exc), _as_dict(record.payload))
            )
            continue
        if isinstance(outcome, Skip):
            skipped[outcome.reason] += 1
            continue
        previous = merged.get(outcome.key)
        merged[outcome.key] = merge(previous, outcome) if previous else outcome
    findings = tuple(sorted(merged.values(), key=lambda f: f.key))
    return Normalised(findings, dict(sorted(skipped.items())), tuple(quarantined))


def parse_record(record: RawRecord) -> Finding | Skip:
    if record.source == "security_hub":
        return from_asff(record.payload)
    if record.source == "access_analyzer":
        return from_access_analyzer(record.payload)
    if record.source == "files":  # a file, or a part of one, that no parser recognises
        raise Malformed(str(record.payload.get("error", "unrecognised record")))
    raise Malformed(f"no parser for source {record.source!r}")


def from_asff(asff: Mapping[str, Any]) -> Finding | Skip:
    """One Security Hub CSPM ASFF record (reference §2.1–2.4)."""
    if not isinstance(asff, Mapping):
        raise Malformed("record is not a JSON object")
    fields = _lower_keys(asff.get("ProductFields"))
    finding_type = _asff_type(asff, fields)
    if finding_type is None:
        kind = fields.get("findingtype") or _first(asff.get("Types")) or "unknown type"
        return Skip(f"not unused access ({kind})")
    if asff.get("RecordState") == "ARCHIVED":
        return Skip("archived in Security Hub")
    workflow = asff.get("Workflow")
    if isinstance(workflow, Mapping) and workflow.get("Status") == "SUPPRESSED":
        return Skip("suppressed in Security Hub")

    resources = asff.get("Resources")
    if not isinstance(resources, list) or not resources or not isinstance(resources[0], Mapping):
        raise Malformed("Resources is missing or empty")
    principal_arn = str(resources[0].get("Id", ""))
    match = _PRINCIPAL_ARN.match(principal_arn)
    if not match:
        raise Malformed(f"Resources[0].Id is not an IAM user or role ARN: {principal_arn[:200]!r}")
    # With an organization analyzer, AwsAccountId is the analyzer owner's account; the
    # principal's own account is in ProductFields and in its ARN (reference §2.4). An IAM ARN
    # always embeds its owner, so the ARN decides: see _PRINCIPAL_ARN.
    account_id = match.group(1)

    finding_id = asff.get("Id")
    if not isinstance(finding_id, str) or not finding_id:
        raise Malformed("Id is missing")
    severity = asff.get("Severity")
    label = severity.get("Label") if isinstance(severity, Mapping) else None
    return Finding(
        type=finding_type,
        account_id=account_id,
        principal_arn=principal_arn,
        severity=label if label in _SEVERITY_ORDER else "LOW",
        region=str(asff.get("Region", "")),
        last_accessed=_timestamp(fields.get("rolelastusedtimestamp")),
        created_at=_timestamp(asff.get("CreatedAt")),
        updated_at=_timestamp(asff.get("UpdatedAt")),
        sources=(
            SourceRef("security_hub", finding_id, str(asff.get("ProductArn", ""))),
            *(
                (SourceRef("access_analyzer", str(fields["findingid"])),)
                if fields.get("findingid")
                else ()
            ),
        ),
    )


def from_access_analyzer(aa: Mapping[str, Any]) -> Finding | Skip:
    """A ListFindingsV2 summary merged with its GetFindingV2 result (reference §1.5–1.6)."""
    if not isinstance(aa, Mapping):
        raise Malformed("record is not a JSON object")
    kind = str(aa.get("findingType") or "")
    if kind not in FindingType._value2member_map_:
        return Skip(f"not unused access ({kind or 'unknown type'})")
    if aa.get("status") != "ACTIVE":
        return Skip(f"{str(aa.get('status', 'unknown')).lower()} in Access Analyzer")
    principal_arn = str(aa.get("resource", ""))
    match = _PRINCIPAL_ARN.match(principal_arn)
    if not match:
        raise Malformed(f"resource is not an IAM user or role ARN: {principal_arn[:200]!r}")
    finding_id = aa.get("id")
    if not isinstance(finding_id, str) or not finding_id:
        raise Malformed("id is missing")
    if aa.get("error"):
        return Skip(f"analysis error in Access Analyzer ({aa['error']})")
    details = aa.get("findingDetails") or []
    if not isinstance(details, list):
        raise Malformed("findingDetails is not a list")
    keys: list[str] = []
    services: list[UnusedService] = []
    last_used: list[datetime] = []
    for detail in details:
        if not isinstance(detail, Mapping):
            raise Malformed("a findingDetails element is not an object")
        for name, body in detail.items():
            if not isinstance(body, Mapping):
                raise Malformed(f"findingDetails.{name} is not an object")
            when = _timestamp(body.get("lastAccessed"))
            if when:
                last_used.append(when)
            if name == "unusedIamUserAccessKeyDetails" and body.get("accessKeyId"):
                keys.append(str(body["accessKeyId"]))
            elif name == "unusedPermissionDetails":
                services.append(_service(body, when))
    arn = str(aa.get("analyzerArn", ""))
    return Finding(
        type=FindingType(kind),
        account_id=match.group(1),
        principal_arn=principal_arn,
        region=arn.split(":")[3] if arn.count(":") >= 5 else "",
        last_accessed=max(last_used, default=None),
        created_at=_timestamp(aa.get("createdAt")),
        updated_at=_timestamp(aa.get("updatedAt")),
        access_key_ids=tuple(sorted(keys)),
        services=tuple(sorted(services, key=lambda s: s.namespace)),
        sources=(SourceRef("access_analyzer", finding_id),),
    )


def _service(body: Mapping[str, Any], last_accessed: datetime | None) -> UnusedService:
    namespace = body.get("serviceNamespace")
    if not isinstance(namespace, str) or not namespace:
        raise Malformed("unusedPermissionDetails.serviceNamespace is missing")
    actions = body.get("actions") or []
    if not isinstance(actions, list):
        raise Malformed("unusedPermissionDetails.actions is not a list")
    return UnusedService(
        namespace=namespace,
        last_accessed=last_accessed,
        actions=tuple(
            UnusedAction(str(a["action"]), _timestamp(a.get("lastAccessed")))
            for a in actions
            if isinstance(a, Mapping) and a.get("action")
        ),
    )


def merge(a: Finding, b: Finding) -> Finding:
    """Two reports of the same access: keep every source and the most informative values."""
    return replace(
        a,
        severity=max(a.severity, b.severity, key=_SEVERITY_ORDER.index),
        region=a.region or b.region,
        last_accessed=_latest(a.last_accessed, b.last_accessed),
        created_at=min(filter(None, (a.created_at, b.created_at)), default=None),
        updated_at=_latest(a.updated_at, b.updated_at),
        access_key_ids=tuple(sorted({*a.access_key_ids, *b.access_key_ids})),
        services=a.services or b.services,
        sources=tuple(dict.fromkeys((*a.sources, *b.sources))),
        principal_tags={**b.principal_tags, **a.principal_tags},
    )


def _asff_type(asff: Mapping[str, Any], fields: Mapping[str, str]) -> FindingType | None:
    declared = fields.get("findingtype", "")
    if declared in FindingType._value2member_map_:
        return FindingType(declared)
    types = asff.get("Types")
    for value in types if isinstance(types, list) else ():
        suffix = str(value).rsplit("/", 1)[-1]
        if suffix in _ASFF_TYPES:
            return _ASFF_TYPES[suffix]
    return None


def _lower_keys(value: Any) -> dict[str, str]:
    """ProductFields keys are spelled both `resourceOwnerAccount` and `ResourceOwnerAccount`."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k).lower(): str(v) for k, v in value.items()}


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return max(filter(None, (a, b)), default=None)


def _first(value: Any) -> str:
    return str(value[0]) if isinstance(value, list) and value else ""


def _as_dict(payload: Any) -> dict[str, Any]:
    return dict(payload) if isinstance(payload, Mapping) else {"value": repr(payload)[:1000]}
