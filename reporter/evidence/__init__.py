"""Audit evidence: the pack each run leaves (`pack`), where packs are kept (`store`, `s3`),
and the zip an auditor takes away (`export`).

    with RunFolder(root, run_id) as folder:   # written into `.<run-id>.partial/`
        folder.write("data/x.json", data)
        folder.commit(manifest)               # manifest.json last, then one rename
    open_store(settings).publish(folder.final)  # no-op locally; uploads to S3 when configured
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .export import build_zip, verify_zip
from .pack import (
    MANIFEST,
    SCHEMA_VERSION,
    EvidenceError,
    FileRecord,
    Manifest,
    RunFolder,
    RunNotFound,
    Verification,
    is_run_id,
    parse_manifest,
    verify,
)
from .store import EvidenceStore, LocalStore, PruneReport, RunInfo, RunStatus, prune_plan

if TYPE_CHECKING:
    from reporter.config import Settings

__all__ = [
    "MANIFEST",
    "SCHEMA_VERSION",
    "EvidenceError",
    "EvidenceStore",
    "FileRecord",
    "LocalStore",
    "Manifest",
    "PruneReport",
    "RunFolder",
    "RunInfo",
    "RunNotFound",
    "RunStatus",
    "Verification",
    "build_zip",
    "is_run_id",
    "open_store",
    "parse_manifest",
    "prune_plan",
    "publish_run",
    "verify",
    "verify_zip",
]


def open_store(
    settings: Settings, local_root: Path | None = None, s3_client: Any = None
) -> EvidenceStore:
    """The store `evidence.store` names. `local_root` defaults to `reports.output_dir`; an S3
    client is made from the default credentials unless one is handed in."""
    evidence = settings.evidence
    if evidence.store.value == "local":
        return LocalStore(local_root or Path(settings.reports.output_dir))
    from .s3 import S3Store

    s3 = evidence.s3
    if s3_client is None:
        import boto3

        s3_client = boto3.client(
            "s3",
            region_name=s3.region or settings.organization.home_region,
            endpoint_url=settings.aws.endpoint_url,
        )
    assert s3.bucket is not None  # the config refuses store: s3 without a bucket
    return S3Store(
        s3_client,
        s3.bucket,
        s3.prefix,
        sse=s3.sse.value,
        kms_key_id=s3.kms_key_id,
        lock_mode=s3.object_lock_mode.value if s3.object_lock_mode else None,
        lock_days=s3.object_lock_days,
    )


def publish_run(settings: Settings, run_dir: Path, sessions: Any = None) -> str:
    """Put a finished run into the configured store (nothing to do for the local one).

    `sessions` is the run's `SessionFactory`, so the upload uses the same endpoint and retry
    settings as every other AWS call; without one the default credentials are used.
    """
    if settings.evidence.store.value == "local":
        return str(run_dir)
    from botocore.exceptions import BotoCoreError, ClientError

    region = settings.evidence.s3.region or ""
    client = sessions.client("s3", region=region) if sessions is not None else None
    store = open_store(settings, run_dir.parent, client)
    try:
        return store.publish(run_dir)
    except (ClientError, BotoCoreError, EvidenceError) as exc:
        raise EvidenceError(
            f"run {run_dir.name} is complete in {run_dir}, but storing it in {store.location} "
            f"failed: {exc}\n    hint: `access-reporter evidence upload {run_dir.name} -c CONFIG` "
            "retries once the cause is fixed"
        ) from exc
