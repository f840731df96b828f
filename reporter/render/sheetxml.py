"""A small streaming writer of .xlsx packages (SpreadsheetML), just what our workbooks use.

Why not openpyxl: even in write-only mode it builds a cell object and looks up a style per
cell, which capped the organization workbook at about 1,700 finding rows a second here (150 s for
100,000 findings). This writer turns a row into one string and streams it, deflated, into the
worksheet's zip entry, so memory stays flat; rows that need no escaping take an inlined path.

What it writes: inline strings, numbers, booleans and dates (serial numbers with a date style);
a fixed table of cell styles (`Look`); column widths, a frozen header row, an auto-filter, a
list validation and external hyperlinks per sheet; document properties and zip timestamps from
one given time, so the same rows give the same bytes.

Formula injection: a text cell is always `t="inlineStr"`, which no spreadsheet evaluates, and a
text starting with a formula trigger (`=`, `+`, `-`, `@`, tab, CR) also gets Excel's "quote
prefix" style flag, so the text stays a text if someone edits the cell later. Nothing is added to
the value. Characters XML 1.0 cannot carry are replaced with U+FFFD, texts are cut at Excel's
32,767 characters, and CR is written as a character reference (a parser would turn it into LF).
"""

from __future__ import annotations

import io
import math
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from types import TracebackType
from typing import IO, NamedTuple
from zipfile import ZIP_DEFLATED, ZipFile, ZipInfo

from reporter.render.data import FORMULA_TRIGGERS

MAX_TEXT = 32_767  # Excel cuts longer texts with a "repair" prompt
MAX_LINKS = 65_530  # Excel's limit of hyperlinks per worksheet; later links stay plain text
# Excel's rows per worksheet. A sheet with more will not open ("We found a problem with some
# content"); the organization workbook's Remediation sheet reaches it at about 300,000 findings.
MAX_ROWS = 1_048_576

DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm"

# Measured on the sheet XML of 10,000 findings: level 3 deflates it 2.3 times as fast as the
# default level 6 into a file a fifth larger; levels 1 and 2 are no faster, only larger.
COMPRESSION = 3

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


class Look:
    """The cell styles of a workbook, as fixed `cellXfs` indexes.

    A text look's quote-prefixed twin is at `look + 1`; dates take the date look that matches
    the text look asked for (`TOP` or `WRAP` -> `DATE_TOP`).
    """

    PLAIN = 0
    WRAP = 2
    TOP = 4
    LINK = 6
    HEADER = 8
    INPUT_HEADER = 10
    TITLE = 12
    SECTION = 14
    INPUT = 16
    DATE = 18
    DATETIME = 19
    DATE_TOP = 20
    DATETIME_TOP = 21


# Per look, in index order: numFmtId, fontId, fillId, alignment (fonts and fills: _STYLES).
_TOP_ALIGN = '<alignment vertical="top"/>'
_XFS: tuple[tuple[int, tuple[int, int, int, str]], ...] = (
    (Look.PLAIN, (0, 0, 0, "")),
    (Look.WRAP, (0, 0, 0, '<alignment vertical="top" wrapText="1"/>')),
    (Look.TOP, (0, 0, 0, _TOP_ALIGN)),
    (Look.LINK, (0, 4, 0, "")),
    (Look.HEADER, (0, 1, 2, "")),
    (Look.INPUT_HEADER, (0, 1, 3, "")),
    (Look.TITLE, (0, 2, 0, "")),
    (Look.SECTION, (0, 3, 0, "")),
    (Look.INPUT, (0, 0, 4, "")),
    (Look.DATE, (164, 0, 0, "")),
    (Look.DATETIME, (165, 0, 0, "")),
    (Look.DATE_TOP, (164, 0, 0, _TOP_ALIGN)),
    (Look.DATETIME_TOP, (165, 0, 0, _TOP_ALIGN)),
)
_TOPPED = (Look.TOP, Look.WRAP)


def _date_look(look: int, with_time: bool) -> int:
    if look in _TOPPED:
        return Look.DATETIME_TOP if with_time else Look.DATE_TOP
    return Look.DATETIME if with_time else Look.DATE


def _xf(num: int, font: int, fill: int, align: str, quoted: bool) -> str:
    flags = "".join(
        flag
        for flag, on in (
            (' applyNumberFormat="1"', num),
            (' applyFont="1"', font),
            (' applyFill="1"', fill),
            (' applyAlignment="1"', align),
            (' quotePrefix="1"', quoted),
        )
        if on
    )
    head = f'<xf numFmtId="{num}" fontId="{font}" fillId="{fill}" borderId="0" xfId="0"{flags}'
    return f"{head}>{align}</xf>" if align else f"{head}/>"


def _cell_xfs() -> str:
    xfs: list[str] = []
    for look, (num, font, fill, align) in _XFS:
        assert look == len(xfs), "Look indexes follow the order of _XFS"
        xfs.append(_xf(num, font, fill, align, False))
        if look < Look.DATE:  # text looks have a quote-prefixed twin at look + 1
            xfs.append(_xf(num, font, fill, align, True))
    return f'<cellXfs count="{len(xfs)}">{"".join(xfs)}</cellXfs>'


_STYLES = (
    f'{_XML}<styleSheet xmlns="{_MAIN}">'
    f'<numFmts count="2"><numFmt numFmtId="164" formatCode="{DATE_FORMAT}"/>'
    f'<numFmt numFmtId="165" formatCode="{DATETIME_FORMAT}"/></numFmts>'
    '<fonts count="5">'
    '<font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><color rgb="FFFFFFFF"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="14"/><color rgb="FF1F3A5F"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><color rgb="FF1F3A5F"/><name val="Calibri"/><family val="2"/></font>'
    '<font><u/><sz val="11"/><color rgb="FF1D4ED8"/><name val="Calibri"/><family val="2"/></font>'
    "</fonts>"
    '<fills count="5"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill>'
    '<fill><patternFill patternType="solid"><fgColor rgb="FF1F3A5F"/></patternFill></fill>'
    '<fill><patternFill patternType="solid"><fgColor rgb="FFB45309"/></patternFill></fill>'
    '<fill><patternFill patternType="solid"><fgColor rgb="FFFFF4CC"/></patternFill></fill>'
    "</fills>"
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    f"{_cell_xfs()}"
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    '<dxfs count="0"/></styleSheet>'
)

# ---- text -------------------------------------------------------------------------------------

# Control characters, lone surrogates and U+FFFE/U+FFFF are not allowed in XML 1.0.
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# The ASCII ones, as bytes: rows are checked for them in bulk, once encoded (no UTF-8 sequence
# of another character contains these bytes); the others only occur in non-ASCII texts.
_CONTROL = bytes(c for c in range(32) if chr(c) not in "\t\n\r")
_TRIGGERS = frozenset(FORMULA_TRIGGERS)
assert all(len(t) == 1 for t in FORMULA_TRIGGERS)
_EDGE_SPACE = frozenset(" \t\n\r")
_SLOW_START = _TRIGGERS | _EDGE_SPACE
_STYLE_ATTR = [f' s="{n}"' if n else "" for n in range(Look.DATETIME_TOP + 1)]


def clean_text(value: str) -> str:
    """`value` with the characters XML cannot carry replaced, cut to Excel's cell limit."""
    return _ILLEGAL.sub("\ufffd", value)[:MAX_TEXT]


def _escape(value: str) -> str:
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    )


def escape_attr(value: str) -> str:
    """Text for an attribute value: also quotes, and whitespace a parser would normalise."""
    return (
        _escape(clean_text(value))
        .replace('"', "&quot;")
        .replace("\t", "&#9;")
        .replace("\n", "&#10;")
    )


def column_letter(n: int) -> str:
    """1 -> A, 27 -> AA."""
    letters = ""
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


_EPOCH = datetime(1899, 12, 30)
# Excel's day numbers are off by one before March 1900 (its phantom 29 February); no finding
# dates from then, so such a value is written as text instead.
_FIRST_SERIAL = datetime(1900, 3, 1)


def excel_serial(value: date) -> float | None:
    """Excel's day number for a date or a (UTC) datetime; None when Excel cannot show it."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
    else:
        value = datetime(value.year, value.month, value.day)
    if value < _FIRST_SERIAL:
        return None
    delta = value - _EPOCH
    return delta.days + (delta.seconds + delta.microseconds / 1e6) / 86_400


# ---- package ----------------------------------------------------------------------------------


_FLUSH_ROWS = 512  # rows (or links) joined per write into a compressor


class Link(NamedTuple):
    """A cell showing `text` that links to the external `target` (a URL checked by the caller)."""

    text: str
    target: str


@dataclass(frozen=True)
class ListValidation:
    """A drop-down list on a range, with its prompt and error message."""

    sqref: str
    options: Sequence[str]
    title: str
    prompt: str
    error: str

    def xml(self) -> str:
        formula = _escape(clean_text('"' + ",".join(self.options) + '"'))
        return (
            '<dataValidation type="list" allowBlank="1"'
            ' showInputMessage="1" showErrorMessage="1"'
            f' errorTitle="{escape_attr(self.title)}" error="{escape_attr(self.error)}"'
            f' promptTitle="{escape_attr(self.title)}" prompt="{escape_attr(self.prompt)}"'
            f' sqref="{escape_attr(self.sqref)}"><formula1>{formula}</formula1>'
            "</dataValidation>"
        )


@dataclass(frozen=True)
class DateValidation:
    """Dates only, from `earliest` on, on a range, with its prompt and error message."""

    sqref: str
    earliest: date
    title: str
    prompt: str
    error: str

    def xml(self) -> str:
        serial = excel_serial(self.earliest)
        return (
            '<dataValidation type="date" operator="greaterThanOrEqual" allowBlank="1"'
            ' showInputMessage="1" showErrorMessage="1"'
            f' errorTitle="{escape_attr(self.title)}" error="{escape_attr(self.error)}"'
            f' promptTitle="{escape_attr(self.title)}" prompt="{escape_attr(self.prompt)}"'
            f' sqref="{escape_attr(self.sqref)}"><formula1>{int(serial or 0)}</formula1>'
            "</dataValidation>"
        )


Validation = ListValidation | DateValidation


class _Spool:
    """Text kept deflated in memory until it can be written: a sheet's hyperlinks and their
    relationships come after all its rows, and 100,000 rows carry 200,000 links."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(1)
        self._chunks: list[bytes] = []
        self._pending: list[str] = []

    def write(self, text: str) -> None:
        self._pending.append(text)
        if len(self._pending) >= _FLUSH_ROWS:
            self._compress()

    def _compress(self) -> None:
        chunk = self._deflate.compress("".join(self._pending).encode("utf-8"))
        self._pending = []
        if chunk:
            self._chunks.append(chunk)

    def read(self) -> Iterator[bytes]:
        self._compress()
        self._chunks.append(self._deflate.flush())
        inflate = zlib.decompressobj()
        for chunk in self._chunks:
            yield inflate.decompress(chunk)
        yield inflate.flush()
        self._chunks = []


@dataclass
class _SheetEntry:
    name: str
    auto_filter: str | None = None
    hidden: bool = False


class Workbook:
    """An .xlsx package written sheet by sheet into memory; `finish()` returns its bytes.

    `stamp` is every zip member's time and the document's created and modified time (UTC).
    """

    def __init__(
        self, stamp: datetime, title: str, creator: str = "unused-access-reporter"
    ) -> None:
        if stamp.tzinfo is not None:
            stamp = stamp.astimezone(UTC).replace(tzinfo=None)
        self.stamp = stamp
        self.title = title
        self.creator = creator
        self._buffer = io.BytesIO()
        self._zip = ZipFile(self._buffer, "w", ZIP_DEFLATED)
        self._sheets: list[_SheetEntry] = []
        self._open = False
        self._writing: IO[bytes] | None = None

    def _info(self, name: str) -> ZipInfo:
        s = self.stamp
        info = ZipInfo(name, date_time=(s.year, s.month, s.day, s.hour, s.minute, s.second))
        info.compress_type = ZIP_DEFLATED
        info._compresslevel = COMPRESSION  # type: ignore[attr-defined]  # ZipFile.open reads it
        return info

    def _put(self, name: str, text: str) -> None:
        self._zip.writestr(self._info(name), text.encode("utf-8"))

    def _stream(self, name: str) -> IO[bytes]:
        self._writing = self._zip.open(self._info(name), "w")
        return self._writing

    def discard(self) -> None:
        """Drop an unfinished workbook: close what is open, keep nothing. For a run that fails
        half-way; otherwise the zip complains, when collected, about a sheet left open."""
        if self._writing is not None and not self._writing.closed:
            self._writing.close()
        self._zip.close()
        self._buffer = io.BytesIO()

    def sheet(
        self,
        name: str,
        widths: Sequence[float],
        *,
        freeze_header: bool = False,
        auto_filter: bool = False,
        validation: Validation | Sequence[Validation] | None = None,
        hidden: bool = False,
        freeze_columns: int = 0,
    ) -> Sheet:
        """Open the next worksheet; close it (or leave its `with` block) before the next one.
        A `hidden` sheet is not shown (Format > Sheet > Unhide shows it); never the first."""
        if self._open:
            raise RuntimeError("close the previous sheet first")
        if not 0 < len(name) <= 31 or set(name) & set("[]:*?/\\") or name.startswith("'"):
            raise ValueError(f"not a valid sheet name: {name!r}")
        if hidden and not self._sheets:
            raise ValueError("the first sheet cannot be hidden")
        self._open = True
        entry = _SheetEntry(name, hidden=hidden)
        self._sheets.append(entry)
        validations: tuple[Validation, ...] = (
            ()
            if validation is None
            else (validation,)
            if isinstance(validation, ListValidation | DateValidation)
            else tuple(validation)
        )
        return Sheet(
            self,
            entry,
            len(self._sheets),
            widths,
            freeze_header,
            auto_filter,
            validations,
            freeze_columns,
        )

    def _closed(self) -> None:
        self._open = False

    def finish(self) -> bytes:
        """Write the package parts that list the sheets, close the zip and return its bytes."""
        if self._open:
            raise RuntimeError("a sheet is still open")
        count = len(self._sheets)
        stamp = self.stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
        sheets = "".join(
            f'<sheet name="{escape_attr(s.name)}" sheetId="{n}"'
            + (' state="hidden"' if s.hidden else "")
            + f' r:id="rId{n}"/>'
            for n, s in enumerate(self._sheets, 1)
        )
        names = "".join(
            f'<definedName name="_xlnm._FilterDatabase" localSheetId="{n}" hidden="1">'
            f"{_escape(_quote_sheet(s.name))}!{_absolute(s.auto_filter)}</definedName>"
            for n, s in enumerate(self._sheets)
            if s.auto_filter
        )
        self._put(
            "xl/workbook.xml",
            f'{_XML}<workbook xmlns="{_MAIN}" xmlns:r="{_REL}"><workbookPr/>'
            '<bookViews><workbookView activeTab="0"/></bookViews>'
            f"<sheets>{sheets}</sheets>"
            + (f"<definedNames>{names}</definedNames>" if names else "")
            + "</workbook>",
        )
        self._put(
            "xl/_rels/workbook.xml.rels",
            _relationships(
                [(f"{_REL}/worksheet", f"worksheets/sheet{n}.xml") for n in range(1, count + 1)]
                + [(f"{_REL}/styles", "styles.xml")]
            ),
        )
        self._put("xl/styles.xml", _STYLES)
        self._put(
            "docProps/core.xml",
            f"{_XML}<cp:coreProperties"
            ' xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties"'
            ' xmlns:dc="http://purl.org/dc/elements/1.1/"'
            ' xmlns:dcterms="http://purl.org/dc/terms/"'
            ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            f"<dc:title>{_escape(clean_text(self.title))}</dc:title>"
            f"<dc:creator>{_escape(clean_text(self.creator))}</dc:creator>"
            f'<dcterms:created xsi:type="dcterms:W3CDTF">{stamp}</dcterms:created>'
            f'<dcterms:modified xsi:type="dcterms:W3CDTF">{stamp}</dcterms:modified>'
            "</cp:coreProperties>",
        )
        self._put(
            "docProps/app.xml",
            f"{_XML}<Properties xmlns="
            '"http://schemas.openxmlformats.org/officeDocument/2006/extended-properties">'
            f"<Application>{_escape(clean_text(self.creator))}</Application></Properties>",
        )
        self._put(
            "_rels/.rels",
            _relationships(
                [
                    (f"{_REL}/officeDocument", "xl/workbook.xml"),
                    (f"{_PKG_REL}/metadata/core-properties", "docProps/core.xml"),
                    (f"{_REL}/extended-properties", "docProps/app.xml"),
                ]
            ),
        )
        self._put("[Content_Types].xml", _content_types(count))
        self._zip.close()
        return self._buffer.getvalue()


def _quote_sheet(name: str) -> str:
    return "'" + name.replace("'", "''") + "'"


def _absolute(ref: str | None) -> str:
    return ":".join("$" + re.sub(r"(\d+)", r"$\1", part) for part in (ref or "").split(":"))


def _relationships(targets: Sequence[tuple[str, str]]) -> str:
    rels = "".join(
        f'<Relationship Id="rId{n}" Type="{kind}" Target="{escape_attr(target)}"/>'
        for n, (kind, target) in enumerate(targets, 1)
    )
    return f'{_XML}<Relationships xmlns="{_PKG_REL}">{rels}</Relationships>'


def _content_types(sheets: int) -> str:
    office = "application/vnd.openxmlformats-officedocument"
    parts = [
        ("/xl/workbook.xml", f"{office}.spreadsheetml.sheet.main+xml"),
        ("/xl/styles.xml", f"{office}.spreadsheetml.styles+xml"),
        ("/docProps/core.xml", "application/vnd.openxmlformats-package.core-properties+xml"),
        ("/docProps/app.xml", f"{office}.extended-properties+xml"),
    ] + [
        (f"/xl/worksheets/sheet{n}.xml", f"{office}.spreadsheetml.worksheet+xml")
        for n in range(1, sheets + 1)
    ]
    overrides = "".join(f'<Override PartName="{p}" ContentType="{t}"/>' for p, t in parts)
    return (
        f'{_XML}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        f"{overrides}</Types>"
    )


# ---- worksheets -------------------------------------------------------------------------------


class Sheet:
    """One worksheet being written: `row()` appends a row, `close()` ends the sheet."""

    def __init__(
        self,
        book: Workbook,
        entry: _SheetEntry,
        number: int,
        widths: Sequence[float],
        freeze_header: bool,
        auto_filter: bool,
        validations: tuple[Validation, ...],
        freeze_columns: int = 0,
    ) -> None:
        self._book = book
        self._entry = entry
        self._number = number
        self._columns = len(widths)
        self._auto_filter = auto_filter
        self._validations = validations
        self._letters: list[str] = []
        self._row = 0
        # Rows `row` dropped at Excel's limit: `close` says how many in the sheet's last row.
        self.overflow = 0
        self._pending: list[str] = []
        self._links = 0
        self._hyperlinks = _Spool()
        self._rels = _Spool()
        self._out = book._stream(f"xl/worksheets/sheet{number}.xml")
        view = '<sheetView workbookViewId="0"' + (' tabSelected="1"' if number == 1 else "")
        if freeze_header and freeze_columns:
            # Header row and the first columns: a row stays readable while scrolling right.
            corner = f"{column_letter(freeze_columns + 1)}2"
            view += (
                f'><pane xSplit="{freeze_columns}" ySplit="1" topLeftCell="{corner}"'
                ' activePane="bottomRight" state="frozen"/>'
                '<selection pane="topRight"/><selection pane="bottomLeft"/>'
                '<selection pane="bottomRight" activeCell="A2" sqref="A2"/></sheetView>'
            )
        elif freeze_header:
            view += (
                '><pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
                '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/></sheetView>'
            )
        else:
            view += "/>"
        cols = "".join(
            f'<col min="{n}" max="{n}" width="{w:g}" customWidth="1"/>'
            for n, w in enumerate(widths, 1)
        )
        self._write(
            f'{_XML}<worksheet xmlns="{_MAIN}" xmlns:r="{_REL}">'
            f'<sheetViews>{view}</sheetViews><sheetFormatPr defaultRowHeight="15"/>'
            + (f"<cols>{cols}</cols>" if cols else "")
            + "<sheetData>"
        )

    def _write(self, text: str) -> None:
        self._out.write(text.encode("utf-8"))

    def __enter__(self) -> Sheet:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def blank(self) -> None:
        """An empty row."""
        if self._row < MAX_ROWS - 1:
            self._row += 1

    def row(self, values: Sequence[object], looks: Sequence[int] | int = Look.PLAIN) -> None:
        """Append a row: None and "" leave the cell empty; str, int, float, bool, date, datetime
        and `Link` become typed cells. `looks` is one look for the row or one per value (text
        looks; dates take the matching date look, links the link look)."""
        if self._row >= MAX_ROWS - 1:  # the last row is kept for the note `close` writes
            self.overflow += 1
            return
        self._row += 1
        r = str(self._row)
        if isinstance(looks, int):
            looks = (looks,) * len(values)
        elif len(looks) < len(values):
            raise ValueError(f"row {r}: {len(values)} values but {len(looks)} looks")
        letters = self._letters
        while len(letters) < len(values):
            letters.append(column_letter(len(letters) + 1))
        cells = [f'<row r="{r}">']
        styles = _STYLE_ATTR
        for letter, value, look in zip(letters, values, looks, strict=False):
            if type(value) is str:
                if not value:
                    continue
                if (
                    value[0] in _SLOW_START
                    or value[-1] in _EDGE_SPACE
                    or "\n" in value
                    or "&" in value
                    or "<" in value
                    or ">" in value
                    or "\r" in value
                    or len(value) > MAX_TEXT
                    or not value.isascii()
                ):
                    cells.append(_text(letter + r, value, look))
                else:  # the common case, inlined: a plain ASCII text, nothing to do
                    cells.append(
                        f'<c r="{letter}{r}"{styles[look]} t="inlineStr"><is><t>{value}'
                        "</t></is></c>"
                    )
            elif value is None:
                continue
            elif type(value) is bool:
                cells.append(f'<c r="{letter}{r}" t="b"><v>{1 if value else 0}</v></c>')
            elif type(value) is int or (type(value) is float and math.isfinite(value)):
                cells.append(f'<c r="{letter}{r}"><v>{value!r}</v></c>')
            elif type(value) is datetime or type(value) is date:
                serial = excel_serial(value)
                if serial is None:
                    cells.append(_text(letter + r, value.isoformat(), look))
                else:
                    style = _date_look(look, type(value) is datetime)
                    cells.append(f'<c r="{letter}{r}" s="{style}"><v>{serial!r}</v></c>')
            elif type(value) is Link:
                if value.text:
                    cells.append(self._link(letter + r, value, look))
            elif type(value) is float:
                cells.append(_text(letter + r, str(value), look))  # nan, inf: Excel has neither
            else:
                raise TypeError(f"no cell type for {type(value).__name__} in row {r}")
        cells.append("</row>")
        self._pending.append("".join(cells))
        if len(self._pending) >= _FLUSH_ROWS:
            self._flush()

    def _link(self, ref: str, link: Link, look: int) -> str:
        if self._links >= MAX_LINKS:
            return _text(ref, link.text, look)
        self._links += 1
        rid = f"rId{self._links}"
        self._hyperlinks.write(f'<hyperlink ref="{ref}" r:id="{rid}"/>')
        self._rels.write(
            f'<Relationship Id="{rid}" Type="{_REL}/hyperlink"'
            f' Target="{escape_attr(link.target)}" TargetMode="External"/>'
        )
        return _text(ref, link.text, Look.LINK)

    def _flush(self) -> None:
        if self._pending:
            data = "".join(self._pending).encode("utf-8")
            if len(data.translate(None, _CONTROL)) != len(data):
                # Only texts can hold them (the markup has none): replace them where they are.
                data = _ILLEGAL.sub("\ufffd", data.decode("utf-8")).encode("utf-8")
            self._out.write(data)
            self._pending = []

    def close(self) -> None:
        """Write what follows the rows (filter, validation, links) and the sheet's links part."""
        if self._out.closed:
            return
        if self.overflow:
            self._row += 1
            self._pending.append(
                f'<row r="{self._row}">'
                + _text(
                    f"A{self._row}",
                    f"…and {self.overflow:,} more rows: a worksheet holds at most {MAX_ROWS:,}. "
                    "data/findings.json and data/findings.csv have every finding and step.",
                    Look.PLAIN,
                )
                + "</row>"
            )
        self._flush()
        self._write("</sheetData>")
        if self._auto_filter:
            last = column_letter(max(self._columns, 1))
            self._entry.auto_filter = f"A1:{last}{max(self._row, 1)}"
            self._write(f'<autoFilter ref="{self._entry.auto_filter}"/>')
        if self._validations:
            self._write(
                f'<dataValidations count="{len(self._validations)}">'
                + "".join(v.xml() for v in self._validations)
                + "</dataValidations>"
            )
        if self._links:
            self._write("<hyperlinks>")
            for chunk in self._hyperlinks.read():
                self._out.write(chunk)
            self._write("</hyperlinks>")
        self._write(
            '<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3"'
            ' footer="0.3"/></worksheet>'
        )
        self._out.close()
        if self._links:
            with self._book._stream(f"xl/worksheets/_rels/sheet{self._number}.xml.rels") as out:
                out.write(f'{_XML}<Relationships xmlns="{_PKG_REL}">'.encode())
                for chunk in self._rels.read():
                    out.write(chunk)
                out.write(b"</Relationships>")
        self._book._closed()


def _text(ref: str, value: str, look: int) -> str:
    """An inline-string cell; quote-prefixed when the text starts like a formula.

    ASCII control characters are left for `Sheet._flush` to replace in bulk: one pass over the
    encoded rows costs less than a search per cell.
    """
    if value[0] in _TRIGGERS:
        look += 1
    # Excel trims a text's edges unless told to keep its spaces.
    keep = value[0] in _EDGE_SPACE or value[-1] in _EDGE_SPACE or "\n" in value
    if len(value) > MAX_TEXT:
        value = value[:MAX_TEXT]
    if not value.isascii():
        value = _ILLEGAL.sub("\ufffd", value)
    if "&" in value or "<" in value or ">" in value or "\r" in value:
        value = _escape(value)
    if keep:
        return (
            f'<c r="{ref}"{_STYLE_ATTR[look]} t="inlineStr"><is><t xml:space="preserve">{value}'
            "</t></is></c>"
        )
    return f'<c r="{ref}"{_STYLE_ATTR[look]} t="inlineStr"><is><t>{value}</t></is></c>'
