"""Organization access principals get no deletion command anywhere, and are listed for the
security team; every finding carries its observation window (issue 23)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from email import message_from_bytes
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from reporter.aggregate import by_owner, summarise
from reporter.config import load_data
from reporter.deliver.message import (
    TOP_ACTIONS,
    Envelope,
    build_message,
    build_summary_message,
)
from reporter.enrich import enrich
from reporter.models import (
    Account,
    Finding,
    FindingType,
    ObservationWindow,
    ReportItem,
    RunContext,
    SourceRef,
)
from reporter.orgaccess import (
    BUILT_IN,
    CONTROL_TOWER,
    ORGANIZATIONS,
    PROTECTED,
    REPORTER,
    STACKSETS,
    TRUSTS_MANAGEMENT,
    classify,
    rules_from_settings,
    trusted_accounts,
    window_text,
)
from reporter.owners import OwnerRules
from reporter.pipeline import Dependencies, run
from reporter.render import data
from reporter.render.environment import make_environment
from reporter.render.pdf import render_owner_pdf, render_summary_pdf
from reporter.render.schema import FINDINGS_SCHEMA
from reporter.render.xlsx import render_owner_xlsx, render_summary_xlsx
from reporter.sandbox import Sandbox, SandboxSpec
from reporter.sandbox.data import TRUSTED_BY_MANAGEMENT_ROLE
from reporter.session import AwsOptions, SessionFactory

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
ACCOUNT = Account(id="111111111111", name="prod", tags={"owner": "owner@example.com"})
MANAGEMENT = "999999999999"
SECURITY = "888888888888"
ADMIN_ARN = f"arn:aws:iam::{SECURITY}:role/UnusedAccessReporterFindingsReader"
OWNER_RULES = OwnerRules(
    account_tag_keys=("owner",), allowed_domains=("example.com",), fallback=("sec@example.com",)
)
# A command that takes something away. Organization access steps may only read.
REMOVING = re.compile(
    r"\baws (iam|sso-admin|cloudformation) (delete|detach|remove|update-access-key|put-|"
    r"attach|update-assume|deploy|create-policy)"
)


def settings(**remediation: Any) -> Any:
    return load_data(
        {
            "organization": {
                "delegated_admin_role_arn": ADMIN_ARN,
                "account_access_role_name": "OrgAdministrator",
                "security_tooling_accounts": [SECURITY],
            },
            "remediation": {
                "protected_principals": [
                    {"arn": "arn:aws:iam::*:role/break-glass-*", "reason": "Break-glass role"},
                    {"arn": "arn:aws:iam::*:user/emergency-*", "reason": "Break-glass user"},
                ],
                **remediation,
            },
            "owners": {"security_team": ["sec@example.com"], "fallback": ["sec@example.com"]},
        },
        environ={},
        source="test",
    )


def role(name: str, **kwargs: Any) -> Finding:
    return Finding(
        kwargs.pop("type", FindingType.UNUSED_ROLE),
        kwargs.pop("account_id", ACCOUNT.id),
        kwargs.pop("arn", f"arn:aws:iam::{ACCOUNT.id}:role/{name}"),
        sources=(SourceRef("access_analyzer", f"id-{name}"),),
        **kwargs,
    )


def trust(account_id: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )


# Every built-in pattern (by an example name), the renamed Organizations role, the reporter's own
# roles, a configured break-glass role and user, and roles trusted by the management account.
CASES: dict[str, tuple[Finding, str]] = {
    "OrganizationAccountAccessRole": (role("OrganizationAccountAccessRole"), ORGANIZATIONS),
    "renamed": (role("OrgAdministrator"), ORGANIZATIONS),
    "AWSControlTowerExecution": (role("AWSControlTowerExecution"), CONTROL_TOWER),
    "aws-controltower-*": (role("aws-controltower-ReadOnlyExecutionRole"), CONTROL_TOWER),
    "AWSControlTower*": (role("AWSControlTowerAdmin"), CONTROL_TOWER),
    "StackSets": (role("AWSCloudFormationStackSetExecutionRole"), STACKSETS),
    "member role": (role("UnusedAccessReporterReadOnly"), REPORTER),
    "config role ARN": (role("x", account_id=SECURITY, arn=ADMIN_ARN), REPORTER),
    "break-glass role": (role("break-glass-admin"), PROTECTED),
    "break-glass user": (
        Finding(
            FindingType.UNUSED_PASSWORD,
            ACCOUNT.id,
            f"arn:aws:iam::{ACCOUNT.id}:user/emergency-ops",
            sources=(SourceRef("access_analyzer", "id-user"),),
        ),
        PROTECTED,
    ),
    "unused permissions of a built-in role": (
        role("OrganizationAccountAccessRole", type=FindingType.UNUSED_PERMISSION),
        ORGANIZATIONS,
    ),
    "trusts the management account": (
        role("ops-from-management", trust_policy=trust(MANAGEMENT)),
        TRUSTS_MANAGEMENT,
    ),
    "trusts a security-tooling account": (
        role("security-scanner", trust_policy=trust(SECURITY)),
        TRUSTS_MANAGEMENT,
    ),
}
ORDINARY = (
    role("batch-worker"),
    role("own-account-trust", trust_policy=trust(ACCOUNT.id)),
    role("vendor", trust_policy=trust("444455556666")),
)


def test_every_built_in_pattern_has_a_case() -> None:
    names = [f.principal_name for f, _ in CASES.values()]
    for pattern in BUILT_IN:
        assert any(re.fullmatch(pattern.name.replace("*", ".*"), n) for n in names), pattern
        assert pattern.source_doc.startswith("https://docs.aws.amazon.com/")


@pytest.mark.parametrize("case", sorted(CASES))
def test_recognised_with_the_reason_and_no_removing_command(case: str) -> None:
    finding, kind = CASES[case]
    rules = rules_from_settings(settings(), MANAGEMENT)
    access = classify(finding, rules)
    assert access is not None and access.kind == kind
    (item,) = enrich(
        [finding], {ACCOUNT.id: ACCOUNT}, OWNER_RULES, "us-east-1", NOW, organization=rules
    )
    assert item.organization_access == access
    assert not item.sla_breached and item.priority < 20
    commands = [step.command for step in item.remediation]
    assert commands and not any(REMOVING.search(c) for c in commands), commands
    detail = "\n".join(step.detail for step in item.remediation)
    assert "exceptions:" in detail and "approved_by" in detail and "expires:" in detail


@pytest.mark.parametrize("finding", ORDINARY, ids=lambda f: f.principal_name)
def test_ordinary_roles_are_not_organization_access(finding: Finding) -> None:
    assert classify(finding, rules_from_settings(settings(), MANAGEMENT)) is None


def test_trusted_accounts_reads_the_forms_iam_allows() -> None:
    document = {
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ["111111111111", MANAGEMENT]}, "Action": "*"},
            {"Effect": "Deny", "Principal": {"AWS": "222222222222"}, "Action": "sts:AssumeRole"},
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:*"},
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::333333333333:role/x"},
                "Action": ["sts:TagSession", "sts:AssumeRole"],
            },
        ]
    }
    assert trusted_accounts(json.dumps(document)) == {"111111111111", MANAGEMENT, "333333333333"}
    assert trusted_accounts("not json") == frozenset()


def test_window_sentences() -> None:
    since = date(2025, 1, 2)
    assert window_text(ObservationWindow(90, "analyzer_configuration", since)) == (
        "Not used in the last 90 days that Access Analyzer tracks (tracking period 90 days, "
        "from the analyzer's configuration; analyzer since 2025-01-02)"
    )
    assert "fixed for Security Hub's service-linked analyzer" in window_text(
        ObservationWindow(90, "service_linked_analyzer", None)
    )
    assert "sources.iam.unused_after_days" in window_text(ObservationWindow(60, "iam"))


# --- every output -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def items() -> tuple[ReportItem, ...]:
    findings = [f for f, _ in CASES.values()] + [ORDINARY[0]]
    accounts = {ACCOUNT.id: ACCOUNT, SECURITY: Account(SECURITY, "security", tags=ACCOUNT.tags)}
    windows = {"access_analyzer": ObservationWindow(90, "analyzer_configuration", date(2025, 1, 2))}
    return tuple(
        enrich(
            findings,
            accounts,
            OWNER_RULES,
            "us-east-1",
            NOW,
            organization=rules_from_settings(settings(), MANAGEMENT),
            windows=windows,
            exception_approver="sec@example.com",
            exception_expires=date(2027, 5, 27),
        )
    )


def _context() -> RunContext:
    return RunContext("20261128T070000Z-abc123", NOW, date(2026, 11, 21), NOW.date(), "whole org")


def _pdf_text(blob: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(blob)).pages)


def _bodies(message: EmailMessage) -> str:
    return "\n".join(
        part.get_content()
        for part in message.walk()
        if part.get_content_type() in ("text/plain", "text/html")
    )


def test_no_output_carries_a_removing_command_and_the_security_team_gets_the_list(
    items: tuple[ReportItem, ...],
) -> None:
    access = [i for i in items if i.organization_access is not None]
    assert len(access) == len(CASES)
    context = _context()
    reports = by_owner(items, ("sec@example.com",), context, [])
    summary = summarise(items, reports, context, [], 0, 0)
    env = make_environment(None)

    # findings.json: valid, every finding has its window; organization access has no command
    # that removes anything, and sorts after the actionable finding.
    document = json.loads(data.findings_json(items, context))
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(document, FINDINGS_SCHEMA)
    records = document["findings"]
    assert records[0]["principal_name"] == "batch-worker"
    assert records[0]["organization_access"] is None
    assert any(REMOVING.search(s["command"]) for s in records[0]["remediation"])
    for record in records:
        assert record["observation_window"] == {
            "days": 90,
            "source": "analyzer_configuration",
            "since": "2025-01-02",
        }
        if record["organization_access"] is not None:
            assert not any(REMOVING.search(s["command"]) for s in record["remediation"])
    csv_text = data.findings_csv(items, context).decode()
    assert "organization_access_kind" in csv_text.splitlines()[0]

    for report in reports:
        # The workbook: the Remediation sheet's commands of organization access rows.
        book = load_workbook(io.BytesIO(render_owner_xlsx(report)), read_only=True)
        rows = list(book["Remediation"].iter_rows(values_only=True))
        header = rows[0]
        keyed = {i.finding.key: i for i in report.items}
        for row in rows[1:]:
            item = keyed[row[header.index("key")]]
            if item.organization_access is not None:
                assert not REMOVING.search(str(row[header.index("command")]))
        # The PDF: only the actionable finding's commands, none of the others'.
        text = _pdf_text(render_owner_pdf(report, env))
        assert "Organization access — review with the security team" in text
        # The e-mail: counted apart, never among the top actions.
        message = build_message(report, (), Envelope("reporter@example.com"), env)
        body = _bodies(message)
        assert "organization access" in body
        assert not REMOVING.search(body)
        for item in report.items:
            if item.organization_access is not None:
                assert f"{item.finding.type.label}: {item.finding.principal_name}" not in body

    owner_pdf = _pdf_text(render_owner_pdf(reports[0], env))
    assert len(REMOVING.findall(owner_pdf)) == len(
        REMOVING.findall(_pdf_text(render_owner_pdf(by_owner(items[-1:], (), context, [])[0], env)))
    )

    # The security team's list: summary PDF, workbook and e-mail name every one.
    summary_text = re.sub(r"\s+", " ", _pdf_text(render_summary_pdf(summary, env)))
    assert "Organization access — for the security team" in summary_text
    book = load_workbook(io.BytesIO(render_summary_xlsx(summary)), read_only=True)
    listed = [str(c) for row in book["Summary"].iter_rows(values_only=True) for c in row if c]
    summary_mail = _bodies(
        build_summary_message(summary, (), Envelope("r@example.com"), env, "sec@example.com")
    )
    for item in access:
        assert item.finding.principal_name[:40] in summary_text
        assert item.finding.principal_arn in listed
    # The e-mail names the first ten and counts them all; the attachments list every one.
    assert f"Organization access, review with the security team: {len(access)} finding(s)" in (
        summary_mail
    )
    assert sum(i.finding.principal_name in summary_mail for i in access) >= TOP_ACTIONS


# --- the sandbox, end to end ---------------------------------------------------------------

SANDBOX_NOW = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def sandbox_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, Path]]:
    out = tmp_path_factory.mktemp("orgaccess")
    with Sandbox(SandboxSpec(seed=5, member_accounts=6, ous=2, now=SANDBOX_NOW)) as sandbox:
        config = load_data(
            {
                "organization": {
                    "home_region": sandbox.home_region,
                    "delegated_admin_role_arn": sandbox.delegated_admin_role_arn,
                    "member_role_name": sandbox.member_role_name,
                },
                "sources": {
                    "security_hub": {"enabled": True},
                    "access_analyzer": {"enabled": True, "recommendations": False},
                    "iam": {"enabled": False},
                },
                "remediation": {
                    "protected_principals": [
                        {"arn": "arn:aws:iam::*:role/break-glass-*", "reason": "Break-glass"}
                    ]
                },
                "state": {"database_url": f"sqlite:///{out / 'state.db'}"},
            },
            environ={},
            source="test",
            today=SANDBOX_NOW.date(),
        )
        sessions = SessionFactory(
            sandbox.session(), AwsOptions(region=sandbox.home_region), sandbox.configure_session
        )
        result = run(config, Dependencies(sessions=sessions, output_dir=out / "runs"), SANDBOX_NOW)
        yield sandbox, Path(result.run_dir)


def test_the_sandbox_role_trusting_the_management_account_is_recognised_by_its_trust_policy(
    sandbox_run: tuple[Sandbox, Path],
) -> None:
    sandbox, run_dir = sandbox_run
    records = json.loads((run_dir / "data" / "findings.json").read_text())["findings"]
    by_name = {r["principal_name"]: r for r in records}
    trusted = by_name[TRUSTED_BY_MANAGEMENT_ROLE]
    assert trusted["organization_access"]["kind"] == TRUSTS_MANAGEMENT
    assert sandbox.management_account_id in trusted["organization_access"]["reason"]
    kinds = {(r["organization_access"] or {}).get("kind") for r in records}
    assert {ORGANIZATIONS, CONTROL_TOWER, STACKSETS, PROTECTED, TRUSTS_MANAGEMENT} <= kinds
    for record in records:
        assert record["observation_window"]["days"] == 30
        assert record["observation_window"]["source"] == "analyzer_configuration"
        assert record["observation_window"]["since"] is not None
        if record["organization_access"]:
            assert not any(REMOVING.search(s["command"]) for s in record["remediation"])
    # The e-mails: organization access counted apart, never a command.
    for eml in (run_dir / "outbox").rglob("*.eml"):
        message = message_from_bytes(eml.read_bytes())
        for part in message.walk():
            if part.get_content_type() in ("text/plain", "text/html"):
                assert not REMOVING.search(part.get_payload(decode=True).decode())
