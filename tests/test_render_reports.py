"""Render stage, issue 5: exceptions, SLA, new and resolved findings, trend, caps, the pool.

Every output is read back (pypdf, openpyxl, json, csv) and checked against the models.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jsonschema
import openpyxl
import pytest
from pypdf import PdfReader
from weasyprint import HTML

from reporter.aggregate import by_owner, sort_items, summarise
from reporter.errors import RenderError
from reporter.evidence.pack import RunFolder
from reporter.models import FindingStatus, OwnerReport, RemediationStep, ReportItem
from reporter.render import data, pdf, views, xlsx
from reporter.render.environment import make_environment
from reporter.render.parallel import render_owner_files, worker_count
from reporter.render.schema import FINDINGS_SCHEMA
from tests import factories as fx
from tests.pdfs import link_uris


@dataclasses.dataclass(frozen=True)
class DiffStep(RemediationStep):
    """A step with the optional `detail` (a policy diff) the renderers show when present."""

    detail: str = ""


DIFF = (
    "--- arn:aws:iam::222222222222:policy/data-pipeline-access (now)\n"
    "+++ recommended\n"
    '-      "Action": ["s3:*", "dynamodb:*"],\n'
    '+      "Action": ["s3:GetObject", "s3:ListBucket"],'
)


def expired_item() -> ReportItem:
    """Active again: its exception expired. The reason is hostile text."""
    return fx.make_item(
        finding=fx.make_finding(name="reporting-etl", account_id=fx.PROD.id),
        priority=65,
        exception=fx.make_exception(id="EXC-2024-031", reason=fx.HYPERLINK, expired=True),
    )


def diff_item() -> ReportItem:
    finding = fx.make_finding(
        type=fx.FindingType.UNUSED_PERMISSION,
        account_id=fx.STAGING.id,
        name="analytics-reader",
        recommendation=fx.make_recommendation(),
    )
    step = DiffStep("Apply the recommended policy", "aws iam create-policy-version …", detail=DIFF)
    return fx.make_item(finding=finding, account=fx.STAGING, priority=45, remediation=(step,))


@pytest.fixture(scope="module")
def report() -> OwnerReport:
    return fx.make_report(items=(*fx.sample_items(), expired_item(), diff_item()))


@pytest.fixture(scope="module")
def pdf_text(report: OwnerReport) -> str:
    # Every finding in full: these checks are about the cards (the limits are tested below).
    full = pdf.PdfLimits(per_account=None, detailed=1_000)
    reader = PdfReader(io.BytesIO(pdf.render_owner_pdf(report, make_environment(), full)))
    return "\n".join(p.extract_text() for p in reader.pages)


@pytest.fixture(scope="module")
def book(report: OwnerReport) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(xlsx.render_owner_xlsx(report)))


def flat(text: str) -> str:
    return "".join(text.split())


def rows_of(ws: Any) -> list[dict[str, Any]]:
    values = list(ws.iter_rows(values_only=True))
    return [dict(zip(values[0], row, strict=True)) for row in values[1:]]


# ---- PDF -------------------------------------------------------------------------------------


def test_owner_pdf_summary_shows_new_resolved_sla_and_notices(pdf_text: str) -> None:
    text = flat(pdf_text)
    assert "NEWTHISRUN" in text and "PASTTHEIRSLA" in text and "RESOLVEDSINCELASTRUN" in text
    assert "Pasttheir SLA".replace(" ", "") in text
    assert "escalatedto" not in text  # the breached item has no manager
    assert "open63days/SLA30days" in text
    assert "Resolvedsincethelastrun" in text and "old-reporting-role" in text
    assert "EXC-2025-007—expireson2025-03-24" in text  # the notice about the owner's exception


def test_owner_pdf_marks_findings(pdf_text: str) -> None:
    text = flat(pdf_text)
    assert "legacy-batch-runnerUnusedrole·priority80pastSLA" in text
    assert "ci-deployerUnusedaccesskey·priority70new" in text
    assert "Owner:account-tag:owner;principaltagowner:'cibot'isnotane-mailaddress" in text
    # An expired exception is flagged on the (active again) finding, its text inert.
    assert "reporting-etlUnusedrole·priority65exceptionexpired" in text
    assert flat(f"Exception EXC-2024-031 ({fx.HYPERLINK}) expired on 2025-09-30") in text


def test_owner_pdf_lists_excepted_findings_in_their_own_section(pdf_text: str) -> None:
    section = flat(pdf_text.split("Excepted findings")[-1].split("Coverage")[0])
    assert "alice.admin" in section
    assert "ExceptionEXC-2025-007:Break-glassconsoleuser,reviewedquarterly" in section
    assert "approvedbyciso@example.com·expires2025-09-30" in section
    # Not among the account sections: its steps are not listed.
    assert "delete-login-profile" not in flat(pdf_text)


def test_owner_pdf_shows_a_step_detail_and_recommendation(pdf_text: str) -> None:
    text = flat(pdf_text)
    assert flat('+      "Action": ["s3:GetObject", "s3:ListBucket"],') in text
    # Without a diff step, the recommendation is summarised instead.
    assert "AccessAnalyzerrecommends:createpolicyarn:aws:iam::222222222222:policy/" in text


def test_owner_pdf_caps_each_account_and_says_where_the_rest_are() -> None:
    items = fx.many_items(7, accounts=1)
    report = fx.make_report(items=items)
    limits = pdf.PdfLimits(per_account=4, detailed=2)
    reader = PdfReader(io.BytesIO(pdf.render_owner_pdf(report, make_environment(), limits)))
    text = "\n".join(p.extract_text() for p in reader.pages)
    ranked = sort_items(items)
    start, _, accounts = text.partition("Start here")[2].partition("workload-00")
    # "Start here": the two highest-priority findings with ARN and commands, nothing else.
    for item in ranked[:2]:
        assert item.finding.principal_arn in flat(start)
        assert flat(item.remediation[0].command) in flat(start)
    assert ranked[2].finding.principal_name not in start
    # The account lists its four highest-priority findings as lines, without commands.
    lines = flat(accounts.split("This account has")[0])
    for item in ranked[:4]:
        assert item.finding.principal_name in lines
        assert f"priority{item.priority}" in lines
    for item in ranked[4:]:
        assert item.finding.principal_name not in lines
    assert "stepsinStarthere" in lines  # the two detailed ones point up
    assert "This account has 3 more findings of lower priority" in " ".join(text.split())
    assert "7activefindings" in flat(text)
    # Every listed finding's name links to its console page.
    assert {i.links.console for i in ranked[:4]} <= set(link_uris(reader))


def test_owner_pdf_as_shipped_lists_every_finding_of_a_small_owner(report: OwnerReport) -> None:
    reader = PdfReader(io.BytesIO(pdf.render_owner_pdf(report, make_environment())))
    text = flat("\n".join(p.extract_text() for p in reader.pages))
    shipped = pdf.PdfLimits()
    active = views.active(sort_items(report.items))
    assert len(active) > shipped.detailed
    assert "Starthere" in text and "moreinthelowerpriority" not in text
    for item in active:
        assert item.finding.principal_name in text
    for item in active[: shipped.detailed]:
        assert item.finding.principal_arn in text
    for item in active[shipped.detailed :]:  # a line, not a card: no commands
        assert not [s for s in item.remediation if flat(s.command) in text]


def test_summary_pdf_trend_notices_and_unowned(env: Any = None) -> None:
    summary = fx.make_summary()
    reader = PdfReader(io.BytesIO(pdf.render_summary_pdf(summary, make_environment())))
    text = flat("\n".join(p.extract_text() for p in reader.pages))
    assert "Trendacrossrecentruns" in text
    for point in summary.trend:
        assert point.run_id in text
    assert "EXC-2024-031—expiredon2025-03-01" in text
    assert "EXC-2024-002—matchesnofinding" in text
    assert "old-jenkins" in text  # unowned
    # The ranking: one line per owner with its counts, most findings first.
    top = views.owner_ranking(summary)[0]
    assert (
        flat(
            f"1. {top.owner} · {top.findings} findings ({top.active} active, {top.new} new, "
            f"{top.sla_breached} past SLA) · {top.accounts} account"
        )
        in text
    )


@pytest.mark.parametrize("kind", ["owner", "hostile owner", "summary"])
def test_shared_stylesheet_and_fonts_lay_out_as_weasyprints_plain_call(
    kind: str, report: OwnerReport
) -> None:
    """html_to_pdf hands WeasyPrint the report stylesheet pre-parsed (as a user stylesheet, cut
    out of the head), one FontConfiguration and one fetcher for every document; the PDF must
    come out byte for byte as `HTML(string=...).write_pdf()` makes it from the page as written."""
    env = make_environment()
    full = pdf.PdfLimits(per_account=None, detailed=1_000)
    html = {
        "owner": lambda: pdf.render_owner_html(report, env, full),
        "hostile owner": lambda: pdf.render_owner_html(
            fx.make_report(items=fx.hostile_items()), env, full
        ),
        "summary": lambda: pdf.render_summary_html(fx.make_summary(), env),
    }[kind]()
    assert pdf.html_to_pdf(html) == HTML(string=html, url_fetcher=pdf.OfflineFetcher()).write_pdf()


def test_a_page_with_a_footnote_gets_its_call_and_marker() -> None:
    html = (
        "<!DOCTYPE html><html><head><style>.fn { float: footnote }</style></head><body>"
        '<p>Keys rotate yearly<span class="fn">Policy SEC-12.</span>.</p></body></html>'
    )
    text = PdfReader(io.BytesIO(pdf.html_to_pdf(html))).pages[0].extract_text()
    assert "yearly1" in text and "1. Policy SEC-12." in text  # the call and its marker


def test_html_is_read_as_html5() -> None:
    """A template folder may write HTML that is not XML: WeasyPrint reads it as a browser would."""
    br = "<!doctype html><html><body><p>one<br>two</p></body></html>"
    text = PdfReader(io.BytesIO(pdf.html_to_pdf(br))).pages[0].extract_text()
    assert text.split() == ["one", "two"]  # the <br> broke the line, as in HTML


# ---- workbook --------------------------------------------------------------------------------


def test_exceptions_sheet(book: openpyxl.Workbook) -> None:
    ws = book["Exceptions"]
    assert ws.freeze_panes == "A2" and ws.auto_filter.ref == "A1:K3"
    rows = rows_of(ws)
    by_id = {r["exception_id"]: r for r in rows}
    assert set(by_id) == {"EXC-2025-007", "EXC-2024-031"}
    covered = by_id["EXC-2025-007"]
    assert covered["principal_name"] == "alice.admin" and covered["status"] == "excepted"
    assert covered["expires"] == datetime(2025, 9, 30) and covered["expired"] is False
    assert covered["notice"] == "expiring" and covered["matched"] == 1
    expired = by_id["EXC-2024-031"]
    assert expired["reason"] == fx.HYPERLINK and expired["expired"] is True
    cell = next(c for row in ws.iter_rows() for c in row if c.value == fx.HYPERLINK)
    assert cell.data_type == "s" and cell.quotePrefix


def test_findings_sheet_new_columns(report: OwnerReport, book: openpyxl.Workbook) -> None:
    rows = {r["principal_name"]: r for r in rows_of(book["Findings"])}
    assert rows["legacy-batch-runner"]["sla_breached"] is True
    assert rows["legacy-batch-runner"]["age_days"] == 63
    assert rows["ci-deployer"]["new"] is True
    assert rows["ci-deployer"]["owner_manager"] == "payments-lead@example.com"
    assert rows["alice.admin"]["exception_id"] == "EXC-2025-007"
    assert rows["alice.admin"]["exception_expires"] == datetime(2025, 9, 30)
    assert rows["data-pipeline"]["recommendation"].startswith('{"status":"SUCCEEDED"')


def test_remediation_sheet_carries_the_detail(book: openpyxl.Workbook) -> None:
    rows = rows_of(book["Remediation"])
    (row,) = [r for r in rows if r["principal_name"] == "analytics-reader"]
    assert row["detail"] == DIFF
    assert all(r["detail"] is None for r in rows if r["principal_name"] != "analytics-reader")


def test_summary_sheet_counts_and_resolved(book: openpyxl.Workbook) -> None:
    values = {r[0]: r[1] for r in book["Summary"].iter_rows(values_only=True) if r}
    assert values["New this run"] == 1
    assert values["Past their SLA"] == 1
    assert values["Resolved since the last run"] == 1
    assert values["Exception expired (active again)"] == 1
    assert fx.make_resolved().principal_arn in values


def test_organization_workbook_has_the_trend() -> None:
    summary = fx.make_summary()
    book = openpyxl.load_workbook(io.BytesIO(xlsx.render_summary_xlsx(summary)))
    runs = {r[0]: r for r in book["Summary"].iter_rows(values_only=True) if r}
    last = summary.trend[-1]
    assert runs[last.run_id][1:5] == (
        last.started_at.replace(tzinfo=None),
        last.findings,
        last.new,
        last.resolved,
    )
    assert not [
        c for ws in book.worksheets for row in ws.iter_rows() for c in row if c.data_type == "f"
    ]


def test_one_pass_writes_the_data_files_and_the_organization_workbook(tmp_path: Path) -> None:
    """The pipeline's single pass gives the same three files as rendering each on its own."""
    summary = fx.make_summary()
    with xlsx.SummaryWorkbook(summary) as book:
        folder = RunFolder(tmp_path, summary.context.run_id)
        folder.write_together(
            ("findings.json", "findings.csv"),
            data.findings_data_chunks(book.items, summary.context, rows=2, on_record=book.add),
        )
        written = book.finish()
    items = views.all_items(summary)
    assert (folder.partial / "findings.json").read_bytes() == data.findings_json(
        items, summary.context
    )
    assert (folder.partial / "findings.csv").read_bytes() == data.findings_csv(
        items, summary.context
    )
    assert written == xlsx.render_summary_xlsx(summary)


def test_organization_workbook_refuses_missing_findings_rows() -> None:
    summary = fx.make_summary()
    with xlsx.SummaryWorkbook(summary) as book:
        book.add(data.flat_record(data.finding_record(book.items[0])))
        with pytest.raises(ValueError, match=f"got 1 rows for {len(book.items)} findings"):
            book.finish()
    # Left unfinished, it was discarded: its zip is closed, nothing is left for the collector to
    # trip over (a run killed while writing the data files made ZipFile.__del__ raise).
    assert book._book._zip.fp is None


# ---- JSON and CSV ----------------------------------------------------------------------------


def test_json_carries_the_new_fields(report: OwnerReport) -> None:
    document = json.loads(data.findings_json(report.items, report.context))
    jsonschema.validate(document, FINDINGS_SCHEMA, format_checker=jsonschema.FormatChecker())
    records = {r["principal_name"]: r for r in document["findings"]}
    assert records["reporting-etl"]["exception"]["expired"] is True
    assert records["reporting-etl"]["status"] == "active"
    assert records["analytics-reader"]["remediation"][0]["detail"] == DIFF
    assert records["legacy-batch-runner"]["remediation"][0]["detail"] is None
    assert FINDINGS_SCHEMA["properties"]["schema_version"]["const"] == data.SCHEMA_VERSION


def test_schema_rejects_a_record_that_drifts(report: OwnerReport) -> None:
    record = data.finding_record(report.items[0])
    record["unexpected"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(record, FINDINGS_SCHEMA["properties"]["findings"]["items"])


def test_csv_flattens_the_new_fields(report: OwnerReport) -> None:
    text = data.findings_csv(report.items, report.context).decode()
    rows = {r["principal_name"]: r for r in csv.DictReader(io.StringIO(text, newline=""))}
    assert rows["ci-deployer"]["new"] == "true" and rows["legacy-batch-runner"]["new"] == "false"
    assert rows["reporting-etl"]["exception_reason"] == "'" + fx.HYPERLINK  # defused
    assert rows["alice.admin"]["exception_expires"] == "2025-09-30"


# ---- views and aggregate ---------------------------------------------------------------------


def test_views_attention_and_sla_order() -> None:
    items = (*fx.sample_items(), expired_item())
    figures = views.attention(items)
    assert (figures.new, figures.sla_breached, figures.excepted, figures.exception_expired) == (
        1,
        1,
        1,
        1,
    )
    assert [i.finding.principal_name for i in views.sla_breaches(items, 5)] == [
        "legacy-batch-runner"
    ]
    assert all(i.status is not FindingStatus.EXCEPTED for i in views.active(items))
    sections = views.sections(fx.many_items(5, accounts=1), (), limit=2)
    assert [(len(s.items), s.hidden) for s in sections] == [(2, 3)]


def test_trend_bars_scale_to_the_largest() -> None:
    bars = views.trend_bars(fx.make_trend(3))
    assert [round(b.height, 2) for b in bars] == [36.0, round(36 * 36 / 40, 2), 28.8]
    assert bars[0].x < bars[1].x < bars[2].x and all(b.x + b.width <= 100 for b in bars)
    assert views.trend_bars(()) == ()


def test_aggregate_routes_resolved_findings_and_notices() -> None:
    items = (*fx.sample_items(), expired_item())
    resolved = (
        fx.make_resolved(account_id=fx.STAGING.id),
        fx.make_resolved(account_id="999999999999"),
    )
    notices = (fx.make_notice(), fx.make_notice(id="EXC-2024-002", kind="stale", matched=0))
    context = fx.make_context()
    (report,) = by_owner(items, (), context, (), resolved, notices)
    assert report.resolved == resolved[:1]  # the other account is not this owner's
    assert [n.id for n in report.exception_notices] == ["EXC-2025-007"]
    summary = summarise(items, (report,), context, (), 0, 0, resolved, notices, fx.make_trend())
    assert summary.resolved == resolved and summary.exception_notices == notices
    assert len(summary.trend) == 6


# ---- the process pool ------------------------------------------------------------------------


def test_worker_count() -> None:
    assert worker_count(3, 10) == 3
    assert worker_count(8, 2) == 2
    assert worker_count(0, 1000) >= 1
    assert worker_count(4, 0) == 1


def test_pool_renders_every_owner_in_order(tmp_path: Path) -> None:
    (tmp_path / "owner_report.html.j2").write_text(
        '{% extends "default:owner_report.html.j2" %}'
        "{% block intro %}<p>House intro.</p>{% endblock %}"
    )
    reports = [
        fx.make_report(owner=f"team-{n}@example.com", items=fx.many_items(n + 1)) for n in range(3)
    ]
    with render_owner_files(reports, tmp_path, workers=2) as files:
        assert files.workers == 2
        # Every report is with the pool before the caller asks for any: the caller may spend a
        # minute on the organization files first, and the workers must not run dry meanwhile.
        assert len(files._pending) == len(reports)
        rendered = list(files)
    assert [r.report.owner for r in rendered] == [r.owner for r in reports]
    for files_for, report in zip(rendered, reports, strict=True):
        text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(files_for.pdf)).pages)
        assert report.owner in text and "House intro." in text
        for item in report.items:
            assert item.finding.principal_name in text
        # Workbooks are byte-reproducible: the worker's is the one this process would make.
        assert files_for.xlsx == xlsx.render_owner_xlsx(report)


def test_one_worker_renders_in_process_and_errors_surface(tmp_path: Path) -> None:
    (tmp_path / "owner_report.html.j2").write_text("{{ no_such_value }}")
    files = render_owner_files([fx.make_report()], tmp_path, workers=1)
    assert files.workers == 1
    with pytest.raises(RenderError, match="owner_report"):
        next(iter(files))
    files.close()


def test_pool_errors_surface_in_the_caller(tmp_path: Path) -> None:
    (tmp_path / "owner_report.html.j2").write_text("{{ no_such_value }}")
    reports = [fx.make_report(owner=f"o{n}@example.com", items=()) for n in range(2)]
    with (
        render_owner_files(reports, tmp_path, workers=2) as files,
        pytest.raises(RenderError, match="owner_report"),
    ):
        list(files)


def test_bad_template_folder_fails_before_rendering(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="does not exist"):
        render_owner_files([fx.make_report()], tmp_path / "missing", workers=1)


def test_date_type_for_resolved_first_seen() -> None:
    assert xlsx._to_date(datetime(2025, 1, 1, 23, 0)) == date(2025, 1, 1)
