"""Excel workbooks: the engineer's working copy of a report.

Sheets: Summary, Findings (the flattened `findings.json` records plus Decision and Reason to fill
in), Remediation (one row per step), Exceptions, Coverage.

Formula injection: every text cell is written with its data type forced to string, so the file
stores it as an inline string and never as a formula, whatever it starts with; texts that start
with a formula trigger (`=`, `+`, `-`, `@`, tab, CR) also get Excel's "quote prefix" cell flag,
the flag Excel sets itself when someone types `'=x`. The flag keeps the text a text if someone
edits the cell later, yet nothing is added to the value: the cell shows, copies and filters as
the original string. A leading apostrophe is used only in the CSV, which has no types.

Write-only mode streams rows instead of keeping every cell object in memory; it still supports
frozen panes, auto-filters, data validation and hyperlinks, which is all the workbook needs.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from copy import copy
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zipfile import ZIP_DEFLATED, ZipFile, ZipInfo

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.styles.cell_style import StyleArray
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.writer.excel import ExcelWriter

from reporter.aggregate import sort_items
from reporter.models import (
    AccountCoverage,
    ExceptionNotice,
    OrgSummary,
    OwnerReport,
    ReportItem,
    ResolvedFinding,
    RunContext,
)
from reporter.render import views
from reporter.render.data import (
    FLAT_COLUMNS,
    FORMULA_TRIGGERS,
    exception_record,
    finding_record,
    flat_record,
    linkable,
    step_record,
)

DECISIONS = ("Remove", "Keep until", "Accept risk")

# Limits of the file format: longer texts are cut by Excel with a "repair" prompt, and longer
# hyperlinks make it refuse the link.
MAX_TEXT = 32_767
MAX_LINK = 2_079

DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm"

_HEADER_FONT = Font(bold=True, color="FFFFFF")
_HEADER_FILL = PatternFill("solid", fgColor="1F3A5F")
_INPUT_FILL = PatternFill("solid", fgColor="FFF4CC")
_INPUT_HEADER_FILL = PatternFill("solid", fgColor="B45309")
_TITLE_FONT = Font(bold=True, size=14, color="1F3A5F")
_SECTION_FONT = Font(bold=True, color="1F3A5F")
_LINK_FONT = Font(color="1D4ED8", underline="single")
_WRAP = Alignment(wrap_text=True, vertical="top")
_TOP = Alignment(vertical="top")


@dataclass(frozen=True)
class Column:
    """One column of a sheet: the record field it shows, its header and how to write it."""

    field: str
    width: float
    kind: str = "text"  # text | int | date | datetime | link | bool


# Widths in Excel character units, chosen for the common case; everything is filterable anyway.
_FINDING_WIDTHS = {
    "key": 40,
    "type": 22,
    "account_id": 14,
    "account_name": 22,
    "principal_arn": 48,
    "principal_type": 9,
    "principal_name": 28,
    "status": 10,
    "severity": 10,
    "priority": 9,
    "unused_days": 12,
    "last_accessed": 17,
    "first_seen": 12,
    "new": 7,
    "age_days": 10,
    "sla_days": 10,
    "sla_breached": 13,
    "owner": 28,
    "owner_rule": 22,
    "owner_manager": 28,
    "region": 12,
    "created_at": 17,
    "updated_at": 17,
    "owner_notes": 40,
    "exception_id": 16,
    "exception_reason": 40,
    "exception_approved_by": 24,
    "exception_expires": 16,
    "exception_expired": 16,
    "access_key_ids": 24,
    "unused_services": 30,
    "unused_actions": 40,
    "attached_policies": 40,
    "principal_tags": 30,
    "recommendation": 20,
    "remediation_steps": 40,
    "remediation_commands": 60,
    "remediation_rollback": 40,
    "link_console": 40,
    "link_access_analyzer": 40,
    "link_security_hub": 40,
    "sources": 40,
}
_FINDING_KINDS = {
    "priority": "int",
    "unused_days": "int",
    "last_accessed": "datetime",
    "created_at": "datetime",
    "updated_at": "datetime",
    "first_seen": "date",
    "exception_expires": "date",
    "new": "bool",
    "sla_breached": "bool",
    "exception_expired": "bool",
    "age_days": "int",
    "sla_days": "int",
    "link_console": "link",
    "link_access_analyzer": "link",
    "link_security_hub": "link",
}
FINDING_COLUMNS: tuple[Column, ...] = tuple(
    Column(f, _FINDING_WIDTHS[f], _FINDING_KINDS.get(f, "text")) for f in FLAT_COLUMNS
)
INPUT_COLUMNS: tuple[Column, ...] = (Column("Decision", 14), Column("Reason", 40))

REMEDIATION_COLUMNS: tuple[Column, ...] = (
    Column("key", 40),
    Column("account_id", 14),
    Column("principal_name", 28),
    Column("step", 6, "int"),
    Column("title", 36),
    Column("command", 80),
    # Text, not a hyperlink: a link per step cost a third of the sheet's time, and the
    # Findings sheet links every finding's console page already.
    Column("console_url", 40),
    Column("rollback", 60),
    Column("detail", 60),
)
# Wrapped text costs a style per cell; only the long, multi-line texts get it.
_WRAPPED = frozenset({"command", "rollback", "detail", "reason"})

EXCEPTION_COLUMNS: tuple[Column, ...] = (
    Column("exception_id", 16),
    Column("notice", 10),
    Column("expires", 12, "date"),
    Column("expired", 9, "bool"),
    Column("approved_by", 26),
    Column("reason", 50),
    Column("matched", 9, "int"),
    Column("key", 40),
    Column("account_id", 14),
    Column("principal_name", 28),
    Column("status", 10),
)

COVERAGE_COLUMNS: tuple[Column, ...] = (
    Column("account_id", 14),
    Column("account_name", 28),
    Column("state", 12),
    Column("in_scope", 10, "bool"),
    Column("covered", 10, "bool"),
    Column("sources", 30),
    Column("reason", 70),
)


def render_owner_xlsx(report: OwnerReport) -> bytes:
    """The workbook one owner receives."""
    book = _Book()
    sheet = _Sheet(book, "Summary")
    _meta(sheet, report.context, "Unused access report", report.owner)
    _owner_figures(sheet, report)
    _resolved(sheet, report.resolved)
    _usage_notes(sheet)
    _tables(book, report.items, report.coverage, report.exception_notices)
    return _save(book.wb, report.context)


def render_summary_xlsx(summary: OrgSummary) -> bytes:
    """The organization workbook: every finding of the run, owned or not."""
    items = views.all_items(summary)
    book = _Book()
    sheet = _Sheet(book, "Summary")
    _meta(sheet, summary.context, "Unused access — organization summary", None)
    _org_figures(sheet, summary, items)
    _trend(sheet, summary)
    _resolved(sheet, summary.resolved)
    _tables(book, items, summary.coverage, summary.exception_notices)
    return _save(book.wb, summary.context)


# ---- cells ------------------------------------------------------------------------------------
#
# Speed: openpyxl writes a plain value (str, int, bool) through one reused cell object, but every
# WriteOnlyCell we hand it costs a cell object and a style lookup. So only cells that need
# something (a style, a hyperlink, the quote-prefix flag) become cells, and their styles are
# resolved once per workbook (`_Book.style`) instead of once per cell.


class _Book:
    """A write-only workbook and its styles, each registered once."""

    def __init__(self) -> None:
        self.wb = Workbook(write_only=True)
        self._probe = self.wb.create_sheet("_probe")
        self._styles: dict[str, StyleArray] = {}
        self.wb.remove(self._probe)

    def style(self, name: str) -> StyleArray:
        """The style array of a named look; computed on first use."""
        found = self._styles.get(name)
        if found is None:
            cell = WriteOnlyCell(self._probe)
            for attr, setting in _LOOKS[name].items():
                setattr(cell, attr, setting)
            found = self._styles[name] = cell._style
        return found


_LOOKS: dict[str, dict[str, Any]] = {
    "date": {"number_format": DATE_FORMAT},
    "datetime": {"number_format": DATETIME_FORMAT},
    "link": {"font": _LINK_FONT},
    "wrap": {"alignment": _WRAP},
    "top": {"alignment": _TOP},
    "input": {"fill": _INPUT_FILL},
    "header": {"font": _HEADER_FONT, "fill": _HEADER_FILL},
    "input_header": {"font": _HEADER_FONT, "fill": _INPUT_HEADER_FILL},
    "title": {"font": _TITLE_FONT},
    "section": {"font": _SECTION_FONT},
}


def clean_text(value: str) -> str:
    # Characters the XML format cannot carry are replaced rather than crashing the render.
    cleaned: str = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)
    return cleaned[:MAX_TEXT]


def text_cell(ws: Any, value: str, style: StyleArray | None = None) -> WriteOnlyCell:
    """A cell that holds `value` as a string, never as a formula (see the module docstring)."""
    value = clean_text(value)
    cell = WriteOnlyCell(ws)
    if style is not None:
        cell._style = style
    cell.value = value
    # openpyxl turns a value starting with "=" into a formula on assignment; undo that.
    cell.data_type = "s"
    if value.startswith(FORMULA_TRIGGERS):
        cell._style = copy(cell._style)  # the shared array must not change
        cell.quotePrefix = True
    return cell


def _value(book: _Book, ws: Any, value: Any, kind: str = "text", look: str = "") -> Any:
    """What to append for one cell: a plain value where that is safe, else a cell."""
    if value is None or value == "":
        return None
    if kind == "date":
        return _dated(book, ws, _to_date(value), "date", look)
    if kind == "datetime":
        return _dated(book, ws, _to_excel_datetime(value), "datetime", look)
    if not isinstance(value, str):
        if look:
            cell = WriteOnlyCell(ws, value)
            cell._style = book.style(look)
            return cell
        return value  # int or bool
    if kind == "link" and linkable(value) and len(value) <= MAX_LINK:
        cell = text_cell(ws, value, book.style("link"))
        cell.hyperlink = value
        return cell
    if look or value.startswith(FORMULA_TRIGGERS):
        return text_cell(ws, value, book.style(look) if look else None)
    # A plain str that starts with none of the triggers cannot become a formula.
    return clean_text(value)


def _dated(book: _Book, ws: Any, value: date, kind: str, look: str) -> WriteOnlyCell:
    cell = WriteOnlyCell(ws)
    cell._style = book.style(kind if not look else f"{kind}+{look}")
    cell.value = value
    return cell


_LOOKS["date+top"] = {**_LOOKS["date"], **_LOOKS["top"]}
_LOOKS["datetime+top"] = {**_LOOKS["datetime"], **_LOOKS["top"]}


def _to_date(value: str | date) -> date:
    if isinstance(value, datetime):
        return _to_excel_datetime(value).date()
    return value if isinstance(value, date) else date.fromisoformat(value[:10])


def _to_excel_datetime(value: str | datetime) -> datetime:
    """Excel has no time zones: store the UTC wall-clock time (the header says UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


class _Sheet:
    """The free-form Summary sheet: label/value rows and small titled tables."""

    def __init__(self, book: _Book, title: str) -> None:
        self.book = book
        self.ws = book.wb.create_sheet(title)
        self.ws.column_dimensions["A"].width = 34
        self.ws.column_dimensions["B"].width = 40
        for letter in "CDEFG":
            self.ws.column_dimensions[letter].width = 16

    def row(self, *values: Any, kinds: Sequence[str] = ()) -> None:
        kinds = tuple(kinds) + ("text",) * (len(values) - len(kinds))
        self.ws.append(
            [_value(self.book, self.ws, v, k) for v, k in zip(values, kinds, strict=True)]
        )

    def title(self, text: str) -> None:
        self.ws.append([text_cell(self.ws, text, self.book.style("title"))])

    def section(self, *headers: str) -> None:
        self.ws.append([])
        self.ws.append([text_cell(self.ws, h, self.book.style("section")) for h in headers])


# ---- summary sheets ---------------------------------------------------------------------------


def _meta(sheet: _Sheet, context: RunContext, title: str, owner: str | None) -> None:
    sheet.title(title)
    if owner is not None:
        sheet.row("Owner", owner)
    sheet.row("Period start", context.period_start, kinds=("text", "date"))
    sheet.row("Period end", context.period_end, kinds=("text", "date"))
    sheet.row("Generated (UTC)", context.generated_at, kinds=("text", "datetime"))
    sheet.row("Scope", context.scope)
    sheet.row("Run id", context.run_id)


def _counts(sheet: _Sheet, heading: str, rows: Iterable[views.Count], detail: str = "") -> None:
    if detail:
        sheet.section(heading, detail, "Findings")
        for c in rows:
            sheet.row(c.label, c.detail, c.count)
    else:
        sheet.section(heading, "Findings")
        for c in rows:
            sheet.row(c.label, c.count)


def _attention(sheet: _Sheet, items: Sequence[ReportItem], resolved: int) -> None:
    figures = views.attention(items)
    sheet.row("New this run", figures.new)
    sheet.row("Resolved since the last run", resolved)
    sheet.row("Past their SLA", figures.sla_breached)
    sheet.row("Excepted", figures.excepted)
    sheet.row("Exception expired (active again)", figures.exception_expired)


def _owner_figures(sheet: _Sheet, report: OwnerReport) -> None:
    items = report.items
    cover = views.coverage(report.coverage)
    sheet.section("Totals", "")
    sheet.row("Findings", len(items))
    _attention(sheet, items, len(report.resolved))
    sheet.row("Accounts", len(report.accounts))
    sheet.row("Accounts not assessed", len(cover.not_covered))
    _counts(sheet, "By type", views.by_type(items))
    _counts(sheet, "By status", (views.Count(k, v) for k, v in views.by_status(items).items()))
    _counts(sheet, "By account", views.by_account(items, report.accounts), "Account id")


def _org_figures(sheet: _Sheet, summary: OrgSummary, items: Sequence[ReportItem]) -> None:
    cover = views.coverage(summary.coverage)
    sheet.section("Totals", "")
    sheet.row("Findings", len(items))
    _attention(sheet, items, len(summary.resolved))
    sheet.row("Owners", len(summary.owners))
    sheet.row("Unowned findings", len(summary.unowned))
    sheet.row("Accounts in scope", cover.in_scope)
    sheet.row("Accounts not assessed", len(cover.not_covered))
    sheet.row("Records skipped", summary.skipped)
    sheet.row("Records quarantined", summary.quarantined)
    _counts(sheet, "By type", views.by_type(items))
    _counts(sheet, "By status", (views.Count(k, v) for k, v in views.by_status(items).items()))
    sheet.section("Owner", "Accounts", "Findings", "Active", "Past SLA", "Longest unused (days)")
    for r in views.owner_ranking(summary):
        sheet.row(r.owner, r.accounts, r.findings, r.active, r.sla_breached, r.oldest_days)


def _trend(sheet: _Sheet, summary: OrgSummary) -> None:
    if not summary.trend:
        return
    sheet.section("Run", "Started (UTC)", "Findings", "New", "Resolved")
    for t in summary.trend:
        sheet.row(t.run_id, t.started_at, t.findings, t.new, t.resolved, kinds=("text", "datetime"))


def _resolved(sheet: _Sheet, resolved: Sequence[ResolvedFinding]) -> None:
    if not resolved:
        return
    sheet.section(
        "Resolved since the last run: principal", "Account id", "Type", "First seen", "Resolved"
    )
    for r in sorted(resolved, key=lambda r: (r.account_id, r.principal_arn, r.type)):
        sheet.row(
            r.principal_arn,
            r.account_id,
            r.type,
            r.first_seen,
            r.resolved_at,
            kinds=("text", "text", "text", "date", "date"),
        )


def _usage_notes(sheet: _Sheet) -> None:
    sheet.section("How to use this workbook")
    for line in (
        "Findings: one row per finding. Record your decision in the Decision column "
        f"({' / '.join(DECISIONS)}) and why in Reason.",
        "Remediation: the commands that remove each finding, in order, with their rollback. "
        "Run them in the account named on the row.",
        "Exceptions: approved exceptions that cover findings, and exceptions that expire soon, "
        "have expired or match nothing.",
        "Coverage: accounts that could not be assessed; findings in them are missing.",
    ):
        sheet.row(line)


# ---- tables -----------------------------------------------------------------------------------


def _tables(
    book: _Book,
    items: Sequence[ReportItem],
    coverage: Sequence[AccountCoverage],
    notices: Sequence[ExceptionNotice],
) -> None:
    # Records are built per row and dropped: 100,000 of them at once would cost more memory
    # than everything else in the run.
    ordered = sort_items(items)
    _findings_sheet(book, ordered)
    _remediation_sheet(book, ordered)
    _exceptions_sheet(book, ordered, notices)
    _coverage_sheet(book, coverage)


def _table_sheet(book: _Book, title: str, columns: Sequence[Column], rows: int) -> Any:
    """A sheet with a header row, frozen below it, auto-filtered over `rows` data rows."""
    ws = book.wb.create_sheet(title)
    # Write-only sheets take their layout before the first row.
    for n, col in enumerate(columns, 1):
        ws.column_dimensions[get_column_letter(n)].width = col.width
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{rows + 1}"
    header = book.style("header")
    input_header = book.style("input_header")
    ws.append(
        [
            text_cell(ws, col.field, input_header if col in INPUT_COLUMNS else header)
            for col in columns
        ]
    )
    return ws


def _findings_sheet(book: _Book, items: Sequence[ReportItem]) -> None:
    columns = FINDING_COLUMNS + INPUT_COLUMNS
    ws = _table_sheet(book, "Findings", columns, len(items))
    decision = get_column_letter(len(FINDING_COLUMNS) + 1)
    validation = DataValidation(
        type="list",
        formula1='"' + ",".join(DECISIONS) + '"',
        allow_blank=True,
        showErrorMessage=True,
        errorTitle="Decision",
        error=f"Choose one of: {', '.join(DECISIONS)}.",
        showInputMessage=True,
        promptTitle="Decision",
        prompt="Remove the access, keep it until a date (say which in Reason), or accept the risk.",
    )
    validation.add(f"{decision}2:{decision}{max(len(items), 1) + 1}")
    ws.data_validations.append(validation)
    fields = [(c.field, c.kind) for c in FINDING_COLUMNS]
    for item in items:
        flat = flat_record(finding_record(item))
        # No per-cell alignment or fill here: styling is most of the cost of a row. The commands
        # are wrapped on the Remediation sheet instead, and the empty Decision and Reason cells
        # are marked by their header and the validation's prompt.
        ws.append([_value(book, ws, flat[f], k) for f, k in fields])


def _remediation_sheet(book: _Book, items: Sequence[ReportItem]) -> None:
    rows = sum(len(i.remediation) for i in items)
    ws = _table_sheet(book, "Remediation", REMEDIATION_COLUMNS, rows)
    looks = [(c.field, c.kind, "wrap" if c.field in _WRAPPED else "") for c in REMEDIATION_COLUMNS]
    for item in items:
        finding = item.finding
        for n, step in enumerate(item.remediation, 1):
            row = {
                "key": finding.key,
                "account_id": finding.account_id,
                "principal_name": finding.principal_name,
                "step": n,
                **step_record(step),
            }
            ws.append([_value(book, ws, row[f], k, look) for f, k, look in looks])


def _exceptions_sheet(
    book: _Book, items: Sequence[ReportItem], notices: Sequence[ExceptionNotice]
) -> None:
    """One row per excepted finding, then one per notice no finding of this workbook carries."""
    kinds = {n.id: n for n in notices}
    rows = []
    for item in items:
        exc = exception_record(item.exception)
        if exc is None:
            continue
        notice = kinds.get(exc["id"])
        rows.append(
            {
                **exc,
                "exception_id": exc["id"],
                "notice": notice.kind if notice else None,
                "matched": notice.matched if notice else None,
                "key": item.finding.key,
                "account_id": item.finding.account_id,
                "principal_name": item.finding.principal_name,
                "status": item.status.value,
            }
        )
    shown = {row["exception_id"] for row in rows}
    rows.extend(
        {
            "exception_id": n.id,
            "notice": n.kind,
            "expires": n.expires,
            "expired": n.kind == "expired",
            "approved_by": n.approved_by,
            "reason": n.reason,
            "matched": n.matched,
        }
        for n in notices
        if n.id not in shown
    )
    ws = _table_sheet(book, "Exceptions", EXCEPTION_COLUMNS, len(rows))
    looks = [(c.field, c.kind, "wrap" if c.field in _WRAPPED else "") for c in EXCEPTION_COLUMNS]
    for row in rows:
        ws.append([_value(book, ws, row.get(f), k, look) for f, k, look in looks])


def _coverage_sheet(book: _Book, coverage: Sequence[AccountCoverage]) -> None:
    ws = _table_sheet(book, "Coverage", COVERAGE_COLUMNS, len(coverage))
    # Accounts that were not assessed first: they are what the reader has to act on.
    ordered = sorted(coverage, key=lambda c: (c.covered or not c.in_scope, c.account_name))
    looks = [(c.field, c.kind, "wrap" if c.field in _WRAPPED else "top") for c in COVERAGE_COLUMNS]
    for c in ordered:
        values = {
            "account_id": c.account_id,
            "account_name": c.account_name,
            "state": c.state,
            "in_scope": c.in_scope,
            "covered": c.covered,
            "sources": "; ".join(c.sources),
            "reason": c.reason,
        }
        ws.append([_value(book, ws, values[f], k, look) for f, k, look in looks])


# ---- saving -----------------------------------------------------------------------------------


class _StampedZip(ZipFile):
    """A ZipFile whose members all carry one timestamp instead of the clock's.

    With the document properties set from the run too, the same report gives the same bytes,
    so evidence hashes are reproducible.
    """

    def __init__(self, file: io.BytesIO, stamp: datetime) -> None:
        super().__init__(file, "w", ZIP_DEFLATED)
        self.stamp = (stamp.year, stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second)

    def writestr(  # type: ignore[override]
        self, zinfo_or_arcname: str | ZipInfo, data: str | bytes, *args: Any, **kwargs: Any
    ) -> None:
        if not isinstance(zinfo_or_arcname, ZipInfo):
            zinfo_or_arcname = ZipInfo(zinfo_or_arcname, date_time=self.stamp)
            zinfo_or_arcname.compress_type = ZIP_DEFLATED
        super().writestr(zinfo_or_arcname, data, *args, **kwargs)

    def write(self, filename: Any, arcname: Any = None, *args: Any, **kwargs: Any) -> None:
        # openpyxl streams each worksheet through a temporary file; take its bytes, not its mtime.
        with open(filename, "rb") as handle:
            self.writestr(arcname or filename, handle.read())


def _save(wb: Workbook, context: RunContext) -> bytes:
    stamp = _to_excel_datetime(context.generated_at)
    wb.properties.creator = "unused-access-reporter"
    wb.properties.title = f"Unused access report {context.run_id}"
    wb.properties.created = stamp
    wb.properties.modified = stamp
    buffer = io.BytesIO()
    # Workbook.save() would stamp `modified` with the clock; ExcelWriter does not.
    ExcelWriter(wb, _StampedZip(buffer, stamp)).save()
    return buffer.getvalue()
