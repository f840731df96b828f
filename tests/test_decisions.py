"""`decisions import / list / approve` on workbooks the product wrote and a person filled in
(openpyxl): what is recorded, what is rejected and why, and that nothing is recorded twice."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest

from reporter.config import Settings, load_data
from reporter.errors import UsageError
from reporter.evidence import LocalStore
from reporter.models import ReportItem
from reporter.reviews.commands import approve, import_files, list_decisions
from reporter.reviews.decisions import (
    Decision,
    RecordedDecision,
    ReturnedRow,
    ReturnedWorkbook,
    validate_rows,
)
from reporter.reviews.workbook import ReviewFileError, read_returned
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
from .reviewbooks import append_row, fill, owner_workbook, write_pack

World = tuple[tuple[ReportItem, ...], ReportItem, LocalStore, bytes]
NOW = GENERATED_AT + timedelta(days=2)
OTHER = "team-search@example.com"
MANAGER = "cfo@example.com"


def _settings(tmp: Path, **reviews: object) -> Settings:
    return load_data(
        {
            "state": {"database_url": f"sqlite:///{tmp / 'state.db'}"},
            "reports": {"output_dir": str(tmp / "reports")},
            "owners": {"managers": {OWNER: MANAGER}},
            "reviews": reviews,
        },
        environ={},
        source="test",
    )


@pytest.fixture
def world(tmp_path: Path) -> World:
    """A run with OWNER's findings and one of OTHER's, its pack, and OWNER's workbook."""
    context = make_context()
    mine = sample_items()
    theirs = make_item(finding=make_finding(name="search-indexer"), owner=OTHER)
    store = write_pack(tmp_path / "reports", context, (*mine, theirs))
    book = owner_workbook(make_report(items=mine, context=context))
    return mine, theirs, store, book


def _import(
    tmp_path: Path, store: LocalStore, files: list[tuple[str, bytes]], **kw: object
) -> tuple[int, str, dict[str, RecordedDecision], list[RecordedDecision]]:
    settings = _settings(tmp_path, **kw)
    out = io.StringIO()
    with DecisionStore(settings.state.database_url) as decisions:
        code = import_files(settings, store, decisions, files, "importer@example.com", NOW, out)
        return code, out.getvalue(), decisions.in_force(), decisions.history()


def test_a_filled_workbook_records_each_decided_row_with_its_provenance(
    tmp_path: Path, world
) -> None:
    mine, _, store, book = world
    remove, keep, not_mine = (i.finding.key for i in mine[:3])
    until = NOW.date() + timedelta(days=30)
    filled = fill(
        book,
        {
            remove: {"Decision": "Remove"},
            keep: {"Decision": "Keep", "Keep until": until, "Reason": "quarterly DR test"},
            not_mine: {"Decision": "Not mine", "Reason": "belongs to the data team"},
        },
    )
    code, out, in_force, history = _import(tmp_path, store, [("alice.xlsx", filled)])
    assert code == 0, out
    assert "3 recorded, 0 already recorded, 0 rejected" in out
    assert {k: d.decision for k, d in in_force.items()} == {
        remove: Decision.REMOVE,
        keep: Decision.KEEP,
        not_mine: Decision.NOT_MINE,
    }
    kept = in_force[keep]
    assert (kept.keep_until, kept.reason, kept.decided_by, kept.owner) == (
        until,
        "quarterly DR test",
        OWNER,
        OWNER,
    )
    assert kept.imported_by == "importer@example.com"
    assert kept.run_id == make_context().run_id and kept.source_name == "alice.xlsx"
    import hashlib

    assert kept.source_sha256 == hashlib.sha256(filled).hexdigest()
    assert kept.sheet_row >= 2 and kept.recorded_at == NOW
    assert len(history) == 3


def test_importing_the_same_file_twice_changes_nothing(tmp_path: Path, world: World) -> None:
    mine, _, store, book = world
    filled = fill(book, {mine[0].finding.key: {"Decision": "Remove"}})
    _import(tmp_path, store, [("a.xlsx", filled)])
    code, out, _, history = _import(tmp_path, store, [("a.xlsx", filled)])
    assert code == 0 and "0 recorded, 1 already recorded" in out
    assert len(history) == 1


def test_a_later_decision_supersedes_and_both_stay_in_history(tmp_path: Path, world: World) -> None:
    mine, _, store, book = world
    key = mine[0].finding.key
    _import(tmp_path, store, [("1.xlsx", fill(book, {key: {"Decision": "Remove"}}))])
    until = NOW.date() + timedelta(days=10)
    second = fill(book, {key: {"Decision": "Keep", "Keep until": until, "Reason": "still needed"}})
    code, _, in_force, history = _import(tmp_path, store, [("2.xlsx", second)])
    assert code == 0
    assert in_force[key].decision is Decision.KEEP
    assert [d.decision for d in history] == [Decision.REMOVE, Decision.KEEP]


def test_another_owners_rows_pasted_in_are_rejected_and_nothing_of_them_kept(
    tmp_path: Path, world
) -> None:
    mine, theirs, store, book = world
    filled = fill(book, {mine[0].finding.key: {"Decision": "Remove"}})
    pasted = append_row(
        filled,
        {
            "key": theirs.finding.key,
            "Decision": "Keep",
            "Keep until": NOW.date() + timedelta(days=5),
            "Reason": "x",
        },
    )
    unknown = append_row(
        pasted, {"key": "999999999999/UnusedIAMRole/arn:aws:iam::9:role/x", "Decision": "Remove"}
    )
    code, out, in_force, _ = _import(tmp_path, store, [("a.xlsx", unknown)])
    assert code == 1
    assert f"not {OWNER}'s finding" in out and f"owner: {OTHER}" in out
    assert "unknown key" in out
    assert set(in_force) == {mine[0].finding.key}


@pytest.mark.parametrize(
    ("cells", "why"),
    [
        ({"Decision": "Keep", "Keep until": "2025-04-01"}, "Keep needs a Reason"),
        ({"Decision": "Keep", "Reason": "needed"}, "Keep needs a Keep until date"),
        ({"Decision": "Keep", "Reason": "r", "Keep until": "next year"}, "is not a date"),
        ({"Decision": "Keep", "Reason": "r", "Keep until": date(2025, 9, 1)}, "max_keep_days"),
        ({"Decision": "Keep", "Reason": "r", "Keep until": date(2025, 1, 1)}, "in the past"),
        ({"Decision": "Accept risk"}, "is not one of: Remove, Keep, Not mine"),
    ],
)
def test_rows_that_cannot_be_decisions_are_rejected_with_their_reason(
    tmp_path: Path, world: World, cells: dict[str, object], why: str
) -> None:
    mine, _, store, book = world
    filled = fill(book, {mine[0].finding.key: cells})
    code, out, in_force, _ = _import(tmp_path, store, [("a.xlsx", filled)])
    assert code == 1 and why in out, out
    assert in_force == {}


def test_a_keep_until_typed_as_text_and_decisions_in_any_case_are_read(
    tmp_path: Path, world: World
) -> None:
    mine, _, store, book = world
    filled = fill(
        book,
        {mine[0].finding.key: {"Decision": " keep ", "Keep until": "2025-04-01", "Reason": "r"}},
    )
    code, _, in_force, _ = _import(tmp_path, store, [("a.xlsx", filled)])
    assert code == 0 and in_force[mine[0].finding.key].keep_until == date(2025, 4, 1)


def test_unreadable_files_and_missing_packs_exit_2_and_record_nothing(
    tmp_path: Path, world
) -> None:
    mine, _, _, book = world
    filled = fill(book, {mine[0].finding.key: {"Decision": "Remove"}})
    empty = LocalStore(tmp_path / "elsewhere")
    code, _, in_force, _ = _import(tmp_path, empty, [("a.xlsx", filled)])
    assert code == 2 and in_force == {}
    code, _, _, _ = _import(tmp_path, empty, [("b.xlsx", b"not a zip")])
    assert code == 2
    with pytest.raises(ReviewFileError, match="not an owner workbook"):
        from openpyxl import Workbook

        raw = io.BytesIO()
        Workbook().save(raw)
        read_returned(raw.getvalue(), "blank.xlsx")


def test_the_findings_sheet_is_read_by_header_names_not_positions(world: World) -> None:
    from openpyxl import load_workbook

    mine, _, _, book = world
    key = mine[0].finding.key
    wb = load_workbook(io.BytesIO(fill(book, {key: {"Decision": "Remove"}})))
    wb["Findings"].move_range("A1:C400", cols=60)  # the key column moves far to the right
    wb["Findings"].insert_cols(1, 3)
    raw = io.BytesIO()
    wb.save(raw)
    returned = read_returned(raw.getvalue(), "moved.xlsx")
    assert [(r.key, r.decision) for r in returned.rows if r.decided] == [(key, "Remove")]
    assert (returned.owner, returned.run_id) == (OWNER, make_context().run_id)


def test_validation_is_pure_and_an_unowned_finding_belongs_to_the_fallback() -> None:
    key = "1/UnusedIAMRole/arn"
    book = ReturnedWorkbook(
        "r", "security-team@example.com", (ReturnedRow(2, key, "Remove", None, ""),)
    )
    valid, rejected = validate_rows(
        book, {key: None}, ("security-team@example.com",), NOW.date(), 90
    )
    assert [v.key for v in valid] == [key] and rejected == []
    valid, rejected = validate_rows(
        replace(book, owner="x@example.com"),
        {key: None},
        ("security-team@example.com",),
        NOW.date(),
        90,
    )
    assert valid == [] and "unowned" in rejected[0].reason


def test_list_and_approve_a_pending_keep(tmp_path: Path, world: World) -> None:
    mine, _, store, book = world
    key = mine[0].finding.key
    filled = fill(book, {key: {"Decision": "Keep", "Keep until": date(2025, 4, 30), "Reason": "r"}})
    _import(tmp_path, store, [("a.xlsx", filled)], keep_requires_approval=True)
    settings = _settings(tmp_path, keep_requires_approval=True)
    with DecisionStore(settings.state.database_url) as decisions:
        out = io.StringIO()
        list_decisions(settings, decisions, NOW.date(), out, only_open=True)
        assert "pending approval" in out.getvalue() and key in out.getvalue()
        (decision,) = decisions.in_force().values()
        with pytest.raises(UsageError, match=r"not team-payments@example\.com's manager"):
            approve(settings, decisions, decision.id, "someone@example.com", NOW, io.StringIO())
        approve(settings, decisions, decision.id, MANAGER, NOW, io.StringIO())
        assert decisions.get(decision.id).approved_by == MANAGER
        out = io.StringIO()
        list_decisions(settings, decisions, NOW.date(), out, only_open=True)
        assert out.getvalue().strip() == "no decisions"
        out = io.StringIO()
        list_decisions(settings, decisions, NOW.date(), out, owner=OWNER)
        assert "kept until 2025-04-30" in out.getvalue()


def test_the_cli_imports_and_lists(
    tmp_path: Path,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from reporter.cli import main

    mine, _, _, book = world
    config = tmp_path / "c.yaml"
    config.write_text(
        f"state:\n  database_url: sqlite:///{tmp_path / 'state.db'}\n"
        f"reports:\n  output_dir: {tmp_path / 'reports'}\n",
        encoding="utf-8",
    )
    path = tmp_path / "returned.xlsx"
    path.write_bytes(
        fill(book, {mine[0].finding.key: {"Decision": "Not mine", "Reason": "data team"}})
    )
    assert (
        main(["decisions", "import", str(path), "-c", str(config), "--by", "ops@example.com"]) == 0
    )
    assert main(["decisions", "list", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "1 recorded" in out and "Not mine" in out and "triage" in out
    assert main(["decisions", "import", str(tmp_path / "missing.xlsx"), "-c", str(config)]) == 2


def test_a_verified_removal_whose_finding_comes_back_is_not_counted_as_removed() -> None:
    from reporter.reviews.decisions import progress

    item = make_item(finding=make_finding(name="came-back"), owner=OWNER)
    key = item.finding.key
    removed = RecordedDecision(
        id=1, key=key, owner=OWNER, decision=Decision.REMOVE, keep_until=None, reason="",
        decided_by=OWNER, imported_by=OWNER, run_id="run-1", source_sha256="0" * 64,
        source_name="b.xlsx", sheet_row=2, recorded_at=NOW,
        verified_run_id="run-2", verified_at=NOW + timedelta(days=7),
    )  # fmt: skip
    (gone,) = progress({key: removed}, (), keep_requires_approval=False)
    assert gone.removed == 1
    (back,) = progress({key: removed}, (item,), keep_requires_approval=False)
    assert back.removed == 0
