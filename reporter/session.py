"""Where boto3 sessions come from: the base credentials, and roles assumed from them.

Every AWS call of the product goes through clients made here, so a test or the sandbox can hand
in its own base session and a `configure` hook that is applied to every session created, and
every client is paced (`ratelimit.Limiter`) and counted (`telemetry.Telemetry`).

Assumed-role sessions carry botocore `RefreshableCredentials`: a session cached for a role
renews its credentials by itself before they expire (botocore refreshes 15 minutes ahead and
blocks all callers at 10), so a long run never signs with dead credentials and a client made
early stays good. One lock per role ARN makes concurrent threads assume each role once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session
import botocore.utils
from botocore.config import Config
from botocore.credentials import RefreshableCredentials

from .ratelimit import Limiter
from .telemetry import Telemetry

SessionHook = Callable[[boto3.Session], None]


def parse_timestamp(value: Any) -> datetime:
    """botocore's timestamp parser, without dateutil for the ISO 8601 and epoch forms AWS sends.

    botocore parses every timestamp with dateutil, which costs ~0.7 ms each - nearly half of
    a GetFindingV2 call's CPU time with a dozen timestamps in its details. The result is
    the same timezone-aware datetime; anything unusual still goes to botocore's parser.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed
    parsed_by_botocore: datetime = botocore.utils.parse_timestamp(value)
    return parsed_by_botocore


def _fast_timestamps(core: botocore.session.Session) -> None:
    core.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=parse_timestamp
    )


def _service_id(session: boto3.Session, service: str) -> str:
    # The limiter's keys use botocore's hyphenated service id, as in event names; the client's
    # name usually is the same (`securityhub`, `accessanalyzer`) but need not be.
    model = session._session.get_service_model(service)
    return str(model.service_id.hyphenize())


@dataclass(frozen=True)
class AwsOptions:
    """The knobs of every client: endpoint, retry behaviour, Region, session name."""

    region: str = "us-east-1"
    endpoint_url: str | None = None
    retry_mode: str = "adaptive"
    max_attempts: int = 10
    session_name: str = "unused-access-reporter"
    external_id: str | None = None
    # Pool size of a client's HTTP connections: the collect stage runs up to this many threads.
    max_pool_connections: int = 32


class SessionFactory:
    """Hands out boto3 sessions and clients; assumed-role sessions are cached per role."""

    def __init__(
        self,
        base: boto3.Session,
        options: AwsOptions,
        configure: SessionHook | None = None,
        *,
        limiter: Limiter | None = None,
        telemetry: Telemetry | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._base = base
        self._options = options
        self._configure = configure
        self._now = now
        self.limiter = limiter if limiter is not None else Limiter()
        self.telemetry = telemetry if telemetry is not None else Telemetry()
        self._lock = threading.Lock()
        # boto3 sessions are not thread-safe; creating clients from one is serialised here.
        self._client_lock = threading.Lock()
        self._role_locks: dict[str, threading.Lock] = {}
        self._cache: dict[str, boto3.Session] = {}
        self._sts: Any = None
        _fast_timestamps(base._session)
        if configure is not None:
            configure(base)

    @property
    def options(self) -> AwsOptions:
        return self._options

    def retry_mode(self, service: str) -> str:
        """The botocore retry mode of `service`'s clients: the configured one, except that a
        service the limiter paces gets `standard` instead of `adaptive`.

        Adaptive mode adds a client-side rate limiter that is off until the first throttle and
        then caps the whole client (every operation) at 0.7 x the rate it measured, lower
        after each further throttle, and climbs back along a cubic curve. Where we already
        pace at the documented rates, that second limiter only costs time: a handful of
        throttles held the Access Analyzer client at ~37 requests/s instead of ~190 for about
        10 s each (benchmarks/collect.py, x10 time scale). Standard mode keeps the same
        attempts and exponential backoff with jitter for the refused call alone, and our own
        bucket is emptied after a throttle (`Limiter.on_response`). Services we do not pace
        (STS, IAM, Account, Access Analyzer without `collection.access_analyzer_rate`) keep
        adaptive mode, whose rate discovery is all they have.
        """
        mode = self._options.retry_mode
        if mode == "adaptive" and self.limiter.paces(_service_id(self._base, service)):
            return "standard"
        return mode

    def client(self, service: str, session: boto3.Session | None = None, region: str = "") -> Any:
        """A paced, counted client with our retry configuration, on `session` or the base."""
        config = Config(
            # `total_max_attempts` counts the first attempt, as `aws.max_attempts` is documented;
            # botocore's `max_attempts` would count retries only (10 -> 11 attempts).
            retries={
                "mode": self.retry_mode(service),
                "total_max_attempts": self._options.max_attempts,
            },
            user_agent_extra="unused-access-reporter",
            max_pool_connections=self._options.max_pool_connections,
        )
        with self._client_lock:
            client = (session or self._base).client(
                service,
                region_name=region or self._options.region,
                endpoint_url=self._options.endpoint_url,
                config=config,
            )
        events = client.meta.events
        # `before-send.*.*` is more specific than any per-service handler (the sandbox's
        # stand-ins, moto), so every attempt waits for its token before anything answers it.
        events.register_first("before-send.*.*", self.limiter.on_send, unique_id="reporter-pace")
        events.register("needs-retry", self.limiter.on_response, unique_id="reporter-pace-resync")
        self.telemetry.register(events)
        return client

    def partition(self) -> str:
        """`aws`, `aws-cn`, `aws-us-gov`, … for the configured Region."""
        return str(self._base.get_partition_for_region(self._options.region))

    def member_role_arn(self, account_id: str, role_name: str) -> str:
        return f"arn:{self.partition()}:iam::{account_id}:role/{role_name}"

    def assume(self, role_arn: str) -> boto3.Session:
        """A session acting as `role_arn`; raises botocore's ClientError when denied."""
        with self._lock:
            lock = self._role_locks.setdefault(role_arn, threading.Lock())
        with lock:
            cached = self._cache.get(role_arn)
            if cached is not None:
                return cached
            first = self._fetch(role_arn)  # raises when denied: nothing is cached then
            credentials = RefreshableCredentials(
                access_key=first["access_key"],
                secret_key=first["secret_key"],
                token=first["token"],
                expiry_time=datetime.fromisoformat(first["expiry_time"]),
                refresh_using=lambda: self._fetch(role_arn),
                method="sts-assume-role",
                time_fetcher=self._now,
            )
            core = botocore.session.Session()
            core._credentials = credentials  # botocore's documented-by-use hook for this
            _fast_timestamps(core)
            session = boto3.Session(botocore_session=core, region_name=self._options.region)
            if self._configure is not None:
                self._configure(session)
            self._cache[role_arn] = session
            return session

    def _fetch(self, role_arn: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "RoleArn": role_arn,
            "RoleSessionName": self._options.session_name,
        }
        if self._options.external_id:
            kwargs["ExternalId"] = self._options.external_id
        with self._lock:
            if self._sts is None:
                self._sts = self.client("sts")
            sts = self._sts
        creds = sts.assume_role(**kwargs)["Credentials"]
        expiry = creds["Expiration"]
        if expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=UTC)
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            # botocore parses the refreshed expiry itself, from a string
            "expiry_time": expiry.isoformat(),
        }
