"""Client pacing against the service's token bucket, and the retry mode each client gets.

The sandbox enforces AWS's token-bucket semantics (`reporter.sandbox.faults`); the reporter
paces with the same buckets at 95 % of the rate and half the burst (`reporter.ratelimit`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from reporter.ratelimit import BURST_SHARE, Limiter, Rate, TokenBucket
from reporter.sandbox import Sandbox, SandboxSpec
from reporter.session import AwsOptions, SessionFactory
from reporter.telemetry import Telemetry

# Access Analyzer at 20/s burst 20, time-scaled x5: the sandbox refuses beyond 100/s burst 20.
AA_RATE = 20.0
SCALE = 5.0
SPEC = SandboxSpec(
    seed=5,
    member_accounts=4,
    ous=1,
    findings_per_account=15,
    rate_scale=SCALE,
    access_analyzer_rate=AA_RATE,
)


class _FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(SPEC) as opened:
        yield opened


def _refused(burst_share: float, stalled: int, stall: float) -> int:
    """A saturated client after an idle spell, its first `stalled` requests reaching the
    service `stall` seconds late (a thread waiting for the GIL, a slow connection): how many
    of 40 the service's bucket refuses."""
    fake = _FakeTime()
    service = TokenBucket(Rate(200, 20), fake.clock)
    limiter = Limiter(
        {"x.*": Rate(200, 20)}, clock=fake.clock, sleep=fake.sleep, burst_share=burst_share
    )
    fake.now += 10  # both buckets are full after the idle spell
    granted = []
    for _ in range(40):
        limiter.acquire("x.Op")
        granted.append(fake.now)
    arrivals = sorted(t + (stall if i < stalled else 0.0) for i, t in enumerate(granted))
    refused = 0
    for t in arrivals:
        fake.now = t
        refused += not service.try_acquire()
    return refused


def test_a_client_with_the_whole_burst_is_refused_for_a_millisecond_of_bunching() -> None:
    # The root cause of the benchmark's throttles: with the service's whole burst the client
    # has no margin right after a burst, so a 2 ms stall of the burst is refused at once.
    assert _refused(burst_share=1.0, stalled=0, stall=0.0) == 0
    assert _refused(burst_share=1.0, stalled=20, stall=0.002) >= 1
    # Half the burst leaves 10 tokens at the service: 50 ms of bunching at this rate.
    assert _refused(burst_share=BURST_SHARE, stalled=10, stall=0.002) == 0
    assert _refused(burst_share=BURST_SHARE, stalled=10, stall=0.045) == 0


def test_the_client_uses_part_of_each_rate_and_burst() -> None:
    limiter = Limiter({"x.*": Rate(20, 20), "x.One": Rate(1, 1)}, scale=10)
    other, one = limiter.rate_for("x.Other"), limiter.rate_for("x.One")
    assert other is not None and one is not None
    assert (other.per_second, other.burst) == (pytest.approx(190), 10)
    assert (one.per_second, one.burst) == (pytest.approx(9.5), 1)  # never below 1
    exact = Limiter({"x.*": Rate(20, 20)}, scale=10, headroom=1.0)
    assert exact.rate_for("x.Other") == Rate(200, 20)
    assert limiter.paces("x") and not limiter.paces("y")
    with pytest.raises(ValueError, match="burst_share"):
        Limiter(burst_share=0)


def _response(code: str) -> tuple[Any, dict[str, Any]]:
    return (None, {"Error": {"Code": code, "Message": "m"}})


def test_a_throttle_empties_that_operations_bucket_only() -> None:
    fake = _FakeTime()
    limiter = Limiter(
        {"x.*": Rate(10, 4), "y.*": Rate(10, 4)},
        clock=fake.clock,
        sleep=fake.sleep,
        headroom=1.0,
    )
    assert limiter.acquire("x.Op") == 0.0  # 3 tokens left
    limiter.on_response(event_name="needs-retry.x.Op", response=_response("AccessDenied"))
    limiter.on_response(event_name="needs-retry.x.Op", response=None)
    assert limiter.acquire("x.Op") == 0.0  # not a throttle: the saved tokens stand
    limiter.on_response(event_name="needs-retry.x.Op", response=_response("ThrottlingException"))
    assert limiter.acquire("x.Op") == pytest.approx(0.1)  # waits for a fresh token
    assert limiter.acquire("y.Op") == 0.0  # another service's bucket is untouched
    limiter.on_response(event_name="needs-retry.z.Op", response=_response("Throttling"))  # unpaced


def _factory(sandbox: Sandbox, limiter: Limiter, telemetry: Telemetry) -> SessionFactory:
    return SessionFactory(
        sandbox.session(),
        AwsOptions(region=sandbox.home_region),
        sandbox.configure_session,
        limiter=limiter,
        telemetry=telemetry,
    )


def test_a_paced_client_is_never_throttled_at_the_enforced_rate(sandbox: Sandbox) -> None:
    # Several threads on two clients share the run's one Access Analyzer bucket, as the real
    # per-account quota is shared; idle spells between rounds refill both sides' buckets, the
    # moment a client with the service's whole burst has no margin left.
    telemetry = Telemetry()
    limiter = Limiter(scale=SCALE)
    limiter.set_rate("accessanalyzer.*", Rate(AA_RATE, int(AA_RATE)))
    factory = _factory(sandbox, limiter, telemetry)
    admin = factory.assume(sandbox.delegated_admin_role_arn)
    clients = [factory.client("accessanalyzer", admin) for _ in range(2)]
    (analyzer,) = [
        a["arn"] for a in clients[0].list_analyzers(type="ORGANIZATION_UNUSED_ACCESS")["analyzers"]
    ]
    ids = [f["id"] for f in clients[0].list_findings_v2(analyzerArn=analyzer)["findings"]]
    assert len(ids) >= 20
    before = sum(sandbox.faults.throttled.values())

    def call(i: int) -> str:
        client = clients[i % 2]
        if i % 10 == 0:
            return str(len(client.list_findings_v2(analyzerArn=analyzer, maxResults=5)["findings"]))
        return str(client.get_finding_v2(analyzerArn=analyzer, id=ids[i % len(ids)])["id"])

    rounds, per_round = 4, 60
    answers: list[str] = []
    with ThreadPoolExecutor(6) as pool:
        for _ in range(rounds):
            answers += pool.map(call, range(per_round))
            time.sleep(0.3)  # idle: the service's bucket (20 at 100/s) refills completely
    calls = telemetry.report().calls
    assert calls["accessanalyzer.GetFindingV2"] + calls["accessanalyzer.ListFindingsV2"] == (
        rounds * per_round + 1
    )
    assert answers.count("5") == rounds * per_round // 10
    assert set(answers) - {"5"} <= set(ids)
    assert sum(sandbox.faults.throttled.values()) == before
    assert telemetry.report().throttles == {}
    assert telemetry.report().retries == {}


def test_paced_services_get_standard_retries_and_the_rest_keep_adaptive() -> None:
    factory = SessionFactory(boto3.Session(region_name="us-east-1"), AwsOptions())

    def retries(service: str) -> dict[str, Any]:
        return dict(factory.client(service).meta.config.retries)

    # Security Hub and Organizations are paced at their documented rates.
    assert retries("securityhub") == {"mode": "standard", "total_max_attempts": 10}
    assert retries("organizations") == {"mode": "standard", "total_max_attempts": 10}
    # No published rate: adaptive's own rate discovery is all these have.
    assert retries("sts") == {"mode": "adaptive", "total_max_attempts": 10}
    assert retries("iam") == {"mode": "adaptive", "total_max_attempts": 10}
    assert retries("accessanalyzer") == {"mode": "adaptive", "total_max_attempts": 10}
    # ... until `collection.access_analyzer_rate` gives Access Analyzer a rate.
    factory.limiter.set_rate("accessanalyzer.*", Rate(20, 20))
    assert retries("accessanalyzer") == {"mode": "standard", "total_max_attempts": 10}


@pytest.mark.parametrize("mode", ["standard", "legacy"])
def test_a_configured_mode_other_than_adaptive_is_used_as_is(mode: str) -> None:
    factory = SessionFactory(
        boto3.Session(region_name="us-east-1"), AwsOptions(retry_mode=mode, max_attempts=3)
    )
    for service in ("securityhub", "sts"):
        retries = factory.client(service).meta.config.retries
        assert retries == {"mode": mode, "total_max_attempts": 3}
