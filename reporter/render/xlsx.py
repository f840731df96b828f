"""Excel workbooks: the engineer's working copy of a report.

Sheets: Summary, Findings (the flattened `findings.json` records plus Decision and Reason to fill
in), Remediation (one row per step), Coverage.

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
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zipfile import ZIP_DEFLATED, ZipFile, ZipInfo

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.writer.excel import ExcelWriter

from reporter.aggregate import sort_items
from reporter.models import AccountCoverage, OrgSummary, OwnerReport, ReportItem, RunContext
from reporter.render import views
from reporter.render.data import (
    FLAT_COLUMNS,
    FORMULA_TRIGGERS,
    finding_record,
    flat_record,
    linkable,
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
    "owner": 28,
    "owner_rule": 22,
    "region": 12,
    "created_at": 17,
    "updated_at": 17,
    "access_key_ids": 24,
    "unused_services": 30,
    "unused_actions": 40,
    "recommendation": 20,
    "remediation_steps": 40,
    "remediation_commands": 60,
    "remediation_rollback": 40,
    "link_console": 40,
    "link_access_analyzer": 40,
    "link_security_hub": 40,
    "sources": 40,
    "exception": 20,
}
_FINDING_KINDS = {
    "priority": "int",
    "unused_days": "int",
    "last_accessed": "datetime",
    "created_at": "datetime",
    "updated_at": "datetime",
    "first_seen": "date",
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
    Column("console_url", 40, "link"),
    Column("rollback", 60),
)
_WRAPPED = frozenset({"title", "command", "rollback", "reason"})

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
    wb = Workbook(write_only=True)
    sheet = _Sheet(wb, "Summary")
    _meta(sheet, report.context, "Unused access report", report.owner)
    _owner_figures(sheet, report)
    _usage_notes(sheet)
    _tables(wb, report.items, report.coverage)
    return _save(wb, report.context)


def render_summary_xlsx(summary: OrgSummary) -> bytes:
    """The organization workbook: every finding of the run, owned or not."""
    items = views.all_items(summary)
    wb = Workbook(write_only=True)
    sheet = _Sheet(wb, "Summary")
    _meta(sheet, summary.context, "Unused access — organization summary", None)
    _org_figures(sheet, summary, items)
    _tables(wb, items, summary.coverage)
    return _save(wb, summary.context)


# ---- cells ------------------------------------------------------------------------------------


def text_cell(ws: Any, value: str, **style: Any) -> WriteOnlyCell:
    """A cell that holds `value` as a string, never as a formula (see the module docstring)."""
    # Characters the XML format cannot carry are replaced rather than crashing the render.
    value = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)[:MAX_TEXT]
    cell = WriteOnlyCell(ws, value)
    # openpyxl turns a value starting with "=" into a formula on assignment; undo that.
    cell.data_type = "s"
    if value.startswith(FORMULA_TRIGGERS):
        cell.quotePrefix = True
    return _styled(cell, **style)


def _cell(ws: Any, value: Any, kind: str = "text", **style: Any) -> WriteOnlyCell | None:
    if value is None or value == "":
        return None
    if kind == "date":
        return _styled(WriteOnlyCell(ws, _to_date(value)), number_format=DATE_FORMAT, **style)
    if kind == "datetime":
        return _styled(
            WriteOnlyCell(ws, _to_excel_datetime(value)), number_format=DATETIME_FORMAT, **style
        )
    if kind in ("int", "bool") or isinstance(value, int | float):
        return _styled(WriteOnlyCell(ws, value), **style)
    cell = text_cell(ws, str(value), **style)
    if kind == "link" and linkable(value) and len(value) <= MAX_LINK:
        cell.hyperlink = value
        cell.font = _LINK_FONT
    return cell


def _styled(cell: WriteOnlyCell, **style: Any) -> WriteOnlyCell:
    for name, setting in style.items():
        setattr(cell, name, setting)
    return cell


def _to_date(value: str | date) -> date:
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

    def __init__(self, wb: Workbook, title: str) -> None:
        self.ws = wb.create_sheet(title)
        self.ws.column_dimensions["A"].width = 34
        self.ws.column_dimensions["B"].width = 40
        for letter in "CDEF":
            self.ws.column_dimensions[letter].width = 14

    def row(self, *values: Any, kinds: Sequence[str] = (), **style: Any) -> None:
        kinds = tuple(kinds) + ("text",) * (len(values) - len(kinds))
        self.ws.append([_cell(self.ws, v, k, **style) for v, k in zip(values, kinds, strict=True)])

    def title(self, text: str) -> None:
        self.ws.append([text_cell(self.ws, text, font=_TITLE_FONT)])

    def section(self, *headers: str) -> None:
        self.ws.append([])
        self.ws.append([text_cell(self.ws, h, font=_SECTION_FONT) for h in headers])


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


def _owner_figures(sheet: _Sheet, report: OwnerReport) -> None:
    items = report.items
    cover = views.coverage(report.coverage)
    sheet.section("Totals", "")
    sheet.row("Findings", len(items))
    sheet.row("Accounts", len(report.accounts))
    sheet.row("Accounts not assessed", len(cover.not_covered))
    _counts(sheet, "By type", views.by_type(items))
    _counts(sheet, "By status", (views.Count(k, v) for k, v in views.by_status(items).items()))
    _counts(sheet, "By account", views.by_account(items, report.accounts), "Account id")


def _org_figures(sheet: _Sheet, summary: OrgSummary, items: Sequence[ReportItem]) -> None:
    cover = views.coverage(summary.coverage)
    sheet.section("Totals", "")
    sheet.row("Findings", len(items))
    sheet.row("Owners", len(summary.owners))
    sheet.row("Unowned findings", len(summary.unowned))
    sheet.row("Accounts in scope", cover.in_scope)
    sheet.row("Accounts not assessed", len(cover.not_covered))
    sheet.row("Records skipped", summary.skipped)
    sheet.row("Records quarantined", summary.quarantined)
    _counts(sheet, "By type", views.by_type(items))
    _counts(sheet, "By status", (views.Count(k, v) for k, v in views.by_status(items).items()))
    sheet.section("Owner", "Accounts", "Findings", "Active", "Longest unused (days)")
    for r in views.owner_ranking(summary):
        sheet.row(r.owner, r.accounts, r.findings, r.active, r.oldest_days)


def _usage_notes(sheet: _Sheet) -> None:
    sheet.section("How to use this workbook")
    for line in (
        "Findings: one row per finding. Record your decision in the Decision column "
        f"({' / '.join(DECISIONS)}) and why in Reason.",
        "Remediation: the commands that remove each finding, in order, with their rollback. "
        "Run them in the account named on the row.",
        "Coverage: accounts that could not be assessed; findings in them are missing.",
    ):
        sheet.row(line)


# ---- tables -----------------------------------------------------------------------------------


def _tables(wb: Workbook, items: Sequence[ReportItem], coverage: Sequence[AccountCoverage]) -> None:
    records = [finding_record(i) for i in sort_items(items)]
    _findings_sheet(wb, records)
    _remediation_sheet(wb, records)
    _coverage_sheet(wb, coverage)


def _table_sheet(wb: Workbook, title: str, columns: Sequence[Column], rows: int) -> Any:
    """A sheet with a header row, frozen below it, auto-filtered over `rows` data rows."""
    ws = wb.create_sheet(title)
    # Write-only sheets take their layout before the first row.
    for n, col in enumerate(columns, 1):
        ws.column_dimensions[get_column_letter(n)].width = col.width
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{rows + 1}"
    ws.append(
        [
            text_cell(
                ws,
                col.field,
                font=_HEADER_FONT,
                fill=_INPUT_HEADER_FILL if col in INPUT_COLUMNS else _HEADER_FILL,
            )
            for col in columns
        ]
    )
    return ws


def _findings_sheet(wb: Workbook, records: Sequence[dict[str, Any]]) -> None:
    columns = FINDING_COLUMNS + INPUT_COLUMNS
    ws = _table_sheet(wb, "Findings", columns, len(records))
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
    validation.add(f"{decision}2:{decision}{max(len(records), 1) + 1}")
    ws.data_validations.append(validation)
    for record in records:
        flat = flat_record(record)
        # No per-cell alignment here: styling is most of the cost of a row, and these rows are
        # single-line (the commands are wrapped on the Remediation sheet instead).
        row = [_cell(ws, flat[c.field], c.kind) for c in FINDING_COLUMNS]
        row += [_styled(WriteOnlyCell(ws), fill=_INPUT_FILL) for _ in INPUT_COLUMNS]
        ws.append(row)


def _remediation_sheet(wb: Workbook, records: Sequence[dict[str, Any]]) -> None:
    rows = [
        {
            "key": r["key"],
            "account_id": r["account_id"],
            "principal_name": r["principal_name"],
            "step": n,
            **step,
        }
        for r in records
        for n, step in enumerate(r["remediation"], 1)
    ]
    ws = _table_sheet(wb, "Remediation", REMEDIATION_COLUMNS, len(rows))
    for row in rows:
        ws.append(
            [
                _cell(ws, row[c.field], c.kind, alignment=_WRAP if c.field in _WRAPPED else _TOP)
                for c in REMEDIATION_COLUMNS
            ]
        )


def _coverage_sheet(wb: Workbook, coverage: Sequence[AccountCoverage]) -> None:
    ws = _table_sheet(wb, "Coverage", COVERAGE_COLUMNS, len(coverage))
    # Accounts that were not assessed first: they are what the reader has to act on.
    ordered = sorted(coverage, key=lambda c: (c.covered or not c.in_scope, c.account_name))
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
        ws.append(
            [
                _cell(
                    ws,
                    values[col.field],
                    col.kind,
                    alignment=_WRAP if col.field in _WRAPPED else _TOP,
                )
                for col in COVERAGE_COLUMNS
            ]
        )


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
