"""Where boto3 sessions come from: the base credentials, and roles assumed from them.

Every AWS call of the product goes through clients made here, so a test or the sandbox can hand
in its own base session and a `configure` hook that is applied to every session created.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config

SessionHook = Callable[[boto3.Session], None]

# Refresh assumed-role credentials this long before they expire, so a long run never uses
# credentials that die mid-call.
_REFRESH_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class AwsOptions:
    """The knobs of every client: endpoint, retry behaviour, Region, session name."""

    region: str = "us-east-1"
    endpoint_url: str | None = None
    retry_mode: str = "adaptive"
    max_attempts: int = 10
    session_name: str = "unused-access-reporter"
    external_id: str | None = None


class SessionFactory:
    """Hands out boto3 sessions and clients; caches assumed-role credentials until near expiry."""

    def __init__(
        self,
        base: boto3.Session,
        options: AwsOptions,
        configure: SessionHook | None = None,
    ) -> None:
        self._base = base
        self._options = options
        self._configure = configure
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[boto3.Session, datetime]] = {}
        if configure is not None:
            configure(base)

    def client(self, service: str, session: boto3.Session | None = None, region: str = "") -> Any:
        """A client with our retry configuration, on `session` or the base session."""
        config = Config(
            retries={"mode": self._options.retry_mode, "max_attempts": self._options.max_attempts},
            user_agent_extra="unused-access-reporter",
        )
        return (session or self._base).client(
            service,
            region_name=region or self._options.region,
            endpoint_url=self._options.endpoint_url,
            config=config,
        )

    def assume(self, role_arn: str) -> boto3.Session:
        """A session acting as `role_arn`; raises botocore's ClientError when denied."""
        now = datetime.now(UTC)
        with self._lock:
            cached = self._cache.get(role_arn)
            if cached and cached[1] - _REFRESH_MARGIN > now:
                return cached[0]
        kwargs: dict[str, Any] = {
            "RoleArn": role_arn,
            "RoleSessionName": self._options.session_name,
        }
        if self._options.external_id:
            kwargs["ExternalId"] = self._options.external_id
        creds = self.client("sts").assume_role(**kwargs)["Credentials"]
        session = boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=self._options.region,
        )
        if self._configure is not None:
            self._configure(session)
        expiry = creds["Expiration"]
        if expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=UTC)
        with self._lock:
            self._cache[role_arn] = (session, expiry)
        return session
