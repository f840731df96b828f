"""IAM Access Analyzer stand-in (moto has no Access Analyzer): the sandbox's analyzers behind
the real boto3 `accessanalyzer` client.

Behaviour chosen where AWS documents nothing, so product code meets the hard cases:

- Analyzers belong to an account and Region. ListAnalyzers answers with the caller's own
  analyzers in the client's Region (so the management account sees none); an analyzer ARN of
  another account gives AccessDeniedException, an unknown one ResourceNotFoundException.
- ListFindingsV2 pages at 100 by default and honours `filter` on `id`, `resource`,
  `resourceType`, `resourceOwnerAccount`, `findingType` and `status` with `eq`, `neq`,
  `contains` and `exists`, plus `sort`; other filter keys raise ValidationException.
- GetFindingV2 pages `findingDetails` at 10 by default, so a reader that ignores `nextToken`
  loses services of broad UnusedPermission findings.
- GenerateFindingRecommendation only for UnusedPermission (else ValidationException);
  GetFindingRecommendation before it gives ResourceNotFoundException, IN_PROGRESS on the first
  poll, then SUCCEEDED (FAILED with an `error` for IAM Identity Center roles, which AWS does not
  support; the error code is the sandbox's own, AWS publishes none). `recommendationType` is
  spelled `UNUSED_PERMISSION_RECOMMENDATION`, as the CLI prints it in AWS's blog.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from . import records
from .data import ExternalFindingPlan, FindingPlan
from .restjson import Caller, Handler, RestJsonStub, ServiceError

Plan = FindingPlan | ExternalFindingPlan

FINDINGS_PAGE = 100
DETAILS_PAGE = 10
STEPS_PAGE = 100
RECOMMENDATION_TYPE = "UNUSED_PERMISSION_RECOMMENDATION"

_FILTER_KEYS: dict[str, Callable[[Plan], str]] = {
    "id": lambda f: f.id,
    "resource": lambda f: f.principal.arn if isinstance(f, FindingPlan) else f.resource,
    "resourceType": lambda f: (
        f.principal.resource_type if isinstance(f, FindingPlan) else f.resource_type
    ),
    "resourceOwnerAccount": lambda f: f.account_id,
    "findingType": lambda f: f.finding_type if isinstance(f, FindingPlan) else "ExternalAccess",
    "status": lambda f: f.status,
}
_SORT_KEYS: dict[str, Callable[[Plan], Any]] = {
    **_FILTER_KEYS,
    "createdAt": lambda f: f.created_at,
    "updatedAt": lambda f: f.updated_at,
    "analyzedAt": lambda f: f.analyzed_at,
}


@dataclass
class Analyzer:
    ref: records.AnalyzerRef
    type: str
    created_at: datetime
    findings: Sequence[Plan]
    configuration: dict[str, Any] | None = None
    _index: dict[str, int] = field(default_factory=dict, repr=False)
    _orders: dict[tuple[str, str], list[int]] = field(default_factory=dict, repr=False)

    def finding(self, finding_id: str) -> Plan:
        if not self._index:
            self._index = {f.id: i for i, f in enumerate(self.findings)}
        position = self._index.get(finding_id)
        if position is None:
            raise ServiceError("ResourceNotFoundException", f"Finding {finding_id} not found.")
        return self.findings[position]

    def order(self, attribute: str, direction: str) -> list[int]:
        # Cached: a paginated listing re-reads the same order for each page.
        key = (attribute, direction)
        if key not in self._orders:
            getter = _SORT_KEYS[attribute]
            self._orders[key] = sorted(
                range(len(self.findings)),
                key=lambda i: getter(self.findings[i]),
                reverse=direction == "DESC",
            )
        return self._orders[key]

    def summary(self, *, with_configuration: bool) -> dict[str, Any]:
        last = max(self.findings, key=lambda f: f.analyzed_at, default=None)
        summary: dict[str, Any] = {
            "arn": self.ref.arn,
            "name": self.ref.name,
            "type": self.type,
            "createdAt": self.created_at,
            "tags": {},
            "status": "ACTIVE",
        }
        if last is not None:
            summary["lastResourceAnalyzed"] = _FILTER_KEYS["resource"](last)
            summary["lastResourceAnalyzedAt"] = last.analyzed_at
        if with_configuration and self.configuration is not None:
            summary["configuration"] = self.configuration
        return summary


@dataclass
class _Recommendation:
    polls: int = 0


class AccessAnalyzerStandIn:
    """The analyzers and their findings; `stub` is the botocore handler that serves them."""

    def __init__(
        self,
        analyzers: Sequence[Analyzer],
        now: datetime,
        resolve_account: Callable[[str], str],
    ) -> None:
        self._analyzers = {a.ref.arn: a for a in analyzers}
        self._now = now
        self._recommendations: dict[tuple[str, str], _Recommendation] = {}
        self.closed = False
        handlers: dict[str, Handler] = {
            "ListAnalyzers": self.list_analyzers,
            "GetAnalyzer": self.get_analyzer,
            "ListFindingsV2": self.list_findings_v2,
            "GetFindingV2": self.get_finding_v2,
            "GenerateFindingRecommendation": self.generate_finding_recommendation,
            "GetFindingRecommendation": self.get_finding_recommendation,
        }
        self.stub = RestJsonStub("accessanalyzer", handlers, self._guard(resolve_account))

    @property
    def analyzers(self) -> tuple[Analyzer, ...]:
        return tuple(self._analyzers.values())

    def _guard(self, resolve_account: Callable[[str], str]) -> Callable[[str], str]:
        def resolve(access_key: str) -> str:
            # A session can outlive its sandbox; answering then would mix data from a torn-down
            # organization with whatever the next mock holds.
            if self.closed:
                raise RuntimeError("this sandbox has been closed; build a new one")
            return resolve_account(access_key)

        return resolve

    def list_analyzers(self, params: dict[str, Any], caller: Caller) -> dict[str, Any]:
        mine = [
            a.summary(with_configuration=False)
            for a in self._analyzers.values()
            if a.ref.account_id == caller.account_id
            and a.ref.region == caller.region
            and params.get("type", a.type) == a.type
        ]
        page, token = _page(mine, params, "analyzers", FINDINGS_PAGE)
        return {"analyzers": page, **token}

    def get_analyzer(self, params: dict[str, Any], caller: Caller) -> dict[str, Any]:
        for analyzer in self._analyzers.values():
            ref = analyzer.ref
            if (ref.account_id, ref.region, ref.name) == (
                caller.account_id,
                caller.region,
                params["analyzerName"],
            ):
                return {"analyzer": analyzer.summary(with_configuration=True)}
        raise ServiceError("ResourceNotFoundException", "Analyzer not found.")

    def list_findings_v2(self, params: dict[str, Any], caller: Caller) -> dict[str, Any]:
        analyzer = self._analyzer(params["analyzerArn"], caller)
        criteria = params.get("filter") or {}
        for key, criterion in criteria.items():
            if key not in _FILTER_KEYS:
                raise ServiceError("ValidationException", f"Unsupported filter key: {key}.")
            if not criterion:
                raise ServiceError("ValidationException", f"Empty criterion for {key}.")
        sort = params.get("sort") or {}
        attribute = sort.get("attributeName", "")
        if attribute and attribute not in _SORT_KEYS:
            raise ServiceError("ValidationException", f"Unsupported sort attribute: {attribute}.")
        order = (
            analyzer.order(attribute, sort.get("orderBy", "ASC"))
            if attribute
            else range(len(analyzer.findings))
        )
        # The token is a position in `order`, so paging costs O(findings) overall, not per page.
        context = json.dumps([criteria, sort], sort_keys=True)
        position = _decode_token(params.get("nextToken"), context) if "nextToken" in params else 0
        limit = int(params.get("maxResults") or FINDINGS_PAGE)
        page: list[dict[str, Any]] = []
        next_position = None
        for index in range(position, len(order)):
            finding = analyzer.findings[order[index]]
            if not _matches(finding, criteria):
                continue
            if len(page) == limit:
                next_position = index
                break
            page.append(records.aa_summary(finding))
        result: dict[str, Any] = {"findings": page}
        if next_position is not None:
            result["nextToken"] = _encode_token(next_position, context)
        return result

    def get_finding_v2(self, params: dict[str, Any], caller: Caller) -> dict[str, Any]:
        analyzer = self._analyzer(params["analyzerArn"], caller)
        finding = analyzer.finding(params["id"])
        details = records.aa_details(finding, self._now)
        page, token = _page(details, params, f"details/{finding.id}", DETAILS_PAGE)
        return {**records.aa_summary(finding), "findingDetails": page, **token}

    def generate_finding_recommendation(self, params: dict[str, Any], caller: Caller) -> None:
        analyzer = self._analyzer(params["analyzerArn"], caller)
        finding = analyzer.finding(params["id"])
        if not isinstance(finding, FindingPlan) or finding.finding_type != "UnusedPermission":
            raise ServiceError(
                "ValidationException",
                "Recommendations are only supported for UnusedPermission findings.",
            )
        self._recommendations[(analyzer.ref.arn, finding.id)] = _Recommendation()

    def get_finding_recommendation(self, params: dict[str, Any], caller: Caller) -> dict[str, Any]:
        analyzer = self._analyzer(params["analyzerArn"], caller)
        finding = analyzer.finding(params["id"])
        state = self._recommendations.get((analyzer.ref.arn, finding.id))
        if state is None or not isinstance(finding, FindingPlan):
            raise ServiceError(
                "ResourceNotFoundException",
                f"No recommendation for finding {finding.id}; call GenerateFindingRecommendation.",
            )
        principal = finding.principal
        result: dict[str, Any] = {
            "startedAt": self._now,
            "resourceArn": principal.arn,
            "recommendationType": RECOMMENDATION_TYPE,
        }
        state.polls += 1
        if state.polls == 1:
            return {**result, "status": "IN_PROGRESS"}
        result["completedAt"] = self._now + timedelta(seconds=4)
        if principal.is_sso:
            error = {
                "code": "UNSUPPORTED_PRINCIPAL",
                "message": "Recommendations are not supported for IAM Identity Center roles.",
            }
            return {**result, "status": "FAILED", "error": error}
        steps = records.recommended_steps(principal, self._now)
        page, token = _page(steps, params, f"steps/{finding.id}", STEPS_PAGE)
        return {**result, "status": "SUCCEEDED", "recommendedSteps": page, **token}

    def _analyzer(self, arn: str, caller: Caller) -> Analyzer:
        parts = arn.split(":", 5)
        if len(parts) != 6 or parts[4] != caller.account_id:
            raise ServiceError(
                "AccessDeniedException",
                f"Account {caller.account_id} is not authorized to access analyzer {arn}.",
            )
        analyzer = self._analyzers.get(arn)
        if analyzer is None or analyzer.ref.region != caller.region:
            raise ServiceError("ResourceNotFoundException", f"Analyzer {arn} not found.")
        return analyzer


def _matches(finding: Plan, criteria: dict[str, dict[str, Any]]) -> bool:
    for key, criterion in criteria.items():
        value = _FILTER_KEYS[key](finding)
        if "eq" in criterion and value not in criterion["eq"]:
            return False
        if "neq" in criterion and value in criterion["neq"]:
            return False
        if "contains" in criterion and not any(part in value for part in criterion["contains"]):
            return False
        if "exists" in criterion and bool(value) != criterion["exists"]:
            return False
    return True


def _page(
    items: Sequence[Any], params: dict[str, Any], context: str, default: int
) -> tuple[list[Any], dict[str, str]]:
    """Offset paging for lists served whole (analyzers, details, steps)."""
    start = _decode_token(params.get("nextToken"), context) if "nextToken" in params else 0
    end = start + int(params.get("maxResults") or default)
    token = {"nextToken": _encode_token(end, context)} if end < len(items) else {}
    return list(items[start:end]), token


def _encode_token(position: int, context: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([position, context]).encode()).decode()


def _decode_token(token: str | None, context: str) -> int:
    try:
        position, token_context = json.loads(base64.urlsafe_b64decode(token or ""))
    except (ValueError, TypeError) as error:
        raise ServiceError("ValidationException", "Invalid nextToken.") from error
    if token_context != context or not isinstance(position, int):
        raise ServiceError("ValidationException", "nextToken does not match this request.")
    return position
