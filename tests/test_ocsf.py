"""OCSF findings of the new Security Hub: `normalise.from_ocsf` on hand-built records (AWS has
published no sample), and the `security_hub_v2` source against the sandbox's GetFindingsV2."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from reporter.models import FindingType, RawRecord
from reporter.normalise import Skip, from_ocsf, normalise
from reporter.sandbox import Sandbox, SandboxSpec
from reporter.sources.security_hub_v2 import SecurityHubV2Source, unused_access_filter

ADMIN = "999988887777"  # where Security Hub (and its analyzer) runs
OWNER = "444455556666"
ROLE = f"arn:aws:iam::{OWNER}:role/app-deployer"
USER = f"arn:aws:iam::{OWNER}:user/ops/jane"
CREATED = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)
MODIFIED = datetime(2025, 3, 9, 6, 0, tzinfo=UTC)


def ocsf(finding_type: str = "UnusedIAMRole", resource: str = ROLE, **overrides: Any) -> dict:
    """A Detection Finding as the new Security Hub plausibly writes one (unverified shape)."""
    record: dict[str, Any] = {
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "severity_id": 3,
        "severity": "Medium",
        "status_id": 1,
        "status": "New",
        "time": int(MODIFIED.timestamp() * 1000),
        "metadata": {
            "uid": "arn:aws:securityhub:us-east-1:999988887777:finding/0d1c7f0e",
            "version": "1.6.0",
            "product": {
                "name": "IAM Access Analyzer",
                "vendor_name": "AWS",
                "uid": "arn:aws:securityhub:us-east-1::productv2/aws/access-analyzer",
            },
        },
        "cloud": {"provider": "AWS", "region": "us-east-1", "account": {"uid": ADMIN}},
        "finding_info": {
            "uid": f"arn:aws:access-analyzer:us-east-1:{ADMIN}:analyzer/sh/{resource}",
            "title": f"{resource} contains unused IAM role",
            "types": [finding_type],
            "created_time": int(CREATED.timestamp() * 1000),
            "modified_time_dt": "2025-03-09T06:00:00Z",
        },
        "resources": [
            {
                "uid": resource,
                "type": "AWS::IAM::Role" if ":role/" in resource else "AWS::IAM::User",
                "owner": {"account": {"uid": OWNER}},
            }
        ],
    }
    record.update(overrides)
    return record


@pytest.mark.parametrize(
    ("declared", "resource", "expected"),
    [
        ("UnusedIAMRole", ROLE, FindingType.UNUSED_ROLE),
        ("UnusedPermission", ROLE, FindingType.UNUSED_PERMISSION),
        ("UnusedIAMUserPassword", USER, FindingType.UNUSED_PASSWORD),
        ("UnusedIAMUserAccessKey", USER, FindingType.UNUSED_ACCESS_KEY),
        (
            "Software and Configuration Checks/AWS Security Best Practices/Unused IAM Role",
            ROLE,
            FindingType.UNUSED_ROLE,
        ),
        (
            "Software and Configuration Checks/AWS Security Best Practices/Unused Permission",
            USER,
            FindingType.UNUSED_PERMISSION,
        ),
    ],
)
def test_each_type_in_either_spelling(declared: str, resource: str, expected: FindingType) -> None:
    finding = from_ocsf(ocsf(declared, resource))
    assert not isinstance(finding, Skip)
    assert finding.type is expected
    assert finding.principal_arn == resource
    # Ownership comes from the resource ARN, never from cloud.account.uid (the admin's).
    assert finding.account_id == OWNER
    assert finding.severity == "MEDIUM"
    assert finding.region == "us-east-1"
    assert finding.created_at == CREATED
    assert finding.updated_at == MODIFIED
    (source,) = finding.sources
    assert source.source == "security_hub_v2"
    assert source.id == "arn:aws:securityhub:us-east-1:999988887777:finding/0d1c7f0e"
    assert source.product_arn.endswith("productv2/aws/access-analyzer")


def test_type_and_details_from_unmapped() -> None:
    unmapped = {
        "FindingType": "UnusedIAMUserAccessKey",
        "findingId": "4bd2e9b8-0f8e-4f24-9f9e-2b8c1a5e7d11",
        "findingDetails": [
            {
                "unusedIamUserAccessKeyDetails": {
                    "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
                    "lastAccessed": "2024-11-02T10:00:00Z",
                }
            }
        ],
    }
    record = ocsf(resource=USER, unmapped=unmapped)
    record["finding_info"]["types"] = ["Unused access"]
    finding = from_ocsf(record)
    assert not isinstance(finding, Skip)
    assert finding.type is FindingType.UNUSED_ACCESS_KEY
    assert finding.access_key_ids == ("AKIAIOSFODNN7EXAMPLE",)
    assert finding.last_accessed == datetime(2024, 11, 2, 10, tzinfo=UTC)
    assert {(s.source, s.id) for s in finding.sources} >= {
        ("access_analyzer", "4bd2e9b8-0f8e-4f24-9f9e-2b8c1a5e7d11")
    }


@pytest.mark.parametrize(
    ("status", "status_id", "outcome"),
    [
        ("New", 1, None),
        ("In Progress", 2, None),
        ("Unknown", 0, None),
        ("Suppressed", 3, "suppressed in Security Hub"),
        ("Resolved", 4, "resolved in Security Hub"),
        ("Archived", 5, "archived in Security Hub"),
        ("Resolved", None, "resolved in Security Hub"),  # only the caption
    ],
)
def test_status(status: str, status_id: int | None, outcome: str | None) -> None:
    result = from_ocsf(ocsf(status=status, status_id=status_id))
    if outcome is None:
        assert not isinstance(result, Skip)
    else:
        assert result == Skip(outcome)


def test_severity_by_id_when_the_caption_is_missing_and_fatal_is_critical() -> None:
    record = ocsf(severity_id=6)
    del record["severity"]
    finding = from_ocsf(record)
    assert not isinstance(finding, Skip) and finding.severity == "CRITICAL"


def test_not_unused_access_is_skipped() -> None:
    record = ocsf("Effects/Data Exposure/External Access Granted", "arn:aws:s3:::bucket")
    assert from_ocsf(record) == Skip(
        "not unused access (Effects/Data Exposure/External Access Granted)"
    )
    guardduty = ocsf(finding_info={"uid": "x", "types": ["TTPs/Discovery"]})
    assert isinstance(from_ocsf(guardduty), Skip)


def _broken() -> list[tuple[dict[str, Any], str]]:
    no_uid = ocsf()
    del no_uid["metadata"]["uid"]
    bad_time = ocsf()
    bad_time["finding_info"]["created_time"] = "yesterday"
    bad_time_dt = ocsf()
    bad_time_dt["finding_info"]["modified_time_dt"] = "09/03/2025"
    return [
        (no_uid, "metadata.uid is missing"),
        (ocsf(resources=[]), "resources is missing or empty"),
        (ocsf(resources=[{"uid": "i-0abc", "type": "AWS::EC2::Instance"}]), "no resources[].uid"),
        (ocsf(status="Open", status_id=None), "status 'Open' is not understood"),
        (ocsf(status_id=99, status="Other"), "status_id 99 (Other) is not understood"),
        (ocsf(status_id="1"), "status_id is not an integer"),
        (bad_time, "created_time is not epoch milliseconds"),
        (bad_time_dt, "modified_time_dt is not an ISO 8601 time"),
        (ocsf(finding_info="UnusedIAMRole"), "finding_info is not an object"),
        (ocsf(unmapped={"findingDetails": "none"}), "findingDetails is not a list"),
    ]


def test_malformed_records_are_quarantined_with_their_reason() -> None:
    cases = _broken()
    records = [RawRecord("security_hub_v2", record, "us-east-1") for record, _ in cases]
    records.append(RawRecord("security_hub_v2", ["not", "a", "dict"]))  # type: ignore[arg-type]
    records.append(RawRecord("security_hub_v2", ocsf()))
    result = normalise(records)
    assert len(result.findings) == 1
    reasons = [q.reason for q in result.quarantined]
    assert len(reasons) == len(cases) + 1
    for reason, (_, expected) in zip(reasons, cases, strict=False):
        assert expected in reason
    assert reasons[-1] == "record is not a JSON object"
    assert all(q.source == "security_hub_v2" for q in result.quarantined)


def test_an_exported_ocsf_record_under_the_asff_source_is_still_read_as_ocsf() -> None:
    # `aws securityhub get-findings-v2` exports share `{"Findings": [...]}` with ASFF.
    (finding,) = normalise([RawRecord("security_hub", ocsf(), "export.json")]).findings
    assert finding.sources[0].source == "security_hub_v2"


def test_ocsf_and_analyzer_findings_of_the_same_access_merge() -> None:
    aa = {
        "id": "4bd2e9b8-0f8e-4f24-9f9e-2b8c1a5e7d11",
        "findingType": "UnusedIAMRole",
        "status": "ACTIVE",
        "resource": ROLE,
        "resourceOwnerAccount": OWNER,
        "findingDetails": [{"unusedIamRoleDetails": {"lastAccessed": "2024-12-01T00:00:00Z"}}],
    }
    result = normalise(
        [RawRecord("security_hub_v2", ocsf()), RawRecord("access_analyzer", copy.deepcopy(aa))]
    )
    (finding,) = result.findings
    assert {s.source for s in finding.sources} == {"security_hub_v2", "access_analyzer"}
    assert finding.last_accessed == datetime(2024, 12, 1, tzinfo=UTC)


# --- The source against the sandbox's GetFindingsV2 stand-in -------------------------------


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(SandboxSpec(seed=7, now=datetime(2026, 6, 1, 12, tzinfo=UTC))) as sb:
        yield sb


def test_source_reads_every_unused_finding_with_its_owner(sandbox: Sandbox) -> None:
    client = sandbox.assumed_session(sandbox.delegated_admin_role_arn).client("securityhub")
    records = list(SecurityHubV2Source(client, sandbox.home_region).collect())
    total = len(sandbox.plan.findings) + len(sandbox.plan.external)
    assert len(records) == total
    assert all(r.source == "security_hub_v2" and r.origin == "us-east-1" for r in records)
    result = normalise(records)
    assert result.quarantined == ()
    expected = {
        (e.account_id, e.finding_type, e.principal_arn) for e in sandbox.expected if e.active
    }
    got = {(f.account_id, f.type.value, f.principal_arn) for f in result.findings}
    assert got == expected
    # The admin account is in cloud.account.uid of every record; no finding is attributed to it.
    assert sandbox.security_account_id not in {f.account_id for f in result.findings}
    assert sum(result.skipped.values()) == total - len(expected)
    # The other Security Hub operations still reach moto.
    assert client.get_findings(MaxResults=1)["Findings"]


def test_source_pages_at_100_and_the_product_filter_is_applied(sandbox: Sandbox) -> None:
    client = sandbox.assumed_session(sandbox.delegated_admin_role_arn).client("securityhub")
    pages = list(
        client.get_paginator("get_findings_v2").paginate(
            Filters=unused_access_filter("IAM Access Analyzer"),
            PaginationConfig={"PageSize": 10},
        )
    )
    total = len(sandbox.plan.findings) + len(sandbox.plan.external)
    assert len(pages) == math.ceil(total / 10)
    other = list(SecurityHubV2Source(client, "us-east-1", product_name="GuardDuty").collect())
    assert other == []


def test_a_member_account_sees_only_its_own_findings(sandbox: Sandbox) -> None:
    member = next(a for a in sandbox.accounts if a.id not in (sandbox.security_account_id,))
    session = sandbox.assumed_session(sandbox.member_role_arn(member.id))
    records = list(SecurityHubV2Source(session.client("securityhub"), "us-east-1").collect())
    owners = {r.payload["resources"][0]["owner"]["account"]["uid"] for r in records}
    assert owners <= {member.id}
