from __future__ import annotations

import copy
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
