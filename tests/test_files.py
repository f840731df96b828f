"""`run --from-file`: reports from exports, with no AWS access and no config file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reporter.cli import main

from .conftest import SAMPLES


def run_files(tmp_path: Path, files: list[Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no config/reporter.yaml here: none is needed
    args = ["run", "--no-send", "--out", str(tmp_path / "out")]
    for f in files:
        args += ["--from-file", str(f)]
    assert main(args) == 0
    (run_dir,) = (tmp_path / "out").iterdir()
    return run_dir


def test_every_published_sample_is_read_without_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = sorted(SAMPLES.iterdir())
    run_dir = run_files(tmp_path, files, monkeypatch)
    findings = json.loads((run_dir / "data/findings.json").read_text())["findings"]
    assert sorted((f["type"], f["principal_arn"]) for f in findings) == [
        ("UnusedPermission", "arn:aws:iam::111122223333:role/FindingIntegTestFakeRole"),
        ("UnusedPermission", "arn:aws:iam::123456789012:role/demoIAMRole"),
        ("UnusedPermission", "arn:aws:iam::123456789012:user/demoIAMUser"),
    ]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["counts"]["skipped_reasons"] == {
        "analysis error in Access Analyzer (INTERNAL_ERROR)": 1,
        "archived in Security Hub": 1,  # AWS's unused-permission ASFF sample is ARCHIVED
        "not unused access (ExternalAccess)": 4,  # 2 listed, 1 get-finding-v2, 1 event
        "not unused access (Software and Configuration Checks/AWS Security Best Practices/"
        "External Access Granted)": 1,
    }
    quarantine = json.loads((run_dir / "data/quarantine.json").read_text())
    reasons = {Path(q["origin"]).name: q["reason"] for q in quarantine}
    assert reasons["iam-get-access-key-last-used-awscli.json"].startswith("not a finding export")
    assert reasons["eventbridge-securityhub-custom-action-TEMPLATE-aws-docs.txt"].startswith(
        "not valid JSON"
    )
    assert manifest["counts"]["quarantined"] == len(quarantine) == 5
    assert manifest["caller_identity"] == {"Account": None, "Arn": None, "UserId": None}


def test_a_missing_file_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--no-send", "--from-file", "nope.json"]) == 2
    assert "nope.json" in capsys.readouterr().err


def test_unusable_state_database_is_a_message_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("")
    config = tmp_path / "c.yaml"
    config.write_text(f"state:\n  database_url: sqlite:///{tmp_path}/file/sub/db.sqlite\n")
    sample_file = SAMPLES / "aa-list-findings-v2-unused-permission-aws-blog.json"
    code = main(["run", "-c", str(config), "--no-send", "--from-file", str(sample_file)])
    err = capsys.readouterr().err
    assert code == 2 and "cannot open the state database" in err and "Traceback" not in err
    assert not list((tmp_path / "reports").glob("*/manifest.json"))  # no run looks complete


def test_secrets_in_an_unrecognised_file_stay_out_of_the_evidence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"Credentials": {"SecretAccessKey": "s3cr3t-value"}}))
    listed = SAMPLES / "aa-list-findings-v2-unused-permission-aws-blog.json"
    run_dir = run_files(tmp_path, [listed, creds], monkeypatch)
    for path in run_dir.rglob("*.json"):
        assert "s3cr3t-value" not in path.read_text(), path
