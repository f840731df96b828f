"""Excel workbooks: the engineer's working copy of a report.

Sheets: Summary, Findings (the flattened `findings.json` records plus Decision and Reason to fill
in), Remediation (one row per step), Exceptions, Coverage.

Written by our own streaming writer (`sheetxml`), not openpyxl: openpyxl's per-cell objects
and style lookups capped the organization workbook at about 1,700 finding rows a second here,
two and a half minutes for 100,000 findings. openpyxl remains the reader in the tests.

Formula injection: every text cell is an inline string, which no spreadsheet evaluates, whatever
it starts with; texts that start with a formula trigger (`=`, `+`, `-`, `@`, tab, CR) also get
Excel's "quote prefix" cell flag, the flag Excel sets itself when someone types `'=x`. The flag
keeps the text a text if someone edits the cell later, yet nothing is added to the value: the
cell shows, copies and filters as the original string. A leading apostrophe is used only in the
CSV, which has no types. Only web URLs (`linkable`) become hyperlinks.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from operator import itemgetter
from typing import Any

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
from reporter.render.data import flat_record
from reporter.render.record import (
    COLUMNS,
    FLAT_COLUMNS,
    exception_record,
    finding_record,
    linkable,
    step_record,
)
from reporter.render.sheetxml import (
    DATE_FORMAT,
    DATETIME_FORMAT,
    MAX_ROWS,
    MAX_TEXT,
    DateValidation,
    Link,
    ListValidation,
    Look,
    Sheet,
    Workbook,
    clean_text,
    column_letter,
)
from reporter.reviews.decisions import LABELS
from reporter.reviews.workbook import CARRIER_SHEET, DECISION, KEEP_UNTIL, OWNER, REASON, RUN_ID

__all__ = [
    "COVERAGE_COLUMNS",
    "DATETIME_FORMAT",
    "DATE_FORMAT",
    "DECISIONS",
    "EXCEPTION_COLUMNS",
    "FINDING_COLUMNS",
    "INPUT_COLUMNS",
    "MAX_LINK",
    "MAX_TEXT",
    "REMEDIATION_COLUMNS",
    "Column",
    "clean_text",
    "render_owner_xlsx",
    "render_summary_xlsx",
]

DECISIONS = LABELS

# Longer hyperlinks make Excel refuse the link; the URL is then shown as text.
MAX_LINK = 2_079


@dataclass(frozen=True)
class Column:
    """One column of a sheet: the record field it shows, its header and how to write it."""

    field: str
    width: float
    kind: str = "text"  # text | int | date | datetime | link | bool


# The flattened finding record's columns, widths and kinds as `reporter.render.record` declares
# them; everything is filterable anyway.
_RECORD_COLUMNS = {c.name: Column(c.name, c.width, c.kind) for c in COLUMNS}
# The Findings sheet starts with what a person decides on, then what they decide it by: the
# principal's name (frozen with the decision columns, so a row stays readable while scrolling
# right), type, account, unused days, priority, where a decision stands; then the rest of the
# flat record in its order. `decisions import` reads the sheet by header names.
INPUT_COLUMNS: tuple[Column, ...] = (
    Column(DECISION, 14),
    Column(KEEP_UNTIL, 12, "date"),
    Column(REASON, 40),
)
_LEAD_FIELDS = (
    "principal_name",
    "type",
    "account_id",
    "account_name",
    "unused_days",
    "priority",
    "review_state",
    "review_until",
)
SHEET_FIELDS: tuple[str, ...] = _LEAD_FIELDS + tuple(
    f for f in FLAT_COLUMNS if f not in _LEAD_FIELDS
)
# The data columns of the Findings sheet, in sheet order (after INPUT_COLUMNS).
FINDING_COLUMNS: tuple[Column, ...] = tuple(_RECORD_COLUMNS[f] for f in SHEET_FIELDS)
# Decision, Keep until, Reason and the principal's name stay in view.
FROZEN_COLUMNS = len(INPUT_COLUMNS) + 1
_BLANK_INPUTS: tuple[None, ...] = (None,) * len(INPUT_COLUMNS)
_sheet_values = itemgetter(*SHEET_FIELDS)


def sheet_row(flat: dict[str, Any]) -> list[Any]:
    """A Findings row: the empty input cells, then the flat record's values in sheet order."""
    return [*_BLANK_INPUTS, *_sheet_values(flat)]


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
# The step record's fields, after the finding's key, account, principal and the step number.
_STEP_FIELDS = tuple(c.field for c in REMEDIATION_COLUMNS[4:])
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
    book = _book(report.context)
    with _Summary(book) as sheet:
        _meta(sheet, report.context, "Unused access report", report.owner)
        _owner_figures(sheet, report)
        _resolved(sheet, report.resolved)
        _usage_notes(sheet)
    _tables(
        book, report.items, report.coverage, report.exception_notices, report.context.period_end
    )
    _carrier(book, report)
    return book.finish()


def _carrier(book: Workbook, report: OwnerReport) -> None:
    """The hidden sheet that tells `decisions import` whose workbook this is, from which run."""
    with book.sheet(CARRIER_SHEET, (12, 60), hidden=True) as sheet:
        sheet.row((RUN_ID, report.context.run_id))
        sheet.row((OWNER, report.owner))
        sheet.row(("note", "Read by `access-reporter decisions import`; do not edit."))


def render_summary_xlsx(summary: OrgSummary) -> bytes:
    """The organization workbook: every finding of the run, owned or not."""
    with SummaryWorkbook(summary) as book, _collector_paused():
        for item in book.items:
            book.add(flat_record(finding_record(item)))
        return book.finish()


class SummaryWorkbook:
    """The organization workbook in two steps, so its Findings rows can come from a pass over
    the findings the caller makes anyway: `add` every finding's flat record (`data.flat_record`)
    in the order of `items`, then `finish`. The pipeline adds them while it writes the data
    files, so each of 100,000 records is built once for the three files, not twice. Use as a
    context manager: leaving it unfinished (an error half-way) discards the workbook.
    """

    def __init__(self, summary: OrgSummary) -> None:
        self._summary = summary
        self.items = sort_items(views.all_items(summary))
        self._book = _book(summary.context)
        with _Summary(self._book) as sheet:
            _meta(sheet, summary.context, "Unused access — organization summary", None)
            _org_figures(sheet, summary, self.items)
            _trend(sheet, summary)
            _resolved(sheet, summary.resolved)
        self._findings = _findings_sheet(self._book, len(self.items), summary.context.period_end)
        self._finished = False

    def __enter__(self) -> SummaryWorkbook:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._finished:
            self._book.discard()

    def add(self, flat: dict[str, Any]) -> None:
        """The next finding's Findings row, from its flat record (`data.flat_record`)."""
        self._findings.write(sheet_row(flat))

    def finish(self) -> bytes:
        if self._findings.count != len(self.items):
            raise ValueError(
                f"the Findings sheet got {self._findings.count} rows for {len(self.items)} findings"
            )
        self._findings.sheet.close()
        with _collector_paused():
            _after_findings(
                self._book, self.items, self._summary.coverage, self._summary.exception_notices
            )
        self._finished = True
        return self._book.finish()


def _book(context: RunContext) -> Workbook:
    # Document times and zip timestamps come from the run, not the clock: the same report gives
    # the same bytes, so evidence hashes are reproducible.
    return Workbook(
        _to_excel_datetime(context.generated_at), f"Unused access report {context.run_id}"
    )


# ---- cells ------------------------------------------------------------------------------------


def _to_date(value: str | date) -> date:
    if isinstance(value, datetime):
        return _to_excel_datetime(value).date()
    return value if isinstance(value, date) else date.fromisoformat(value[:10])


def _to_excel_datetime(value: str | datetime) -> datetime:
    """Excel has no time zones: store the UTC wall-clock time (the header says UTC)."""
    if isinstance(value, str):
        if value.endswith("Z"):  # the records' form (`iso_datetime`): UTC already
            return datetime.fromisoformat(value[:-1])
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _link(value: Any) -> Any:
    """A link cell for a web URL Excel accepts; anything else stays text."""
    if isinstance(value, str) and len(value) <= MAX_LINK and linkable(value):
        return Link(value, value)
    return value


def _converter(kind: str) -> Callable[[Any], Any] | None:
    """How a record value of a column kind becomes a cell value; None: as it is."""
    if kind == "date":
        return lambda v: None if v is None or v == "" else _to_date(v)
    if kind == "datetime":
        return lambda v: None if v is None or v == "" else _to_excel_datetime(v)
    if kind == "link":
        return _link
    return None


class _Summary:
    """The free-form Summary sheet: label/value rows and small titled tables."""

    def __init__(self, book: Workbook) -> None:
        self.sheet = book.sheet("Summary", (34, 40, 16, 16, 16, 16, 16))

    def __enter__(self) -> _Summary:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sheet.close()

    def row(self, *values: Any, kinds: Sequence[str] = ()) -> None:
        cells = list(values)
        for n, kind in enumerate(kinds):
            convert = _converter(kind)
            if convert is not None:
                cells[n] = convert(cells[n])
        self.sheet.row(cells)

    def title(self, text: str) -> None:
        self.sheet.row((text,), Look.TITLE)

    def section(self, *headers: str) -> None:
        self.sheet.blank()
        self.sheet.row(headers, Look.SECTION)


# ---- summary sheets ---------------------------------------------------------------------------


def _meta(sheet: _Summary, context: RunContext, title: str, owner: str | None) -> None:
    sheet.title(title)
    if owner is not None:
        sheet.row("Owner", owner)
    sheet.row("Period start", context.period_start, kinds=("text", "date"))
    sheet.row("Period end", context.period_end, kinds=("text", "date"))
    sheet.row("Generated (UTC)", context.generated_at, kinds=("text", "datetime"))
    sheet.row("Scope", context.scope)
    sheet.row("Run id", context.run_id)


def _counts(sheet: _Summary, heading: str, rows: Iterable[views.Count], detail: str = "") -> None:
    if detail:
        sheet.section(heading, detail, "Findings")
        for c in rows:
            sheet.row(c.label, c.detail, c.count)
    else:
        sheet.section(heading, "Findings")
        for c in rows:
            sheet.row(c.label, c.count)


def _attention(sheet: _Summary, items: Sequence[ReportItem], resolved: int) -> None:
    figures = views.attention(items)
    sheet.row("New this run", figures.new)
    sheet.row("Resolved since the last run", resolved)
    sheet.row("Past their SLA", figures.sla_breached)
    sheet.row("Excepted", figures.excepted)
    sheet.row("Exception expired (active again)", figures.exception_expired)


def _organization_access(sheet: _Summary, items: Sequence[ReportItem]) -> None:
    """Organization access, counted apart and listed for the security team (no commands)."""
    access = views.organization_access(items)
    sheet.row("Organization access (review with the security team)", len(access))
    if not access:
        return
    sheet.section(
        "Organization access: principal", "Account id", "Kind", "Owner", "Why it stays", "Source"
    )
    for item in access:
        a = item.organization_access
        assert a is not None
        sheet.row(
            item.finding.principal_arn,
            item.finding.account_id,
            a.kind,
            item.owner.owner,
            a.reason,
            _link(a.source_doc) if a.source_doc else None,
        )


def _owner_figures(sheet: _Summary, report: OwnerReport) -> None:
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
    _organization_access(sheet, items)


def _org_figures(sheet: _Summary, summary: OrgSummary, items: Sequence[ReportItem]) -> None:
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
    _organization_access(sheet, items)
    for note in summary.organization_access_notes:
        sheet.row(note)


def _trend(sheet: _Summary, summary: OrgSummary) -> None:
    if not summary.trend:
        return
    sheet.section("Run", "Started (UTC)", "Findings", "New", "Resolved")
    for t in summary.trend:
        sheet.row(t.run_id, t.started_at, t.findings, t.new, t.resolved, kinds=("text", "datetime"))


def _resolved(sheet: _Summary, resolved: Sequence[ResolvedFinding]) -> None:
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


def _usage_notes(sheet: _Summary) -> None:
    sheet.section("How to use this workbook")
    for line in (
        "Findings: one row per finding. Record your decision in the Decision column "
        f"({' / '.join(DECISIONS)}), for Keep the last day in Keep until, and why in Reason; "
        "return the saved workbook to the security team.",
        "Remediation: the commands that remove each finding, in order, with their rollback. "
        "Run them in the account named on the row. Organization access findings "
        "(organization_access_kind) have read-only steps only: keep them under the suggested "
        "exception or tighten them with the security team.",
        "Exceptions: approved exceptions that cover findings, and exceptions that expire soon, "
        "have expired or match nothing.",
        "Coverage: accounts that could not be assessed; findings in them are missing.",
    ):
        sheet.row(line)


# ---- tables -----------------------------------------------------------------------------------


def _tables(
    book: Workbook,
    items: Sequence[ReportItem],
    coverage: Sequence[AccountCoverage],
    notices: Sequence[ExceptionNotice],
    today: date,
) -> None:
    # Records are built per row and dropped: 100,000 of them at once would cost more memory
    # than everything else in the run.
    ordered = sort_items(items)
    with _collector_paused():
        findings = _findings_sheet(book, len(ordered), today)
        for item in ordered:
            findings.write(sheet_row(flat_record(finding_record(item))))
        findings.sheet.close()
        _after_findings(book, ordered, coverage, notices)


def _after_findings(
    book: Workbook,
    ordered: Sequence[ReportItem],
    coverage: Sequence[AccountCoverage],
    notices: Sequence[ExceptionNotice],
) -> None:
    _remediation_sheet(book, ordered)
    _exceptions_sheet(book, ordered, notices)
    _coverage_sheet(book, coverage)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while the rows are written.

    The rows allocate millions of short-lived strings, lists and dicts, none of them in a
    cycle, so reference counting frees them all; but the allocations trigger the collector's
    full passes over everything else in the heap (100,000 report items), which cost a third of
    the organization workbook's time.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _table_sheet(
    book: Workbook,
    title: str,
    columns: Sequence[Column],
    validation: Sequence[ListValidation | DateValidation] = (),
    freeze_columns: int = 0,
) -> Sheet:
    """A sheet with a header row, frozen below it (and left of `freeze_columns`) and
    auto-filtered over all its rows."""
    sheet = book.sheet(
        title,
        [c.width for c in columns],
        freeze_header=True,
        auto_filter=True,
        validation=validation,
        freeze_columns=freeze_columns,
    )
    sheet.row(
        [c.field for c in columns],
        [Look.INPUT_HEADER if c in INPUT_COLUMNS else Look.HEADER for c in columns],
    )
    return sheet


class _Rows:
    """Writes rows (values in column order) with each column's kind and look."""

    def __init__(self, sheet: Sheet, columns: Sequence[Column], default: int) -> None:
        self.sheet = sheet
        self.count = 0
        self._looks = [Look.WRAP if c.field in _WRAPPED else default for c in columns]
        self._converters = [
            (n, f) for n, f in enumerate(map(_converter, (c.kind for c in columns))) if f
        ]

    def write(self, values: list[Any]) -> None:
        for n, convert in self._converters:
            values[n] = convert(values[n])
        self.sheet.row(values, self._looks)
        self.count += 1


def _rows(sheet: Sheet, columns: Sequence[Column], rows: Iterable[list[Any]], default: int) -> None:
    writer = _Rows(sheet, columns, default)
    for values in rows:
        writer.write(values)


def _in_order(columns: Sequence[Column], records: Iterable[dict[str, Any]]) -> Iterator[list[Any]]:
    fields = [c.field for c in columns]
    return ([record.get(f) for f in fields] for record in records)


def _findings_sheet(book: Workbook, count: int, today: date) -> _Rows:
    """The Findings sheet, open for one row per finding (`sheet_row`); close its `sheet` when
    done. `today`: the earliest date Keep until takes."""
    columns = INPUT_COLUMNS + FINDING_COLUMNS
    last = min(max(count, 1) + 1, MAX_ROWS)
    decision, until = column_letter(1), column_letter(2)
    validations = (
        ListValidation(
            sqref=f"{decision}2:{decision}{last}",
            options=DECISIONS,
            title="Decision",
            prompt="Remove the access; Keep it until a date (Keep until), saying why in Reason; "
            "or Not mine.",
            error=f"Choose one of: {', '.join(DECISIONS)}.",
        ),
        DateValidation(
            sqref=f"{until}2:{until}{last}",
            earliest=today,
            title="Keep until",
            prompt="For Keep: the last day the access is kept (YYYY-MM-DD); say why in Reason.",
            error="A date from today on, e.g. 2026-03-31.",
        ),
    )
    # No per-cell alignment or fill here: the commands are wrapped on the Remediation sheet, and
    # the empty input cells are marked by their header and the validations' prompts.
    sheet = _table_sheet(book, "Findings", columns, validations, freeze_columns=FROZEN_COLUMNS)
    return _Rows(sheet, columns, Look.PLAIN)


def _remediation_sheet(book: Workbook, items: Sequence[ReportItem]) -> None:
    def rows() -> Iterator[list[Any]]:
        for item in items:
            f = item.finding
            for n, step in enumerate(item.remediation, 1):
                record = step_record(step)
                yield [f.key, f.account_id, f.principal_name, n, *map(record.get, _STEP_FIELDS)]

    with _table_sheet(book, "Remediation", REMEDIATION_COLUMNS) as sheet:
        _rows(sheet, REMEDIATION_COLUMNS, rows(), Look.PLAIN)


def _exceptions_sheet(
    book: Workbook, items: Sequence[ReportItem], notices: Sequence[ExceptionNotice]
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
    with _table_sheet(book, "Exceptions", EXCEPTION_COLUMNS) as sheet:
        _rows(sheet, EXCEPTION_COLUMNS, _in_order(EXCEPTION_COLUMNS, rows), Look.PLAIN)


def _coverage_sheet(book: Workbook, coverage: Sequence[AccountCoverage]) -> None:
    # Accounts that were not assessed first: they are what the reader has to act on.
    ordered = sorted(coverage, key=lambda c: (c.covered or not c.in_scope, c.account_name))
    rows = (
        {
            "account_id": c.account_id,
            "account_name": c.account_name,
            "state": c.state,
            "in_scope": c.in_scope,
            "covered": c.covered,
            "sources": "; ".join(c.sources),
            "reason": c.reason,
        }
        for c in ordered
    )
    with _table_sheet(book, "Coverage", COVERAGE_COLUMNS) as sheet:
        _rows(sheet, COVERAGE_COLUMNS, _in_order(COVERAGE_COLUMNS, rows), Look.TOP)
