"""Isolation: every owner's report and e-mail holds only findings the owner owns, and no address
outside `owners.allowed_domains` is ever a recipient.

A property over random organizations, through the real config loader, owner ladder, enrich,
aggregate and message builder; the expected owner of each finding comes from an independent
reading of the ladder as DESIGN.md states it (first rule with a usable address wins; the nearest
mapped OU only; names map to addresses; anything outside the allowed domains falls through).
Then one end-to-end check of the demo run's e-mails and their attached workbooks.
"""

from __future__ import annotations

import email
import io
import json
import re
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from email.message import Message
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from reporter.aggregate import by_owner
from reporter.config import Settings, load_data
from reporter.deliver.message import (
    XLSX_TYPE,
    Attachment,
    Envelope,
    build_message,
    owner_recipients,
)
from reporter.enrich import enrich
from reporter.exceptions import ExceptionOutcome, apply_exceptions, notices_for
from reporter.exceptions import rules_from_settings as exception_rules
from reporter.models import (
    Account,
    AccountCoverage,
    Finding,
    FindingType,
    OwnerReport,
    ResolvedFinding,
    RunContext,
)
from reporter.owners import is_allowed, rules_from_settings
from reporter.pipeline import _notices, _resolved_owner
from reporter.render.environment import make_environment
from reporter.render.xlsx import render_owner_xlsx
from tests.fuzz.strategies import ran, tally

NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
DOMAINS = ("example.com", "corp.example")
FALLBACK = "security-team@example.com"
NAMES = {"team-a": "alice@example.com", "team-b": "carol@corp.example", "ops": "Ops@Example.com"}
ALLOWED = ["alice@example.com", "bob@example.com", "carol@corp.example", "Dave@Example.COM"]
# Owner values as tags and contacts carry them: usable, outside the domains, malformed, names.
TAG_VALUES = [
    *ALLOWED,
    *NAMES,
    FALLBACK,
    " bob@example.com ",
    "eve@evil.test",
    "mallory@example.com.evil.test",
    "alice@example.com, eve@evil.test",
    "eve@evil.test alice@example.com",
    "<script>@example.com",
    "alice@",
    "team-z",
    "",
]
ACCOUNT_IDS = [f"{n}" * 12 for n in range(1, 8)]
OUS = ["ou-aaaa-11111111", "ou-bbbb-22222222", "ou-cccc-33333333"]
STEPS = ["principal_tag", "account_tag", "ou", "owner_map", "alternate_contact"]
CONTEXT = RunContext("20260302T060000Z-iso", NOW, date(2026, 2, 23), date(2026, 3, 2), "org")
ENV = make_environment()
ENVELOPE = Envelope("reporter@example.com", FALLBACK, "[Unused access]")
PLAIN = re.compile(r"[A-Za-z0-9._%+-]+@([A-Za-z0-9.-]+)")

_config_owner = st.sampled_from([*ALLOWED, *NAMES])
_tag = st.sampled_from(TAG_VALUES)


@st.composite
def organizations(draw: st.DrawFn) -> dict[str, Any]:
    ids = draw(st.lists(st.sampled_from(ACCOUNT_IDS), min_size=1, max_size=5, unique=True))
    accounts = {}
    for account_id in ids:
        ou = draw(st.lists(st.sampled_from(OUS), max_size=2, unique=True))
        tags = {"owner": draw(_tag)} if draw(st.booleans()) else {}
        accounts[account_id] = Account(
            id=account_id,
            name=f"acct-{account_id}",
            ou_path=tuple(f"OU {o}" for o in ou),
            ou_ids=("r-root", *ou),
            tags=tags,
        )
    findings = []
    # An account the organization does not list (a file import, or one that left) as well.
    for account_id in [*ids, "999999999999"]:
        for index in range(draw(st.integers(0, 3))):
            kind = draw(st.sampled_from(list(FindingType)))
            principal = "user" if kind in (FindingType.UNUSED_PASSWORD,) else "role"
            tags = {"owner": draw(_tag)} if draw(st.booleans()) else {}
            findings.append(
                Finding(
                    type=kind,
                    account_id=account_id,
                    principal_arn=f"arn:aws:iam::{account_id}:{principal}/p{index}-{kind.value}",
                    created_at=NOW - timedelta(days=draw(st.integers(0, 400))),
                    last_accessed=NOW - timedelta(days=200),
                    principal_tags=tags,
                )
            )
    ladder = draw(st.permutations(STEPS))[: draw(st.integers(0, len(STEPS)))]
    owners = {
        "ladder": [*ladder, "fallback"],
        "ous": draw(st.dictionaries(st.sampled_from(["r-root", *OUS]), _config_owner, max_size=3)),
        "accounts": draw(st.dictionaries(st.sampled_from(ACCOUNT_IDS), _config_owner, max_size=3)),
        "names": NAMES,
        "managers": {
            "alice@example.com": "boss@example.com",
            "bob@example.com": "chief@corp.example",
        },
        "fallback": [FALLBACK],
        "allowed_domains": list(DOMAINS),
        "security_team": [FALLBACK],
    }
    rules = [
        {
            "id": f"EXC-{n}",
            "accounts": [draw(st.sampled_from(ids))],
            "types": [draw(st.sampled_from(list(FindingType))).value],
            "reason": "accepted <b>risk</b>",
            "approved_by": draw(st.sampled_from(ALLOWED)),
            "expires": str(NOW.date() + timedelta(days=draw(st.integers(1, 60)))),
        }
        for n in range(draw(st.integers(0, 2)))
    ]
    data = {
        "owners": owners,
        "exceptions": {"rules": rules},
        "reports": {"sla_days": {"UnusedIAMRole": 30, "UnusedPermission": 60}},
        "mail": {"cc_manager_on_sla_breach": True},
    }
    contacts = draw(st.dictionaries(st.sampled_from(ids), _tag, max_size=3))
    resolved = [
        ResolvedFinding(
            key=f"{a}/UnusedIAMRole/arn:aws:iam::{a}:role/gone",
            account_id=a,
            type="UnusedIAMRole",
            principal_arn=f"arn:aws:iam::{a}:role/gone",
            first_seen=NOW - timedelta(days=30),
            resolved_at=NOW,
        )
        for a in draw(st.lists(st.sampled_from(ids), max_size=2, unique=True))
    ]
    return {
        "accounts": accounts,
        "findings": findings,
        "data": data,
        "contacts": contacts,
        "resolved": resolved,
    }


# --- The ladder, read independently ---------------------------------------------------------


def _usable(value: str) -> str | None:
    value = value.strip()
    address = value if "@" in value else NAMES.get(value, "")
    match = PLAIN.fullmatch(address)
    if not match or match.group(1).lower() not in DOMAINS:
        return None
    return address.lower()


def expected_owner(
    finding: Finding,
    account: Account | None,
    ladder: list[str],
    data: Mapping[str, Any],
    contacts: Mapping[str, str],
) -> str | None:
    owners = data["owners"]
    for step in ladder:
        values: list[str] = []
        if step == "principal_tag":
            values = [finding.principal_tags.get("owner", "")]
        elif step == "account_tag" and account is not None:
            values = [account.tags.get("owner", "")]
        elif step == "ou" and account is not None:
            mapped = [owners["ous"][o] for o in account.ou_ids if o in owners["ous"]]
            values = mapped[-1:]  # the nearest mapped OU, and only it
        elif step == "owner_map":
            values = [owners["accounts"].get(finding.account_id, "")]
        elif step == "alternate_contact":
            values = [contacts.get(finding.account_id, "")]
        for value in values:
            if value.strip() and (address := _usable(value)):
                return address
    return None


def _run(
    org: dict[str, Any],
) -> tuple[Settings, list[Any], tuple[OwnerReport, ...], ExceptionOutcome]:
    settings = load_data(org["data"], {}, "isolation", today=NOW.date())
    rules = rules_from_settings(settings.owners)
    findings, accounts = org["findings"], org["accounts"]
    outcome = apply_exceptions(findings, exception_rules(settings.exceptions), NOW.date(), 14)
    items = enrich(
        findings,
        accounts,
        rules,
        "us-east-1",
        NOW,
        exceptions=outcome.by_key,
        sla_days={t.value: d for t, d in settings.reports.sla_days.items()},
        contacts=org["contacts"],
    )
    coverage = [
        AccountCoverage(a.id, a.name, a.state, covered=True, sources=("access_analyzer",))
        for a in accounts.values()
    ]
    reports = by_owner(
        items,
        rules.fallback,
        CONTEXT,
        coverage,
        resolved=org["resolved"],
        resolved_owner=lambda r: _resolved_owner(r, accounts, rules, org["contacts"]),
        notices_by_recipient=_notices(outcome, items, rules.fallback, settings.owners.allows),
    )
    return settings, items, reports, outcome


ISOLATION_EXAMPLES = 300
MESSAGE_EXAMPLES = 15


@settings(
    max_examples=ISOLATION_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(organizations())
def test_every_report_holds_only_what_its_recipient_owns(org: dict[str, Any]) -> None:
    _, items, reports, outcome = _run(org)
    ladder = [s for s in org["data"]["owners"]["ladder"] if s != "fallback"]

    def owner_of(finding: Finding) -> str | None:
        account = org["accounts"].get(finding.account_id)
        return expected_owner(finding, account, ladder, org["data"], org["contacts"])

    expected = {i.finding.key: owner_of(i.finding) for i in items}
    assert {i.finding.key: i.owner.owner for i in items} == expected
    placed: Counter[str] = Counter()
    for report in reports:
        # No recipient is ever outside the allowed domains.
        assert is_allowed(report.owner, DOMAINS), report.owner
        for item in report.items:
            owner = expected[item.finding.key]
            assert owner == report.owner or (owner is None and report.owner == FALLBACK), (
                report.owner,
                item.finding.key,
                owner,
            )
            placed[item.finding.key] += 1
        # Only the accounts (and their coverage) of the findings it holds.
        assert {a.id for a in report.accounts} == {i.account.id for i in report.items}
        assert {c.account_id for c in report.coverage} <= {a.id for a in report.accounts}
        for gone in report.resolved:
            # A gone principal has no tags; the SECURITY contacts are those read this run.
            finding = Finding(FindingType(gone.type), gone.account_id, gone.principal_arn)
            account = org["accounts"].get(gone.account_id)
            owner = expected_owner(finding, account, ladder, org["data"], org["contacts"])
            assert owner == report.owner or (owner is None and report.owner == FALLBACK)
        for notice in report.exception_notices:
            # Every rule that matches a finding of the report, not only the one applied to it
            # (overlapping rules: the first wins, and both may be expiring).
            covered = {n.id for n in notices_for([i.finding.key for i in report.items], outcome)}
            assert notice.id in covered or notice.approved_by.lower() == report.owner, notice
    # Nothing lost: each owned finding in exactly one report, each unowned one with the fallback.
    assert placed == Counter({i.finding.key: 1 for i in items})
    unowned = sum(1 for i in items if i.owner.owner is None)
    ran("isolation", f"{min(len(reports), 3)}{'+' if len(reports) > 2 else ''} reports")
    tally("isolation: findings", "unowned" if unowned else "all owned")


def _addresses(message: Message, header: str) -> list[str]:
    return [address for _, address in getaddresses(message.get_all(header, []))]


@settings(
    max_examples=MESSAGE_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(organizations().filter(lambda org: bool(org["findings"])))
def test_every_message_and_workbook_holds_only_what_its_recipient_owns(
    org: dict[str, Any],
) -> None:
    settings_, items, reports, _ = _run(org)
    all_arns = {i.finding.principal_arn for i in items}
    for report in reports:
        recipients = owner_recipients(
            report, settings_.owners.allowed_domains, settings_.mail.cc_manager_on_sla_breach
        )
        workbook = render_owner_xlsx(report)
        attachment = Attachment("findings.xlsx", workbook, *XLSX_TYPE)
        msg = build_message(report, (attachment,), ENVELOPE, ENV, recipients=recipients)
        parsed = email.message_from_bytes(msg.as_bytes())
        to, cc = _addresses(parsed, "To"), _addresses(parsed, "Cc")
        assert to == [report.owner]
        assert all(is_allowed(a, DOMAINS) for a in [*to, *cc]), (to, cc)
        assert set(cc) <= {"boss@example.com", "chief@corp.example"}
        own = {i.finding.principal_arn for i in report.items}
        foreign = all_arns - own
        for part in parsed.walk():
            if part.get_content_maintype() == "text":
                body = part.get_payload(decode=True).decode("utf-8")
                assert not [arn for arn in foreign if arn in body], report.owner
        arns = _workbook_arns(workbook)
        assert own <= arns and not arns & foreign, report.owner
    ran("isolation: e-mails and workbooks", f"{min(len(reports), 3)} messages")


# --- End to end: the demo run's e-mails -----------------------------------------------------


def test_demo_run_mails_each_owner_only_their_findings(demo_run: Path) -> None:
    """Every .eml of the sandbox run goes to allowed addresses only, and its workbook lists
    only principals of findings the run assigned to that recipient (unowned ones too, for the
    fallback recipients; everything, for the security team's summary)."""
    defaults = load_data({}, {}, "defaults").owners  # the demo runs the default owners section
    findings = json.loads((demo_run / "data/findings.json").read_text(encoding="utf-8"))
    owned: dict[str | None, set[str]] = {}
    for f in findings["findings"]:
        owned.setdefault(f["owner"], set()).add(f["principal_arn"])
    everything = set().union(*owned.values())
    messages = sorted(demo_run.glob("outbox/**/*.eml"))
    assert len(messages) >= 3
    seen: Counter[str] = Counter()
    for path in messages:
        parsed = email.message_from_bytes(path.read_bytes())
        to = _addresses(parsed, "To")
        assert to and all(defaults.allows(a) for a in [*to, *_addresses(parsed, "Cc")])
        (recipient,) = to
        summary = path.parent.name == "summary"
        allowed = set(owned.get(recipient, ()))
        if summary:
            allowed = everything
        elif recipient in defaults.fallback:
            allowed |= owned.get(None, set())
        (workbook,) = [p for p in parsed.walk() if p.get_filename() == "findings.xlsx"]
        arns = _workbook_arns(workbook.get_payload(decode=True))
        assert arns, path.name
        assert arns <= allowed, (recipient, sorted(arns - allowed)[:3])
        if not summary:  # and the owner's report holds every finding they own
            assert owned.get(recipient, set()) <= arns
        seen["summary" if summary else "owner"] += 1
    assert seen["owner"] >= 2 and seen["summary"] >= 1


def _workbook_arns(data: bytes) -> set[str]:
    book = load_workbook(io.BytesIO(data), read_only=True)
    return {
        cell
        for sheet in book.worksheets
        for row in sheet.iter_rows(values_only=True)
        for cell in row
        if isinstance(cell, str) and cell.startswith("arn:aws:iam::")
    }
