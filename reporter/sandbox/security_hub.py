"""Security Hub CSPM in the security account (the delegated administrator), home Region.

Facts about moto 5.2.5's Security Hub, read in its source; tests/test_sandbox.py asserts the
first three:

- GetFindings ignores `Filters` and `SortCriteria` and returns records in import order; the
  product has to filter client-side (it does anyway for what GetFindings cannot express).
- Records round-trip unchanged: moto stores the imported JSON and returns it as is, including
  ProductFields' free-form keys and the deprecated `WorkflowState`.
- `MaxResults` must be 1-100 (InvalidInputException otherwise); NextToken pages work with the
  boto3 paginator and the last page has no NextToken.
- Neither BatchImportFindings nor GetFindings checks that the hub is enabled, that the caller
  may import for the ProductArn, or AwsAccountId; real Security Hub does.
- BatchImportFindings looks each Id up in a list (quadratic), and GetFindings resolves every
  NextToken by scanning all records from the start, so moto's paths slow down with the square
  of the record count. Above `BULK_THRESHOLD` records the sandbox therefore seeds moto's
  findings store directly with records rendered on demand, and pages GetFindings by position
  (same answers: filters ignored, same MaxResults check, import order).

moto 5.2.5 has no GetFindingsV2 (the new, OCSF Security Hub). `SecurityHubV2StandIn` serves it
behind the real boto3 client, hooked on `before-send.securityhub` like the Access Analyzer
stand-in; every other Security Hub operation passes through to moto. AWS publishes no OCSF
sample of an unused-access finding, so `ocsf_record` is the sandbox's own reading (marked
there); it deliberately puts the analyzer owner's account in `cloud.account.uid` (the trap
ASFF's `AwsAccountId` sets) and spells `finding_info.types` two ways.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import boto3
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from moto.core.exceptions import InvalidToken
from moto.securityhub.exceptions import InvalidInputException
from moto.securityhub.models import Finding, SecurityHubBackend, securityhub_backends

from reporter.models import FindingType

from . import records
from .data import ACTIVE, ARCHIVED, ExternalFindingPlan, FindingPlan
from .restjson import Caller, RestJsonStub, ServiceError, iso8601

T_contra = TypeVar("T_contra", contravariant=True)
BULK_THRESHOLD = 5_000
_IMPORT_BATCH = 100  # BatchImportFindings takes at most 100 findings per call


def enable(management: boto3.Session, security: boto3.Session, security_account: str) -> None:
    """Enable the hub in the security account and make it the organization's administrator."""
    security.client("securityhub").enable_security_hub(EnableDefaultStandards=False)
    management.client("securityhub").enable_organization_admin_account(
        AdminAccountId=security_account
    )


def import_via_api(security: boto3.Session, records: Sequence[dict[str, Any]]) -> None:
    client = security.client("securityhub")
    for start in range(0, len(records), _IMPORT_BATCH):
        batch = list(records[start : start + _IMPORT_BATCH])
        response = client.batch_import_findings(Findings=batch)
        if response["FailedCount"]:
            raise RuntimeError(f"Security Hub refused findings: {response['FailedFindings']}")


class Renderer(Protocol[T_contra]):
    """Turns a stored item into its ASFF `Id` and record, on demand."""

    def asff_id(self, item: T_contra) -> str: ...

    def record(self, item: T_contra) -> dict[str, Any]: ...


class _LazyFinding(Finding):
    """A stored finding whose ASFF record is rendered when read, not held in memory."""

    # Slots only: no per-instance dict, ~60 bytes a record instead of the record itself.
    __slots__ = ("_item", "_renderer")

    def __init__(self, item: Any, renderer: Renderer[Any]) -> None:
        # Deliberately not calling Finding.__init__: it would store the rendered record.
        self._item = item
        self._renderer = renderer

    @property
    def id(self) -> str:  # type: ignore[override]
        return self._renderer.asff_id(self._item)

    @property
    def data(self) -> dict[str, Any]:  # type: ignore[override]
        return self._renderer.record(self._item)

    def as_dict(self) -> dict[str, Any]:
        return self._renderer.record(self._item)


def seed_store(
    account_id: str, region: str, items: Iterable[T_contra], renderer: Renderer[T_contra]
) -> None:
    """Put items straight into moto's store, rendered when read; page GetFindings by position."""
    backend: SecurityHubBackend = securityhub_backends[account_id][region]
    backend.findings.extend(_LazyFinding(item, renderer) for item in items)

    def get_findings(
        filters: dict[str, Any] | None = None,
        sort_criteria: list[dict[str, str]] | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        limit = 100 if max_results is None else int(max_results)
        if not 1 <= limit <= 100:
            raise InvalidInputException(
                op="GetFindings", msg="MaxResults must be a number between 1 and 100"
            )
        start = _position(next_token) if next_token else 0
        end = start + limit
        token = _token(end) if end < len(backend.findings) else None
        return [f.as_dict() for f in backend.findings[start:end]], token

    # An instance attribute shadows the class's method; moto's response layer calls it.
    backend.get_findings = get_findings  # type: ignore[method-assign, assignment]


def _token(position: int) -> str:
    return base64.b64encode(json.dumps({"position": position}).encode()).decode()


def _position(token: str) -> int:
    try:
        position = json.loads(base64.b64decode(token))["position"]
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidToken("Invalid token") from error
    if not isinstance(position, int):
        raise InvalidToken("Invalid token")
    return position


# --- The new Security Hub (OCSF): GetFindingsV2 ------------------------------------------

V2_PAGE = 100
# OCSF 1.x Detection Finding ids; the class AWS uses for these findings is unpublished.
_OCSF_STATUS = {"NEW": (1, "New"), "NOTIFIED": (2, "In Progress")}
_OCSF_CLOSED = {ARCHIVED: (5, "Archived")}
_OCSF_SEVERITY = {"LOW": (2, "Low"), "MEDIUM": (3, "Medium")}
_FILTER_FIELDS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "metadata.product.name": lambda r: [r["metadata"]["product"]["name"]],
    "metadata.uid": lambda r: [r["metadata"]["uid"]],
    "finding_info.types": lambda r: list(r["finding_info"]["types"]),
    "finding_info.uid": lambda r: [r["finding_info"]["uid"]],
    "status": lambda r: [r["status"]],
    "class_name": lambda r: [r["class_name"]],
    "cloud.account.uid": lambda r: [r["cloud"]["account"]["uid"]],
    "resources.uid": lambda r: [x["uid"] for x in r["resources"]],
    "resources.type": lambda r: [x["type"] for x in r["resources"]],
    "resources.owner.account.uid": lambda r: [x["owner"]["account"]["uid"] for x in r["resources"]],
}


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def ocsf_record(
    finding: FindingPlan | ExternalFindingPlan, analyzer: records.AnalyzerRef
) -> dict[str, Any]:
    """An OCSF Detection Finding as the sandbox imagines AWS writes one (unverified shape).

    Mapped from the ASFF record the way AWS maps ASFF to OCSF elsewhere: ProductName →
    `metadata.product.name`, Types → `finding_info.types`, Id → `finding_info.uid`,
    Resources → `resources`, AwsAccountId → `cloud.account.uid`.
    """
    if isinstance(finding, FindingPlan):
        principal = finding.principal
        kind = finding.finding_type
        resource, resource_type = principal.arn, principal.resource_type
        owner = principal.account_id
        # Both spellings are plausible; a parser must take either.
        types = [records.ASFF_TYPES[kind] if finding.capital_owner_key else kind]
        label = (
            "LOW"
            if kind in (FindingType.UNUSED_PERMISSION, FindingType.UNUSED_PASSWORD)
            else "MEDIUM"
        )
        title = f"{resource} {records._TITLE[kind]}"
        status_id, status = (
            _OCSF_STATUS[finding.workflow]
            if finding.status == ACTIVE
            else _OCSF_CLOSED.get(finding.status, (4, "Resolved"))
        )
    else:
        resource, resource_type, owner = finding.resource, finding.resource_type, finding.account_id
        types = [
            "Effects/Data Exposure/External Access Granted"
            if finding.is_public
            else records.ASFF_TYPE_PREFIX + "External Access Granted"
        ]
        label, title = "LOW", f"{resource} allows external access"
        status_id, status = 1, "New"
    severity_id, severity = _OCSF_SEVERITY[label]
    region = analyzer.region
    return {
        "activity_id": 1,
        "activity_name": "Create",
        "category_uid": 2,
        "category_name": "Findings",
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "type_uid": 200401,
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": status,
        "time": _epoch_ms(finding.updated_at),
        "time_dt": iso8601(finding.updated_at),
        "metadata": {
            "uid": f"arn:aws:securityhub:{region}:{analyzer.account_id}:finding/"
            + str(uuid.uuid5(uuid.NAMESPACE_URL, finding.id)),
            "version": "1.6.0",
            "product": {
                "name": records.PRODUCT_NAME,
                "vendor_name": "AWS",
                "uid": f"arn:aws:securityhub:{region}::productv2/aws/access-analyzer",
            },
        },
        "cloud": {"provider": "AWS", "region": region, "account": {"uid": analyzer.account_id}},
        "finding_info": {
            "uid": records.asff_id(finding, analyzer),
            "title": title,
            "types": types,
            "created_time": _epoch_ms(finding.created_at),
            "created_time_dt": iso8601(finding.created_at),
            "modified_time": _epoch_ms(finding.updated_at),
            "modified_time_dt": iso8601(finding.updated_at),
        },
        "resources": [
            {
                "uid": resource,
                "type": resource_type,
                "region": region,
                "cloud_partition": "aws",
                "owner": {"account": {"uid": owner}},
            }
        ],
    }


class SecurityHubV2StandIn:
    """Serves GetFindingsV2 from the plan; the delegated administrator sees every account."""

    def __init__(
        self,
        items: Sequence[FindingPlan | ExternalFindingPlan],
        analyzer: records.AnalyzerRef,
        resolve_account: Callable[[str], str],
    ) -> None:
        self._items = items
        self._analyzer = analyzer
        self.closed = False
        self.calls = 0
        self._stub = RestJsonStub(
            "securityhub", {"GetFindingsV2": self.get_findings_v2}, self._guard(resolve_account)
        )

    def replace_items(self, items: Sequence[FindingPlan | ExternalFindingPlan]) -> None:
        """New states for the findings (the sandbox resolved some)."""
        self._items = items

    def _guard(self, resolve_account: Callable[[str], str]) -> Callable[[str], str]:
        def resolve(access_key: str) -> str:
            if self.closed:
                raise RuntimeError("this sandbox has been closed; build a new one")
            return resolve_account(access_key)

        return resolve

    def __call__(self, request: AWSPreparedRequest, **kwargs: Any) -> AWSResponse | None:
        # Only GetFindingsV2; None lets botocore carry on to moto for everything else.
        if request.method != "POST" or urlsplit(request.url).path != "/findingsv2":
            return None
        return self._stub(request, **kwargs)

    def get_findings_v2(self, params: dict[str, Any], caller: Caller) -> dict[str, Any]:
        self.calls += 1
        limit = int(params.get("MaxResults") or V2_PAGE)
        if not 1 <= limit <= V2_PAGE:
            raise ServiceError("InvalidInputException", "MaxResults must be between 1 and 100.")
        match = _compile_filters(params.get("Filters") or {})
        admin = caller.account_id == self._analyzer.account_id
        context = json.dumps(params.get("Filters") or {}, sort_keys=True)
        start = _v2_position(params["NextToken"], context) if params.get("NextToken") else 0
        page: list[dict[str, Any]] = []
        for index in range(start, len(self._items)):
            item = self._items[index]
            if not admin and item.account_id != caller.account_id:
                continue
            record = ocsf_record(item, self._analyzer)
            if not match(record):
                continue
            if len(page) == limit:
                return {"Findings": page, "NextToken": _v2_token(index, context)}
            page.append(record)
        return {"Findings": page}


def _compile_filters(filters: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    """String filters only (EQUALS, NOT_EQUALS, PREFIX, CONTAINS); anything else is refused."""
    composites: list[tuple[bool, list[Callable[[dict[str, Any]], bool]]]] = []
    for composite in filters.get("CompositeFilters") or []:
        unsupported = set(composite) - {"StringFilters", "Operator"}
        if unsupported:
            raise ServiceError(
                "InvalidInputException", f"The sandbox does not filter on {sorted(unsupported)}."
            )
        parts = [_string_check(f) for f in composite.get("StringFilters") or []]
        composites.append((composite.get("Operator", "AND") == "OR", parts))
    either = filters.get("CompositeOperator", "AND") == "OR"

    def matches(record: dict[str, Any]) -> bool:
        results = (
            (any if any_part else all)(part(record) for part in parts)
            for any_part, parts in composites
        )
        return (any if either else all)(results) if composites else True

    return matches


def _string_check(item: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    name = item.get("FieldName", "")
    getter = _FILTER_FIELDS.get(name)
    if getter is None:
        raise ServiceError("InvalidInputException", f"The sandbox does not filter on {name}.")
    value = item["Filter"]["Value"]
    comparison = item["Filter"]["Comparison"]
    tests: dict[str, Callable[[str], bool]] = {
        "EQUALS": lambda v: v == value,
        "PREFIX": lambda v: v.startswith(value),
        "CONTAINS": lambda v: value in v,
    }
    if comparison in tests:
        return lambda r: any(tests[comparison](v) for v in getter(r))
    if comparison == "NOT_EQUALS":
        return lambda r: all(v != value for v in getter(r))
    raise ServiceError("InvalidInputException", f"The sandbox does not support {comparison}.")


def _v2_token(position: int, context: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([position, context]).encode()).decode()


def _v2_position(token: str, context: str) -> int:
    try:
        position, token_context = json.loads(base64.urlsafe_b64decode(token))
    except (ValueError, TypeError) as error:
        raise ServiceError("InvalidInputException", "Invalid NextToken.") from error
    if token_context != context or not isinstance(position, int):
        raise ServiceError("InvalidInputException", "NextToken does not match this request.")
    return position
