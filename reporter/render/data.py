"""`data/findings.json` and `data/findings.csv`: the machine-readable records of a run.

What a record holds is declared once, in `reporter.render.record`; the CSV and the workbook are
flattenings of it (`flat_record`, by `record.COLUMNS`), so the three cannot drift apart.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from reporter.aggregate import sort_items
from reporter.models import ReportItem, RunContext
from reporter.render.record import (
    COLUMNS,
    DOCUMENT,
    FLAT_COLUMNS,
    SCHEMA_VERSION,
    exception_record,
    finding_record,
    iso_date,
    iso_datetime,
    linkable,
    step_detail,
    step_record,
)

__all__ = [
    "FLAT_COLUMNS",
    "FORMULA_TRIGGERS",
    "SCHEMA_VERSION",
    "csv_line",
    "defuse_csv",
    "exception_record",
    "finding_record",
    "findings_csv",
    "findings_data_chunks",
    "findings_document",
    "findings_json",
    "flat_record",
    "iso_date",
    "iso_datetime",
    "linkable",
    "step_detail",
    "step_record",
]

# Spreadsheet programs treat a cell starting with one of these as a formula (OWASP "CSV
# injection"); tab and carriage return are on the list because Excel strips them and then
# parses what follows.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def findings_document(items: Iterable[ReportItem], context: RunContext) -> dict[str, Any]:
    """The whole `data/findings.json` document (`findings_data_chunks` streams it instead)."""
    return {**DOCUMENT.build(context), "findings": [finding_record(i) for i in sort_items(items)]}


def findings_json(items: Iterable[ReportItem], context: RunContext) -> bytes:
    """`data/findings.json`: UTF-8, one finding record per line, keys in record order.

    One record per line rather than indented: `grep` and `diff` find a finding by its line, and
    `jq .` pretty-prints the whole. Indenting each record (`indent=2`) forced the standard
    library's pure-Python encoder, 2.7 times slower than its C one (measured on 10,000
    records)."""
    return b"".join(json_piece for json_piece, _ in findings_data_chunks(items, context))


def findings_csv(items: Iterable[ReportItem], context: RunContext) -> bytes:
    """`data/findings.csv`: the flattened records, RFC 4180, UTF-8 without BOM."""
    return b"".join(csv_piece for _, csv_piece in findings_data_chunks(items, context))


# The C encoder: it is used only when `indent` is None.
_RECORD_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))


def findings_data_chunks(
    items: Iterable[ReportItem],
    context: RunContext,
    rows: int = 500,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[tuple[bytes, bytes]]:
    """`findings_json` and `findings_csv` together, `rows` findings at a time, for writing
    straight to disk (`RunFolder.write_together`): with 100,000 findings the whole texts would
    cost hundreds of megabytes. Each finding's record is built once for both files, and its
    flat form is handed to `on_record` (the organization workbook's Findings sheet)."""
    opening = json.dumps(findings_document((), context), indent=2, ensure_ascii=False)
    # `"findings": []` closes the document; the records go between its brackets.
    before, _, after = opening.rpartition("[]")
    json_parts = [before.encode("utf-8")]
    csv_lines = [csv_line(FLAT_COLUMNS)]
    first = b"[\n    "
    separator = first
    for n, item in enumerate(sort_items(items), 1):
        record = finding_record(item)
        json_parts.append(separator + _RECORD_ENCODER.encode(record).encode("utf-8"))
        separator = b",\n    "
        flat = flat_record(record)
        csv_lines.append(csv_line(flat.values()))
        if on_record is not None:
            on_record(flat)
        if n % rows == 0:
            yield b"".join(json_parts), "".join(csv_lines).encode("utf-8")
            json_parts, csv_lines = [], []
    json_parts.append(b"[]" if separator == first else b"\n  ]")
    json_parts.append((after + "\n").encode("utf-8"))
    yield b"".join(json_parts), "".join(csv_lines).encode("utf-8")


# (column name, record field, how to flatten it or None: as it is), in FLAT_COLUMNS order.
_FLATTEN = tuple((c.name, c.field, c.flatten) for c in COLUMNS)


def flat_record(record: dict[str, Any]) -> dict[str, Any]:
    """One finding record as a single row of scalars (str, int or None), keyed by FLAT_COLUMNS."""
    return {
        name: record[field] if flatten is None else flatten(record[field])
        for name, field, flatten in _FLATTEN
    }


def defuse_csv(value: str) -> str:
    """Prefix a formula-looking text with `'` so a spreadsheet shows it instead of running it.

    CSV has no cell types, so the apostrophe is the only defence that survives a double-click
    into Excel; it costs one visible character on hostile-looking values only.
    """
    return f"'{value}" if value.startswith(FORMULA_TRIGGERS) else value


# RFC 4180 as `csv.writer` writes it (excel dialect, QUOTE_MINIMAL): a field holding a comma,
# a quote, CR or LF is quoted, its quotes doubled. Done here because the csv module was the
# slowest part of the data files: the remediation columns are kilobytes of text per finding,
# which it scans a character at a time; `str.replace` does not. tests/fuzz checks that both give
# the same bytes.
_NEEDS_QUOTES = re.compile(r'[",\r\n]')


def csv_line(values: Iterable[Any]) -> str:
    """One CSV record (with its CRLF) of `values`, each as `_csv_cell` writes it."""
    return ",".join(map(_csv_field, values)) + "\r\n"


def _csv_field(value: Any) -> str:
    text = _csv_cell(value)
    if _NEEDS_QUOTES.search(text) is None:
        return text
    return '"' + text.replace('"', '""') + '"'


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return defuse_csv(value)
    return str(value)
