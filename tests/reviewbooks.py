"""Helpers for the access-review tests: a run's evidence pack and an owner's workbook, both
written by the product, and a workbook filled in the way a person would (openpyxl, by header)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path

from openpyxl import load_workbook

from reporter.evidence import LocalStore, RunFolder
from reporter.models import OwnerReport, ReportItem, RunContext
from reporter.render.data import findings_json
from reporter.render.xlsx import render_owner_xlsx


def write_pack(root: Path, context: RunContext, items: Sequence[ReportItem]) -> LocalStore:
    """A complete evidence pack of a run holding `items`, as the pipeline writes its data."""
    with RunFolder(root, context.run_id) as folder:
        folder.write("data/findings.json", findings_json(items, context))
        folder.commit({"run_id": context.run_id, "started_at": context.generated_at.isoformat()})
    return LocalStore(root)


def owner_workbook(report: OwnerReport) -> bytes:
    return render_owner_xlsx(report)


Cell = str | date | None


def fill(data: bytes, decisions: Mapping[str, Mapping[str, Cell]]) -> bytes:
    """The workbook with the Findings rows of these keys filled in: {key: {header: value}}."""
    book = load_workbook(io.BytesIO(data))
    sheet = book["Findings"]
    header = {cell.value: cell.column for cell in sheet[1]}
    for row in sheet.iter_rows(min_row=2):
        key = row[header["key"] - 1].value
        for name, value in decisions.get(str(key), {}).items():
            sheet.cell(row=row[0].row, column=header[name], value=value)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def append_row(data: bytes, values: Mapping[str, Cell]) -> bytes:
    """A row pasted below the others (e.g. from another owner's workbook)."""
    book = load_workbook(io.BytesIO(data))
    sheet = book["Findings"]
    header = {cell.value: cell.column for cell in sheet[1]}
    row = sheet.max_row + 1
    for name, value in values.items():
        sheet.cell(row=row, column=header[name], value=value)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
