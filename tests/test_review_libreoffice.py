"""A returned workbook as LibreOffice saves it: the product's owner workbook, filled in (openpyxl)
and saved again by LibreOffice headless (`soffice --convert-to xlsx`), as an owner's spreadsheet
program would. The key column, the hidden run id/owner sheet and both data validations survive,
and the import records the decisions and rejects another owner's rows pasted in.

Freeze panes do not survive a *headless* conversion (LibreOffice keeps view settings only with a
window; a Save in its GUI keeps them), so they are not asserted here."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook

from reporter.config import load_data
from reporter.reviews.commands import import_files
from reporter.state.decisions import DecisionStore

from .factories import (
    GENERATED_AT,
    OWNER,
    make_context,
    make_finding,
    make_item,
    make_report,
    sample_items,
)
from .reviewbooks import append_row, fill, write_pack

NOW = GENERATED_AT + timedelta(days=1)


def _soffice() -> str:
    found = shutil.which("soffice") or shutil.which("libreoffice")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("LibreOffice is missing: scripts/system-deps.sh --test installs it")
        pytest.skip("LibreOffice (soffice) is not installed")
    return found


def _libreoffice_save(data: bytes, tmp: Path) -> bytes:
    source = tmp / "in" / "findings.xlsx"
    source.parent.mkdir()
    source.write_bytes(data)
    out = tmp / "out"
    subprocess.run(
        [
            _soffice(),
            f"-env:UserInstallation=file://{tmp / 'profile'}",
            "--headless",
            "--convert-to",
            "xlsx",
            "--outdir",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    saved = (out / "findings.xlsx").read_bytes()
    assert saved != data
    return saved


def test_a_workbook_saved_by_libreoffice_imports(tmp_path: Path) -> None:
    context = make_context()
    mine = sample_items()
    theirs = make_item(finding=make_finding(name="search-indexer"), owner="search@example.com")
    store = write_pack(tmp_path / "reports", context, (*mine, theirs))
    book = make_report(items=mine, context=context)
    from reporter.render.xlsx import render_owner_xlsx

    remove, keep, not_mine = (i.finding.key for i in mine[:3])
    filled = fill(
        render_owner_xlsx(book),
        {
            remove: {"Decision": "Remove"},
            keep: {
                "Decision": "Keep",
                "Keep until": NOW.date() + timedelta(days=60),
                "Reason": "yearly audit export",
            },
            not_mine: {"Decision": "Not mine", "Reason": "platform team"},
        },
    )
    filled = append_row(filled, {"key": theirs.finding.key, "Decision": "Remove"})
    saved = _libreoffice_save(filled, tmp_path)

    wb = load_workbook(io.BytesIO(saved))
    assert wb["Review"].sheet_state == "hidden"
    assert [r[:2] for r in wb["Review"].iter_rows(max_col=2, values_only=True)][:2] == [
        ("run_id", context.run_id),
        ("owner", OWNER),
    ]
    findings = wb["Findings"]
    header = [c.value for c in findings[1]]
    keys = [row[header.index("key")] for row in findings.iter_rows(min_row=2, values_only=True)]
    assert {remove, keep, not_mine, theirs.finding.key} <= set(keys)
    kinds = {v.type: str(v.sqref) for v in findings.data_validations.dataValidation}
    assert kinds["list"].startswith("A2:A") and kinds["date"].startswith("B2:B")

    settings = load_data(
        {"state": {"database_url": f"sqlite:///{tmp_path / 'state.db'}"}}, environ={}, source="t"
    )
    out = io.StringIO()
    with DecisionStore(settings.state.database_url) as decisions:
        code = import_files(settings, store, decisions, [("lo.xlsx", saved)], "", NOW, out)
        in_force = decisions.in_force()
    assert code == 1, out.getvalue()
    assert "3 recorded" in out.getvalue() and "not team-payments@example.com's" in out.getvalue()
    assert {k: d.decision.label for k, d in in_force.items()} == {
        remove: "Remove",
        keep: "Keep",
        not_mine: "Not mine",
    }
    assert in_force[keep].keep_until == NOW.date() + timedelta(days=60)
