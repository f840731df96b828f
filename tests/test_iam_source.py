"""The IAM source: credential-report parsing (pure), and the source against the sandbox's IAM."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber

from reporter.models import Account, FindingType, RawRecord
from reporter.normalise import normalise
from reporter.sandbox import Sandbox, SandboxSpec
from reporter.sources.iam import (
    CredentialReportUnavailable,
    IamSource,
    Rule,
    parse_credential_report,
    role_finding,
    user_findings,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
IAM_TYPES = {FindingType.UNUSED_ROLE, FindingType.UNUSED_PASSWORD, FindingType.UNUSED_ACCESS_KEY}

# The current documented column set (reference §4.1), rows as AWS writes them: the root row,
# `not_supported`, `N/A`, `no_information`, upper- and lower-case booleans.
CURRENT = """\
user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated,additional_credentials_info
<root_account>,arn:aws:iam::111122223333:root,2019-03-01T10:00:00+00:00,not_supported,2026-05-30T08:00:00+00:00,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A,
alice,arn:aws:iam::111122223333:user/alice,2020-01-10T09:00:00+00:00,TRUE,no_information,2020-01-10T09:00:00+00:00,N/A,FALSE,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A,
bob,arn:aws:iam::111122223333:user/ops/bob,2021-06-01T00:00:00+00:00,true,2026-05-25T12:00:00+00:00,2021-06-01T00:00:00+00:00,2026-08-01T00:00:00+00:00,true,true,2021-06-01T00:00:00+00:00,2025-11-01T07:15:00+00:00,N/A,s3,true,2026-05-20T00:00:00+00:00,N/A,N/A,N/A,true,2021-06-01T00:00:00+00:00,false,N/A,
carol,arn:aws:iam::111122223333:user/carol,2024-02-02T00:00:00+00:00,false,N/A,N/A,N/A,false,true,2024-02-02T00:00:00+00:00,2026-05-31T23:00:00+00:00,eu-west-1,sts,false,2024-03-01T00:00:00+00:00,N/A,N/A,N/A,false,N/A,false,N/A,"Key 3 (AKIA...); Key 4"
"""  # noqa: E501 - rows exactly as AWS writes them

# An early (pre-2015) report: no last-used columns for keys, no password_last_used.
OLD = """\
user,arn,user_creation_time,password_enabled,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_2_active,access_key_2_last_rotated,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated
<root_account>,arn:aws:iam::111122223333:root,2012-03-01T10:00:00+00:00,not_supported,not_supported,not_supported,true,false,N/A,false,N/A,false,N/A,false,N/A
dave,arn:aws:iam::111122223333:user/dave,2013-01-10T09:00:00+00:00,true,2013-01-10T09:00:00+00:00,N/A,false,true,2013-01-10T09:00:00+00:00,false,N/A,false,N/A,false,N/A
"""


def test_current_report_parses_every_column_and_skips_root() -> None:
    report = parse_credential_report(CURRENT.encode())
    assert report.problems == () and report.missing_columns == ()
    assert [r.user for r in report.rows] == ["alice", "bob", "carol"]
    alice, bob, carol = report.rows
    assert alice.password_enabled and alice.password_last_used is None  # no_information
    assert not alice.mfa_active and not alice.keys[0].active
    assert bob.password_last_used == datetime(2026, 5, 25, 12, tzinfo=UTC)
    assert bob.password_next_rotation == datetime(2026, 8, 1, tzinfo=UTC)
    assert bob.mfa_active and bob.certs_active == (True, False)
    assert bob.keys[0].last_used_service == "s3" and bob.keys[0].last_used_region == ""  # N/A
    assert bob.keys[1].last_used is None  # created, never used
    assert not carol.password_enabled and carol.password_last_changed is None
    assert carol.keys[0].last_used_region == "eu-west-1"
    assert carol.additional_credentials == 2


def test_findings_from_the_current_report() -> None:
    rule = Rule(90, NOW)
    by_user = {r.user: user_findings(r, rule) for r in parse_credential_report(CURRENT).rows}
    # alice: password never used, user six years old.
    ((alice,),) = [by_user["alice"]]
    assert alice.finding_type is FindingType.UNUSED_PASSWORD and alice.last_accessed is None
    # bob: password used last week; key 1 unused for seven months; key 2 twelve days old and
    # never used is not unused yet.
    ((bob,),) = [by_user["bob"]]
    assert bob.finding_type is FindingType.UNUSED_ACCESS_KEY
    assert [k.slot for k in bob.keys] == [1]
    assert bob.last_accessed == datetime(2025, 11, 1, 7, 15, tzinfo=UTC)
    # carol: no password; key 1 used yesterday; key 2 inactive.
    assert by_user["carol"] == []


def test_old_column_set_is_read_and_unassessable_credentials_are_not_flagged() -> None:
    report = parse_credential_report(OLD)
    assert [r.user for r in report.rows] == ["dave"]
    assert set(report.missing_columns) == {
        "password_last_used",
        "access_key_1_last_used_date",
        "access_key_2_last_used_date",
    }
    # A column that is not there is "unknown", not "never used".
    assert user_findings(report.rows[0], Rule(90, NOW)) == []


def test_bad_values_become_problems_and_the_other_rows_survive() -> None:
    lines = CURRENT.splitlines()
    bad_date = lines[2].replace("2020-01-10T09:00:00+00:00", "last tuesday", 1)
    bad_flag = lines[4].replace(",false,N/A,N/A,", ",maybe,N/A,N/A,", 1)
    report = parse_credential_report("\n".join([lines[0], lines[1], bad_date, lines[3], bad_flag]))
    assert [r.user for r in report.rows] == ["bob"]
    reasons = [reason for reason, _ in report.problems]
    assert "user_creation_time is not a date: 'last tuesday'" in reasons[0]
    assert "password_enabled is not true/false: 'maybe'" in reasons[1]
    assert report.problems[0][1]["user"] == "alice"


def test_a_report_without_the_user_columns_is_refused() -> None:
    with pytest.raises(CredentialReportUnavailable, match="user_creation_time"):
        parse_credential_report("user,arn\nx,arn:aws:iam::111122223333:user/x\n")


def test_role_rule_matches_the_tracking_period() -> None:
    rule = Rule(90, NOW)
    old = NOW - timedelta(days=400)
    never = {"Arn": "arn:aws:iam::111122223333:role/r", "CreateDate": old, "RoleLastUsed": {}}
    assert role_finding(never, rule) is not None
    fresh = {**never, "CreateDate": NOW - timedelta(days=89)}
    assert role_finding(fresh, rule) is None
    used = {**never, "RoleLastUsed": {"LastUsedDate": NOW - timedelta(days=89)}}
    assert role_finding(used, rule) is None
    stale = {**never, "RoleLastUsed": {"LastUsedDate": NOW - timedelta(days=90), "Region": "x"}}
    flagged = role_finding(stale, rule)
    assert flagged is not None and flagged.unused_since == NOW


def _report_client(states: list[str]) -> tuple[object, Stubber]:
    iam = boto3.client("iam", region_name="us-east-1")
    stubber = Stubber(iam)
    for state in states:
        stubber.add_response("generate_credential_report", {"State": state})
    return iam, stubber


def test_credential_report_is_polled_until_complete() -> None:
    iam, stubber = _report_client(["STARTED", "INPROGRESS", "COMPLETE"])
    stubber.add_response(
        "get_credential_report", {"Content": CURRENT.encode(), "ReportFormat": "text/csv"}
    )
    stubber.add_response("list_user_tags", {"Tags": [{"Key": "team", "Value": "ops"}]})
    stubber.add_response("list_attached_user_policies", {"AttachedPolicies": []})
    stubber.add_response("list_user_tags", {"Tags": []})
    stubber.add_response("list_attached_user_policies", {"AttachedPolicies": []})
    stubber.add_response(
        "list_access_keys",
        {
            "AccessKeyMetadata": [
                {"AccessKeyId": "AKIAEXAMPLEKEY000001", "CreateDate": datetime(2021, 6, 1)},
                {"AccessKeyId": "AKIAEXAMPLEKEY000002", "CreateDate": datetime(2026, 5, 20)},
            ]
        },
    )
    stubber.add_response("list_roles", {"Roles": []})
    naps: list[float] = []
    source = IamSource(90, NOW, sleep=naps.append)
    with stubber:
        records = list(source.collect_account(Account("111122223333", "a"), lambda service: iam))
    stubber.assert_no_pending_responses()
    assert len(naps) == 2
    payloads = {r.payload["principal_arn"]: r.payload for r in records}
    assert payloads["arn:aws:iam::111122223333:user/alice"]["tags"] == {"team": "ops"}
    bob = payloads["arn:aws:iam::111122223333:user/ops/bob"]
    assert [k["id"] for k in bob["access_keys"]] == ["AKIAEXAMPLEKEY000001"]


def test_credential_report_wait_is_bounded() -> None:
    iam, stubber = _report_client(["STARTED", "INPROGRESS"])
    source = IamSource(90, NOW, report_wait_seconds=0, sleep=lambda _: None)
    with stubber, pytest.raises(CredentialReportUnavailable, match="not ready"):
        list(source.collect_account(Account("111122223333", "a"), lambda service: iam))


def test_unreadable_rows_are_quarantined_not_fatal() -> None:
    lines = CURRENT.splitlines()
    text = "\n".join([lines[0], lines[2].replace("no_information", "31/12/2025"), lines[3]])
    iam, stubber = _report_client(["COMPLETE"])
    stubber.add_response("get_credential_report", {"Content": text.encode()})
    stubber.add_response("list_user_tags", {"Tags": []})
    stubber.add_response("list_attached_user_policies", {"AttachedPolicies": []})
    stubber.add_response("list_access_keys", {"AccessKeyMetadata": []})
    stubber.add_response("list_roles", {"Roles": []})
    with stubber:
        records = list(
            IamSource(90, NOW).collect_account(Account("111122223333", "a"), lambda s: iam)
        )
    result = normalise(records)
    (quarantined,) = result.quarantined
    assert quarantined.source == "iam" and quarantined.origin == "111122223333"
    assert "alice" in quarantined.reason and "password_last_used" in quarantined.reason
    assert [f.principal_name for f in result.findings] == ["bob"]
    # The key id could not be matched (ListAccessKeys empty): the finding still stands.
    assert result.findings[0].access_key_ids == ()


# --- Against the sandbox (moto IAM, through the member role) -------------------------------


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(SandboxSpec(seed=7, now=NOW)) as sb:
        yield sb


def _members(sb: Sandbox) -> list[Account]:
    special = {sb.management_account_id, sb.security_account_id}
    return [a for a in sb.accounts if a.active and a.id not in special]


def _source(days: int, now: datetime) -> IamSource:
    # moto answers the first GenerateCredentialReport with STARTED; no need to really wait.
    return IamSource(days, now, sleep=lambda _: None)


def _collect(sb: Sandbox, account: Account, source: IamSource) -> list[RawRecord]:
    session = sb.assumed_session(sb.member_role_arn(account.id))
    return list(source.collect_account(account, session.client))


@pytest.fixture(scope="module")
def collected(sandbox: Sandbox) -> dict[str, list[RawRecord]]:
    """Every active member account read once, with the analyzer's 30-day tracking period."""
    return {a.id: _collect(sandbox, a, _source(30, sandbox.now)) for a in _members(sandbox)}


def test_iam_source_finds_what_the_plan_left_unused(
    sandbox: Sandbox, collected: dict[str, list[RawRecord]]
) -> None:
    """With the analyzer's 30-day tracking period, IAM agrees with the plan, key ids included."""
    seen_types: set[FindingType] = set()
    for account in _members(sandbox):
        result = normalise(collected[account.id])
        assert result.quarantined == () and result.skipped == {}
        got = {(f.type.value, f.principal_arn): f for f in result.findings}
        planned = {
            (f.finding_type, f.principal.arn): f
            for f in sandbox.plan.findings
            if f.account_id == account.id and f.finding_type in IAM_TYPES
        }
        assert set(got) == set(planned), account.id
        for key, plan in planned.items():
            finding = got[key]
            assert finding.account_id == account.id
            assert finding.access_key_ids == tuple(sorted(k.id for k in plan.unused_keys))
            assert [s.source for s in finding.sources] == ["iam"]
            seen_types.add(finding.type)
    assert seen_types == IAM_TYPES


def test_tags_policies_and_service_linked_roles_are_captured(
    sandbox: Sandbox, collected: dict[str, list[RawRecord]]
) -> None:
    records = [r for account_records in collected.values() for r in account_records]
    by_arn = {r.payload["principal_arn"]: r.payload for r in records}
    cfn = [p for p in by_arn.values() if "aws:cloudformation:stack-name" in p["tags"]]
    assert cfn, "a CloudFormation-made role among the unused ones"
    plan = {p.arn: p for p in sandbox.plan.principals}
    for payload in by_arn.values():
        principal = plan[payload["principal_arn"]]
        assert payload["tags"] == dict(principal.tags)
        managed = {p.rsplit("/", 1)[-1] for p in payload["attached_policies"]}
        assert set(principal.managed_policies) <= managed
        assert payload["service_linked"] is bool(principal.linked_service)
    assert any(p["service_linked"] for p in by_arn.values())


def test_fresh_principals_are_not_unused_yet(sandbox: Sandbox) -> None:
    account = _members(sandbox)[0]
    session = sandbox.assumed_session(sandbox.member_role_arn(account.id))
    iam = session.client("iam")
    trust = '{"Version":"2012-10-17","Statement":[]}'
    role = iam.create_role(RoleName="fresh-role", AssumeRolePolicyDocument=trust)["Role"]
    iam.create_user(UserName="fresh-user")
    iam.create_login_profile(UserName="fresh-user", Password="Sandbox-Passw0rd!")
    iam.create_access_key(UserName="fresh-user")
    created = role["CreateDate"].astimezone(UTC)
    try:

        def fresh(now: datetime) -> set[tuple[str, str]]:
            records = _collect(sandbox, account, _source(30, now))
            return {
                (r.payload["finding_type"], r.payload["principal_arn"].rsplit("/", 1)[-1])
                for r in records
                if "fresh-" in r.payload.get("principal_arn", "")
            }

        # Ten days old and never used: not assessed yet. A month later: unused.
        assert fresh(created + timedelta(days=10)) == set()
        assert fresh(created + timedelta(days=31)) == {
            ("UnusedIAMRole", "fresh-role"),
            ("UnusedIAMUserPassword", "fresh-user"),
            ("UnusedIAMUserAccessKey", "fresh-user"),
        }
    finally:
        for key in iam.list_access_keys(UserName="fresh-user")["AccessKeyMetadata"]:
            iam.delete_access_key(UserName="fresh-user", AccessKeyId=key["AccessKeyId"])
        iam.delete_login_profile(UserName="fresh-user")
        iam.delete_user(UserName="fresh-user")
        iam.delete_role(RoleName="fresh-role")
