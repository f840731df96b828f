"""Security Hub CSPM ASFF records (`from_asff`): mutations of AWS's published samples."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from reporter.models import RawRecord
from reporter.normalise import from_asff
from tests.conftest import sample
from tests.fuzz.strategies import budget, check_record, principal_arns, ran, records

UNUSED = sample("asff-unused-permission-aws-docs.json")["Findings"][0]
EXTERNAL = sample("asff-external-access-s3-aws-docs.json")


def _active(record: dict[str, Any], kind: str) -> dict[str, Any]:
    """AWS's unused sample is ARCHIVED; an active copy reaches the deeper checks."""
    active = copy.deepcopy(record)
    active["RecordState"] = "ACTIVE"
    active["ProductFields"]["findingType"] = kind
    return active


BASES = [
    UNUSED,
    _active(UNUSED, "UnusedPermission"),
    _active(UNUSED, "UnusedIAMRole"),
    _active(UNUSED, "UnusedIAMUserAccessKey"),
    EXTERNAL,
]


@budget(400)
@given(st.sampled_from(BASES).flatmap(records))
def test_asff_record_is_a_finding_a_skip_or_quarantined(record: Any) -> None:
    ran("asff", check_record(RawRecord("security_hub", record, "fuzz"), from_asff))


@budget(150)
@given(st.sampled_from(BASES[1:4]), principal_arns)
def test_asff_principal_arn_decides_the_account(base: dict[str, Any], arn: str) -> None:
    record = copy.deepcopy(base)
    record["Resources"][0]["Id"] = arn
    outcome = check_record(RawRecord("security_hub", record, "fuzz"), from_asff)
    ran("asff principal ARN", outcome)
    well_formed = arn.split(":")[4].isascii() and not arn.endswith(("\n", "\r\n"))
    if outcome == "finding":
        assert from_asff(record).principal_arn == arn and well_formed  # type: ignore[union-attr]
