"""Sources against the sandbox: real boto3 clients, moto and the Access Analyzer stand-in."""

from __future__ import annotations

import pytest

from reporter.models import RawRecord
from reporter.normalise import Skip, from_access_analyzer, normalise
from reporter.session import AwsOptions, SessionFactory
from reporter.sources.access_analyzer import AccessAnalyzerSource, SourceUnavailable, find_analyzer
from reporter.sources.security_hub import SecurityHubSource

from .conftest import sample


@pytest.fixture(scope="module")
def collected() -> dict[str, object]:
    from reporter.sandbox import Sandbox, SandboxSpec

    with Sandbox(SandboxSpec()) as sandbox:
        factory = SessionFactory(
            sandbox.session(), AwsOptions(region=sandbox.home_region), sandbox.configure_session
        )
        admin = factory.assume(sandbox.delegated_admin_role_arn)
        aa = AccessAnalyzerSource(factory.client("accessanalyzer", admin))
        hub = SecurityHubSource(factory.client("securityhub", admin), sandbox.home_region)
        with pytest.raises(SourceUnavailable):
            find_analyzer(factory.client("accessanalyzer"))  # the management account has none
        return {
            "aa": list(aa.collect()),
            "hub": list(hub.collect()),
            "expected": sandbox.expected,
            "reportable": sandbox.reportable,
        }


def test_access_analyzer_returns_every_active_unused_finding_with_all_details(
    collected: dict[str, object],
) -> None:
    records = collected["aa"]
    assert isinstance(records, list)
    expected = {e.finding_id: e for e in collected["expected"] if e.active}  # type: ignore[attr-defined]
    assert {r.payload["id"] for r in records} == set(expected)
    result = normalise(records)
    assert not result.quarantined
    by_key = {(f.account_id, f.type.value, f.principal_arn): f for f in result.findings}
    for e in expected.values():
        finding = by_key[(e.account_id, e.finding_type, e.principal_arn)]
        assert finding.access_key_ids == tuple(sorted(e.access_key_ids))
        # findingDetails is paginated by the API; every service must survive the paging
        assert {s.namespace for s in finding.services} == set(e.service_namespaces)


def test_both_sources_merge_into_one_finding_per_access(collected: dict[str, object]) -> None:
    aa, hub = collected["aa"], collected["hub"]
    assert isinstance(aa, list) and isinstance(hub, list)
    merged = normalise([*aa, *hub])
    only_aa = normalise(aa)
    assert len(merged.findings) == len(only_aa.findings)
    for finding in merged.findings:
        assert {s.source for s in finding.sources} == {"security_hub", "access_analyzer"}


def test_published_list_findings_v2_sample_normalises() -> None:
    for summary in sample("aa-list-findings-v2-unused-permission-aws-blog.json")["findings"]:
        finding = from_access_analyzer(summary)
        assert not isinstance(finding, Skip)
        assert finding.account_id == "123456789012"
        assert finding.type.value == "UnusedPermission"


def test_published_external_access_finding_is_skipped() -> None:
    outcome = from_access_analyzer(sample("aa-get-finding-v2-external-access-awscli.json"))
    assert outcome == Skip("not unused access (ExternalAccess)")


def test_malformed_access_analyzer_record_is_quarantined() -> None:
    bad = {"findingType": "UnusedIAMRole", "status": "ACTIVE", "id": "x", "resource": "nope"}
    result = normalise([RawRecord("access_analyzer", bad)])
    assert result.findings == () and "not an IAM user or role ARN" in result.quarantined[0].reason


def _stubbed_analyzer() -> tuple[object, object]:
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("accessanalyzer", region_name="us-east-1")
    return client, Stubber(client)


def test_recommendation_is_polled_with_backoff_and_its_steps_paged() -> None:
    """Exact shapes through botocore's Stubber: the blog's recommendation, split in two pages,
    after one IN_PROGRESS answer; the model's spelling of recommendationType on the way."""
    from datetime import UTC, datetime

    from reporter.sources.access_analyzer import AccessAnalyzerSource, RecommendationPolicy

    arn = "arn:aws:access-analyzer:us-east-1:111122223333:analyzer/org"
    summary = sample("aa-list-findings-v2-unused-permission-aws-blog.json")["findings"][0]
    blog = sample("aa-get-finding-recommendation-aws-blog.json")
    client, stub = _stubbed_analyzer()
    when = datetime(2024, 7, 22, tzinfo=UTC)
    stub.add_response(
        "get_analyzer",
        {
            "analyzer": {
                "arn": arn,
                "name": "org",
                "type": "ORGANIZATION_UNUSED_ACCESS",
                "createdAt": when,
                "status": "ACTIVE",
                "configuration": {"unusedAccess": {"unusedAccessAge": 90}},
            }
        },
    )
    stub.add_response("list_findings_v2", {"findings": [summary]})
    details = {k: summary[k] for k in ("id", "resource", "resourceType", "status", "findingType")}
    stub.add_response(
        "get_finding_v2",
        {
            **details,
            "analyzedAt": when,
            "createdAt": when,
            "updatedAt": when,
            "resourceOwnerAccount": "123456789012",
            "findingDetails": [{"unusedPermissionDetails": {"serviceNamespace": "s3"}}],
        },
    )
    stub.add_response("generate_finding_recommendation", {})
    head = {"startedAt": when, "resourceArn": blog["resourceArn"]}
    stub.add_response(
        "get_finding_recommendation",
        {**head, "status": "IN_PROGRESS", "recommendationType": "UnusedPermissionRecommendation"},
    )
    steps = blog["recommendedSteps"]
    done = {**head, "status": "SUCCEEDED", "recommendationType": "UnusedPermissionRecommendation"}
    stub.add_response(
        "get_finding_recommendation", {**done, "recommendedSteps": steps[:3], "nextToken": "t"}
    )
    stub.add_response("get_finding_recommendation", {**done, "recommendedSteps": steps[3:]})
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    with stub:
        source = AccessAnalyzerSource(
            client,
            arn,
            recommendations=RecommendationPolicy(first_poll_seconds=2.0),
            workers=1,
            clock=lambda: now[0],
            sleep=sleep,
        )
        (record,) = list(source.collect())
        stub.assert_no_pending_responses()
    assert slept == [2.0, 4.0]  # first poll after 2 s, then doubled
    recommendation = record.payload["recommendation"]
    assert recommendation["status"] == "SUCCEEDED"
    assert recommendation["recommendationType"] == "UnusedPermissionRecommendation"
    assert [
        s["unusedPermissionsRecommendedStep"]["recommendedAction"]
        for s in recommendation["recommendedSteps"]
    ] == [s["unusedPermissionsRecommendedStep"]["recommendedAction"] for s in steps]
    assert source.analyzer().tracking_days == 90
    assert record.payload["findingDetails"] == [
        {"unusedPermissionDetails": {"serviceNamespace": "s3"}}
    ]


def test_security_hub_client_side_filter_reasons() -> None:
    from reporter.sources.security_hub import filtered_out

    asff = sample("asff-unused-permission-aws-docs.json")
    asff = asff["Findings"][0] if "Findings" in asff else asff
    assert filtered_out(asff) == "archived in Security Hub"  # AWS's sample is ARCHIVED
    active = {**asff, "RecordState": "ACTIVE"}
    assert filtered_out(active) == ""
    assert filtered_out({**active, "Workflow": {"Status": "SUPPRESSED"}}) == (
        "suppressed in Security Hub"
    )
    external = sample("asff-external-access-s3-aws-docs.json")
    external = external["Findings"][0] if "Findings" in external else external
    assert filtered_out(external) == "not unused access"
    # The product is normalise's to judge: a look-alike is quarantined there, not dropped here.
    no_name = {k: v for k, v in active.items() if k != "ProductName"}
    assert filtered_out(no_name) == ""
    assert (
        filtered_out({**active, "ProductArn": "arn:aws:securityhub:us-west-2:1:product/1/x"}) == ""
    )


def test_published_recommendation_parses_in_both_spellings() -> None:
    from reporter.normalise import parse_recommendation

    blog = sample("aa-get-finding-recommendation-aws-blog.json")
    parsed = parse_recommendation(blog)
    assert parsed is not None and parsed.status == "SUCCEEDED"
    assert [s.action for s in parsed.steps] == [
        "DETACH_POLICY",
        "CREATE_POLICY",
        "DETACH_POLICY",
        "CREATE_POLICY",
        "DETACH_POLICY",
    ]
    assert parsed.steps[0].existing_policy_id == "arn:aws:iam::aws:policy/AmazonBedrockReadOnly"
    assert parsed.steps[3].policy_updated_at is None  # inline policies carry no date
    assert '"lambda:ListFunctions"' in parsed.steps[3].recommended_policy
    model = parse_recommendation({**blog, "recommendationType": "UnusedPermissionRecommendation"})
    assert model == parsed
    failed = parse_recommendation(
        {"status": "FAILED", "error": {"code": "UNSUPPORTED", "message": "Identity Center"}}
    )
    assert failed is not None and failed.error == "UNSUPPORTED: Identity Center"
    assert parse_recommendation({**blog, "recommendationType": "Other"}) is None
