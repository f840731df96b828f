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
