"""Evidence packs on the local store: written atomically, verified, exported, listed, pruned."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reporter.cli import main
from reporter.evidence import (
    EvidenceError,
    LocalStore,
    RunFolder,
    RunNotFound,
    RunStatus,
    verify,
    verify_zip,
)
from reporter.sandbox import Sandbox, SandboxSpec

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def make_run(root: Path, run_id: str = "run-1", started: datetime = NOW) -> Path:
    with RunFolder(root, run_id) as folder:
        folder.write("data/a.txt", b"alpha")
        folder.write_json("data/b.json", {"x": 1})
        folder.write("owners/alice/report.pdf", b"%PDF-1.7 pretend")
        return folder.commit(
            {"run_id": run_id, "started_at": started.isoformat(), "counts": {"findings": 3}}
        )


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture
def demo_copy(demo_run: Path, tmp_path: Path) -> Path:
    """A private copy of the session's demo run, free to tamper with."""
    return Path(shutil.copytree(demo_run, tmp_path / "reports" / demo_run.name, symlinks=True))


# --- the pack ---------------------------------------------------------------------------------


def test_manifest_lists_every_file_and_verifies(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert [f["path"] for f in manifest["files"]] == [
        "data/a.txt",
        "data/b.json",
        "owners/alice/report.pdf",
    ]
    assert manifest["files"][0] == {
        "path": "data/a.txt",
        "sha256": hashlib.sha256(b"alpha").hexdigest(),
        "size": 5,
    }
    assert manifest["schema_version"] == 1 and manifest["hash_algorithm"] == "sha256"
    assert verify(run_dir).ok


def test_the_demo_pack_records_what_an_auditor_asks_for(demo_run: Path) -> None:
    manifest = json.loads((demo_run / "manifest.json").read_text())
    for key in ("schema_version", "tool_version", "run_id", "started_at", "finished_at"):
        assert manifest[key], key
    assert manifest["started_at"] <= manifest["finished_at"]
    assert len(manifest["config_digest"]) == 64
    assert manifest["caller_identity"]["Arn"].startswith("arn:aws:")
    assert manifest["scope"] == "whole organization"
    assert {c["account_id"] for c in manifest["coverage"]} >= {"123456789012"}
    # Every file on disk is listed with its true digest and size, and nothing else is.
    on_disk = {
        p.relative_to(demo_run).as_posix(): p.read_bytes()
        for p in demo_run.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    }
    assert {f["path"]: (f["sha256"], f["size"]) for f in manifest["files"]} == {
        path: (hashlib.sha256(data).hexdigest(), len(data)) for path, data in on_disk.items()
    }
    # Each delivery names its attachments by digest: the PDF and workbook that were mailed.
    for delivery in manifest["deliveries"]:
        assert delivery["message_id"] and delivery["file"] in on_disk
        digests = {a["sha256"] for a in delivery["attachments"]}
        assert len(digests) == 2
        assert digests <= {hashlib.sha256(d).hexdigest() for d in on_disk.values()}


def test_a_sandbox_run_verifies_from_the_cli(
    demo_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = cli(capsys, "evidence", "verify", demo_run.name, "--dir", str(demo_run.parent))
    assert code == 0
    assert out.strip() == f"{demo_run.name}: verified"


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        ("flip", "changed: summary/summary.pdf"),
        ("delete", "missing: data/findings.csv"),
        ("add", "extra: data/notes.txt"),
    ],
)
def test_each_kind_of_tampering_fails_verification_with_its_category(
    demo_copy: Path, capsys: pytest.CaptureFixture[str], tamper: str, expected: str
) -> None:
    if tamper == "flip":
        pdf = demo_copy / "summary/summary.pdf"
        data = bytearray(pdf.read_bytes())
        data[len(data) // 2] ^= 0x01  # one bit of one byte; the size stays the same
        pdf.write_bytes(bytes(data))
    elif tamper == "delete":
        (demo_copy / "data/findings.csv").unlink()
    else:
        (demo_copy / "data/notes.txt").write_text("added later")
    code, out = cli(capsys, "evidence", "verify", demo_copy.name, "--dir", str(demo_copy.parent))
    assert code == 1
    assert out.splitlines() == [expected, f"{demo_copy.name}: FAILED verification"]


def test_changed_missing_and_extra_files_are_told_apart(tmp_path: Path) -> None:
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


def test_a_symlink_never_passes_for_a_file_and_is_never_read(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"alpha")  # the same bytes: only the link itself is wrong
    (run_dir / "data/a.txt").unlink()
    (run_dir / "data/a.txt").symlink_to(outside)
    assert verify(run_dir).changed == ("data/a.txt",)
    with pytest.raises(EvidenceError, match="symbolic link"):
        LocalStore(tmp_path).read("run-1", "data/a.txt")


def test_a_broken_manifest_never_verifies(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path)
    (run_dir / "manifest.json").write_text("{ truncated")
    result = verify(run_dir)
    assert not result.ok and result.missing == ("manifest.json",)
    assert set(result.extra) == {"data/a.txt", "data/b.json", "owners/alice/report.pdf"}


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "manifest.json", "a/../../b", "a\\b", ""])
def test_paths_outside_the_run_are_refused(tmp_path: Path, bad: str) -> None:
    folder = RunFolder(tmp_path, "run-3")
    with pytest.raises(ValueError):
        folder.write(bad, b"x")


@pytest.mark.parametrize("bad", ["../run", ".hidden", "a/b", "x.partial", ""])
def test_run_ids_cannot_name_other_folders(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        RunFolder(tmp_path, bad)
    with pytest.raises(RunNotFound):
        LocalStore(tmp_path).manifest(bad)


# --- crashes ------------------------------------------------------------------------------------


def test_failure_mid_run_leaves_no_complete_looking_folder(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), RunFolder(tmp_path, "run-2") as folder:
        folder.write("data/a.txt", b"alpha")
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_a_run_that_fails_while_rendering_leaves_no_complete_pack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A real run on the sandbox that collects and writes its data files, then fails on a broken
    # template override: the failure comes from inside the pipeline, nothing is faked.
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "summary_report.html.j2").write_text("{{ no_such_value }}")
    config = tmp_path / "reporter.yaml"
    out = tmp_path / "out"
    with Sandbox(SandboxSpec(member_accounts=3)) as sandbox:
        config.write_text(
            "organization:\n"
            f"  home_region: {sandbox.home_region}\n"
            f"  delegated_admin_role_arn: {sandbox.delegated_admin_role_arn}\n"
            f"reports:\n  template_dir: {templates}\n"
            f"state:\n  database_url: sqlite:///{tmp_path}/state.db\n"
        )
        code, text = cli(capsys, "run", "-c", str(config), "--no-send", "--out", str(out))
    assert code == 1 and "'no_such_value' is undefined" in text
    assert [p.name for p in out.iterdir() if not p.name.startswith(".state")] == []
    code, listing = cli(capsys, "evidence", "list", "--dir", str(out))
    assert code == 0 and "complete" not in listing


def test_a_killed_run_lists_as_incomplete_and_cannot_be_verified_or_exported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The process dies between two writes (no exception handler runs, as with SIGKILL).
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from reporter.evidence import RunFolder\n"
        "folder = RunFolder(Path(sys.argv[1]), 'run-killed')\n"
        "folder.write('data/a.txt', b'alpha')\n"
        "os._exit(9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=False)
    assert proc.returncode == 9
    make_run(tmp_path, "run-ok")
    code, out = cli(capsys, "evidence", "list", "--dir", str(tmp_path))
    lines = sorted(out.splitlines())
    assert lines[0].startswith("run-killed  incomplete") and "no manifest" in lines[0]
    assert lines[1].startswith("run-ok  complete") and "findings=3" in lines[1]
    assert [r.status for r in LocalStore(tmp_path).runs()] == [
        RunStatus.INCOMPLETE,
        RunStatus.COMPLETE,
    ]
    for action in ("verify", "export", "show"):
        code, out = cli(capsys, "evidence", action, "run-killed", "--dir", str(tmp_path))
        assert code == 2 and "run-killed" in out
    code, out = cli(capsys, "evidence", "verify", ".run-killed.partial", "--dir", str(tmp_path))
    assert code == 2


def test_list_shows_damaged_manifests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_run(tmp_path)
    broken = tmp_path / "run-8"
    broken.mkdir()
    (broken / "manifest.json").write_text("[1, 2")
    (tmp_path / ".state").mkdir()  # the demo's state database lives here: not a run
    code, out = cli(capsys, "evidence", "list", "--dir", str(tmp_path))
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("run-1  complete    2026-11-28 12:00 UTC  findings=3")
    assert lines[1].startswith("run-8  damaged") and "unreadable" in lines[1]


# --- export -------------------------------------------------------------------------------------


def test_export_is_a_deterministic_zip_with_the_manifest_at_its_root(
    demo_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(demo_copy.parent)
    first, second = tmp_path / "one.zip", tmp_path / "two.zip"
    assert (
        cli(capsys, "evidence", "export", demo_copy.name, "--dir", root, "-o", str(first))[0] == 0
    )
    os.utime(demo_copy / "data/findings.json", (0, 0))  # file times do not leak into the zip
    assert (
        cli(capsys, "evidence", "export", demo_copy.name, "--dir", root, "-o", str(second))[0] == 0
    )
    assert first.read_bytes() == second.read_bytes()

    with zipfile.ZipFile(first) as archive:
        names = archive.namelist()
        assert names[0] == "manifest.json"
        manifest = json.loads(archive.read("manifest.json"))
        assert names[1:] == sorted(f["path"] for f in manifest["files"])
        # Recomputed independently of the product's own code.
        for entry in manifest["files"]:
            data = archive.read(entry["path"])
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
            assert len(data) == entry["size"]
        assert archive.read("manifest.json") == (demo_copy / "manifest.json").read_bytes()
    assert verify_zip(first).ok
    code, out = cli(capsys, "evidence", "verify", str(first))
    assert code == 0 and out.strip() == "one.zip: verified"

    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(first) as archive:
        archive.extractall(unpacked)
    assert cli(capsys, "evidence", "verify", str(unpacked))[0] == 0


def test_a_tampered_zip_fails_verification(demo_run: Path, tmp_path: Path) -> None:
    data = LocalStore(demo_run.parent).export(demo_run.name)
    source, tampered = tmp_path / "run.zip", tmp_path / "tampered.zip"
    source.write_bytes(data)
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            content = src.read(info)
            dst.writestr(info, content + b" " if info.filename == "data/findings.csv" else content)
        dst.writestr("extra.txt", b"x")
    result = verify_zip(tampered)
    assert (result.changed, result.missing, result.extra) == (
        ("data/findings.csv",),
        (),
        ("extra.txt",),
    )


def test_export_refuses_a_run_that_fails_verification(
    demo_copy: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (demo_copy / "data/findings.csv").write_text("edited")
    target = tmp_path / "x.zip"
    code, out = cli(
        capsys,
        "evidence",
        "export",
        demo_copy.name,
        "--dir",
        str(demo_copy.parent),
        "-o",
        str(target),
    )
    assert code == 1 and "fails verification" in out and "1 changed" in out
    assert not target.exists()


def test_show_prints_the_manifest_and_its_digest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = make_run(tmp_path)
    code = main(["evidence", "show", "run-1", "--dir", str(tmp_path)])
    out = capsys.readouterr()
    raw = (run_dir / "manifest.json").read_bytes()
    assert code == 0 and out.out == raw.decode()
    assert hashlib.sha256(raw).hexdigest() in out.err


# --- prune --------------------------------------------------------------------------------------


def test_prune_removes_only_what_retention_allows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    make_run(tmp_path, "run-old", now - timedelta(days=40))
    make_run(tmp_path, "run-new", now - timedelta(days=5))
    old_partial = tmp_path / ".run-crashed.partial"
    (old_partial / "data").mkdir(parents=True)
    (old_partial / "data/a.txt").write_bytes(b"x")
    two_days_ago = (now - timedelta(days=2)).timestamp()
    for path in (old_partial / "data/a.txt", old_partial / "data", old_partial):
        os.utime(path, (two_days_ago, two_days_ago))
    running = tmp_path / ".run-running.partial"
    running.mkdir()
    (running / "a.txt").write_bytes(b"x")
    damaged = tmp_path / "run-damaged"
    damaged.mkdir()
    (damaged / "manifest.json").write_text("{")
    os.utime(damaged, (0, 0))

    code, out = cli(capsys, "evidence", "prune", "--dir", str(tmp_path), "--retention-days", "30")
    assert code == 0
    assert "removed run-old: older than 30 days" in out
    assert "removed run-crashed: incomplete for more than a day" in out
    assert "2 removed, 0 kept" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".run-running.partial",
        "run-damaged",
        "run-new",
    ]


def test_prune_without_retention_keeps_every_complete_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_run(tmp_path, "run-ancient", datetime(2001, 1, 1, tzinfo=UTC))
    code, out = cli(capsys, "evidence", "prune", "--dir", str(tmp_path))
    assert code == 0 and "retention_days is not set" in out and "0 removed" in out
    assert (tmp_path / "run-ancient/manifest.json").is_file()


def test_retention_comes_from_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reports = tmp_path / "reports"
    make_run(reports, "run-old", datetime.now(UTC) - timedelta(days=10))
    make_run(reports, "run-new", datetime.now(UTC))
    config = tmp_path / "reporter.yaml"
    config.write_text(f"reports:\n  output_dir: {reports}\nevidence:\n  retention_days: 7\n")
    code, out = cli(capsys, "evidence", "prune", "-c", str(config))
    assert code == 0 and "removed run-old: older than 7 days" in out
    assert [p.name for p in reports.iterdir()] == ["run-new"]
