"""Returned owner workbooks, read back: whose they are, from which run, and the decided rows.

The Findings sheet is read by its header names, not positions, so the columns may move (and a
person may move them). The run id and owner travel in the hidden `Review` sheet the product
writes (`reporter.render.xlsx`); Excel, LibreOffice and Google Sheets keep hidden sheets.
"""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime, timedelta
from typing import Any

from reporter.errors import ReporterError

from .decisions import ReturnedRow, ReturnedWorkbook

__all__ = [
    "CARRIER_SHEET",
    "DECISION",
    "FINDINGS_SHEET",
    "KEEP_UNTIL",
    "KEY",
    "REASON",
    "ReviewFileError",
    "read_returned",
]

FINDINGS_SHEET = "Findings"
CARRIER_SHEET = "Review"
# The headers the import reads (compared without case, spaces or underscores).
KEY = "key"
DECISION = "Decision"
KEEP_UNTIL = "Keep until"
REASON = "Reason"
# The carrier's rows: name in column A, value in column B.
RUN_ID = "run_id"
OWNER = "owner"


class ReviewFileError(ReporterError):
    """A returned workbook that cannot be read as one: exit 2, nothing of it recorded."""

    exit_code = 2


def _norm(text: object) -> str:
    return "".join(str(text or "").replace("_", " ").split()).casefold()


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


_EXCEL_EPOCH = datetime(1899, 12, 30)


def _date(value: Any) -> date | str | None:
    """A date cell as a date; a typed text as a date if it is one (YYYY-MM-DD), else the text."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 2_958_466:
        return (_EXCEL_EPOCH + timedelta(days=int(value))).date()  # a serial without date style
    text = str(value).strip()
    try:
        return date.fromisoformat(text[:10]) if len(text) in (10, 19) else date.fromisoformat(text)
    except ValueError:
        return text


def read_returned(data: bytes, name: str) -> ReturnedWorkbook:
    """The workbook in `data` (named `name` in messages). Raises ReviewFileError when it is not
    an owner workbook of this product."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, TypeError) as exc:
        raise ReviewFileError(
            f"{name}: not a readable .xlsx workbook ({type(exc).__name__})\n"
            "    hint: import the owner workbook (findings.xlsx) saved as Excel (.xlsx)"
        ) from exc
    try:
        if CARRIER_SHEET not in book.sheetnames or FINDINGS_SHEET not in book.sheetnames:
            raise ReviewFileError(
                f"{name}: not an owner workbook of this tool (no {FINDINGS_SHEET!r} and hidden "
                f"{CARRIER_SHEET!r} sheets)\n"
                "    hint: import the findings.xlsx an owner received, filled in and saved"
            )
        carrier = {
            _norm(row[0]): _text(row[1])
            for row in book[CARRIER_SHEET].iter_rows(max_col=2, values_only=True)
            if row and len(row) > 1 and row[0]
        }
        run_id, owner = carrier.get(_norm(RUN_ID), ""), carrier.get(_norm(OWNER), "")
        if not run_id or not owner:
            raise ReviewFileError(
                f"{name}: the hidden {CARRIER_SHEET!r} sheet lacks the run id or the owner"
            )
        rows = book[FINDINGS_SHEET].iter_rows(values_only=True)
        header = next(rows, None) or ()
        columns = {_norm(h): n for n, h in enumerate(header) if h is not None}
        missing = [h for h in (KEY, DECISION) if _norm(h) not in columns]
        if missing:
            raise ReviewFileError(
                f"{name}: the {FINDINGS_SHEET} sheet has no {' or '.join(map(repr, missing))} "
                "column\n    hint: keep the header row as the workbook came"
            )

        def cell(values: tuple[Any, ...], header_name: str) -> Any:
            n = columns.get(_norm(header_name))
            return values[n] if n is not None and n < len(values) else None

        returned = []
        for number, values in enumerate(rows, start=2):
            if not values:
                continue
            returned.append(
                ReturnedRow(
                    row=number,
                    key=_text(cell(values, KEY)),
                    decision=_text(cell(values, DECISION)),
                    keep_until=_date(cell(values, KEEP_UNTIL)),
                    reason=_text(cell(values, REASON)),
                )
            )
    finally:
        book.close()
    return ReturnedWorkbook(run_id=run_id, owner=owner.lower(), rows=tuple(returned))
