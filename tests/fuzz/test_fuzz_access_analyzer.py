"""Access Analyzer v2 records (`from_access_analyzer`): ListFindingsV2 summaries from AWS's
published output, merged with GetFindingV2 details and a GetFindingRecommendation result, then
mutated."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from reporter.models import RawRecord
from reporter.normalise import from_access_analyzer, parse_recommendation
from tests.conftest import sample
from tests.fuzz.strategies import budget, check_record, json_values, ran, records

LISTED = sample("aa-list-findings-v2-unused-permission-aws-blog.json")["findings"]
RECOMMENDATION = sample("aa-get-finding-recommendation-aws-blog.json")
EXTERNAL = sample("aa-get-finding-v2-external-access-awscli.json")


def _with(summary: dict[str, Any], kind: str, details: list[Any], **extra: Any) -> dict[str, Any]:
    record = copy.deepcopy(summary)
    record.update(findingType=kind, findingDetails=details, **extra)
    record["analyzerArn"] = "arn:aws:access-analyzer:us-east-1:123456789012:analyzer/unused"
    return record


USER, ROLE = LISTED
BASES = [
    *LISTED,
    _with(
        ROLE,
        "UnusedPermission",
        [
            {
                "unusedPermissionDetails": {
                    "serviceNamespace": "s3",
                    "lastAccessed": "2024-02-01T00:00:00+00:00",
                    "actions": [
                        {"action": "s3:GetObject", "lastAccessed": "2024-01-01T00:00:00Z"},
                        {"action": "s3:PutObject"},
                    ],
                }
            },
            {"unusedPermissionDetails": {"serviceNamespace": "lambda"}},
        ],
        recommendation=RECOMMENDATION,
    ),
    _with(
        USER,
        "UnusedIAMUserAccessKey",
        [
            {
                "unusedIamUserAccessKeyDetails": {
                    "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
                    "lastAccessed": "2023-11-01T10:00:00Z",
                }
            }
        ],
    ),
    _with(USER, "UnusedIAMUserPassword", [{"unusedIamUserPasswordDetails": {}}]),
    _with(ROLE, "UnusedIAMRole", [{"unusedIamRoleDetails": {"lastAccessed": "2023-01-01"}}]),
    EXTERNAL,
]


@budget(500)
@given(st.sampled_from(BASES).flatmap(records))
def test_access_analyzer_record_is_a_finding_a_skip_or_quarantined(record: Any) -> None:
    ran(
        "access_analyzer",
        check_record(RawRecord("access_analyzer", record, "fuzz"), from_access_analyzer),
    )


@budget(200)
@given(st.one_of(records(RECOMMENDATION, max_ops=6), json_values))
def test_any_recommendation_is_read_or_ignored(value: Any) -> None:
    """The recommendation never quarantines a finding: it is read, or None."""
    ran("access_analyzer recommendation")
    record = _with(ROLE, "UnusedPermission", [], recommendation=value)
    outcome = check_record(RawRecord("access_analyzer", record, "fuzz"), from_access_analyzer)
    recommendation = parse_recommendation(value)
    assert outcome == "finding"
    assert recommendation is None or all(s.action for s in recommendation.steps)
