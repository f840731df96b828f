"""Evidence packs on the local store: written atomically, verified, exported, listed, pruned."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import warnings
import zipfile
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
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
from reporter.render.schema import SCHEMA_PATH, schema_json
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


def test_the_demo_pack_carries_the_schema_its_findings_were_written_to(demo_run: Path) -> None:
    # What a consumer does with a pack: validate its data against the schema file in it.
    schema = json.loads((demo_run / SCHEMA_PATH).read_bytes())
    document = json.loads((demo_run / "data/findings.json").read_bytes())
    assert document["findings"]
    jsonschema.validate(document, schema, format_checker=jsonschema.FormatChecker())
    # It is the schema the code declares (and the repository publishes), hashed in the manifest.
    assert (demo_run / SCHEMA_PATH).read_bytes() == schema_json()
    manifest = json.loads((demo_run / "manifest.json").read_text())
    (entry,) = [f for f in manifest["files"] if f["path"] == SCHEMA_PATH]
    assert entry["sha256"] == hashlib.sha256(schema_json()).hexdigest()


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


# --- a zip that reads differently in different tools ----------------------------------------------
#
# Hand-built zips around the small run `make_run` writes: the manifest, data/a.txt, data/b.json
# and owners/alice/report.pdf. Each goes through the CLI, as an auditor would run it.

RUN_FILES = ("data/a.txt", "data/b.json", "owners/alice/report.pdf")


def exported(tmp_path: Path) -> dict[str, bytes]:
    """The run's entries, manifest first, as `evidence export` writes them."""
    make_run(tmp_path / "reports")
    data = LocalStore(tmp_path / "reports").export("run-1")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_zip(
    path: Path,
    entries: list[tuple[str | zipfile.ZipInfo, bytes]],
    *,
    junk: dict[int, bytes] | None = None,
    comment: bytes = b"",
) -> Path:
    """A zip of `entries` in this order; `junk[n]` is written straight to the file before the
    n-th entry (n == len(entries): after the last, before the central directory)."""
    junk = junk or {}
    with path.open("wb") as raw, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.comment = comment
            for n, (name, data) in enumerate(entries):
                hide(archive, junk.get(n, b""))
                archive.writestr(name, data)
            hide(archive, junk.get(len(entries), b""))
    return path


def hide(archive: zipfile.ZipFile, data: bytes) -> None:
    """Write `data` where zipfile would put the next entry, and move the next entry after it."""
    assert archive.fp is not None
    archive.fp.seek(archive.start_dir)
    archive.fp.write(data)
    archive.start_dir += len(data)


def verify_file(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, list[str]]:
    code, out = cli(capsys, "evidence", "verify", str(path))
    return code, out.splitlines()


def central_header(data: bytes, name: bytes) -> int:
    at = data.index(b"PK\x01\x02")
    while data[at + 46 : at + 46 + len(name)] != name:
        at = data.index(b"PK\x01\x02", at + 4)
    return at


def test_a_hand_built_copy_of_the_export_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The control for every case below: the same entries, written the same way, verify; an
    archive comment and an entry comment are allowed."""
    entries = list(exported(tmp_path).items())
    assert verify_file(capsys, write_zip(tmp_path / "ok.zip", entries)) == (
        0,
        ["ok.zip: verified"],
    )
    info = zipfile.ZipInfo("data/a.txt")
    info.comment = b"an entry comment"
    commented = [(info if name == "data/a.txt" else name, data) for name, data in entries]
    path = write_zip(tmp_path / "comment.zip", commented, comment=b"exported for the audit")
    assert verify_file(capsys, path) == (0, ["comment.zip: verified"])


def test_a_zip_written_with_data_descriptors_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Streaming writers put sizes after the data (bit 3); the layout check follows them."""

    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b: Any) -> int:
            self.data += b
            return len(b)

    sink = Unseekable()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in exported(tmp_path).items():
            archive.writestr(name, data)
    path = tmp_path / "streamed.zip"
    path.write_bytes(bytes(sink.data))
    with zipfile.ZipFile(path) as archive:
        assert all(i.flag_bits & 0x08 for i in archive.infolist())
    assert verify_file(capsys, path) == (0, ["streamed.zip: verified"])


def test_a_zip64_zip_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sizes, offsets and the end records in their zip64 form, as a run past 4 GiB or 65,535
    files is written; zipfile's limits are lowered so that four small files need them."""
    entries = list(exported(tmp_path).items())
    with monkeypatch.context() as patched:
        patched.setattr(zipfile, "ZIP64_LIMIT", 8)
        patched.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 2)
        path = write_zip(tmp_path / "zip64.zip", entries)
    data = path.read_bytes()
    assert b"PK\x06\x06" in data and b"PK\x06\x07" in data  # the zip64 end record and locator
    with zipfile.ZipFile(path) as archive:
        assert all(i.extra.startswith(b"\x01\x00") for i in archive.infolist()[1:])
    assert verify_file(capsys, path) == (0, ["zip64.zip: verified"])


@pytest.mark.parametrize("first", [True, False], ids=["tampered-first", "tampered-last"])
def test_a_name_listed_twice_fails_whichever_copy_a_tool_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], first: bool
) -> None:
    entries = list(exported(tmp_path).items())
    tampered = ("data/a.txt", b"tampered")
    at = 1 if first else len(entries)
    path = write_zip(tmp_path / "twice.zip", [*entries[:at], tampered, *entries[at:]])
    if first and shutil.which("unzip"):
        # What the issue reported: `unzip -n` keeps the first copy, the tampered one.
        subprocess.run(["unzip", "-q", "-n", str(path), "-d", str(tmp_path / "x")], check=False)
        assert (tmp_path / "x/data/a.txt").read_bytes() == b"tampered"
    code, lines = verify_file(capsys, path)
    assert code == 1
    assert lines == [
        "invalid: 2 entries named 'data/a.txt' (zipfile reads the last, unzip -n the first)",
        "changed: data/a.txt",
        "twice.zip: FAILED verification",
    ]


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("data/", "'data/': a directory entry (the manifest lists files only)"),
        ("/etc/cron.d/x", "'/etc/cron.d/x': an unsafe name"),
        ("../outside.txt", "'../outside.txt': an unsafe name"),
        ("data/../data/a.txt", "'data/../data/a.txt': an unsafe name"),
        ("data\\a.txt", "'data\\\\a.txt': an unsafe name"),
        ("data//a.txt", "'data//a.txt': an unsafe name"),
        ("C:/x.txt", "'C:/x.txt': an unsafe name"),
    ],
)
def test_directory_entries_and_unsafe_names_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, why: str
) -> None:
    entries = [*exported(tmp_path).items(), (zipfile.ZipInfo(name), b"")]
    path = write_zip(tmp_path / "odd.zip", entries)
    with zipfile.ZipFile(path) as archive:
        assert archive.infolist()[-1].orig_filename == name  # written as meant
    code, lines = verify_file(capsys, path)
    assert code == 1
    assert lines[0].startswith(f"invalid: {why}")
    assert lines[1:] == [f"extra: {name}", "odd.zip: FAILED verification"]


def test_entries_missing_from_or_added_to_the_manifest_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = exported(tmp_path)
    del entries["data/b.json"]
    entries["data/notes.txt"] = b"added later"
    code, lines = verify_file(capsys, write_zip(tmp_path / "edited.zip", list(entries.items())))
    assert (code, lines) == (
        1,
        ["missing: data/b.json", "extra: data/notes.txt", "edited.zip: FAILED verification"],
    )


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (0, "invalid: 6 bytes before 'manifest.json' that no listing accounts for"),
        (2, "invalid: 6 bytes before 'data/b.json' that no listing accounts for"),
        (4, "invalid: 6 bytes between the last entry and the central directory that no "),
        (None, "invalid: 6 bytes after the end of the zip"),
        (-1, "invalid: 6 bytes before the central directory that no listing accounts for"),
    ],
    ids=["before-the-first", "between", "before-the-directory", "after-the-end", "prepended"],
)
def test_bytes_no_listing_accounts_for_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: int | None, expected: str
) -> None:
    entries = list(exported(tmp_path).items())
    junk = {where: b"hidden"} if where is not None and where >= 0 else {}
    path = write_zip(tmp_path / "junk.zip", entries, junk=junk)
    if where is None:
        path.write_bytes(path.read_bytes() + b"hidden")
    elif where < 0:  # as a self-extracting stub is: the zip's own offsets do not count it
        path.write_bytes(b"hidden" + path.read_bytes())
    with zipfile.ZipFile(path) as archive:  # zipfile itself reads every one of them happily
        assert archive.testzip() is None
    code, lines = verify_file(capsys, path)
    assert code == 1
    assert lines[0].startswith(expected)
    assert lines[-1] == "junk.zip: FAILED verification"


def test_a_local_header_that_names_another_file_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Streaming readers go by the local headers, zipfile and `unzip -l` by the central one."""
    path = write_zip(tmp_path / "two-names.zip", list(exported(tmp_path).items()))
    data = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        offset = archive.getinfo("data/a.txt").header_offset
    assert data[offset + 30 : offset + 40] == b"data/a.txt"
    path.write_bytes(data[: offset + 30] + b"data/x.txt" + data[offset + 40 :])
    code, lines = verify_file(capsys, path)
    assert code == 1
    assert lines == [
        "invalid: the local header of 'data/a.txt' names it 'data/x.txt': the two listings of "
        "the zip disagree",
        "changed: data/a.txt",
        "two-names.zip: FAILED verification",
    ]


def test_an_encrypted_entry_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_zip(tmp_path / "locked.zip", list(exported(tmp_path).items()))
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        local = archive.getinfo("data/b.json").header_offset
    central = central_header(bytes(data), b"data/b.json")
    data[local + 6] |= 0x01  # general purpose flag bit 0: encrypted, in both listings
    data[central + 8] |= 0x01
    path.write_bytes(bytes(data))
    code, lines = verify_file(capsys, path)
    assert code == 1
    assert lines == [
        "invalid: 'data/b.json': encrypted",
        "changed: data/b.json",
        "locked.zip: FAILED verification",
    ]


def test_a_second_name_in_a_unicode_path_field_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Info-ZIP's unzip extracts an entry under the name in its Unicode Path extra field."""
    entries = exported(tmp_path)
    other = b"data/z.txt"
    info = zipfile.ZipInfo("data/a.txt")
    info.extra = (
        struct.pack("<HHB", 0x7075, 5 + len(other), 1)
        + struct.pack("<L", zlib.crc32(b"data/a.txt"))
        + other
    )
    path = write_zip(
        tmp_path / "unicode.zip",
        [(info if name == "data/a.txt" else name, data) for name, data in entries.items()],
    )
    code, lines = verify_file(capsys, path)
    assert code == 1
    assert lines[0] == (
        "invalid: 'data/a.txt': carries a second name (Unicode Path field) that unzip uses"
    )


@pytest.mark.parametrize(
    "cut",
    [lambda b: b[: len(b) // 2], lambda b: b[:-1], lambda b: b"", lambda b: b"%PDF-1.7\n"],
    ids=["half", "all-but-the-last-byte", "empty", "a-pdf"],
)
def test_a_truncated_or_foreign_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cut: Any
) -> None:
    path = write_zip(tmp_path / "run.zip", list(exported(tmp_path).items()))
    path.write_bytes(cut(path.read_bytes()))
    code, lines = verify_file(capsys, path)
    assert code == 1
    assert lines[0].startswith("error: not a zip file, or a truncated one: ")
    assert "Traceback" not in "\n".join(lines)
