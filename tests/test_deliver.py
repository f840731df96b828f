"""Delivery: messages, the SMTP transport against a real server, the ledger, retries, crashes.

Every SMTP test talks to an aiosmtpd server on 127.0.0.1 and parses back what it received.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from reporter.config import load_data
from reporter.deliver.driver import (
    ALREADY_SENT,
    Deliverer,
    DeliveryCancelled,
    Preview,
    RetryPolicy,
    open_deliverer,
)
from reporter.deliver.ledger import Ledger, LedgerKey, Status
from reporter.deliver.message import (
    PDF_TYPE,
    XLSX_TYPE,
    Attachment,
    Envelope,
    build_message,
    message_id,
    owner_recipients,
    subject,
)
from reporter.deliver.outbox import OutboxTransport, as_bytes
from reporter.deliver.smtp import SmtpTransport
from reporter.errors import StateError
from reporter.models import OwnerReport
from reporter.render.environment import make_environment
from reporter.schedule import JOB_ID, slot_round
from tests.factories import OWNER, make_finding, make_item, make_report, make_summary
from tests.smtp_server import DROP, Recorder, smtp_server

ENVELOPE = Envelope("reporter@example.com", "security-team@example.com", "[Unused access]")
ALLOWED = ("example.com",)
ALICE = "alice@example.com"
BOB = "bob@example.com"
CAROL = "carol@example.com"
MANAGER = "boss@example.com"
# A round id as `serve` makes it: colons and `+` included (the Message-ID must not carry them).
ROUND = slot_round(JOB_ID, datetime(2026, 11, 30, 6, tzinfo=UTC))
# RFC 5322 msg-id: "<" dot-atom-text "@" dot-atom-text ">".
ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
MSG_ID = re.compile(rf"<{ATOM}(\.{ATOM})*@{ATOM}(\.{ATOM})*>")


def files(tag: str) -> tuple[Attachment, ...]:
    return (
        Attachment("report.pdf", b"%PDF-1.7 " + tag.encode() * 50, *PDF_TYPE),
        Attachment("findings.xlsx", b"PK\x03\x04" + tag.encode() * 50, *XLSX_TYPE),
    )


def report_for(owner: str, *, breached: bool = False, manager: str | None = None) -> OwnerReport:
    item = make_item(
        finding=make_finding(name=f"role-of-{owner.split('@')[0]}"),
        owner=owner,
        sla_days=30,
        sla_breached=breached,
        manager=manager,
    )
    return make_report(owner=owner, items=(item,))


def smtp_settings(port: int, **mail: object) -> object:
    return load_data(
        {
            "owners": {"allowed_domains": ["example.com"]},
            "mail": {
                "transport": "smtp",
                "from_address": "reporter@example.com",
                "reply_to": "security-team@example.com",
                "smtp": {"host": "127.0.0.1", "port": port, "security": "none"},
                **mail,
            },
        },
        {},
    )


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def server() -> Iterator[tuple[Recorder, int]]:
    with smtp_server() as running:
        yield running


@pytest.fixture
def ledger(state_url: str) -> Iterator[Ledger]:
    store = Ledger.open(state_url)
    yield store
    store.dispose()


def deliverer(
    port: int, ledger: Ledger | None, *, round_id: str = ROUND, **kwargs: object
) -> Deliverer:
    settings = smtp_settings(port)
    options: dict[str, object] = {
        "transport": SmtpTransport(settings.mail.smtp),  # type: ignore[attr-defined]
        "envelope": ENVELOPE,
        "env": make_environment(),
        "allowed_domains": ALLOWED,
        "run_id": "20250310T063000Z-aaaaaa",
        "round_id": round_id,
        "ledger": ledger,
        "retry": RetryPolicy(attempts=3, backoff_seconds=2.0),
        "security_team": ("security-team@example.com",),
        "sleep": Sleeps(),
    }
    options.update(kwargs)
    return Deliverer(**options)  # type: ignore[arg-type]


# --- the message ---------------------------------------------------------------------------------


def test_manager_is_copied_only_on_sla_breach_and_only_inside_allowed_domains() -> None:
    on_time = report_for(ALICE, manager=MANAGER)
    assert owner_recipients(on_time, ALLOWED, cc_manager=True).cc == ()
    late = report_for(ALICE, breached=True, manager=MANAGER)
    assert owner_recipients(late, ALLOWED, cc_manager=True).cc == (MANAGER,)
    assert owner_recipients(late, ALLOWED, cc_manager=False).cc == ()
    outside = report_for(ALICE, breached=True, manager="boss@evil.test")
    recipients = owner_recipients(outside, ALLOWED, cc_manager=True)
    assert recipients.cc == ()
    assert recipients.refused == (("boss@evil.test", "manager outside owners.allowed_domains"),)


def test_an_owner_outside_the_allowed_domains_is_not_addressed_at_all() -> None:
    for owner in ("mallory@evil.test", "evil@x.test alice@example.com"):
        recipients = owner_recipients(
            report_for(owner, breached=True, manager=MANAGER), ALLOWED, True
        )
        assert recipients.to == () and recipients.cc == ()
        assert recipients.refused[0][0] == owner


def test_message_has_subject_counts_period_headers_bodies_and_attachments() -> None:
    report = report_for(ALICE, breached=True, manager=MANAGER)
    recipients = owner_recipients(report, ALLOWED, True)
    msg = build_message(report, files("a"), ENVELOPE, make_environment(), recipients=recipients)
    assert msg["Subject"] == (
        "[Unused access] 1 finding in 1 account, 1 past SLA, 2025-03-03 to 2025-03-09"
    )
    assert subject(report, "[x]") == msg["Subject"].replace("[Unused access]", "[x]")
    assert (msg["From"], msg["To"], msg["Cc"], msg["Reply-To"]) == (
        "reporter@example.com",
        ALICE,
        MANAGER,
        "security-team@example.com",
    )
    html = msg.get_body(("html",))
    plain = msg.get_body(("plain",))
    assert html is not None and plain is not None
    assert "past their remediation deadline" in html.get_content()
    assert MANAGER in plain.get_content()
    assert sorted(p.get_filename() for p in msg.iter_attachments()) == [
        "findings.xlsx",
        "report.pdf",
    ]


def test_an_approver_with_no_finding_hears_of_their_exceptions() -> None:
    from tests.factories import make_notice

    notices = (
        make_notice(),
        make_notice(id="EXC-OLD", kind="stale", matched=0, reason="vendor <b>gone</b>"),
    )
    report = make_report(owner="ciso@example.com", items=(), exception_notices=notices)
    msg = build_message(report, files("a"), ENVELOPE, make_environment())
    assert msg["Subject"] == (
        "[Unused access] 2 exceptions need your attention, 2025-03-03 to 2025-03-09"
    )
    html = msg.get_body(("html",))
    plain = msg.get_body(("plain",))
    assert html is not None and plain is not None
    text = plain.get_content()
    assert "EXC-2025-007: expires on 2025-03-24 (approved by ciso@example.com" in text
    assert "EXC-OLD: matches no finding (expires 2025-03-24); remove it" in text
    assert "Top actions" not in text and "Top actions" not in html.get_content()
    assert "vendor &lt;b&gt;gone&lt;/b&gt;" in html.get_content()


def test_untrusted_names_are_escaped_in_the_html_body() -> None:
    # (No "/" in the name: the principal name is what follows the ARN's last slash.)
    item = make_item(finding=make_finding(name="x<img src=x onerror=alert(1)>"), owner=ALICE)
    report = make_report(owner=ALICE, items=(item,))
    msg = build_message(report, files("a"), ENVELOPE, make_environment())
    html = msg.get_body(("html",))
    assert html is not None
    assert "<img" not in html.get_content() and "x&lt;img src=x" in html.get_content()


def test_templates_are_overridable(tmp_path: Path) -> None:
    (tmp_path / "email_body.txt.j2").write_text("Custom for {{ report.owner }}\n")
    msg = build_message(report_for(ALICE), files("a"), ENVELOPE, make_environment(tmp_path))
    plain = msg.get_body(("plain",))
    assert plain is not None and plain.get_content().strip() == f"Custom for {ALICE}"


def test_message_id_is_valid_and_stable_per_round_and_recipient() -> None:
    week2 = slot_round(JOB_ID, datetime(2026, 12, 7, 6, tzinfo=UTC))
    mid = message_id(ROUND, ALICE, "example.com")
    assert MSG_ID.fullmatch(mid) and mid.endswith("@example.com>")
    assert mid == message_id(ROUND, ALICE.upper(), "example.com")
    ids = {message_id(r, who, "example.com") for r in (ROUND, week2) for who in (ALICE, BOB)}
    assert len(ids) == 4
    # What goes on the wire is the id itself, not a part the e-mail package could parse.
    msg = build_message(report_for(ALICE), (), ENVELOPE, make_environment(), message_key=ROUND)
    assert f"Message-ID: {mid}\r\n".encode() in as_bytes(msg)


def test_message_id_domain_is_the_senders_unless_configured() -> None:
    assert ENVELOPE.id_domain == "example.com"
    other = replace(ENVELOPE, message_id_domain="mail.example.org")
    msg = build_message(report_for(ALICE), (), other, make_environment(), message_key=ROUND)
    assert msg["Message-ID"] == message_id(ROUND, ALICE, "mail.example.org")


# --- SMTP end to end ---------------------------------------------------------------------------


def test_each_owner_receives_exactly_one_message_with_both_attachments(
    server: tuple[Recorder, int], ledger: Ledger
) -> None:
    recorder, port = server
    reports = [report_for(ALICE), report_for(BOB, breached=True, manager=MANAGER)]
    d = deliverer(port, ledger)
    summary_files = (
        Attachment("summary.pdf", b"%PDF summary", *PDF_TYPE),
        Attachment("findings.xlsx", b"PK summary", *XLSX_TYPE),
    )
    report = d.deliver(
        ((r, files(r.owner)) for r in reports), make_summary(reports=tuple(reports)), summary_files
    )
    d.transport.close()

    assert [x.status for x in report.deliveries] == ["sent", "sent", "sent"]
    for owner in (ALICE, BOB):
        (got,) = recorder.to(owner)
        msg = got.message
        assert msg["To"] == owner and got.mail_from == "reporter@example.com"
        parts = {p.get_filename(): p.get_content() for p in msg.iter_attachments()}
        assert parts == {a.filename: a.data for a in files(owner)}
        assert msg["Message-ID"] == message_id(ROUND, owner, "example.com")
    # Bob's findings are past their SLA: his manager is on the same message, in Cc.
    (bobs,) = recorder.to(BOB)
    assert bobs.rcpt_tos == [BOB, MANAGER] and bobs.message["Cc"] == MANAGER
    (team,) = recorder.to("security-team@example.com")
    assert sorted(p.get_filename() for p in team.message.iter_attachments()) == [
        "findings.xlsx",
        "summary.pdf",
    ]
    assert "Organization summary" in team.message["Subject"]
    assert len(recorder.received) == 3
    rows = ledger.round(ROUND)
    assert [(e.key.kind, e.key.recipient, e.status, e.attempts) for e in rows] == [
        ("owner", ALICE, Status.SENT, 1),
        ("owner", BOB, Status.SENT, 1),
        ("summary", "security-team@example.com", Status.SENT, 1),
    ]
    assert rows[0].attachments == tuple((a.filename, a.sha256) for a in files(ALICE))
    assert rows[0].provider_id.startswith("2.0.0 Ok: queued as Q")


def test_nothing_goes_to_addresses_outside_the_allowed_domains(
    server: tuple[Recorder, int], ledger: Ledger
) -> None:
    recorder, port = server
    reports = [
        report_for("mallory@evil.test"),
        report_for(ALICE, breached=True, manager="boss@evil.test"),
    ]
    d = deliverer(port, ledger, security_team=("security-team@example.com", "soc@evil.test"))
    result = d.deliver(((r, files(r.owner)) for r in reports), make_summary(), ())
    d.transport.close()

    assert all(a.endswith("@example.com") for a in recorder.rcpt_seen)
    assert {a for r in recorder.received for a in r.rcpt_tos} == {
        ALICE,
        "security-team@example.com",
    }
    failed = {d.recipient: d.error for d in result.failures}
    assert set(failed) == {"mallory@evil.test", "soc@evil.test"}
    assert "outside owners.allowed_domains" in failed["mallory@evil.test"]
    # The security team is told which owner was not reached.
    (team,) = recorder.to("security-team@example.com")
    body = team.message.get_body(("plain",))
    assert body is not None and "mallory@evil.test" in body.get_content()


def test_a_4xx_is_retried_with_backoff_then_succeeds(
    server: tuple[Recorder, int], ledger: Ledger
) -> None:
    recorder, port = server
    recorder.data_replies = ["451 4.3.0 Try again later", DROP]
    d = deliverer(port, ledger)
    delivery = d.owner(report_for(ALICE), files(ALICE))
    d.transport.close()

    assert delivery.status == Status.SENT and delivery.attempts == 3
    assert d.sleep == [2.0, 4.0]  # type: ignore[comparison-overlap]
    assert len(recorder.to(ALICE)) == 1
    entry = ledger.get(LedgerKey(ROUND, "owner", ALICE))
    assert entry is not None and entry.status is Status.SENT and entry.attempts == 3


def test_a_temporary_failure_that_persists_is_left_for_the_next_run(
    server: tuple[Recorder, int], ledger: Ledger
) -> None:
    recorder, port = server
    recorder.data_replies = ["452 4.2.2 Mailbox full"] * 3
    first = deliverer(port, ledger).owner(report_for(ALICE), files(ALICE))
    assert first.status == Status.FAILED_TEMPORARY and "452" in first.error
    # The next run of the round tries again and gets through.
    again = deliverer(port, ledger)
    second = again.owner(report_for(ALICE), files(ALICE))
    again.transport.close()
    assert second.status == Status.SENT
    entry = ledger.get(LedgerKey(ROUND, "owner", ALICE))
    assert entry is not None and entry.attempts == 4 and len(recorder.received) == 1


def test_a_5xx_is_permanent_reported_and_not_retried(
    server: tuple[Recorder, int], ledger: Ledger
) -> None:
    recorder, port = server
    recorder.refuse[BOB] = "550 5.1.1 No such user"
    d = deliverer(port, ledger)
    result = d.deliver((r, files(r.owner)) for r in (report_for(ALICE), report_for(BOB)))
    d.transport.close()
    (failed,) = result.failures
    assert failed.recipient == BOB and failed.status == Status.FAILED_PERMANENT
    assert "550 5.1.1 No such user" in failed.error
    assert d.sleep == []  # type: ignore[comparison-overlap]
    assert [r.rcpt_tos for r in recorder.received] == [[ALICE]]
    # A re-run of the round does not try a permanent failure again.
    rerun = deliverer(port, ledger).owner(report_for(BOB), files(BOB))
    assert rerun.status == Status.FAILED_PERMANENT and "(earlier run)" in rerun.error
    assert recorder.rcpt_seen.count(BOB) == 1


def test_a_second_run_after_a_crash_mid_delivery_sends_only_what_was_missing(
    server: tuple[Recorder, int], ledger: Ledger
) -> None:
    recorder, port = server
    owners = [ALICE, BOB, CAROL]

    def crashing() -> Iterator[tuple[OwnerReport, tuple[Attachment, ...]]]:
        yield report_for(ALICE), files(ALICE)
        raise MemoryError("the process died while rendering Bob's report")

    first = deliverer(port, ledger)
    with pytest.raises(MemoryError):
        first.deliver(crashing())
    first.transport.close()
    assert [r.rcpt_tos for r in recorder.received] == [[ALICE]]

    second = deliverer(port, ledger)
    result = second.deliver((report_for(o), files(o)) for o in owners)
    second.transport.close()
    assert [(d.recipient, d.status) for d in result.deliveries] == [
        (ALICE, ALREADY_SENT),
        (BOB, Status.SENT),
        (CAROL, Status.SENT),
    ]
    assert sorted(a for r in recorder.received for a in r.rcpt_tos) == sorted(owners)


def test_a_crash_between_send_and_record_resends_with_the_same_message_id(
    server: tuple[Recorder, int], ledger: Ledger
) -> None:
    """The documented at-least-once case: the server has the message, the ledger says pending."""
    recorder, port = server

    class DiesAfterSending(Ledger):
        def finish(self, key: LedgerKey, status: Status, now: datetime, **kw: Any) -> Status:
            if any(s is Status.SENT for s, _ in (kw.get("outcomes") or {}).values()):
                raise SystemExit("killed before the ledger commit")
            return super().finish(key, status, now, **kw)

    engine = create_engine(ledger._engine.url)
    with pytest.raises(SystemExit):
        deliverer(port, DiesAfterSending(engine)).owner(report_for(ALICE), files(ALICE))
    pending = ledger.get(LedgerKey(ROUND, "owner", ALICE))
    assert pending is not None and pending.status is Status.PENDING

    d = deliverer(port, ledger)
    assert d.owner(report_for(ALICE), files(ALICE)).status == Status.SENT
    d.transport.close()
    first, second = recorder.to(ALICE)
    assert first.message["Message-ID"] == second.message["Message-ID"]
    # …and once recorded as sent, never again.
    assert deliverer(port, ledger).owner(report_for(ALICE), files(ALICE)).status == ALREADY_SENT
    assert len(recorder.to(ALICE)) == 2
    engine.dispose()


def test_stopping_abandons_between_messages(server: tuple[Recorder, int], ledger: Ledger) -> None:
    recorder, port = server
    stop: list[bool] = []
    d = deliverer(port, ledger, should_stop=lambda: bool(stop))
    pairs = ((report_for(o), files(o)) for o in (ALICE, BOB))

    def stop_after_first() -> Iterator[tuple[OwnerReport, tuple[Attachment, ...]]]:
        for pair in pairs:
            yield pair
            stop.append(True)

    with pytest.raises(DeliveryCancelled):
        d.deliver(stop_after_first())
    d.transport.close()
    assert [r.rcpt_tos for r in recorder.received] == [[ALICE]]


def test_too_large_without_a_bucket_is_a_permanent_failure_with_a_hint(
    server: tuple[Recorder, int], ledger: Ledger
) -> None:
    recorder, port = server
    settings = smtp_settings(port)
    transport = SmtpTransport(settings.mail.smtp, max_bytes=2_000)  # type: ignore[attr-defined]
    delivery = deliverer(port, ledger, transport=transport).owner(report_for(ALICE), files(ALICE))
    transport.close()
    assert delivery.status == Status.FAILED_PERMANENT
    assert "mail.large_attachments.bucket" in delivery.error
    assert recorder.received == []


def test_smtp_limit_comes_from_the_servers_size_announcement() -> None:
    with smtp_server(data_size_limit=123_456) as (_, port):
        transport = SmtpTransport(smtp_settings(port).mail.smtp)  # type: ignore[attr-defined]
        assert transport.limit() == 123_456
        transport.close()


def test_an_unreachable_server_is_a_temporary_failure(ledger: Ledger) -> None:
    from tests.smtp_server import free_port

    d = deliverer(free_port(), ledger)
    delivery = d.owner(report_for(ALICE), files(ALICE))
    assert delivery.status == Status.FAILED_TEMPORARY and "SMTP connect" in delivery.error
    assert delivery.attempts == 3


# --- ledger, outbox, preview -------------------------------------------------------------------


def test_ledger_refuses_to_attempt_a_sent_message(ledger: Ledger) -> None:
    key = LedgerKey("r", "owner", ALICE)
    now = datetime(2025, 3, 10, tzinfo=UTC)
    args = {"run_id": "run", "message_id": "<m>", "transport": "smtp", "attachments": ()}
    assert ledger.begin_attempt(key, now=now, **args) == 1  # type: ignore[arg-type]
    ledger.finish(key, Status.SENT, now, provider_id="Q1")
    entry = ledger.get(key)
    assert entry is not None and entry.sent_at == now and entry.provider_id == "Q1"
    with pytest.raises(StateError):
        ledger.begin_attempt(key, now=now, **args)  # type: ignore[arg-type]


@pytest.mark.postgresql
def test_the_ledger_opens_postgresql_by_the_url_users_write(postgres_url: str) -> None:
    ledger = Ledger.open(postgres_url.replace("postgresql+psycopg://", "postgres://"))
    assert ledger.get(LedgerKey("r", "owner", ALICE)) is None
    ledger.dispose()


def test_outbox_keeps_its_file_names_and_writes_no_ledger(tmp_path: Path) -> None:
    written: dict[str, bytes] = {}
    settings = load_data({"state": {"database_url": f"sqlite:///{tmp_path}/s.db"}}, {})
    d = open_deliverer(
        settings,
        env=make_environment(),
        run_id="20250310T063000Z-aaaaaa",
        write=lambda name, data: written.__setitem__(name, data),
    )
    result = d.deliver([(report_for(ALICE), files(ALICE))], make_summary(), ())
    assert isinstance(d.transport, OutboxTransport) and d.ledger is None
    assert sorted(written) == [
        "outbox/alice@example.com.eml",
        "outbox/summary/security-team@example.com.eml",
    ]
    assert [x.status for x in result.deliveries] == ["written", "written"]
    assert result.files == ("outbox/alice@example.com.eml",)


def test_preview_sends_only_to_me_and_leaves_the_ledger_alone(
    server: tuple[Recorder, int], tmp_path: Path
) -> None:
    recorder, port = server
    db = tmp_path / "state.db"
    settings = load_data(
        {
            "owners": {"allowed_domains": ["example.com"]},
            "state": {"database_url": f"sqlite:///{db}"},
            "mail": {
                "transport": "smtp",
                "smtp": {"host": "127.0.0.1", "port": port, "security": "none"},
            },
        },
        {},
    )
    d = open_deliverer(
        settings,
        env=make_environment(),
        run_id="20250310T063000Z-aaaaaa",
        write=lambda name, data: None,
        preview=Preview(owner=BOB, to="me@example.com"),
    )
    reports = [report_for(ALICE), report_for(BOB, breached=True, manager=MANAGER)]
    d.deliver(((r, files(r.owner)) for r in reports), make_summary(), ())
    d.transport.close()
    (got,) = recorder.received
    assert got.rcpt_tos == ["me@example.com"] and got.message["Cc"] is None
    assert "role-of-bob" in got.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert d.ledger is None
    if db.exists():
        with create_engine(f"sqlite:///{db}").connect() as conn:
            tables = conn.execute(text("select name from sqlite_master")).scalars().all()
            if "deliveries" in tables:
                assert conn.execute(text("select count(*) from deliveries")).scalar() == 0


def test_retry_policy_doubles() -> None:
    assert list(RetryPolicy(4, 1.5).delays()) == [1.5, 3.0, 6.0]
    assert list(RetryPolicy(1, 1.5).delays()) == []


def test_delivery_record_is_manifest_ready(server: tuple[Recorder, int], ledger: Ledger) -> None:
    _, port = server
    d = deliverer(port, ledger)
    record = d.owner(report_for(ALICE), files(ALICE)).record()
    d.transport.close()
    assert record["status"] == "sent" and record["transport"] == "smtp"
    assert record["attachments"] == [
        {"filename": a.filename, "sha256": a.sha256} for a in files(ALICE)
    ]
    assert record["message_id"] == message_id(ROUND, ALICE, "example.com")
    assert replace(report_for(OWNER)).owner == OWNER


def test_preview_refuses_a_to_address_outside_the_allowed_domains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reporter.cli import main

    config = tmp_path / "reporter.yaml"
    config.write_text("owners:\n  allowed_domains: [example.com]\n")
    code = main(["preview", "-c", str(config), "--owner", ALICE, "--to", "me@evil.test"])
    assert code == 2
    assert "outside owners.allowed_domains" in capsys.readouterr().err


# --- each recipient on its own, and the queue --------------------------------------------------


def test_an_owner_refused_for_now_while_the_manager_is_accepted_is_retried_alone(
    server: tuple[Recorder, int], ledger: Ledger
) -> None:
    recorder, port = server
    recorder.refuse_next[BOB] = ["451 4.3.0 Try again later", "421 4.7.0 Busy"]
    d = deliverer(port, ledger)
    delivery = d.owner(report_for(BOB, breached=True, manager=MANAGER), files(BOB))
    d.transport.close()

    assert delivery.status == Status.SENT and not delivery.failed
    # The manager got the first attempt; the owner the third; nobody a second copy.
    assert recorder.accepted() == {MANAGER: 1, BOB: 1}
    assert [r.rcpt_tos for r in recorder.received] == [[MANAGER], [BOB]]
    first, second = recorder.received
    assert first.message["Message-ID"] == second.message["Message-ID"]
    assert first.data == second.data  # the same message, byte for byte
    rows = ledger.recipients(LedgerKey(ROUND, "owner", BOB))
    assert {a: (e.role, e.status, e.attempts) for a, e in rows.items()} == {
        BOB: ("to", Status.SENT, 3),
        MANAGER: ("cc", Status.SENT, 1),
    }
    assert ledger.queued(LedgerKey(ROUND, "owner", BOB)) is None


def test_a_cc_refused_for_good_is_reported_and_the_owner_still_gets_the_message(
    server: tuple[Recorder, int], ledger: Ledger
) -> None:
    recorder, port = server
    recorder.refuse[MANAGER] = "550 5.1.1 No such user"
    d = deliverer(port, ledger)
    report = d.deliver(
        [(report_for(BOB, breached=True, manager=MANAGER), files(BOB))],
        make_summary(),
        files("summary"),
    )
    d.transport.close()

    bob, team = report.deliveries
    assert bob.status == Status.FAILED_PERMANENT and bob.failed
    assert bob.undelivered() == (
        (MANAGER, Status.FAILED_PERMANENT, "SMTP RCPT TO: 550 5.1.1 No such user"),
    )
    assert recorder.accepted() == {BOB: 1, "security-team@example.com": 1}
    assert d.sleep == []  # type: ignore[comparison-overlap]
    record = bob.record()
    assert [(r["address"], r["status"]) for r in record["recipients"]] == [
        (BOB, "sent"),
        (MANAGER, "failed_permanent"),
    ]
    # The security team hears of it, by address.
    (summary_mail,) = recorder.to("security-team@example.com")
    plain = summary_mail.message.get_body(("plain",))
    assert plain is not None and MANAGER in plain.get_content()
    assert team.status == Status.SENT
    # Nothing is left to retry: a permanent refusal is reported, not queued.
    assert ledger.queued(LedgerKey(ROUND, "owner", BOB)) is None


def test_a_failure_outlasting_the_run_is_queued_and_the_retry_sends_the_same_bytes(
    server: tuple[Recorder, int], ledger: Ledger
) -> None:
    recorder, port = server
    recorder.refuse_next[ALICE] = ["451 4.3.0 Try again later"] * 3
    first = deliverer(port, ledger).owner(report_for(ALICE), files(ALICE))
    assert first.status == Status.FAILED_TEMPORARY
    key = LedgerKey(ROUND, "owner", ALICE)
    queued = ledger.queued(key)
    assert queued is not None and queued.message_id == first.message_id
    assert ledger.undelivered()[0] == 1

    # The retry job (or the next run, of another round) sends the queued bytes.
    later = deliverer(port, ledger, round_id="slot:unused-access-report:2026-12-07T06:00:00+00:00")
    (retried,) = later.retry_queued(until_only=True)
    later.transport.close()
    assert retried.status == Status.SENT and retried.round_id == ROUND
    (got,) = recorder.received
    assert got.data == queued.raw and got.rcpt_tos == [ALICE]
    assert ledger.queued(key) is None and ledger.undelivered() == (0, "")
    entry = ledger.get(key)
    assert entry is not None and entry.status is Status.SENT


def test_a_queued_message_is_sent_by_one_holder_at_a_time(
    server: tuple[Recorder, int], ledger: Ledger
) -> None:
    recorder, port = server
    recorder.refuse_next[ALICE] = ["451 4.3.0 Try again later"] * 3
    deliverer(port, ledger).owner(report_for(ALICE), files(ALICE))
    key = LedgerKey(ROUND, "owner", ALICE)
    now = datetime.now(UTC)
    assert ledger.claim(key, "replica-a", now, timedelta(minutes=5))
    assert not ledger.claim(key, "replica-b", now, timedelta(minutes=5))
    other = deliverer(port, ledger, round_id="another-round", holder="replica-b")
    assert other.retry_queued(until_only=False) == ()
    assert recorder.received == []
    # When replica-a's lease runs out, replica-b may take it.
    assert ledger.claim(key, "replica-b", now + timedelta(minutes=6), timedelta(minutes=5))


def test_a_sender_whose_lease_was_taken_leaves_the_message_to_its_new_holder(
    server: tuple[Recorder, int], ledger: Ledger
) -> None:
    recorder, port = server
    recorder.refuse_next[ALICE] = ["451 4.3.0 Try again later"] * 3
    key = LedgerKey(ROUND, "owner", ALICE)
    later = datetime.now(UTC) + timedelta(hours=1)

    def paused(seconds: float) -> None:
        # While this sender waits, its lease runs out and another replica takes the message.
        assert ledger.claim(key, "replica-b", later, timedelta(hours=1))

    d = deliverer(port, ledger, sleep=paused)
    delivery = d.owner(report_for(ALICE), files(ALICE))
    d.transport.close()
    assert delivery.status == Status.FAILED_TEMPORARY
    assert recorder.rcpt_seen == [ALICE]  # no second try by the sender that lost it
    # Still queued, for replica-b: neither released nor taken off the queue.
    assert ledger.queued(key) is not None
    assert not ledger.claim(key, "replica-c", later, timedelta(minutes=1))


def test_health_counts_only_messages_nobody_is_sending(
    server: tuple[Recorder, int], ledger: Ledger
) -> None:
    recorder, port = server
    recorder.refuse_next[ALICE] = ["451 4.3.0 Try again later"] * 3
    deliverer(port, ledger).owner(report_for(ALICE), files(ALICE))
    key = LedgerKey(ROUND, "owner", ALICE)
    now = datetime.now(UTC)
    assert ledger.undelivered(now)[0] == 1
    assert ledger.claim(key, "replica-b", now, timedelta(minutes=5))  # being retried
    assert ledger.undelivered(now)[0] == 0 and ledger.undelivered()[0] == 1
