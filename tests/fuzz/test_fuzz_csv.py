"""`findings.csv` is written by our own quoting (`data.csv_line`, for speed); it must give the
bytes the standard csv module gives for the same cells, and read back to the same values."""

from __future__ import annotations

import csv
import io
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from reporter.render import data
from tests.fuzz.strategies import HOSTILE_TEXT, budget, ran

_cells = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(),
    st.text(alphabet=",\"\r\n\t '=+-@x"),  # every character the quoting turns on
    st.sampled_from(HOSTILE_TEXT),
)


@budget(400)
# At least two cells: a record of one empty cell is the csv module's special case (`""`), and
# ours always have len(FLAT_COLUMNS).
@given(st.lists(_cells, min_size=2, max_size=12))
def test_csv_line_matches_the_csv_module(values: list[Any]) -> None:
    ran("csv: our quoting against the csv module")
    line = data.csv_line(values)
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerow(map(data._csv_cell, values))
    assert line == buffer.getvalue()
    (row,) = csv.reader(io.StringIO(line, newline=""))
    assert row == [data._csv_cell(v) for v in values]
