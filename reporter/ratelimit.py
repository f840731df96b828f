"""Client-side pacing: a token bucket per API operation, at the rates AWS documents.

Retries alone would find the limits by hitting them; pacing keeps a run of thousands of calls
under them, so throttling is the exception and every retry is worth counting. The buckets are
applied through botocore's `before-send` event, so every attempt (retries included) is paced,
whichever code made the client.

Rates (reference §0, §2.9, §3.1): Security Hub GetFindings 3/s burst 6, everything else in
Security Hub 10/s burst 30; Organizations per operation (the per-account figures). Access
Analyzer publishes no rates (reference §1.11): it is not paced unless configured.

Why the client's buckets are smaller than the service's: the service counts a request when it
arrives, the client when it takes the token, and the two moments are not a fixed distance
apart (thread scheduling, the GIL, the network). After an idle spell both buckets are full; a
client allowed the service's whole burst then has no margin at all, and the 5 % rate headroom
builds it back at only 5 % of the rate (0.26 of a token 26 ms after a burst at 200/s), so a
millisecond of bunching on the way is a ThrottlingException. Holding back half the burst
leaves that many tokens at the service to absorb the bunching, and costs nothing over a long
run, whose time is set by the rate. After a throttle anyway, the bucket of that operation is
emptied (`on_response`): the service has just said its own is empty.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .telemetry import THROTTLE_CODES


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError(f"a rate needs per_second > 0 and burst >= 1, got {self}")

    def scaled(self, factor: float) -> Rate:
        return Rate(self.per_second * factor, self.burst)

    def share(self, rate_share: float, burst_share: float) -> Rate:
        """The part of this limit a client uses: a share of the rate and of the burst (>= 1)."""
        return Rate(self.per_second * rate_share, max(1, int(self.burst * burst_share)))


# Keys are `<service id>.<Operation>`, or `<service id>.*` for the rest of a service; the
# service id is botocore's hyphenated one, as in its event names.
DOCUMENTED_RATES: Mapping[str, Rate] = {
    "securityhub.GetFindings": Rate(3, 6),
    # Not documented; the OCSF read is the same kind of query as GetFindings, so it is paced
    # like it rather than at the generous "everything else" rate.
    "securityhub.GetFindingsV2": Rate(3, 6),
    "securityhub.*": Rate(10, 30),
    "organizations.ListAccounts": Rate(8, 12),
    "organizations.ListAccountsForParent": Rate(5, 8),
    "organizations.ListParents": Rate(5, 8),
    "organizations.ListOrganizationalUnitsForParent": Rate(5, 8),
    "organizations.ListChildren": Rate(6, 10),
    "organizations.ListTagsForResource": Rate(10, 15),
    "organizations.DescribeOrganization": Rate(1, 2),
}


class TokenBucket:
    """`rate` tokens a second up to `burst`; `acquire` waits for one. Thread-safe.

    A caller that finds the bucket empty reserves the next token (the level goes negative) and
    sleeps outside the lock, so waiting callers are served in order and never oversubscribe.
    """

    def __init__(
        self,
        rate: Rate,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(rate.burst)
        self._stamp = clock()
        self.waited = 0.0  # total seconds callers slept, for telemetry

    def try_acquire(self) -> bool:
        """Take one token if there is one now; never waits (a server's view of a limit)."""
        with self._lock:
            self._refill()
            # A hair of tolerance: a client paced at exactly this rate must not be refused
            # for a rounding error in the clock arithmetic.
            if self._tokens < 1 - 1e-6:
                return False
            self._tokens -= 1.0
            return True

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._stamp)
        self._stamp = now
        self._tokens = min(float(self.rate.burst), self._tokens + elapsed * self.rate.per_second)

    def drain(self) -> None:
        """Spend what is saved: the next caller waits for a fresh token (reservations stand)."""
        with self._lock:
            self._refill()
            self._tokens = min(self._tokens, 0.0)

    def acquire(self) -> float:
        """Take one token, sleeping until it exists; returns the seconds slept."""
        with self._lock:
            self._refill()
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate.per_second
            self.waited += wait
        if wait > 0:
            self._sleep(wait)
        return wait


# Pace at this share of a documented rate. The service's bucket starts when our first request
# reaches it, a little after ours started; at exactly the documented rate a saturated client
# would stay that little bit ahead of the service's bucket and be throttled now and then.
HEADROOM = 0.95
# Use this share of a documented burst (at least 1): the rest is the margin that absorbs
# requests bunching between our token and the service's count (module docstring).
BURST_SHARE = 0.5


class Limiter:
    """The buckets of one run, by operation; `on_send` is the botocore `before-send` handler,
    `on_response` the `needs-retry` one.

    `scale` multiplies every rate (the benchmark's time-scaled sandbox); `headroom` is the
    share of each rate actually used and `burst_share` the share of each burst. Both default
    to the margins above; `headroom=1.0` alone means the service's exact limits, burst
    included (for tests of the arithmetic).
    """

    def __init__(
        self,
        rates: Mapping[str, Rate] = DOCUMENTED_RATES,
        scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        headroom: float = HEADROOM,
        burst_share: float | None = None,
    ) -> None:
        if burst_share is None:
            burst_share = 1.0 if headroom == 1 else BURST_SHARE
        if (
            scale <= 0
            or not math.isfinite(scale)
            or not 0 < headroom <= 1
            or not 0 < burst_share <= 1
        ):
            raise ValueError("scale must be a positive number, headroom and burst_share in (0, 1]")
        self._scale = scale * headroom
        self._burst_share = burst_share
        self._rates = {key: self._client_rate(rate) for key, rate in rates.items()}
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[str, TokenBucket | None] = {}
        self._shared: dict[str, TokenBucket] = {}

    def _client_rate(self, rate: Rate) -> Rate:
        return rate.share(self._scale, self._burst_share)

    def set_rate(self, key: str, rate: Rate) -> None:
        """Add or change a rate (`service.Operation` or `service.*`), scaled like the rest."""
        with self._lock:
            self._rates[key] = self._client_rate(rate)
            self._shared.pop(key, None)
            self._buckets.clear()

    def rate_for(self, operation: str) -> Rate | None:
        return self._rates.get(self._key(operation))

    def paces(self, service: str) -> bool:
        """Whether any operation of `service` (botocore's hyphenated id) is paced."""
        with self._lock:
            return any(key.startswith(f"{service}.") for key in self._rates)

    def _key(self, operation: str) -> str:
        # `securityhub.*` is one bucket shared by all the service's operations without their own.
        return operation if operation in self._rates else f"{operation.split('.', 1)[0]}.*"

    def bucket(self, operation: str) -> TokenBucket | None:
        with self._lock:
            if operation not in self._buckets:
                key = self._key(operation)
                rate = self._rates.get(key)
                shared = self._shared.get(key)
                if shared is None and rate is not None:
                    shared = self._shared[key] = TokenBucket(rate, self._clock, self._sleep)
                self._buckets[operation] = shared
            return self._buckets[operation]

    def acquire(self, operation: str) -> float:
        bucket = self.bucket(operation)
        return bucket.acquire() if bucket is not None else 0.0

    def on_send(self, event_name: str = "", **_: Any) -> None:
        # event_name is `before-send.<service id>.<Operation>`
        operation = event_name.partition(".")[2]
        if operation:
            self.acquire(operation)

    def on_response(self, event_name: str = "", response: Any = None, **_: Any) -> None:
        """After a throttle, empty the operation's bucket. Never decides a retry (returns None).

        The service refused because its bucket was empty; ours, by its own count, may still
        hold tokens, and other threads would spend them on more refusals. Emptying it (once
        per refusal, not a slower rate for the rest of the run) lines the two up again.
        """
        if not response or len(response) < 2 or not isinstance(response[1], Mapping):
            return
        if response[1].get("Error", {}).get("Code") not in THROTTLE_CODES:
            return
        bucket = self.bucket(event_name.partition(".")[2])
        if bucket is not None:
            bucket.drain()

    def waited(self) -> dict[str, float]:
        """Seconds spent waiting for tokens, by bucket key."""
        with self._lock:
            return {k: round(b.waited, 3) for k, b in self._shared.items() if b.waited}
