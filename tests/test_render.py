"""Render stage: every output is read back (pypdf, openpyxl, json, csv) and checked."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import zipfile
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from jinja2 import TemplateNotFound
from pypdf import PdfReader

from reporter.aggregate import sort_items
from reporter.errors import RenderError
from reporter.models import FindingType, OwnerReport, ReportItem
from reporter.render import data, pdf, views, xlsx
from reporter.render.environment import (
    isodate,
    make_environment,
    notice_state,
    plural,
    utc_minutes,
    visible,
)
from reporter.render.schema import FINDINGS_SCHEMA
from tests import factories as fx
from tests.pdfs import link_uris

# ---- shared renders (PDF layout is the slow part: render each once per module) ----------------


@pytest.fixture(scope="module")
def env() -> Any:
    return make_environment()


@pytest.fixture(scope="module")
def report() -> OwnerReport:
    return fx.make_report(items=fx.sample_items() + fx.hostile_items())


# Every finding in full, as a report with fewer findings than `reports.pdf_detailed_findings`
# shows them: the content checks below are about each finding's card. The shipped limits are
# tested in tests/test_render_reports.py.
FULL = pdf.PdfLimits(per_account=None, detailed=1_000)


@pytest.fixture(scope="module")
def owner_pdf(report: OwnerReport, env: Any) -> PdfReader:
    return PdfReader(io.BytesIO(pdf.render_owner_pdf(report, env, FULL)))


@pytest.fixture(scope="module")
def owner_text(owner_pdf: PdfReader) -> list[str]:
    return [page.extract_text() for page in owner_pdf.pages]


@pytest.fixture(scope="module")
def owner_html(report: OwnerReport, env: Any) -> str:
    return pdf.render_owner_html(report, env, FULL)


@pytest.fixture(scope="module")
def owner_book(report: OwnerReport) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(xlsx.render_owner_xlsx(report)))


def squash(text: str) -> str:
    """PDF text without line breaks, so a wrapped value can still be found."""
    return "".join(text.split())


# ---- environment ------------------------------------------------------------------------------


def test_autoescape_applies_to_j2_templates(tmp_path: Path) -> None:
    (tmp_path / "note.txt.j2").write_text("{{ value }}")
    env = make_environment(tmp_path)
    assert env.get_template("note.txt.j2").render(value=fx.SCRIPT) == (
        "&lt;script&gt;alert(1)&lt;/script&gt;"
    )


def test_undefined_name_fails_the_render(tmp_path: Path) -> None:
    (tmp_path / "typo.html.j2").write_text("{{ ownr }}")
    with pytest.raises(RenderError, match=r"typo\.html\.j2"):
        pdf.render_template(make_environment(tmp_path), "typo.html.j2", {"owner": "x"})


def test_missing_template_raises(env: Any) -> None:
    with pytest.raises(TemplateNotFound):
        env.get_template("no_such_template.html.j2")
    with pytest.raises(RenderError, match="no_such_template"):
        pdf.render_template(env, "no_such_template.html.j2", {})


def test_missing_template_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="does not exist"):
        make_environment(tmp_path / "nope")


def test_user_folder_overrides_one_file_and_extends_the_default(tmp_path: Path) -> None:
    (tmp_path / "owner_report.html.j2").write_text(
        '{% extends "default:owner_report.html.j2" %}'
        "{% block intro %}<p>Questions? Ask #cloud-security.</p>{% endblock %}"
    )
    (tmp_path / "report.css").write_text("/* house style */ html { color: #000; }")
    html = pdf.render_owner_html(fx.make_report(), make_environment(tmp_path))
    assert "Questions? Ask #cloud-security." in html
    assert "/* house style */" in html  # the override of the included file is used too
    assert "legacy-batch-runner" in html  # the rest of the default template still renders
    assert "Every finding in this report" not in html  # the replaced block is gone


def test_default_prefix_reaches_packaged_template_even_when_overridden(tmp_path: Path) -> None:
    (tmp_path / "report.css").write_text("/* mine */")
    env = make_environment(tmp_path)
    assert env.get_template("report.css").render() == "/* mine */"
    assert "@page" in env.get_template("default:report.css").render()


def test_filters() -> None:
    assert isodate(datetime.fromisoformat("2025-01-01T23:30:00-02:00")) == "2025-01-02"
    assert isodate(None) == "—"
    assert utc_minutes(datetime(2025, 1, 2, 3, 4, 59)) == "2025-01-02 03:04 UTC"
    assert plural(1, "finding") == "1 finding"
    assert plural(1200, "finding") == "1,200 findings"
    assert visible(fx.RTL) == "invoice[U+202E]txt.exe"
    assert visible("a\x00b") == "a\ufffdb"


def test_notice_state_is_one_sentence_for_pdfs_and_both_mail_bodies() -> None:
    said = {
        kind: notice_state(fx.make_notice(kind=kind, expires=date(2025, 3, 1)))
        for kind in ("expiring", "expired", "stale")
    }
    assert said == {
        "expiring": "expires on 2025-03-01",
        "expired": "expired on 2025-03-01; the findings it covered are active again",
        "stale": "matches no finding (expires 2025-03-01); remove it from the configuration",
    }


# ---- HTML -------------------------------------------------------------------------------------


def test_html_escapes_hostile_text(owner_html: str) -> None:
    assert fx.SCRIPT not in owner_html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in owner_html
    assert "<script" not in owner_html.lower()


def test_html_shows_bidi_overrides_instead_of_obeying_them(owner_html: str) -> None:
    assert "\u202e" not in owner_html
    assert "invoice[U+202E]txt.exe" in owner_html


def test_html_links_only_web_urls(owner_html: str) -> None:
    assert 'href="javascript:' not in owner_html
    assert "javascript:alert(1)" not in owner_html


def test_empty_report_renders(env: Any) -> None:
    html = pdf.render_owner_html(fx.make_report(items=(), accounts=(fx.PROD,)), env)
    assert "No unused access was found" in html


# ---- PDF --------------------------------------------------------------------------------------


def test_owner_pdf_names_owner_principals_and_accounts(
    report: OwnerReport, owner_text: list[str]
) -> None:
    text = "\n".join(owner_text)
    flat = squash(text)
    assert report.owner in text
    for item in fx.sample_items():
        assert item.finding.principal_name in text
        assert squash(item.finding.principal_arn) in flat
        assert item.account.name in text
    for item in report.items:
        assert squash(visible(item.finding.principal_name)) in flat
    assert "<script>alert(1)</script>" in text  # hostile text is shown as text
    assert "payments-legacy" in text and "AssumeRole denied" in text  # coverage section


def test_owner_pdf_footer_has_page_x_of_y_and_run_id(owner_text: list[str]) -> None:
    total = len(owner_text)
    assert total >= 4
    for number, text in enumerate(owner_text, 1):
        assert f"Page {number} of {total}" in text
        assert f"Run {fx.RUN_ID}" in text


def test_owner_pdf_has_console_links(owner_pdf: PdfReader) -> None:
    uris = link_uris(owner_pdf)
    for item in fx.sample_items():
        assert item.links.console in uris
        assert item.links.access_analyzer in uris
    assert not [u for u in uris if not u.startswith("https://")]


def test_owner_pdf_links_each_remediation_step(owner_pdf: PdfReader) -> None:
    uris = set(link_uris(owner_pdf))
    # Excepted findings need no action, so their steps are not listed (the workbook has them).
    active = views.active(fx.sample_items())
    steps = [s for i in active for s in i.remediation if s.console_url]
    assert steps and {s.console_url for s in steps} <= uris


def test_owner_pdf_shows_bidi_override_as_a_marker(owner_text: list[str]) -> None:
    text = "\n".join(owner_text)
    assert "invoice[U+202E]txt.exe" in text
    assert "\u202e" not in text


def test_owner_pdf_metadata(owner_pdf: PdfReader) -> None:
    meta = owner_pdf.metadata
    assert meta is not None
    assert fx.OWNER in str(meta.title)
    # From the run, not the clock.
    assert str(meta["/CreationDate"]).startswith("D:20250310063000")


def test_summary_pdf(env: Any) -> None:
    summary = fx.make_summary(
        reports=(
            fx.make_report(),
            fx.make_report(owner="team-data@example.com", items=fx.many_items(6)),
        )
    )
    reader = PdfReader(io.BytesIO(pdf.render_summary_pdf(summary, env)))
    text = "\n".join(p.extract_text() for p in reader.pages)
    assert "Organization summary" in text
    assert text.index("team-data@example.com") < text.index("team-payments@example.com")  # 6 > 5
    assert "old-jenkins" in text  # unowned
    assert "AssumeRole denied" in text  # coverage
    assert "3RECORDSSKIPPED" in squash(text) and "1RECORDSQUARANTINED" in squash(text)
    assert f"Page 1 of {len(reader.pages)}" in text
    assert fx.RUN_ID in reader.pages[-1].extract_text()


def test_pdf_rendering_is_offline() -> None:
    for url in ("http://127.0.0.1:9/logo.png", "file:///etc/hostname"):
        with pytest.raises(RenderError, match="external resource"):
            pdf.html_to_pdf(f'<p>x</p><img src="{url}">')
    pixel = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/%3E"
    assert pdf.html_to_pdf(f'<p>x</p><img src="{pixel}">').startswith(b"%PDF")


# ---- views -----------------------------------------------------------------------------------


def test_views_keep_every_finding_and_every_account() -> None:
    items = fx.sample_items()
    quiet = fx.make_account(id="777777777777", name="quiet-account")
    # STAGING is left out of `accounts`: its findings must still get a section.
    sections = views.sections(items, (fx.PROD, quiet, fx.SANDBOX))
    assert [s.account.id for s in sections] == [fx.PROD.id, fx.SANDBOX.id, fx.STAGING.id]
    assert sum(len(s.items) for s in sections) == len(items)
    counts = views.by_account(items, (fx.PROD, quiet, fx.SANDBOX))
    assert [(c.detail, c.count) for c in counts][-1] == (quiet.id, 0)
    assert {c.label: c.count for c in views.by_type(items)} == {
        "Unused role": 2,
        "Unused access key": 1,
        "Unused console password": 1,
        "Unused permissions": 1,
    }
    assert [i.unused_days for i in views.oldest(items, 3)] == [640, 420, 120]


def test_summary_items_include_unowned_once() -> None:
    summary = fx.make_summary()
    assert len(views.all_items(summary)) == len(summary.items)
    owned_only = dataclasses.replace(summary, items=summary.items[: -len(summary.unowned)])
    assert len(views.all_items(owned_only)) == len(summary.items)


# ---- workbook ---------------------------------------------------------------------------------


def column(ws: Any, name: str) -> int:
    """1-based index of the header `name`."""
    headers = [c.value for c in ws[1]]
    return headers.index(name) + 1


def expected_cell(value: Any, kind: str) -> Any:
    if value is None or value == "":
        return None
    if kind == "date":
        return datetime.combine(date.fromisoformat(value), datetime.min.time())
    if kind == "datetime":
        return datetime.fromisoformat(value).replace(tzinfo=None)
    return value


SHEETS = ["Summary", "Findings", "Remediation", "Exceptions", "Coverage"]


def test_workbook_sheets(owner_book: openpyxl.Workbook) -> None:
    # The owner's workbook also carries its run id and owner, hidden, for `decisions import`.
    assert owner_book.sheetnames == [*SHEETS, "Review"]
    assert owner_book["Review"].sheet_state == "hidden"


def test_findings_sheet_has_one_row_per_finding_with_the_record_values(
    report: OwnerReport, owner_book: openpyxl.Workbook
) -> None:
    ws = owner_book["Findings"]
    headers = [c.value for c in ws[1]]
    assert headers == ["Decision", "Keep until", "Reason", *xlsx.SHEET_FIELDS]
    rows = list(ws.iter_rows(min_row=2))
    assert len(rows) == len(report.items)
    records = [data.flat_record(data.finding_record(i)) for i in sort_items(report.items)]
    for row, record in zip(rows, records, strict=True):
        for col, cell in zip(xlsx.FINDING_COLUMNS, row[3:], strict=True):
            assert cell.value == expected_cell(record[col.field], col.kind), col.field


def test_findings_sheet_layout(report: OwnerReport, owner_book: openpyxl.Workbook) -> None:
    ws = owner_book["Findings"]
    last_row = len(report.items) + 1
    # The decision columns and the principal's name stay in view, with the header row.
    assert ws.freeze_panes == "E2"
    assert [c.value for c in ws[1]][:8] == [
        "Decision", "Keep until", "Reason", "principal_name", "type", "account_id",
        "account_name", "unused_days",
    ]  # fmt: skip
    assert ws.auto_filter.ref == f"A1:{openpyxl.utils.get_column_letter(ws.max_column)}{last_row}"
    decision, until = ws.data_validations.dataValidation
    assert decision.type == "list"
    assert decision.formula1 == '"Remove,Keep,Not mine"'
    assert str(decision.sqref) == f"A2:A{last_row}"
    assert until.type == "date" and str(until.sqref) == f"B2:B{last_row}"
    arn = openpyxl.utils.get_column_letter(column(ws, "principal_arn"))
    assert ws.column_dimensions[arn].width > 30  # principal_arn is readable


def test_findings_sheet_dates_are_dates(owner_book: openpyxl.Workbook) -> None:
    ws = owner_book["Findings"]
    for name in ("last_accessed", "first_seen", "created_at"):
        cells = [
            r[0]
            for r in ws.iter_rows(min_row=2, min_col=column(ws, name), max_col=column(ws, name))
        ]
        known = [c for c in cells if c.value is not None]
        assert known and all(c.is_date and isinstance(c.value, datetime) for c in known), name


def test_findings_sheet_hyperlinks(report: OwnerReport, owner_book: openpyxl.Workbook) -> None:
    ws = owner_book["Findings"]
    links = {
        c.value: c.hyperlink.target
        for (c,) in ws.iter_rows(
            min_row=2, min_col=column(ws, "link_console"), max_col=column(ws, "link_console")
        )
        if c.hyperlink
    }
    for item in report.items:
        assert links[item.links.console] == item.links.console


def test_remediation_sheet_has_one_row_per_step(
    report: OwnerReport, owner_book: openpyxl.Workbook
) -> None:
    ws = owner_book["Remediation"]
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    assert len(rows) == sum(len(i.remediation) for i in report.items)
    first = sort_items(report.items)[0]
    assert rows[0][:6] == (
        first.finding.key,
        first.finding.account_id,
        first.finding.principal_name,
        1,
        first.remediation[0].title,
        first.remediation[0].command,
    )
    # The hostile steps carry a javascript: URL: shown as text, never linked.
    assert not [
        c
        for row in ws.iter_rows(min_row=2)
        for c in row
        if c.hyperlink and "javascript" in c.hyperlink.target
    ]


def test_coverage_sheet_lists_uncovered_account_first(owner_book: openpyxl.Workbook) -> None:
    rows = list(owner_book["Coverage"].iter_rows(min_row=2, values_only=True))
    assert rows[0][0] == fx.UNCOVERED.id
    assert rows[0][3:5] == (True, False)
    assert rows[0][6] == fx.UNCOVERED_REASON


def all_cells(book: openpyxl.Workbook) -> Iterator[Any]:
    for ws in book.worksheets:
        for row in ws.iter_rows():
            yield from row


def test_no_cell_is_a_formula_and_hostile_text_is_kept(owner_book: openpyxl.Workbook) -> None:
    cells = list(all_cells(owner_book))
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    texts = {c.value: c for c in cells if isinstance(c.value, str)}
    for hostile in (fx.SCRIPT, fx.HYPERLINK, fx.AT_SUM, fx.PLUS_CMD):
        assert hostile in texts, hostile  # exactly the original text, no apostrophe added
        assert texts[hostile].data_type == "s"
    assert f"arn:aws:iam::444444444444:role/{fx.RTL}" not in texts  # RTL is a user (n=5)
    assert f"arn:aws:iam::444444444444:user/{fx.RTL}" in texts
    assert f"arn:aws:iam::444444444444:user/{fx.LONG}" in texts
    assert f"arn:aws:iam::444444444444:role/{fx.TAB}" in texts
    # Texts that start like a formula carry Excel's quote-prefix flag.
    assert texts[fx.HYPERLINK].quotePrefix and texts[fx.AT_SUM].quotePrefix
    assert not texts[fx.SCRIPT].quotePrefix


def test_no_formula_element_in_the_file(report: OwnerReport) -> None:
    with zipfile.ZipFile(io.BytesIO(xlsx.render_owner_xlsx(report))) as archive:
        sheets = [n for n in archive.namelist() if n.startswith("xl/worksheets/")]
        assert sheets and not [
            n for n in sheets if b"<f>" in archive.read(n) or b"<f " in archive.read(n)
        ]


def test_workbook_bytes_are_reproducible(report: OwnerReport) -> None:
    assert xlsx.render_owner_xlsx(report) == xlsx.render_owner_xlsx(report)


def test_control_characters_do_not_break_the_workbook() -> None:
    item = fx.make_item(finding=fx.make_finding(name="bell\x07name"))
    book = openpyxl.load_workbook(io.BytesIO(xlsx.render_owner_xlsx(fx.make_report(items=(item,)))))
    assert "bell\ufffdname" in {c.value for c in all_cells(book)}


def test_summary_workbook_includes_unowned_and_ranks_owners() -> None:
    summary = fx.make_summary()
    book = openpyxl.load_workbook(io.BytesIO(xlsx.render_summary_xlsx(summary)))
    assert book.sheetnames == SHEETS
    findings = book["Findings"]
    assert findings.max_row - 1 == len(summary.items)
    owner = openpyxl.utils.get_column_letter(column(findings, "owner"))
    owners = [c.value for c in findings[owner][1:]]
    assert None in owners and fx.OWNER in owners
    summary_texts = [c.value for c in all_cells(book) if c.parent.title == "Summary"]
    assert "Unowned findings" in summary_texts and fx.OWNER in summary_texts


# ---- JSON and CSV -----------------------------------------------------------------------------


def test_findings_json_validates_and_matches_items(report: OwnerReport) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    document = json.loads(data.findings_json(report.items, report.context))
    jsonschema.validate(document, FINDINGS_SCHEMA, format_checker=jsonschema.FormatChecker())
    assert document["schema_version"] == data.SCHEMA_VERSION == 4
    assert document["run_id"] == fx.RUN_ID
    assert document["generated_at"] == "2025-03-10T06:30:00Z"
    findings = document["findings"]
    assert [f["key"] for f in findings] == [i.finding.key for i in sort_items(report.items)]
    assert [f["priority"] for f in findings] == sorted(
        (f["priority"] for f in findings), reverse=True
    )
    by_key = {i.finding.key: i for i in report.items}
    for record in findings:
        item = by_key[record["key"]]
        assert record["type"] == item.finding.type.value
        assert record["account_name"] == item.account.name
        assert record["principal_name"] == item.finding.principal_name
        assert record["unused_days"] == item.unused_days
        assert [s["command"] for s in record["remediation"]] == [
            s.command for s in item.remediation
        ]


def test_finding_record_shape() -> None:
    items = {i.finding.type: i for i in fx.sample_items()}
    password = data.finding_record(items[FindingType.UNUSED_PASSWORD])
    assert list(password) == list(FINDINGS_SCHEMA["properties"]["findings"]["items"]["properties"])
    assert (password["last_accessed"], password["first_seen"], password["unused_days"]) == (
        None,
        None,
        None,
    )
    key = data.finding_record(items[FindingType.UNUSED_ACCESS_KEY])
    assert key["details"]["access_key_ids"] == ["AKIAIOSFODNN7EXAMPLE"]
    assert key["first_seen"] == "2025-03-10" and key["new"] is True
    assert key["owner_manager"] == "payments-lead@example.com"
    assert key["owner_notes"] == ["principal tag owner: 'ci bot' is not an e-mail address"]
    assert password["exception"] == {
        "id": "EXC-2025-007",
        "reason": "Break-glass console user, reviewed quarterly",
        "approved_by": "ciso@example.com",
        "expires": "2025-09-30",
        "expired": False,
        "source": "config",
    }
    assert password["review"] is None
    role = data.finding_record(sort_items(fx.sample_items())[0])
    assert (role["sla_days"], role["sla_breached"], role["age_days"]) == (30, True, 63)
    perms = data.finding_record(items[FindingType.UNUSED_PERMISSION])
    s3 = perms["details"]["services"][0]
    assert s3["namespace"] == "s3" and s3["actions"][0] == {
        "action": "s3:DeleteObject",
        "last_accessed": None,
    }
    assert perms["remediation"][0]["console_url"].startswith("https://")
    assert perms["recommendation"]["status"] == "SUCCEEDED"
    assert [s["action"] for s in perms["recommendation"]["steps"]] == [
        "CREATE_POLICY",
        "DETACH_POLICY",
    ]
    assert perms["recommendation"]["steps"][0]["recommended_policy"] == fx.POLICY_AFTER
    assert perms["details"]["policy_documents"] == [
        {
            "policy_id": "arn:aws:iam::222222222222:policy/data-pipeline-access",
            "document": fx.POLICY_BEFORE,
        }
    ]


def test_findings_json_is_utf8_and_keeps_hostile_text(report: OwnerReport) -> None:
    raw = data.findings_json(report.items, report.context)
    assert fx.RTL.encode() in raw  # data files keep the original text
    assert json.loads(raw.decode("utf-8"))


def read_csv(items: tuple[ReportItem, ...]) -> list[dict[str, str]]:
    text = data.findings_csv(items, fx.make_context()).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_findings_csv_parses_and_matches_records(report: OwnerReport) -> None:
    rows = read_csv(fx.sample_items())
    assert list(rows[0]) == list(data.FLAT_COLUMNS)
    assert len(rows) == len(fx.sample_items())
    top = sort_items(fx.sample_items())[0]
    assert rows[0]["key"] == top.finding.key
    assert rows[0]["unused_days"] == str(top.unused_days)
    assert rows[0]["remediation_commands"].split("\n") == [s.command for s in top.remediation]
    password = next(r for r in rows if r["type"] == "UnusedIAMUserPassword")
    assert password["last_accessed"] == "" and password["unused_days"] == ""


def test_findings_csv_defuses_formulas() -> None:
    rows = read_csv(fx.hostile_items())
    cells = [v for row in rows for v in row.values()]
    assert not [v for v in cells if v.startswith(data.FORMULA_TRIGGERS)]
    assert "'" + fx.HYPERLINK in {r["owner_rule"] for r in rows}
    assert "'" + fx.AT_SUM in {r["access_key_ids"] for r in rows}
    assert {"'" + fx.PLUS_CMD, "'" + fx.MINUS, "'" + fx.TAB} <= {r["principal_name"] for r in rows}
    assert fx.SCRIPT in {r["account_name"] for r in rows}  # not a trigger: left alone
