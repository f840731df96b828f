"""Faults on the AWS side: throttling storms, the analyzer missing, garbled records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reporter.sandbox import Sandbox

from .conftest import execute, expected_keys, keys, manifest, settings_for


def test_a_throttling_storm_on_every_api_is_ridden_out(sandbox: Sandbox, tmp_path: Path) -> None:
    # Standard retries: adaptive mode would also slow each throttled client for seconds.
    settings = settings_for(sandbox, tmp_path, aws={"retry_mode": "standard"})
    before = dict(sandbox.faults.throttled)
    sandbox.faults.storm(1)
    try:
        result = execute(sandbox, settings)
    finally:
        sandbox.faults.storm(0)
    assert result.exit_code == 0
    assert keys(result.run_dir) == expected_keys(sandbox)
    seen = {k: v - before.get(k, 0) for k, v in sandbox.faults.throttled.items()}
    seen = {k: v for k, v in seen.items() if v}
    telemetry = manifest(result.run_dir)["telemetry"]
    # Every operation the run made was throttled once, and every throttle was retried.
    assert len(seen) >= 8 and set(seen.values()) == {1}
    assert {"securityhub.GetFindings", "accessanalyzer.ListFindingsV2"} <= set(seen)
    assert telemetry["throttles"].items() <= seen.items()
    assert set(telemetry["throttles"]) >= {
        "securityhub.GetFindings",
        "accessanalyzer.ListFindingsV2",
    }
    assert all(telemetry["retries"][op] >= n for op, n in telemetry["throttles"].items())
    assert manifest(result.run_dir)["source_failures"] == {}


def test_the_analyzer_missing_is_a_source_failure_and_security_hub_still_reports(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    gone = sandbox.analyzer_arn.rsplit("/", 1)[0] + "/deleted-analyzer"
    settings = settings_for(
        sandbox, tmp_path, sources={"access_analyzer": {"enabled": True, "analyzer_arn": gone}}
    )
    result = execute(sandbox, settings)
    failures = manifest(result.run_dir)["source_failures"]
    assert list(failures) == ["access_analyzer"]
    assert (
        "ResourceNotFound" in failures["access_analyzer"]
        and "deleted-analyzer" in failures["access_analyzer"]
    )
    # Security Hub relays the analyzer's findings: nothing is lost, and coverage says which
    # source read each account.
    assert keys(result.run_dir) == expected_keys(sandbox)
    in_scope = [c for c in result.coverage if c.in_scope]
    assert all(c.covered and c.sources == ("security_hub",) for c in in_scope)
    assert result.exit_code == 0


def test_garbage_records_are_quarantined_and_counted_and_the_run_goes_on(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    garbled: list[str] = []

    def garble(parsed: dict[str, Any], **_: Any) -> None:
        records = parsed.get("Findings") or []
        for record, mangle in zip(records, (_no_resources, _wrong_types), strict=False):
            garbled.append(record["Id"])
            mangle(record)

    result = execute(
        sandbox,
        settings_for(sandbox, tmp_path),
        configure=lambda s: s.events.register("after-call.securityhub.GetFindings", garble),
    )
    assert len(garbled) == 2 and result.quarantined == 2
    quarantine = json.loads((Path(result.run_dir) / "data/quarantine.json").read_text())
    assert sorted(q["record"]["Id"] for q in quarantine) == sorted(garbled)
    assert all(q["source"] == "security_hub" and q["reason"] for q in quarantine)
    assert manifest(result.run_dir)["counts"]["quarantined"] == 2
    # The analyzer reports the same findings: none is lost to the garbled copies.
    assert keys(result.run_dir) == expected_keys(sandbox)
    assert result.exit_code == 0


def _no_resources(record: dict[str, Any]) -> None:
    record.pop("Resources", None)


def _wrong_types(record: dict[str, Any]) -> None:
    record["Resources"] = [{"Id": 42, "Type": ["AwsIamRole"]}]
    record["AwsAccountId"] = {"not": "an id"}
