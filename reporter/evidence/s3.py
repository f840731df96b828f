"""Evidence packs in S3: one prefix per run, encrypted, optionally under Object Lock.

A run is written to the local folder first (atomically, by `RunFolder`), verified there, and then
uploaded file by file with its SHA-256 checksum, `manifest.json` last — so in S3 too, a prefix
without a manifest is an incomplete run. Pruning deletes object versions, and only after checking
each one's Object Lock retention and legal hold: a locked run is reported and left whole.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from .pack import (
    MANIFEST,
    EvidenceError,
    RunNotFound,
    check_run_id,
    is_run_id,
    parse_manifest,
    read_inside,
    verify,
)
from .store import EvidenceStore, RunInfo, RunStatus, run_time

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}


def _checksum(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


class S3Store(EvidenceStore):
    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        sse: str = "AES256",
        kms_key_id: str | None = None,
        lock_mode: str | None = None,
        lock_days: int = 0,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.sse = sse
        self.kms_key_id = kms_key_id
        self.lock_mode = lock_mode
        self.lock_days = lock_days
        self.location = f"s3://{bucket}/{prefix}"

    def _key(self, run_id: str, relpath: str = "") -> str:
        return f"{self.prefix}{run_id}/{relpath}"

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            yield from page.get("Contents", [])

    def runs(self) -> list[RunInfo]:
        found = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix, Delimiter="/"
        )
        for page in pages:
            for common in page.get("CommonPrefixes", []):
                run_id = common["Prefix"][len(self.prefix) : -1]
                if is_run_id(run_id):
                    found.append(self._info(run_id))
        return sorted(found, key=lambda r: r.run_id)

    def _last_modified(self, run_id: str) -> datetime:
        times = [o["LastModified"] for o in self._objects(self._key(run_id))]
        return max(times, default=datetime.now(UTC)).astimezone(UTC)

    def _info(self, run_id: str) -> RunInfo:
        try:
            raw = self._read(run_id, MANIFEST)
        except FileNotFoundError:
            return RunInfo(run_id, RunStatus.INCOMPLETE, self._last_modified(run_id))
        try:
            manifest = parse_manifest(raw)
        except ValueError as exc:
            return RunInfo(run_id, RunStatus.DAMAGED, self._last_modified(run_id), problem=str(exc))
        when = run_time(manifest, self._last_modified(run_id))
        return RunInfo(run_id, RunStatus.COMPLETE, when, manifest)

    def _read(self, run_id: str, relpath: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(run_id, relpath))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
                raise FileNotFoundError(relpath) from None
            raise
        data: bytes = response["Body"].read()
        return data

    def _present(self, run_id: str) -> list[str]:
        base = self._key(run_id)
        present = [o["Key"][len(base) :] for o in self._objects(base)]
        if not present:
            raise RunNotFound(f"no run {run_id!r} in {self.location}")
        return present

    def _put(self, key: str, data: bytes, now: datetime) -> None:
        checksum = _checksum(data)
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": data,
            "ChecksumAlgorithm": "SHA256",
            "ChecksumSHA256": checksum,
            "ServerSideEncryption": self.sse,
        }
        if self.kms_key_id:
            kwargs["SSEKMSKeyId"] = self.kms_key_id
        if self.lock_mode:
            kwargs["ObjectLockMode"] = self.lock_mode
            kwargs["ObjectLockRetainUntilDate"] = now + timedelta(days=self.lock_days)
        response = self.client.put_object(**kwargs)
        # S3 rejects a body that does not match ChecksumSHA256; we still compare what it says it
        # stored, so a proxy or emulator that ignores the header cannot pass silently.
        if response.get("ChecksumSHA256") != checksum:
            raise EvidenceError(
                f"upload of s3://{self.bucket}/{key} was not confirmed: S3 reported checksum "
                f"{response.get('ChecksumSHA256')!r}, expected {checksum!r}"
            )

    def publish(self, run_dir: Path, now: datetime | None = None) -> str:
        run_id = check_run_id(run_dir.name)
        result = verify(run_dir)
        if not result.ok:
            raise EvidenceError(
                f"run {run_id} in {run_dir} fails verification; not uploaded: "
                + "; ".join(result.lines())
            )
        try:
            self._read(run_id, MANIFEST)
        except FileNotFoundError:
            pass
        else:
            raise EvidenceError(f"run {run_id} is already complete in {self.location}")
        now = now or datetime.now(UTC)
        manifest = parse_manifest(read_inside(run_dir, MANIFEST))
        for relpath in sorted(manifest.files):
            self._put(self._key(run_id, relpath), read_inside(run_dir, relpath), now)
        self._put(self._key(run_id, MANIFEST), manifest.raw, now)
        return self._key(run_id)

    def _versions(self, run_id: str) -> list[dict[str, Any]]:
        versions: list[dict[str, Any]] = []
        for page in self.client.get_paginator("list_object_versions").paginate(
            Bucket=self.bucket, Prefix=self._key(run_id)
        ):
            versions.extend(page.get("Versions", []))
            versions.extend(page.get("DeleteMarkers", []))
        return versions

    def locked_until(self, key: str, version_id: str, now: datetime) -> datetime | None:
        """When an object version's lock ends (a legal hold has no end), or None if unlocked."""
        head = self.client.head_object(Bucket=self.bucket, Key=key, VersionId=version_id)
        if head.get("ObjectLockLegalHoldStatus") == "ON":
            return datetime.max.replace(tzinfo=UTC)
        until = head.get("ObjectLockRetainUntilDate")
        return until.astimezone(UTC) if until is not None and until > now else None

    def _remove(self, run: RunInfo, now: datetime) -> str | None:
        versions = self._versions(run.run_id)
        locks = [
            until
            for v in versions
            if "Size" in v  # delete markers hold no data and carry no lock
            and (until := self.locked_until(v["Key"], v["VersionId"], now)) is not None
        ]
        if locks:
            latest = max(locks)
            when = "a legal hold" if latest.year == datetime.max.year else f"{latest:%Y-%m-%d}"
            return f"Object Lock: {len(locks)} object(s) locked (until {when})"
        manifest_key = self._key(run.run_id, MANIFEST)
        # Manifest first, as on disk: an interrupted prune leaves an incomplete run.
        for v in sorted(versions, key=lambda v: (v["Key"] != manifest_key, v["Key"])):
            self.client.delete_object(Bucket=self.bucket, Key=v["Key"], VersionId=v["VersionId"])
        return None
