from __future__ import annotations

import json
from pathlib import Path

import pytest

from reporter.evidence import RunFolder, verify


def make_run(root: Path) -> Path:
    with RunFolder(root, "run-1") as folder:
        folder.write("data/a.txt", b"alpha")
        folder.write_json("data/b.json", {"x": 1})
        return folder.commit({"run_id": "run-1"})


def test_manifest_lists_every_file_and_verifies(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert [f["path"] for f in manifest["files"]] == ["data/a.txt", "data/b.json"]
    assert verify(run_dir).ok


def test_changed_missing_and_extra_files_fail(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path)
    (run_dir / "data/a.txt").write_bytes(b"alphA")
    (run_dir / "data/b.json").unlink()
    (run_dir / "data/c.txt").write_bytes(b"new")
    result = verify(run_dir)
    assert (result.changed, result.missing, result.extra) == (
        ("data/a.txt",),
        ("data/b.json",),
        ("data/c.txt",),
    )
    assert not result.ok


def test_failure_mid_run_leaves_no_complete_looking_folder(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), RunFolder(tmp_path, "run-2") as folder:
        folder.write("data/a.txt", b"alpha")
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "manifest.json", "a/../../b"])
def test_paths_outside_the_run_are_refused(tmp_path: Path, bad: str) -> None:
    folder = RunFolder(tmp_path, "run-3")
    with pytest.raises(ValueError):
        folder.write(bad, b"x")


def test_a_broken_manifest_never_verifies(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path)
    (run_dir / "manifest.json").write_text("{ truncated")
    result = verify(run_dir)
    assert not result.ok and result.missing == ("manifest.json",)


def test_evidence_list_ignores_unfinished_and_reports_unreadable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reporter.cli import main

    make_run(tmp_path)
    partial = tmp_path / ".run-9.partial"
    partial.mkdir()
    (partial / "manifest.json").write_text('{"run_id": "run-9"}')
    broken = tmp_path / "run-8"
    broken.mkdir()
    (broken / "manifest.json").write_text("[1, 2")
    assert main(["evidence", "list", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "run-1" in out and "run-9" not in out and "run-8  UNREADABLE" in out
    assert main(["evidence", "verify", ".run-9.partial", "--dir", str(tmp_path)]) == 2
