"""The collect stage on the sandbox: credentials, coverage, throttling, cache, pacing."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reporter.cache import DetailsCache
from reporter.collect import Collection, CollectOptions, _read_account, _Run, collect
from reporter.config import Settings, load_data
from reporter.discover import (
    Scope,
    combine_coverage,
    fetch_organization,
    parse_accounts,
    split_scope,
)
from reporter.models import Account, AccountCoverage, RawRecord
from reporter.normalise import normalise
from reporter.ratelimit import Limiter, Rate, TokenBucket
from reporter.sandbox import Sandbox, SandboxSpec
from reporter.sandbox.data import build_plan
from reporter.session import AwsOptions, SessionFactory
from reporter.sources.access_analyzer import AnalyzerInfo
from reporter.telemetry import LiveDisplay, NullDisplay, Telemetry, summary_table

from .conftest import sample

OFF = {"enabled": False}
NOW = datetime(2025, 6, 2, 7, 0, tzinfo=UTC)
MANAGEMENT = "123456789012"


def _active_members(spec: SandboxSpec) -> list[str]:
    plan = build_plan(spec, MANAGEMENT, NOW)
    return [a.id for a in plan.members if a.active]


BASE = SandboxSpec(seed=11, now=NOW)
_MEMBERS = _active_members(BASE)
EXCLUDED, HUB_OFF, DENIED = _MEMBERS[0], _MEMBERS[1], _MEMBERS[2]
SPEC = replace(
    BASE, analyzer_exclusions=frozenset({EXCLUDED}), security_hub_off=frozenset({HUB_OFF})
)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(SPEC) as opened:
        yield opened


def _settings(sandbox: Sandbox, db: Path | str, **sources: Any) -> Settings:
    """`db`: a SQLite file, or a state database URL."""
    wanted = {
        "security_hub": {"enabled": True},
        "access_analyzer": {"enabled": True},
        "iam": {"enabled": False},
    }
    wanted.update(sources)
    return load_data(
        {
            "organization": {
                "home_region": sandbox.home_region,
                "delegated_admin_role_arn": sandbox.delegated_admin_role_arn,
                "member_role_name": sandbox.member_role_name,
            },
            "sources": wanted,
            "collection": {"recommendation_poll_seconds": 0.01},
            "state": {"database_url": db if isinstance(db, str) else f"sqlite:///{db}"},
        },
        environ={},
        source="test",
    )


def _factory(sandbox: Sandbox, **kwargs: Any) -> SessionFactory:
    return SessionFactory(
        sandbox.session(),
        AwsOptions(region=sandbox.home_region),
        sandbox.configure_session,
        **kwargs,
    )


def _collect(
    sandbox: Sandbox, settings: Settings, factory: SessionFactory | None = None
) -> Collection:
    factory = factory or _factory(sandbox)
    accounts = parse_accounts(fetch_organization(factory.client("organizations")))
    assess, out_of_scope = split_scope(accounts, Scope())
    return collect(
        settings,
        factory,
        assess,
        out_of_scope,
        lambda message: None,
        settings.state.database_url,
        sandbox.now,
        display=NullDisplay(),
    )


def _by_id(collection: Collection) -> dict[str, AccountCoverage]:
    return {c.account_id: c for c in collection.coverage}


def test_coverage_names_the_sources_and_the_reasons(sandbox: Sandbox, tmp_path: Path) -> None:
    result = _collect(sandbox, _settings(sandbox, tmp_path / "state.db"))
    coverage = _by_id(result)
    assert set(coverage) == {a.id for a in sandbox.accounts}
    excluded = coverage[EXCLUDED]
    assert not excluded.covered and excluded.in_scope
    # Security Hub relays the analyzer's findings, so the exclusion limits it as well.
    assert excluded.reason == (
        "access_analyzer: excluded by the analyzer; security_hub: excluded by the analyzer"
    )
    hub_off = coverage[HUB_OFF]
    assert hub_off.covered and hub_off.sources == ("access_analyzer",)
    assert "security_hub: Security Hub off" in hub_off.reason
    suspended = next(a for a in sandbox.accounts if not a.active)
    assert coverage[suspended.id].reason == "account is SUSPENDED"
    assert not coverage[suspended.id].in_scope
    others = [
        c for c in coverage.values() if c.in_scope and c.account_id not in (EXCLUDED, HUB_OFF)
    ]
    assert others and all(c.sources == ("access_analyzer", "security_hub") for c in others)
    assert all(c.reason == "" for c in others)
    # Every active finding arrives (the pipeline drops the suspended account's later).
    found = normalise([*result.raw["access_analyzer"], *result.raw["security_hub"]])
    keys = {(f.account_id, f.principal_arn, f.type.value) for f in found.findings}
    active = {(e.account_id, e.principal_arn, e.finding_type) for e in sandbox.expected if e.active}
    assert keys == active
    assert EXCLUDED not in {f.account_id for f in found.findings}


def test_denied_assume_role_leaves_the_account_uncovered_with_the_code(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    sandbox.faults.deny_assume_role(EXCLUDED, DENIED)
    # Fallback: IAM reads only the account the analyzer excludes - and may not assume there.
    settings = _settings(
        sandbox,
        tmp_path / "state.db",
        access_analyzer=OFF,
        iam={"enabled": True, "mode": "fallback"},
    )
    factory = _factory(sandbox)
    result = _collect(sandbox, settings, factory)
    excluded = _by_id(result)[EXCLUDED]
    assert not excluded.covered
    assert "iam: AssumeRole denied: AccessDenied" in excluded.reason
    assert result.telemetry is not None
    # Security Hub is off in HUB_OFF too, so IAM reads that account as well - and can.
    assert result.telemetry.sources["iam"].accounts == 2
    assert result.telemetry.sources["iam"].failed_accounts == 1
    assert _by_id(result)[HUB_OFF].sources == ("iam",)
    assert {r.payload["account_id"] for r in result.raw["iam"]} == {HUB_OFF}
    # Always: every account is read by IAM too; the denied one is still covered by the others.
    settings = _settings(
        sandbox, tmp_path / "state.db", access_analyzer=OFF, iam={"enabled": True, "mode": "always"}
    )
    result = _collect(sandbox, settings)
    denied = _by_id(result)[DENIED]
    assert denied.covered and "iam" not in denied.sources
    assert denied.reason == "not by iam: AssumeRole denied: AccessDenied"
    readable = _by_id(result)[HUB_OFF]
    assert readable.sources == ("iam",)
    assert {json.loads(json.dumps(r.payload))["account_id"] for r in result.raw["iam"]} >= {HUB_OFF}


def test_denied_accounts_give_exit_code_1_and_coverage_json(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    from reporter.pipeline import Dependencies, run

    sandbox.faults.deny_assume_role(EXCLUDED)
    settings = _settings(sandbox, tmp_path / "state.db", access_analyzer=OFF, iam={"enabled": True})
    # Two accounts keep the rendering that follows collection short.
    organization = settings.organization.model_copy(
        update={"include_accounts": (EXCLUDED, HUB_OFF)}
    )
    settings = settings.model_copy(update={"organization": organization})
    deps = Dependencies(sessions=_factory(sandbox), output_dir=tmp_path / "out")
    result = run(settings, deps, sandbox.now)
    assert result.exit_code == 1
    run_dir = Path(result.run_dir)
    rows = {r["account_id"]: r for r in json.loads((run_dir / "data/coverage.json").read_text())}
    assert rows[EXCLUDED]["covered"] is False
    assert "AssumeRole denied: AccessDenied" in rows[EXCLUDED]["reason"]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    telemetry = manifest["telemetry"]
    assert telemetry["calls"]["securityhub.GetFindings"] == 1
    assert telemetry["sources"]["security_hub"]["records"] >= len(sandbox.reportable)


def test_throttling_bursts_are_retried_and_counted(sandbox: Sandbox, tmp_path: Path) -> None:
    settings = _settings(sandbox, tmp_path / "state.db", access_analyzer=OFF)
    clean = _collect(sandbox, settings)
    sandbox.faults.throttle("securityhub.GetFindings", 1)
    # (Not an Access Analyzer call: adaptive retries would then slow that client for seconds.)
    sandbox.faults.throttle("securityhub.ListMembers", 1)
    before = dict(sandbox.faults.throttled)
    throttled = _collect(sandbox, settings)
    assert throttled.failures == {}
    assert [r.payload["Id"] for r in throttled.raw["security_hub"]] == [
        r.payload["Id"] for r in clean.raw["security_hub"]
    ]
    assert _by_id(throttled) == _by_id(clean)  # ListMembers answered in the end
    telemetry = throttled.telemetry
    assert telemetry is not None
    assert telemetry.throttles == {"securityhub.GetFindings": 1, "securityhub.ListMembers": 1}
    assert telemetry.retries == {"securityhub.GetFindings": 1, "securityhub.ListMembers": 1}
    assert telemetry.calls["securityhub.GetFindings"] == 1
    seen = {k: v - before.get(k, 0) for k, v in sandbox.faults.throttled.items()}
    assert {k: v for k, v in seen.items() if v} == telemetry.throttles


def test_recommendations_are_fetched_once_and_cached_with_the_details(
    sandbox: Sandbox, state_url: str
) -> None:
    settings = _settings(sandbox, state_url, security_hub={"enabled": False})
    first = _collect(sandbox, settings)
    assert first.telemetry is not None
    calls = first.telemetry.calls
    permission = [
        r for r in first.raw["access_analyzer"] if r.payload["findingType"] == "UnusedPermission"
    ]
    assert permission
    assert calls["accessanalyzer.GenerateFindingRecommendation"] == len(permission)
    # The sandbox answers IN_PROGRESS to the first poll, as AWS does while it computes.
    assert calls["accessanalyzer.GetFindingRecommendation"] == 2 * len(permission)
    assert calls["accessanalyzer.GetFindingV2"] >= len(first.raw["access_analyzer"])
    for record in permission:
        recommendation = record.payload["recommendation"]
        sso = "AWSReservedSSO" in record.payload["resource"]
        assert recommendation["status"] == ("FAILED" if sso else "SUCCEEDED")
        if not sso:
            steps = recommendation["recommendedSteps"]
            assert steps and all("unusedPermissionsRecommendedStep" in s for s in steps)

    second = _collect(sandbox, settings)
    assert second.telemetry is not None
    again = second.telemetry.calls
    assert again.get("accessanalyzer.GetFindingV2", 0) == 0
    assert again.get("accessanalyzer.GenerateFindingRecommendation", 0) == 0
    assert again.get("accessanalyzer.GetFindingRecommendation", 0) == 0
    assert second.telemetry.cache["details_cached"] == len(first.raw["access_analyzer"])
    payloads = sorted(json.dumps(r.payload, sort_keys=True) for r in second.raw["access_analyzer"])
    assert payloads == sorted(
        json.dumps(r.payload, sort_keys=True) for r in first.raw["access_analyzer"]
    )


def test_a_changed_finding_is_fetched_again(state_url: str) -> None:
    cache = DetailsCache(state_url)
    try:
        from reporter.cache import Cached, stamp

        arn = "arn:aws:access-analyzer:us-east-1:111122223333:analyzer/a"
        at = datetime(2025, 1, 1, tzinfo=UTC)
        cache.store(arn, [Cached("f1", stamp(at), {"findingDetails": []})], at)
        assert cache.index(arn) == {"f1": "2025-01-01T00:00:00+00:00"}
        assert stamp("2025-01-01T00:00:00Z") == stamp(at)  # text and datetime agree
        assert stamp(at + timedelta(seconds=1)) != cache.index(arn)["f1"]
        cache.forget(arn, ["f1"])
        assert cache.index(arn) == {}
    finally:
        cache.dispose()


def test_both_sources_merge_and_the_owner_is_not_the_administrator(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    result = _collect(sandbox, _settings(sandbox, tmp_path / "state.db"))
    hub = result.raw["security_hub"]
    admin = sandbox.security_account_id
    assert {r.payload["AwsAccountId"] for r in hub} == {admin}
    merged = normalise([*result.raw["access_analyzer"], *hub])
    assert len(merged.findings) == len(normalise(result.raw["access_analyzer"]).findings)
    assert all(
        {s.source for s in f.sources} == {"security_hub", "access_analyzer"}
        for f in merged.findings
    )
    owners = {f.account_id for f in merged.findings}
    assert len(owners) > 1 and owners - {admin}
    for finding in merged.findings:
        assert finding.principal_arn.split(":")[4] == finding.account_id
    # The published ASFF sample names the administrator in AwsAccountId as well.
    asff = sample("asff-unused-permission-aws-docs.json")
    asff = asff["Findings"][0] if "Findings" in asff else asff
    record = {**asff, "RecordState": "ACTIVE", "AwsAccountId": "999999999999"}
    (finding,) = normalise([RawRecord("security_hub", record)]).findings
    assert finding.account_id == record["Resources"][0]["Id"].split(":")[4] != "999999999999"


def test_client_side_filter_drops_what_the_server_should_have(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    result = _collect(sandbox, _settings(sandbox, tmp_path / "state.db"))
    # moto ignores Filters: the external-access decoys and archived records come back.
    assert result.skipped.get("not unused access") == len(sandbox.external_finding_ids)
    archived = [e for e in sandbox.expected if not e.active]
    assert result.skipped.get("archived in Security Hub", 0) >= 1
    assert all(r.payload["RecordState"] == "ACTIVE" for r in result.raw["security_hub"])
    assert len(result.raw["security_hub"]) + sum(result.skipped.values()) == len(
        sandbox.expected
    ) + len(sandbox.external_finding_ids)
    assert archived


def test_account_and_young_accounts_are_not_overstated() -> None:
    from reporter.collect import _analyzer_verdict

    now = NOW
    old = Account("111111111111", "old", joined_at=now - timedelta(days=400))
    young = Account("222222222222", "young", joined_at=now - timedelta(days=3))
    own = Account("333333333333", "own")
    account_level = AnalyzerInfo(
        "arn:aws:access-analyzer:us-east-1:333333333333:analyzer/mine", "ACCOUNT_UNUSED_ACCESS"
    )
    org_level = replace(account_level, type="ORGANIZATION_UNUSED_ACCESS", tracking_days=30)
    rows = combine_coverage(
        [old, young, own],
        {"access_analyzer": _analyzer_verdict(account_level, now)},
    )
    assert [r.covered for r in rows] == [False, False, True]
    assert rows[0].reason == (
        "access_analyzer: the account analyzer covers only account 333333333333"
    )
    rows = combine_coverage(
        [old, young, own], {"access_analyzer": _analyzer_verdict(org_level, now)}
    )
    assert [r.covered for r in rows] == [True, False, True]
    assert rows[1].reason == (
        "access_analyzer: younger than the analyzer's tracking period (30 days)"
    )
    assert combine_coverage([own], {})[0].reason == "no enabled source reads this account"


def test_an_account_that_takes_too_long_is_not_covered(sandbox: Sandbox, tmp_path: Path) -> None:
    class Slow:
        name = "slow"

        def collect_account(self, account: Account, client: Any) -> Iterator[RawRecord]:
            yield RawRecord("iam", {"n": 1})
            yield RawRecord("iam", {"n": 2})

    settings = _settings(sandbox, tmp_path / "state.db")
    run = _Run(
        settings,
        _factory(sandbox),
        NullDisplay(),
        replace(CollectOptions(), account_timeout_seconds=1e-9),
        sandbox.now,
        "",
    )
    records, error = _read_account(run, Slow(), sandbox.account(HUB_OFF))
    assert records == [] and error == "timed out after 1e-09 s"


class _FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_token_bucket_paces_at_rate_after_the_burst() -> None:
    fake = _FakeTime()
    bucket = TokenBucket(Rate(3, 6), fake.clock, fake.sleep)
    waits = [bucket.acquire() for _ in range(9)]
    assert waits[:6] == [0.0] * 6
    assert fake.slept == [pytest.approx(1 / 3)] * 3
    fake.now += 10  # idle: the bucket refills to its burst, not beyond
    assert [bucket.acquire() for _ in range(6)] == [0.0] * 6
    assert bucket.acquire() == pytest.approx(1 / 3)
    assert not bucket.try_acquire()
    fake.now += 1 / 3
    assert bucket.try_acquire()


def test_limiter_keys_operations_and_shares_service_buckets() -> None:
    fake = _FakeTime()
    limiter = Limiter(scale=2.0, clock=fake.clock, sleep=fake.sleep, headroom=1.0)
    assert limiter.rate_for("securityhub.GetFindings") == Rate(6, 6)
    assert limiter.rate_for("securityhub.ListMembers") == Rate(20, 30)
    assert limiter.bucket("securityhub.ListMembers") is limiter.bucket("securityhub.GetMembers")
    assert limiter.bucket("accessanalyzer.GetFindingV2") is None  # AWS publishes no rate
    for _ in range(7):
        limiter.on_send(event_name="before-send.securityhub.GetFindings")
    assert fake.slept == [pytest.approx(1 / 6)]
    limiter.set_rate("accessanalyzer.*", Rate(5, 1))
    limiter.acquire("accessanalyzer.GetFindingV2")
    limiter.acquire("accessanalyzer.ListFindingsV2")
    assert fake.slept[-1] == pytest.approx(1 / 10)
    assert set(limiter.waited()) == {"securityhub.GetFindings", "accessanalyzer.*"}


def test_every_client_is_paced_before_the_service_answers(sandbox: Sandbox) -> None:
    # The sandbox refuses more than 20 ListTagsForResource a second (burst 2); the reporter's
    # limiter at the same rate keeps discovery under it, so nothing is throttled.
    limit = {"organizations.ListTagsForResource": Rate(20, 2)}
    sandbox.faults.enforce(limit)
    try:
        telemetry = Telemetry()
        factory = _factory(sandbox, limiter=Limiter(limit), telemetry=telemetry)
        before = sandbox.faults.throttled["organizations.ListTagsForResource"]
        fetch_organization(factory.client("organizations"))
        report = telemetry.report()
        assert report.calls["organizations.ListTagsForResource"] == len(sandbox.accounts)
        assert sandbox.faults.throttled["organizations.ListTagsForResource"] == before
        assert report.throttles == {}
    finally:
        sandbox.faults.enforce({"organizations.ListTagsForResource": Rate(1e9, 10**9)})


def test_assumed_sessions_are_cached_per_role(sandbox: Sandbox) -> None:
    telemetry = Telemetry()
    factory = _factory(sandbox, telemetry=telemetry)
    role = factory.member_role_arn(HUB_OFF, sandbox.member_role_name)
    assert role == f"arn:aws:iam::{HUB_OFF}:role/{sandbox.member_role_name}"
    assert factory.assume(role) is factory.assume(role)
    assert telemetry.report().calls["sts.AssumeRole"] == 1
    sts = factory.client("sts", factory.assume(role))
    assert sts.get_caller_identity()["Account"] == HUB_OFF


def test_progress_display_and_summary_table() -> None:
    stream = io.StringIO()
    display = LiveDisplay(stream, interval=0.0)
    telemetry = Telemetry()
    stats = telemetry.source("security_hub", pages=2, records=150)
    display.update("security_hub", stats, None)
    display.update("iam", telemetry.source("iam", accounts=3, records=9), 10)
    assert "security_hub: 2 pages, 150 records" in stream.getvalue()
    assert "iam: 0 pages, 9 records 3/10 accounts" in stream.getvalue()
    display.finish(telemetry.report())
    lines = summary_table(telemetry.report())
    assert lines[0].split() == ["source", "seconds", "pages", "records", "accounts", "failed"]
    assert lines[2].split()[:4] == ["security_hub", "0.0", "2", "150"]
    assert stream.getvalue().rstrip().endswith(lines[-1].strip())
