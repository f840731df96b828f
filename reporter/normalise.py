"""Raw source records → `Finding`s: pure, and the last place raw dicts are seen.

A record is either a Finding, *skipped* (valid but not unused access: external access,
archived, suppressed), or *quarantined* with its reason: malformed, or a *look-alike* (shaped
like an Access Analyzer finding but produced by another product; `NotAccessAnalyzer`), which
is counted apart for the security team and never merged with a real finding. Nothing here
raises on bad input; one broken record never stops a run.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from .models import (
    Finding,
    FindingType,
    Lookalike,
    Quarantined,
    RawRecord,
    Recommendation,
    RecommendedStep,
    SourceRef,
    UnusedAction,
    UnusedService,
)

# The account in an IAM principal's ARN is the account that owns it. We take the owner from
# here rather than from `resourceOwnerAccount`/`accountId`, which AWS's own published
# EventBridge sample gets wrong (a 123456789012 role with accountId 444455556666).
# ASCII digits only (`\d` also matches other scripts' digits) and no control character
# anywhere (IAM allows none; `$` would also let a trailing newline through).
_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:iam::([0-9]{12}):(user|role)/([^\x00-\x1f\x7f]+)\Z")

# ASFF `Types` suffixes, reference §2.2.
_ASFF_TYPES = {
    "Unused Permission": FindingType.UNUSED_PERMISSION,
    "Unused IAM Role": FindingType.UNUSED_ROLE,
    "Unused IAM User Password": FindingType.UNUSED_PASSWORD,
    "Unused IAM User Access Key": FindingType.UNUSED_ACCESS_KEY,
}
_SEVERITY_ORDER = ["INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"]

# Who produced a finding (DESIGN.md). Any account can BatchImportFindings under its own
# default product (`arn:<partition>:securityhub:<region>:<account>:product/<account>/default`)
# and write ProductName, CompanyName, GeneratorId and ProductFields as it likes; Security Hub
# itself decides which ProductArn an import may carry, and only AWS's own integration carries
# `product/aws/access-analyzer`, with no account in the ARN. So the ProductArn alone decides,
# matched whole: partitions aws, aws-cn, aws-us-gov, any Region.
_AA_PRODUCT_ARN = re.compile(
    r"^arn:aws(?:-cn|-us-gov)?:securityhub:[a-z]{2}(?:-[a-z]+)+-[0-9]+::"
    r"product/aws/access-analyzer\Z"
)
# The new Security Hub (OCSF): `metadata.product.uid` is the same ARN, spelled `productv2` for
# AWS's own integrations in every published OCSF finding we found (GuardDuty, Inspector,
# Security Hub: third-party copies; none for Access Analyzer, reference §2.10), so both
# spellings are AWS's. There is no OCSF import API (botocore 1.43 has no BatchImportFindingsV2;
# findings arrive from AWS services and Security Hub CSPM), but records relayed from CSPM keep
# the importer's product in the uid, and `metadata.product.name` / `vendor_name` are copied
# from fields an importer writes (ProductName, CompanyName): only the uid is AWS's word.
# `cloud.account.uid` is where the finding lives (the analyzer's or the importer's account):
# named in the warning, never used to decide.
_AA_PRODUCT_UID = re.compile(
    r"^arn:aws(?:-cn|-us-gov)?:securityhub:[a-z]{2}(?:-[a-z]+)+-[0-9]+::"
    r"product(?:v2)?/aws/access-analyzer\Z"
)
# An Access Analyzer EventBridge event comes from this source (reference §1.12); EventBridge
# refuses `aws.` sources from PutEvents, but a file can claim anything.
AA_EVENT_SOURCE = "aws.access-analyzer"


class Malformed(ValueError):
    """A record we cannot turn into a Finding; the message is the quarantine reason."""


class NotAccessAnalyzer(Malformed):
    """A look-alike: a record shaped like an Access Analyzer finding from another product."""

    def __init__(self, reason: str, lookalike: Lookalike) -> None:
        super().__init__(reason)
        self.lookalike = lookalike


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
                Quarantined(
                    record.source,
                    record.origin,
                    str(exc),
                    _as_dict(record.payload),
                    exc.lookalike if isinstance(exc, NotAccessAnalyzer) else None,
                )
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
        # `aws securityhub get-findings-v2` exports are `{"Findings": [...]}` too, so a file
        # may hand an OCSF record on as ASFF; its shape tells them apart.
        if _looks_ocsf(record.payload):
            return from_ocsf(record.payload)
        return from_asff(record.payload)
    if record.source == "access_analyzer":
        return from_access_analyzer(record.payload)
    if record.source == "security_hub_v2":
        return from_ocsf(record.payload)
    if record.source == "iam":
        return from_iam(record.payload)
    if record.source == "files":  # a file, or a part of one, that no parser recognises
        claimed = record.payload.get("lookalike")
        if isinstance(claimed, Mapping):  # an Access Analyzer event from another source
            raise NotAccessAnalyzer(
                str(record.payload.get("error", "not from Access Analyzer")),
                Lookalike(str(claimed.get("product", "")), str(claimed.get("account_id", ""))),
            )
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
    # Before anything else is believed: an unused-access record from any other product is a
    # look-alike, however it names itself (ProductName, GeneratorId, ProductFields).
    product_arn = asff.get("ProductArn")
    if not isinstance(product_arn, str) or not _AA_PRODUCT_ARN.match(product_arn):
        raise _asff_lookalike(asff, product_arn)
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


def _asff_lookalike(asff: Mapping[str, Any], product_arn: Any) -> NotAccessAnalyzer:
    """The quarantine reason for an ASFF look-alike. Its AwsAccountId is the importer's (the
    default product requires it to be the calling account); a genuine organization analyzer's
    is the analyzer owner's, so AwsAccountId differing from the principal's account is normal
    and proves nothing on its own."""
    account = asff.get("AwsAccountId")
    account_text = account if isinstance(account, str) else ""
    resources = asff.get("Resources")
    first = resources[0] if isinstance(resources, list) and resources else None
    about = first.get("Id") if isinstance(first, Mapping) else None
    product = product_arn if isinstance(product_arn, str) else ""
    return NotAccessAnalyzer(
        f"claims to be an IAM Access Analyzer finding but comes from another product: ProductArn "
        f"{product[:200]!r}, account {account_text[:20]!r}, about {str(about)[:200]!r}; only "
        "arn:<partition>:securityhub:<region>::product/aws/access-analyzer is Access Analyzer",
        Lookalike(product[:300] or "(no ProductArn)", account_text[:20]),
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
    details = _parse_details(aa.get("findingDetails") or [])
    arn = str(aa.get("analyzerArn", ""))
    return Finding(
        type=FindingType(kind),
        account_id=match.group(1),
        principal_arn=principal_arn,
        region=arn.split(":")[3] if arn.count(":") >= 5 else "",
        last_accessed=max(details.last_used, default=None),
        created_at=_timestamp(aa.get("createdAt")),
        updated_at=_timestamp(aa.get("updatedAt")),
        access_key_ids=tuple(sorted(details.keys)),
        services=tuple(sorted(details.services, key=lambda s: s.namespace)),
        sources=(SourceRef("access_analyzer", finding_id),),
        recommendation=parse_recommendation(aa.get("recommendation")),
    )


RECOMMENDATION_TYPES = frozenset(
    {"UnusedPermissionRecommendation", "UNUSED_PERMISSION_RECOMMENDATION"}  # model, CLI/blog
)


def parse_recommendation(value: Any) -> Recommendation | None:
    """A record's `recommendation` (GetFindingRecommendation output) → Recommendation; None
    when absent or not an unused-permission recommendation. Pure; for `normalise`."""
    if not isinstance(value, Mapping):
        return None
    kind = value.get("recommendationType")
    # A recommendation is extra detail: one of a shape we do not know never costs the finding.
    if kind is not None and (not isinstance(kind, str) or kind not in RECOMMENDATION_TYPES):
        return None
    error = value.get("error")
    listed = value.get("recommendedSteps")
    steps = []
    for item in listed if isinstance(listed, list) else ():
        step = item.get("unusedPermissionsRecommendedStep") if isinstance(item, Mapping) else None
        if not isinstance(step, Mapping) or not step.get("recommendedAction"):
            continue
        steps.append(
            RecommendedStep(
                action=str(step["recommendedAction"]),
                existing_policy_id=str(step.get("existingPolicyId") or ""),
                recommended_policy=str(step.get("recommendedPolicy") or ""),
                policy_updated_at=_timestamp(step.get("policyUpdatedAt")),
            )
        )
    return Recommendation(
        status=str(value.get("status") or "IN_PROGRESS"),
        steps=tuple(steps),
        error=(
            f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
            if isinstance(error, Mapping)
            else ""
        ),
    )


def from_iam(record: Mapping[str, Any]) -> Finding | Skip:
    """A record of the IAM source (shape documented in `reporter.sources.iam`)."""
    if not isinstance(record, Mapping):
        raise Malformed("record is not a JSON object")
    if record.get("error"):
        # The source could not read this part of the account (bad date, missing column).
        raise Malformed(str(record["error"]))
    kind = str(record.get("finding_type") or "")
    if kind not in _IAM_TYPES:
        raise Malformed(f"finding_type is not one the IAM source reports: {kind[:100]!r}")
    principal_arn = str(record.get("principal_arn", ""))
    match = _PRINCIPAL_ARN.match(principal_arn)
    if not match:
        raise Malformed(f"principal_arn is not an IAM user or role ARN: {principal_arn[:200]!r}")
    if str(record.get("account_id", match.group(1))) != match.group(1):
        raise Malformed(
            f"principal_arn {principal_arn[:200]!r} is not in account {record['account_id']!r}"
        )
    keys = record.get("access_keys") or []
    if not isinstance(keys, list) or not all(isinstance(k, Mapping) for k in keys):
        raise Malformed("access_keys is not a list of objects")
    if kind == FindingType.UNUSED_ACCESS_KEY.value and not keys:
        raise Malformed("an unused-access-key record names no access key")
    tags = record.get("tags") or {}
    policies = record.get("attached_policies") or []
    if not isinstance(tags, Mapping) or not isinstance(policies, list):
        raise Malformed("tags is not an object or attached_policies is not a list")
    finding_type = FindingType(kind)
    return Finding(
        type=finding_type,
        account_id=match.group(1),
        principal_arn=principal_arn,
        last_accessed=_strict_time(record, "last_accessed"),
        created_at=_strict_time(record, "unused_since"),
        updated_at=_strict_time(record, "evaluated_at"),
        access_key_ids=tuple(sorted(str(k["id"]) for k in keys if k.get("id"))),
        sources=(SourceRef("iam", f"{match.group(1)}/{kind}/{principal_arn}"),),
        principal_tags={str(k): str(v) for k, v in tags.items()},
        attached_policies=tuple(sorted({str(p) for p in policies})),
        trust_policy=_document_text(record.get("trust_policy")),
    )


def _document_text(document: Any) -> str:
    """A policy document as JSON text (keys sorted, so equal documents are equal text)."""
    if isinstance(document, Mapping):
        return json.dumps(document, sort_keys=True, ensure_ascii=False)
    return document if isinstance(document, str) else ""


# --- OCSF (the new Security Hub, GetFindingsV2) -------------------------------------------
#
# AWS publishes no OCSF sample of an Access Analyzer unused-access finding (reference §2.10,
# §8), so this parser assumes as little as it can and says what it relies on:
#
# - `metadata.uid`: the Security Hub finding id (GenerateRecommendedPolicyV2 and
#   BatchUpdateFindingsV2 take it); required.
# - the finding type: an unused type name (`UnusedIAMRole`...) or its ASFF spelling
#   (`.../Unused IAM Role`) in `finding_info.types`, else `unmapped.findingType` (any case).
#   A record with neither is skipped as "not unused access", never guessed from the title.
# - the principal: the first `resources[]` entry whose `uid` is an IAM user or role ARN.
#   The owning account is that ARN's account (equal to `resources[].owner.account.uid` when
#   present); `cloud.account.uid` may be the account Security Hub or the analyzer runs in
#   and is never used for ownership.
# - `status` / `status_id` (OCSF 1.x: 0 Unknown, 1 New, 2 In Progress, 3 Suppressed,
#   4 Resolved, 5 Archived, 99 Other): 0-2 or absent are active, 3-5 skipped, others
#   quarantined.
# - times: `finding_info.created_time` / `modified_time` (epoch milliseconds) or their `_dt`
#   ISO twins, else `time`; `severity` / `severity_id`; `cloud.region`.
# - `unmapped.findingId` (any case), when present, is the Access Analyzer finding id.
# - details, when present: Access Analyzer `findingDetails` in `unmapped`, parsed like
#   GetFindingV2's (last access, key ids, services).
#
# Anything else is ignored; a value present but not understood quarantines the record.

_OCSF_ACTIVE_STATUS = {0: "unknown", 1: "new", 2: "in progress"}
_OCSF_CLOSED_STATUS = {3: "suppressed", 4: "resolved", 5: "archived"}
_OCSF_SEVERITY = {
    "informational": "INFORMATIONAL",
    "low": "LOW",
    "medium": "MEDIUM",
    "high": "HIGH",
    "critical": "CRITICAL",
    "fatal": "CRITICAL",
}
_OCSF_SEVERITY_ID = {
    1: "informational",
    2: "low",
    3: "medium",
    4: "high",
    5: "critical",
    6: "fatal",
}
_IAM_TYPES = {
    FindingType.UNUSED_ROLE.value,
    FindingType.UNUSED_ACCESS_KEY.value,
    FindingType.UNUSED_PASSWORD.value,
}


def from_ocsf(ocsf: Mapping[str, Any]) -> Finding | Skip:
    """One OCSF finding from Security Hub GetFindingsV2 (see the notes above)."""
    if not isinstance(ocsf, Mapping):
        raise Malformed("record is not a JSON object")
    info = _object(ocsf, "finding_info")
    unmapped = _lower_map(ocsf.get("unmapped"))
    finding_type = _ocsf_type(info, unmapped)
    if finding_type is None:
        declared = _strings(info.get("types")) or ["unknown type"]
        return Skip(f"not unused access ({', '.join(declared)[:100]})")
    _ocsf_product(ocsf)  # a look-alike goes no further (see _AA_PRODUCT_UID)
    status = _ocsf_status(ocsf)
    if status is not None:
        return Skip(f"{status} in Security Hub")
    metadata = _object(ocsf, "metadata")
    uid = metadata.get("uid")
    if not isinstance(uid, str) or not uid:
        raise Malformed("metadata.uid is missing")
    principal_arn, account_id = _ocsf_principal(ocsf)
    product = metadata.get("product")
    product_uid = product.get("uid") if isinstance(product, Mapping) else None
    cloud = ocsf.get("cloud")
    region = cloud.get("region") if isinstance(cloud, Mapping) else None
    details = _ocsf_details(unmapped)
    aa_id = unmapped.get("findingid")
    return Finding(
        type=finding_type,
        account_id=account_id,
        principal_arn=principal_arn,
        severity=_ocsf_severity(ocsf),
        region=region if isinstance(region, str) else "",
        last_accessed=max(details.last_used, default=None)
        or _timestamp(unmapped.get("rolelastusedtimestamp")),
        created_at=_ocsf_time(info, "created_time") or _ocsf_time(ocsf, "time"),
        updated_at=_ocsf_time(info, "modified_time") or _ocsf_time(ocsf, "time"),
        access_key_ids=tuple(sorted(details.keys)),
        services=tuple(sorted(details.services, key=lambda s: s.namespace)),
        sources=(
            SourceRef("security_hub_v2", uid, product_uid if isinstance(product_uid, str) else ""),
            *(
                (SourceRef("access_analyzer", str(aa_id)),)
                if isinstance(aa_id, str) and aa_id
                else ()
            ),
        ),
    )


@dataclass(frozen=True)
class _Details:
    keys: tuple[str, ...] = ()
    services: tuple[UnusedService, ...] = ()
    last_used: tuple[datetime, ...] = ()


def _parse_details(details: Any) -> _Details:
    """Access Analyzer `findingDetails` (GetFindingV2 shape)."""
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
    return _Details(tuple(keys), tuple(services), tuple(last_used))


def _ocsf_details(unmapped: Mapping[str, Any]) -> _Details:
    details = unmapped.get("findingdetails")
    return _Details() if details is None else _parse_details(details)


def _ocsf_type(info: Mapping[str, Any], unmapped: Mapping[str, Any]) -> FindingType | None:
    candidates = [*_strings(info.get("types"))]
    declared = unmapped.get("findingtype")
    if isinstance(declared, str):
        candidates.append(declared)
    for value in candidates:
        if value in FindingType._value2member_map_:
            return FindingType(value)
        suffix = value.rsplit("/", 1)[-1]
        if suffix in FindingType._value2member_map_:
            return FindingType(suffix)
        if suffix in _ASFF_TYPES:
            return _ASFF_TYPES[suffix]
    return None


def _ocsf_product(ocsf: Mapping[str, Any]) -> None:
    """Raise NotAccessAnalyzer unless `metadata.product.uid` is AWS's Access Analyzer."""
    metadata = _object(ocsf, "metadata")
    product = metadata.get("product")
    uid = product.get("uid") if isinstance(product, Mapping) else None
    if isinstance(uid, str) and _AA_PRODUCT_UID.match(uid):
        return
    cloud = ocsf.get("cloud")
    account = cloud.get("account") if isinstance(cloud, Mapping) else None
    account_id = account.get("uid") if isinstance(account, Mapping) else None
    account_text = account_id if isinstance(account_id, str) else ""
    product_text = uid if isinstance(uid, str) else ""
    raise NotAccessAnalyzer(
        "claims to be an IAM Access Analyzer finding but comes from another product: "
        f"metadata.product.uid {product_text[:200]!r}, account {account_text[:20]!r}; only "
        "arn:<partition>:securityhub:<region>::productv2/aws/access-analyzer is Access Analyzer",
        Lookalike(product_text[:300] or "(no metadata.product.uid)", account_text[:20]),
    )


def _ocsf_status(ocsf: Mapping[str, Any]) -> str | None:
    """None while the finding is active; else the word for why it is not."""
    status_id = ocsf.get("status_id")
    status = ocsf.get("status")
    if status_id is not None:
        if isinstance(status_id, bool) or not isinstance(status_id, int):
            raise Malformed(f"status_id is not an integer: {str(status_id)[:50]!r}")
        if status_id in _OCSF_ACTIVE_STATUS:
            return None
        if status_id in _OCSF_CLOSED_STATUS:
            return _OCSF_CLOSED_STATUS[status_id]
        raise Malformed(f"status_id {status_id} ({str(status)[:50]}) is not understood")
    if status is None:
        return None  # no status at all: report it rather than lose it
    word = str(status).strip().lower()
    if word in _OCSF_ACTIVE_STATUS.values():
        return None
    if word in _OCSF_CLOSED_STATUS.values():
        return word
    raise Malformed(f"status {str(status)[:50]!r} is not understood")


def _ocsf_principal(ocsf: Mapping[str, Any]) -> tuple[str, str]:
    resources = ocsf.get("resources")
    if not isinstance(resources, list) or not resources:
        raise Malformed("resources is missing or empty")
    for resource in resources:
        if not isinstance(resource, Mapping):
            continue
        uid = resource.get("uid")
        match = _PRINCIPAL_ARN.match(uid) if isinstance(uid, str) else None
        if match:
            return uid, match.group(1)  # type: ignore[return-value]
    first = resources[0].get("uid") if isinstance(resources[0], Mapping) else resources[0]
    raise Malformed(f"no resources[].uid is an IAM user or role ARN: {str(first)[:200]!r}")


def _ocsf_severity(ocsf: Mapping[str, Any]) -> str:
    word = ocsf.get("severity")
    if not isinstance(word, str) or word.strip().lower() not in _OCSF_SEVERITY:
        severity_id = ocsf.get("severity_id")
        word = _OCSF_SEVERITY_ID.get(severity_id, "") if isinstance(severity_id, int) else ""
    return _OCSF_SEVERITY.get(word.strip().lower(), "LOW")


def _ocsf_time(container: Mapping[str, Any], name: str) -> datetime | None:
    """OCSF times are epoch milliseconds; the `_dt` twins are ISO 8601 text."""
    value = container.get(name)
    if value is None:
        text = container.get(f"{name}_dt")
        if text is None:
            return None
        parsed = _timestamp(text)
        if parsed is None:
            raise Malformed(f"{name}_dt is not an ISO 8601 time: {str(text)[:50]!r}")
        return parsed
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Malformed(f"{name} is not epoch milliseconds: {str(value)[:50]!r}")
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise Malformed(f"{name} is out of range: {value!r}") from exc


def _looks_ocsf(payload: Any) -> bool:
    return (
        isinstance(payload, Mapping)
        and "SchemaVersion" not in payload
        and ("finding_info" in payload or "class_uid" in payload)
    )


def _object(container: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = container.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise Malformed(f"{name} is not an object")
    return value


def _lower_map(value: Any) -> dict[str, Any]:
    """`unmapped` keys are free-form; look them up in any case, values as they are."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k).lower(): v for k, v in value.items()}


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _strict_time(record: Mapping[str, Any], name: str) -> datetime | None:
    value = record.get(name)
    if value is None:
        return None
    parsed = _timestamp(value)
    if parsed is None:
        raise Malformed(f"{name} is not an ISO 8601 time: {str(value)[:50]!r}")
    return parsed


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
        recommendation=a.recommendation or b.recommendation,
        attached_policies=tuple(sorted({*a.attached_policies, *b.attached_policies})),
        policy_documents={**b.policy_documents, **a.policy_documents},
        trust_policy=a.trust_policy or b.trust_policy,
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
