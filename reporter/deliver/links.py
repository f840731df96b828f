"""Attachments too large to mail go to S3; the message carries presigned links instead."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..models import owner_slug
from .message import Attachment, AttachmentLink
from .transport import TemporaryFailure


class S3LinkStore:
    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str,
        expiry_seconds: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._client = client
        # botocore still presigns SigV2 URLs in us-east-1 unless told otherwise, and S3 refuses
        # SigV2 for buckets created since 2020: always sign links with SigV4.
        client.meta.events.register(
            "choose-signer.s3.GetObject", _sigv4, unique_id="unused-access-reporter-sigv4"
        )
        self._bucket = bucket
        self._prefix = prefix
        self._expiry = expiry_seconds
        self._clock = clock

    def key(self, run_id: str, recipient: str, filename: str) -> str:
        return f"{self._prefix}{run_id}/{owner_slug(recipient)}/{filename}"

    def publish(
        self, run_id: str, recipient: str, attachments: tuple[Attachment, ...]
    ) -> tuple[AttachmentLink, ...]:
        """Upload each attachment and presign a GET for it. A failed upload is temporary: the
        message is retried like any other send."""
        links = []
        try:
            for a in attachments:
                key = self.key(run_id, recipient, a.filename)
                self._client.put_object(
                    Bucket=self._bucket,
                    Key=key,
                    Body=a.data,
                    ContentType=f"{a.maintype}/{a.subtype}",
                    ContentDisposition=f'attachment; filename="{a.filename}"',
                    ChecksumSHA256=_b64_sha256(a),
                )
                url = self._client.generate_presigned_url(
                    "get_object",
                    Params={"Bucket": self._bucket, "Key": key},
                    ExpiresIn=self._expiry,
                )
                expires = self._clock() + timedelta(seconds=self._expiry)
                links.append(AttachmentLink(a.filename, url, len(a.data), a.sha256, expires))
        except (ClientError, BotoCoreError) as exc:
            raise TemporaryFailure(
                f"S3 upload of a large attachment to {self._bucket}: {exc}"
            ) from exc
        return tuple(links)


def _sigv4(**kwargs: Any) -> str:
    return "s3v4"


def _b64_sha256(a: Attachment) -> str:
    # S3 checks the body against this, so a truncated upload is refused, not linked.
    return base64.b64encode(bytes.fromhex(a.sha256)).decode()
