from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from reporter.models import FindingType, RawRecord
from reporter.normalise import Skip, from_asff, normalise

from .conftest import sample

ROLE = "arn:aws:iam::444455556666:role/app-deployer"


def asff(**overrides: Any) -> dict[str, Any]:
    """AWS's published unused-permission record, made ACTIVE, with a different owner account."""
    record: dict[str, Any] = copy.deepcopy(sample("asff-unused-permission-aws-docs.json"))[
        "Findings"
    ][0]
    record["RecordState"] = "ACTIVE"
    record["Resources"][0]["Id"] = ROLE
    record["ProductFields"]["resourceOwnerAccount"] = "444455556666"
    record.update(overrides)
    return record


def test_aws_sample_parses_with_owner_account_from_product_fields() -> None:
    record = sample("asff-unused-permission-aws-docs.json")["Findings"][0]
    record = {**record, "RecordState": "ACTIVE"}
    finding = from_asff(record)
    assert not isinstance(finding, Skip)
    assert finding.type is FindingType.UNUSED_PERMISSION
    assert finding.account_id == "111122223333"
    assert finding.principal_arn == "arn:aws:iam::111122223333:role/TestRole"
    assert finding.severity == "LOW"
    assert finding.region == "us-west-2"
    assert {s.source for s in finding.sources} == {"security_hub", "access_analyzer"}
    assert finding.key == "111122223333/UnusedPermission/arn:aws:iam::111122223333:role/TestRole"


def test_archived_sample_is_skipped_not_active() -> None:
    record = sample("asff-unused-permission-aws-docs.json")["Findings"][0]
    assert from_asff(record) == Skip("archived in Security Hub")


def test_owner_is_never_the_analyzer_account() -> None:
    finding = from_asff(asff(AwsAccountId="999988887777"))
    assert not isinstance(finding, Skip)
    assert finding.account_id == "444455556666"


def test_capitalised_product_field_key_and_arn_fallback() -> None:
    fields = {"ResourceOwnerAccount": "444455556666", "findingType": "UnusedIAMRole"}
    finding = from_asff(asff(ProductFields=fields))
    assert not isinstance(finding, Skip)
    assert finding.account_id == "444455556666"
    assert finding.type is FindingType.UNUSED_ROLE
    no_fields = from_asff(
        asff(
            ProductFields={},
            Types=["Software and Configuration Checks/AWS Security Best Practices/Unused IAM Role"],
        )
    )
    assert not isinstance(no_fields, Skip)
    assert no_fields.account_id == "444455556666"  # from the role ARN


def test_external_access_is_skipped() -> None:
    record = sample("asff-external-access-s3-aws-docs.json")  # published unwrapped
    outcome = from_asff(record)
    assert isinstance(outcome, Skip)
    assert outcome.reason.startswith("not unused access")


def test_malformed_records_are_quarantined_and_the_rest_survive() -> None:
    good = RawRecord("security_hub", asff())
    bad_resource = RawRecord("security_hub", asff(Resources=[{"Id": "not-an-arn"}]))
    no_resources = RawRecord("security_hub", asff(Resources=[]))
    not_a_dict = RawRecord("security_hub", ["x"])  # type: ignore[arg-type]
    result = normalise([good, bad_resource, no_resources, not_a_dict])
    assert len(result.findings) == 1
    assert len(result.quarantined) == 3
    assert "not an IAM user or role ARN" in result.quarantined[0].reason
    assert "Resources" in result.quarantined[1].reason


def test_same_access_from_two_records_merges_keeping_every_source_id() -> None:
    a = asff(Id="finding-a", Severity={"Label": "LOW"})
    b = asff(Id="finding-b", Severity={"Label": "HIGH"}, UpdatedAt="2025-01-01T00:00:00Z")
    result = normalise([RawRecord("security_hub", a), RawRecord("security_hub", b)])
    (finding,) = result.findings
    assert {s.id for s in finding.sources if s.source == "security_hub"} == {
        "finding-a",
        "finding-b",
    }
    assert finding.severity == "HIGH"
    assert finding.updated_at is not None and finding.updated_at.year == 2025


def test_suppressed_is_skipped_and_counted() -> None:
    result = normalise([RawRecord("security_hub", asff(Workflow={"Status": "SUPPRESSED"}))])
    assert result.findings == ()
    assert result.skipped == {"suppressed in Security Hub": 1}


# --- IAM records and merging across sources -------------------------------------------------

USER = "arn:aws:iam::444455556666:user/ops/jane"


def iam_record(**overrides: Any) -> dict[str, Any]:
    """A record of the IAM source (shape documented in reporter.sources.iam)."""
    record: dict[str, Any] = {
        "source": "iam",
        "finding_type": "UnusedIAMUserAccessKey",
        "account_id": "444455556666",
        "principal_arn": USER,
        "principal_created_at": "2023-01-01T00:00:00+00:00",
        "last_accessed": "2024-10-01T12:00:00+00:00",
        "unused_since": "2024-12-30T12:00:00+00:00",
        "evaluated_at": "2025-03-10T06:00:00+00:00",
        "unused_after_days": 90,
        "service_linked": False,
        "access_keys": [
            {"id": "AKIAIOSFODNN7EXAMPLE", "slot": 1, "created_at": "2023-01-01T00:00:00+00:00"}
        ],
        "tags": {"team": "payments"},
        "attached_policies": ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
    }
    record.update(overrides)
    return record


def aa_record(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": "4bd2e9b8-0f8e-4f24-9f9e-2b8c1a5e7d11",
        "analyzerArn": "arn:aws:access-analyzer:us-east-1:999988887777:analyzer/org",
        "findingType": "UnusedIAMUserAccessKey",
        "status": "ACTIVE",
        "resource": USER,
        "resourceOwnerAccount": "444455556666",
        "createdAt": "2024-11-01T00:00:00Z",
        "updatedAt": "2025-03-09T00:00:00Z",
        "findingDetails": [
            {
                "unusedIamUserAccessKeyDetails": {
                    "accessKeyId": "AKIAI44QH8DHBEXAMPLE",
                    "lastAccessed": "2024-09-01T00:00:00Z",
                }
            }
        ],
    }
    record.update(overrides)
    return record


def test_iam_record_becomes_a_finding() -> None:
    (finding,) = normalise([RawRecord("iam", iam_record(), "444455556666")]).findings
    assert finding.type is FindingType.UNUSED_ACCESS_KEY
    assert finding.account_id == "444455556666"
    assert finding.access_key_ids == ("AKIAIOSFODNN7EXAMPLE",)
    assert finding.principal_tags == {"team": "payments"}
    assert finding.attached_policies == ("arn:aws:iam::aws:policy/ReadOnlyAccess",)
    assert finding.last_accessed is not None and finding.last_accessed.year == 2024
    assert finding.sources[0].source == "iam"


def test_iam_and_analyzer_findings_of_one_principal_merge_into_one() -> None:
    records = [
        RawRecord("access_analyzer", aa_record()),
        RawRecord("iam", iam_record()),
        RawRecord(
            "iam",
            iam_record(
                finding_type="UnusedIAMUserPassword",
                access_keys=[],
                attached_policies=["arn:aws:iam::aws:policy/IAMUserChangePassword"],
            ),
        ),
    ]
    result = normalise(records)
    assert result.quarantined == ()
    keys, password = sorted(result.findings, key=lambda f: f.type.value)
    assert keys.type is FindingType.UNUSED_ACCESS_KEY
    assert {s.source for s in keys.sources} == {"access_analyzer", "iam"}
    assert keys.access_key_ids == ("AKIAI44QH8DHBEXAMPLE", "AKIAIOSFODNN7EXAMPLE")
    # Tags and policies only IAM knew survive the merge; the latest activity wins.
    assert keys.principal_tags == {"team": "payments"}
    assert keys.attached_policies == ("arn:aws:iam::aws:policy/ReadOnlyAccess",)
    assert keys.last_accessed is not None and keys.last_accessed.month == 10
    assert keys.region == "us-east-1"
    assert password.type is FindingType.UNUSED_PASSWORD
    assert [s.source for s in password.sources] == ["iam"]


def test_merge_keeps_policies_of_both_and_the_recommendation_of_either() -> None:
    from reporter.models import Recommendation
    from reporter.normalise import merge

    a = from_asff(asff())
    assert not isinstance(a, Skip)
    b = replace(
        a,
        attached_policies=("arn:aws:iam::aws:policy/B",),
        recommendation=Recommendation("SUCCEEDED"),
        policy_documents={"arn:aws:iam::aws:policy/B": "{}"},
    )
    merged = merge(replace(a, attached_policies=("arn:aws:iam::aws:policy/A",)), b)
    assert merged.attached_policies == ("arn:aws:iam::aws:policy/A", "arn:aws:iam::aws:policy/B")
    assert merged.recommendation == Recommendation("SUCCEEDED")
    assert merged.policy_documents == {"arn:aws:iam::aws:policy/B": "{}"}


def test_bad_iam_records_are_quarantined() -> None:
    records = [
        RawRecord("iam", {"source": "iam", "error": "credential report row for user 'x': bad"}),
        RawRecord("iam", iam_record(finding_type="UnusedPermission")),
        RawRecord("iam", iam_record(account_id="111122223333")),
        RawRecord("iam", iam_record(last_accessed="last week")),
        RawRecord("iam", iam_record(access_keys=[])),
        RawRecord("iam", iam_record(principal_arn="arn:aws:iam::444455556666:root")),
    ]
    reasons = [q.reason for q in normalise(records).quarantined]
    assert reasons == [
        "credential report row for user 'x': bad",
        "finding_type is not one the IAM source reports: 'UnusedPermission'",
        "principal_arn 'arn:aws:iam::444455556666:user/ops/jane' is not in account '111122223333'",
        "last_accessed is not an ISO 8601 time: 'last week'",
        "an unused-access-key record names no access key",
        "principal_arn is not an IAM user or role ARN: 'arn:aws:iam::444455556666:root'",
    ]
