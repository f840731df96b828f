"""What AWS does to a client that the emulators do not: refusals, throttling, rate limits.

`Faults` is a botocore `before-send` handler registered per service ahead of the emulator
(moto's handler, the Access Analyzer stand-in), so the product's clients meet:

- AssumeRole denied (AccessDenied) for member roles in chosen accounts;
- throttling bursts: the first N attempts of an operation answered ThrottlingException;
- throttling storms: the first N attempts of every operation answered ThrottlingException;
- rate limits: a token bucket per operation at the documented rates (time-scaled for
  benchmarks), answering ThrottlingException when the client goes faster, as AWS does.

Answers use the service's wire protocol (JSON error body and header, or query XML), so
botocore parses and retries them exactly as it would AWS's.
"""

from __future__ import annotations

import io
import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qs

import botocore.session
from botocore.awsrequest import AWSPreparedRequest, AWSResponse

from reporter.ratelimit import Rate, TokenBucket

_QUERY_PROTOCOLS = frozenset({"query", "ec2"})
# Services the product calls; the handler is registered for each.
SERVICES = ("sts", "securityhub", "accessanalyzer", "organizations", "iam", "account")
_protocols: dict[str, str] = {}


class _Body(io.BytesIO):
    def stream(self, amt: int = 1024 * 64, decode_content: bool | None = None) -> Iterator[bytes]:
        while chunk := self.read(amt):
            yield chunk


def _protocol(service: str) -> str:
    if service not in _protocols:
        loader = botocore.session.get_session()
        _protocols[service] = str(
            loader.get_service_model(service).metadata.get("protocol", "json")
        )
    return _protocols[service]


def error_response(url: str, service: str, code: str, message: str, status: int) -> AWSResponse:
    request_id = str(uuid.uuid4())
    if _protocol(service) in _QUERY_PROTOCOLS:
        body = (
            "<ErrorResponse><Error><Type>Sender</Type>"
            f"<Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        headers = {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}
    else:
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = {
            "Content-Type": "application/x-amz-json-1.1",
            "x-amzn-ErrorType": code,
            "x-amzn-RequestId": request_id,
        }
    return AWSResponse(url, status, headers, _Body(body))


class Faults:
    """Shared by every session of one sandbox; thread-safe."""

    def __init__(
        self,
        deny_assume_role: frozenset[str] = frozenset(),
        throttle: Mapping[str, int] | None = None,
        rates: Mapping[str, Rate] | None = None,
    ) -> None:
        self._deny = set(deny_assume_role)
        self._throttle_left: Counter[str] = Counter(throttle or {})
        self._rates = dict(rates or {})
        self._buckets: dict[str, TokenBucket] = {}
        # A storm: each operation's first `_storm` attempts are throttled (`_stormed` counts them).
        self._storm = 0
        self._stormed: Counter[str] = Counter()
        self._lock = threading.Lock()
        # What the sandbox refused, for tests and the benchmark to compare with telemetry.
        self.throttled: Counter[str] = Counter()
        self.denied: Counter[str] = Counter()
        self.armed = False  # the sandbox arms it once the organization is built

    def deny_assume_role(self, *account_ids: str) -> None:
        """From now on, AssumeRole into these accounts answers AccessDenied."""
        with self._lock:
            self._deny.update(account_ids)

    def throttle(self, operation: str, attempts: int) -> None:
        """The next `attempts` attempts of `service.Operation` answer ThrottlingException."""
        with self._lock:
            self._throttle_left[operation] += attempts

    def storm(self, attempts: int) -> None:
        """From now on, the first `attempts` attempts of every operation (each one counted on
        its own, AssumeRole included) answer ThrottlingException."""
        with self._lock:
            self._storm = attempts
            self._stormed.clear()

    def enforce(self, rates: Mapping[str, Rate]) -> None:
        """From now on, throttle callers faster than `rates` (`service.Operation` or `.*`)."""
        with self._lock:
            self._rates.update(rates)
            self._buckets.clear()

    def __call__(
        self, request: AWSPreparedRequest, event_name: str = "", **_: Any
    ) -> AWSResponse | None:
        if not self.armed:
            return None
        operation = _operation(event_name, request)
        service = operation.split(".", 1)[0]
        if operation == "sts.AssumeRole":
            account = _assumed_account(request)
            with self._lock:
                denied = account in self._deny
            if denied:
                with self._lock:
                    self.denied[account] += 1
                return error_response(
                    request.url,
                    "sts",
                    "AccessDenied",
                    f"User is not authorized to perform: sts:AssumeRole on account {account}",
                    403,
                )
        with self._lock:
            if self._throttle_left[operation] > 0:
                self._throttle_left[operation] -= 1
                self.throttled[operation] += 1
                return self._throttled(request, service)
            if self._stormed[operation] < self._storm:
                self._stormed[operation] += 1
                self.throttled[operation] += 1
                return self._throttled(request, service)
            bucket = self._bucket(operation)
        if bucket is not None and not bucket.try_acquire():
            with self._lock:
                self.throttled[operation] += 1
            return self._throttled(request, service)
        return None

    def _bucket(self, operation: str) -> TokenBucket | None:
        key = operation if operation in self._rates else f"{operation.split('.', 1)[0]}.*"
        rate = self._rates.get(key)
        if rate is None:
            return None
        if key not in self._buckets:
            self._buckets[key] = TokenBucket(rate)
        return self._buckets[key]

    @staticmethod
    def _throttled(request: AWSPreparedRequest, service: str) -> AWSResponse:
        query = _protocol(service) in _QUERY_PROTOCOLS
        return error_response(
            request.url,
            service,
            "Throttling" if query else "ThrottlingException",
            "Rate exceeded",
            400 if query else 429,
        )


def _operation(event_name: str, request: AWSPreparedRequest) -> str:
    # `before-send.<service>.<Operation>`
    return event_name.partition(".")[2]


def _assumed_account(request: AWSPreparedRequest) -> str:
    body = request.body or b""
    if hasattr(body, "read"):
        body = body.read()
    text = body.decode() if isinstance(body, bytes) else str(body)
    role_arn = parse_qs(text).get("RoleArn", [""])[0]
    parts = role_arn.split(":")
    return parts[4] if len(parts) > 4 else ""
