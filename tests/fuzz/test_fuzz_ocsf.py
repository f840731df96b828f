"""OCSF records of the new Security Hub (`from_ocsf`). AWS publishes no unused-access OCSF
sample, so the base is the hand-built record of tests/test_ocsf.py, with details, mutated."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from reporter.models import RawRecord
from reporter.normalise import from_ocsf, parse_record
from tests.fuzz.strategies import budget, check_record, ran, records, timestamps
from tests.test_ocsf import USER, ocsf

DETAILS = [
    {
        "unusedIamUserAccessKeyDetails": {
            "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
            "lastAccessed": "2024-11-02T10:00:00Z",
        }
    }
]
BASES = [
    ocsf(),
    ocsf("UnusedPermission"),
    ocsf(
        "UnusedIAMUserAccessKey",
        USER,
        unmapped={"findingId": "0fa3f5a1", "findingDetails": DETAILS},
        status_id=None,
        status="In Progress",
    ),
    ocsf(
        "Software and Configuration Checks/AWS Security Best Practices/Unused IAM User Password",
        USER,
        severity=None,
    ),
    ocsf("External Access Granted"),
]


@budget(500)
@given(st.sampled_from(BASES).flatmap(records))
def test_ocsf_record_is_a_finding_a_skip_or_quarantined(record: Any) -> None:
    ran("ocsf", check_record(RawRecord("security_hub_v2", record, "fuzz"), from_ocsf))


@budget(150)
@given(
    st.sampled_from(BASES[:3]),
    st.sampled_from(["time", "created_time", "modified_time", "created_time_dt", "status_id"]),
    st.one_of(timestamps, st.integers()),
)
def test_ocsf_times_and_status(base: dict[str, Any], field: str, value: Any) -> None:
    record = dict(base)
    info = dict(record["finding_info"])
    if field in ("time", "status_id"):
        record[field] = value
    else:
        info.pop(field.removesuffix("_dt"), None)
        info[field] = value
    record["finding_info"] = info
    ran("ocsf times", check_record(RawRecord("security_hub_v2", record, "fuzz"), from_ocsf))


@budget(100)
@given(st.sampled_from(BASES).flatmap(records))
def test_ocsf_in_an_asff_export_is_told_apart(record: Any) -> None:
    """`get-findings-v2` exports are `{"Findings": [...]}` too: the security_hub source hands
    an OCSF record to whichever parser its shape fits, and the property still holds."""
    raw = RawRecord("security_hub", record, "fuzz")
    outcome = check_record(raw, lambda payload: parse_record(raw))
    ran("ocsf as security_hub", outcome)
