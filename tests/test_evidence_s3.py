"""The S3 evidence store on moto: encryption, Object Lock, checksummed uploads, verify, prune."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from reporter.cli import main
from reporter.evidence import EvidenceError, LocalStore, RunFolder, RunStatus
from reporter.evidence.s3 import S3Store
from reporter.sandbox import Sandbox, SandboxSpec

BUCKET = "acme-access-evidence"
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def make_run(
    root: Path, run_id: str = "20261128T070000Z-abc123", started: datetime | None = None
) -> Path:
    with RunFolder(root, run_id) as folder:
        folder.write("data/findings.json", b'{"findings": []}\n')
        folder.write("summary/summary.pdf", b"%PDF-1.7 pretend")
        folder.write("outbox/alice.eml", b"Subject: hi\r\n\r\nbody\r\n")
        started = started or datetime.now(UTC)
        return folder.commit({"run_id": run_id, "started_at": started.isoformat()})


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
        yield client


def locked_store(client: Any, mode: str = "COMPLIANCE") -> S3Store:
    return S3Store(
        client,
        BUCKET,
        "evidence/",
        sse="aws:kms",
        kms_key_id=KMS_KEY,
        lock_mode=mode,
        lock_days=30,
    )


def test_a_published_run_is_encrypted_locked_checksummed_and_manifest_last(
    s3: Any, tmp_path: Path
) -> None:
    run_dir = make_run(tmp_path)
    store = locked_store(s3)
    order: list[str] = []
    s3.meta.events.register(
        "before-parameter-build.s3.PutObject", lambda params, **kw: order.append(params["Key"])
    )
    now = datetime.now(UTC).replace(microsecond=0)
    store.publish(run_dir, now=now)

    prefix = f"evidence/{run_dir.name}/"
    assert order[-1] == prefix + "manifest.json"
    assert sorted(order) == sorted(
        prefix + p
        for p in ("data/findings.json", "summary/summary.pdf", "outbox/alice.eml", "manifest.json")
    )
    for key in order:
        head = s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
        local = (run_dir / key[len(prefix) :]).read_bytes()
        assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(local).digest()).decode()
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"] == KMS_KEY
        assert head["ObjectLockMode"] == "COMPLIANCE"
        assert head["ObjectLockRetainUntilDate"].astimezone(UTC) == now + timedelta(days=30)

    (run,) = store.runs()
    assert run.run_id == run_dir.name and run.status is RunStatus.COMPLETE
    assert store.verify(run_dir.name).ok
    # The same run exports to the same bytes from either store.
    assert store.export(run_dir.name) == LocalStore(tmp_path).export(run_dir.name)


def test_verify_reads_back_and_finds_an_overwritten_object(s3: Any, tmp_path: Path) -> None:
    # Object Lock keeps every version, but a newer version can still be put on top: verify reads
    # what S3 serves now and compares it with the manifest.
    run_dir = make_run(tmp_path)
    store = locked_store(s3)
    store.publish(run_dir)
    s3.put_object(Bucket=BUCKET, Key=f"evidence/{run_dir.name}/summary/summary.pdf", Body=b"fake")
    s3.put_object(Bucket=BUCKET, Key=f"evidence/{run_dir.name}/data/extra.csv", Body=b"x")
    result = store.verify(run_dir.name)
    assert (result.changed, result.missing, result.extra) == (
        ("summary/summary.pdf",),
        (),
        ("data/extra.csv",),
    )
    with pytest.raises(EvidenceError, match="fails verification"):
        store.export(run_dir.name)


def test_an_upload_whose_checksum_is_not_confirmed_fails(s3: Any, tmp_path: Path) -> None:
    run_dir = make_run(tmp_path)

    def corrupt(parsed: dict[str, Any], **kwargs: Any) -> None:
        parsed["ChecksumSHA256"] = base64.b64encode(b"\0" * 32).decode()

    s3.meta.events.register("after-call.s3.PutObject", corrupt)
    with pytest.raises(EvidenceError, match="was not confirmed"):
        S3Store(s3, BUCKET, "evidence/").publish(run_dir)
    # Nothing after the first file was sent, so the run is not complete in S3.
    (run,) = S3Store(s3, BUCKET, "evidence/").runs()
    assert run.status is RunStatus.INCOMPLETE


def test_an_interrupted_upload_lists_as_incomplete_and_a_retry_completes_it(
    s3: Any, tmp_path: Path
) -> None:
    run_dir = make_run(tmp_path)
    store = S3Store(s3, BUCKET, "evidence/")

    def fail_on_manifest(params: dict[str, Any], **kwargs: Any) -> None:
        if params["Key"].endswith("manifest.json"):
            raise ConnectionError("network gone")

    s3.meta.events.register(
        "before-parameter-build.s3.PutObject", fail_on_manifest, unique_id="cut"
    )
    with pytest.raises(ConnectionError):
        store.publish(run_dir)
    assert [r.status for r in store.runs()] == [RunStatus.INCOMPLETE]
    s3.meta.events.unregister("before-parameter-build.s3.PutObject", unique_id="cut")
    store.publish(run_dir)
    assert [r.status for r in store.runs()] == [RunStatus.COMPLETE]
    assert store.verify(run_dir.name).ok
    with pytest.raises(EvidenceError, match="already complete"):
        store.publish(run_dir)


def test_a_tampered_local_run_is_never_uploaded(s3: Any, tmp_path: Path) -> None:
    run_dir = make_run(tmp_path)
    (run_dir / "data/findings.json").write_text("{}")
    with pytest.raises(EvidenceError, match=r"changed: data/findings\.json"):
        S3Store(s3, BUCKET, "evidence/").publish(run_dir)
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


@pytest.mark.parametrize("mode", ["COMPLIANCE", "GOVERNANCE"])
def test_prune_never_touches_object_locked_runs(s3: Any, tmp_path: Path, mode: str) -> None:
    run_dir = make_run(tmp_path)
    store = locked_store(s3, mode)
    store.publish(run_dir)
    before = s3.list_object_versions(Bucket=BUCKET)["Versions"]

    report = store.prune(datetime.now(UTC) + timedelta(days=10), retention_days=1)
    assert report.removed == ()
    assert report.kept == ((run_dir.name, f"Object Lock: 4 object(s) locked (until {_until(30)})"),)
    after = s3.list_object_versions(Bucket=BUCKET)
    assert after["Versions"] == before and "DeleteMarkers" not in after
    assert store.verify(run_dir.name).ok


def _until(days: int) -> str:
    return f"{datetime.now(UTC) + timedelta(days=days):%Y-%m-%d}"


def test_prune_removes_unlocked_runs_past_retention_and_keeps_a_running_one(
    s3: Any, tmp_path: Path
) -> None:
    store = S3Store(s3, BUCKET, "plain/")
    old = make_run(tmp_path, "20200101T000000Z-aaaaaa", datetime(2020, 1, 1, tzinfo=UTC))
    store.publish(old)
    s3.put_object(Bucket=BUCKET, Key="plain/20261128T080000Z-bbbbbb/data/a.json", Body=b"{}")
    locked = locked_store(s3)  # another prefix in the same bucket, left alone
    locked.publish(make_run(tmp_path, "20200101T000000Z-cccccc"))

    report = store.prune(datetime.now(UTC) + timedelta(hours=12), retention_days=2)
    assert report.removed == (("20200101T000000Z-aaaaaa", "older than 2 days"),)
    assert report.kept == ()
    left = {v["Key"] for v in s3.list_object_versions(Bucket=BUCKET)["Versions"]}
    assert not any(k.startswith("plain/20200101T000000Z-aaaaaa/") for k in left)
    # Written less than a day before `now`: may still be uploading.
    assert "plain/20261128T080000Z-bbbbbb/data/a.json" in left
    assert len([k for k in left if k.startswith("evidence/")]) == 4


def test_a_real_run_is_uploaded_and_verified_through_the_configured_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Sandbox(SandboxSpec(member_accounts=3)) as sandbox:
        boto3.client("s3", region_name="us-east-1").create_bucket(
            Bucket=BUCKET, ObjectLockEnabledForBucket=True
        )
        config = tmp_path / "reporter.yaml"
        config.write_text(
            "organization:\n"
            f"  home_region: {sandbox.home_region}\n"
            f"  delegated_admin_role_arn: {sandbox.delegated_admin_role_arn}\n"
            f"reports:\n  output_dir: {tmp_path / 'out'}\n"
            f"state:\n  database_url: sqlite:///{tmp_path}/state.db\n"
            "evidence:\n"
            "  store: s3\n"
            "  s3:\n"
            f"    bucket: {BUCKET}\n"
            "    object_lock_mode: GOVERNANCE\n"
            "    object_lock_days: 7\n"
        )
        assert main(["run", "-c", str(config), "--no-send"]) == 0
        capsys.readouterr()
        assert main(["evidence", "list", "-c", str(config)]) == 0
        listing = capsys.readouterr().out
        (run_id,) = [p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")]
        assert listing.startswith(f"{run_id}  complete")
        assert main(["evidence", "verify", run_id, "-c", str(config)]) == 0
        assert capsys.readouterr().out.strip() == f"{run_id}: verified"
        target = tmp_path / "from-s3.zip"
        assert main(["evidence", "export", run_id, "-c", str(config), "-o", str(target)]) == 0
        head = boto3.client("s3", region_name="us-east-1").head_object(
            Bucket=BUCKET, Key=f"unused-access-reporter/{run_id}/manifest.json"
        )
        assert head["ObjectLockMode"] == "GOVERNANCE" and head["ServerSideEncryption"] == "AES256"
    with zipfile.ZipFile(target) as archive:
        assert archive.namelist()[0] == "manifest.json"
        assert (
            archive.read("manifest.json")
            == (tmp_path / "out" / run_id / "manifest.json").read_bytes()
        )
