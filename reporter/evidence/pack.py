"""The evidence pack of a run: every file it wrote, hashed, and `manifest.json` written last.

Files go into a hidden `.<run-id>.partial` folder; only when the manifest is written is the
folder renamed to `<run-id>`, so a folder without a manifest never looks complete.

Verification is one pure comparison (`compare`) of the manifest's list against what a store
holds; the local folder, S3 and an exported zip each only say what is present and how to read it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from reporter.errors import ReporterError

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1
HASH_ALGORITHM = "sha256"

# Run ids are `new_run_id`'s `20261128T030746Z-8edb17`; no dots, so no `..` and no hidden names.
RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


class EvidenceError(ReporterError):
    """An evidence pack is missing, damaged, or could not be stored."""

    exit_code = 1


class RunNotFound(EvidenceError):
    exit_code = 2


def is_run_id(text: str) -> bool:
    return RUN_ID_RE.fullmatch(text) is not None


def check_run_id(text: str) -> str:
    if not is_run_id(text):
        raise RunNotFound(
            f"{text!r} is not a run id\n    hint: `access-reporter evidence list` shows the runs"
        )
    return text


@dataclass(frozen=True)
class FileRecord:
    path: str
    sha256: str
    size: int


def safe_relpath(relpath: str, *, allow_manifest: bool = False) -> PurePosixPath:
    """A relative POSIX path that stays inside a run; raises ValueError otherwise."""
    path = PurePosixPath(relpath)
    if (
        not relpath
        or "\\" in relpath
        or "\x00" in relpath
        or path.is_absolute()
        or any(part in ("..", ".") for part in relpath.split("/"))
        or not path.parts
        or (relpath == MANIFEST and not allow_manifest)
    ):
        raise ValueError(f"not a valid evidence path: {relpath!r}")
    return path


class RunFolder:
    """A run's evidence folder being written. Use as a context manager: an exception abandons it."""

    def __init__(self, root: Path, run_id: str) -> None:
        if not is_run_id(run_id):
            raise ValueError(f"not a valid run id: {run_id!r}")
        self.root = root
        self.run_id = run_id
        self.partial = root / f".{run_id}.partial"
        self.final = root / run_id
        self._files: dict[str, FileRecord] = {}
        self.partial.mkdir(parents=True, exist_ok=False)

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abandon()

    @property
    def files(self) -> tuple[FileRecord, ...]:
        return tuple(self._files[p] for p in sorted(self._files))

    def write(self, relpath: str, data: bytes) -> FileRecord:
        target, path = self._target(relpath)
        target.write_bytes(data)
        return self._record(FileRecord(str(path), hashlib.sha256(data).hexdigest(), len(data)))

    def write_chunks(self, relpath: str, chunks: Iterable[bytes]) -> FileRecord:
        """Write a file piece by piece, hashing as it goes: a 400 MB findings.json never has
        to be in memory at once."""
        return self.write_together((relpath,), ((chunk,) for chunk in chunks))[0]

    def write_together(
        self, relpaths: Sequence[str], pieces: Iterable[Sequence[bytes]]
    ) -> tuple[FileRecord, ...]:
        """Write several files from one stream: each item of `pieces` holds the next piece of
        every file, in `relpaths` order. The data files come from one pass over the findings."""
        targets = [self._target(relpath) for relpath in relpaths]
        digests = [hashlib.sha256() for _ in targets]
        sizes = [0] * len(targets)
        with ExitStack() as stack:
            handles = [stack.enter_context(target.open("wb")) for target, _ in targets]
            for group in pieces:
                for n, piece in enumerate(group):
                    handles[n].write(piece)
                    digests[n].update(piece)
                    sizes[n] += len(piece)
        return tuple(
            self._record(FileRecord(str(path), digest.hexdigest(), size))
            for (_, path), digest, size in zip(targets, digests, sizes, strict=True)
        )

    def _target(self, relpath: str) -> tuple[Path, PurePosixPath]:
        path = safe_relpath(relpath)
        if str(path) in self._files:
            raise ValueError(f"{relpath} was already written in this run")
        target = self.partial.joinpath(*path.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target, path

    def _record(self, record: FileRecord) -> FileRecord:
        self._files[record.path] = record
        return record

    def write_json(self, relpath: str, value: Any) -> FileRecord:
        text = json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n"
        return self.write(relpath, text.encode())

    def commit(self, manifest: Mapping[str, Any]) -> Path:
        """Write the manifest last, then move the folder into place in one rename."""
        body = {
            "schema_version": SCHEMA_VERSION,
            **manifest,
            "hash_algorithm": HASH_ALGORITHM,
            "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in self.files],
        }
        with (self.partial / MANIFEST).open("w", encoding="utf-8") as fh:
            json.dump(body, fh, indent=2, ensure_ascii=False, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(self.partial, self.final)
        return self.final

    def abandon(self) -> None:
        shutil.rmtree(self.partial, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Reading a manifest, and the one comparison every store's verification runs.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """A parsed `manifest.json`: its exact bytes (and their digest), the data, the file list."""

    raw: bytes
    data: Mapping[str, Any]
    files: Mapping[str, FileRecord]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    @property
    def run_id(self) -> str:
        return str(self.data.get("run_id", ""))


def parse_manifest(raw: bytes) -> Manifest:
    """Raises ValueError when the bytes are not a manifest with a well-formed file list."""
    try:
        data = json.loads(raw.decode("utf-8"))
        entries = data["files"]
        files = {}
        for entry in entries:
            record = FileRecord(str(entry["path"]), str(entry["sha256"]), int(entry["size"]))
            safe_relpath(record.path)
            files[record.path] = record
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"unreadable manifest: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("unreadable manifest: not a JSON object")
    return Manifest(raw, data, files)


@dataclass(frozen=True)
class Verification:
    missing: tuple[str, ...]
    changed: tuple[str, ...]
    extra: tuple[str, ...]
    # What makes the container itself untrustworthy (an exported zip's duplicate entries,
    # hidden bytes, …), one sentence each.
    invalid: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not (self.missing or self.changed or self.extra or self.invalid)

    def lines(self) -> list[str]:
        """`missing: PATH` etc., one line per difference, in a stable order."""
        return [
            f"{label}: {path}"
            for label, paths in (
                ("invalid", self.invalid),
                ("missing", self.missing),
                ("changed", self.changed),
                ("extra", self.extra),
            )
            for path in paths
        ]


def compare(
    listed: Mapping[str, FileRecord], present: Iterable[str], read: Callable[[str], bytes]
) -> Verification:
    """Hash every listed file that is present; anything unreadable counts as changed."""
    here = set(present) - {MANIFEST}
    changed = []
    for path in sorted(here & listed.keys()):
        try:
            data = read(path)
        except (OSError, EvidenceError):
            changed.append(path)
            continue
        entry = listed[path]
        if hashlib.sha256(data).hexdigest() != entry.sha256 or len(data) != entry.size:
            changed.append(path)
    return Verification(
        missing=tuple(sorted(listed.keys() - here)),
        changed=tuple(changed),
        extra=tuple(sorted(here - listed.keys())),
    )


def unreadable(present: Iterable[str]) -> Verification:
    # An unreadable manifest proves nothing: every file counts as unaccounted for.
    return Verification(
        missing=(MANIFEST,), changed=(), extra=tuple(sorted(set(present) - {MANIFEST}))
    )


def walk(folder: Path) -> Iterator[str]:
    """Every non-folder entry under `folder` (symlinks included, never followed)."""
    for dirpath, dirnames, filenames in os.walk(folder):
        base = Path(dirpath)
        # A symlinked folder is listed as an entry, not entered: it cannot pass verification.
        entries = [*filenames, *(d for d in dirnames if (base / d).is_symlink())]
        for name in entries:
            yield (base / name).relative_to(folder).as_posix()


def read_inside(folder: Path, relpath: str) -> bytes:
    """The bytes of `folder/relpath`, refusing symlinks and anything that leads outside."""
    path = safe_relpath(relpath, allow_manifest=True)
    current = folder
    for part in path.parts:
        current = current / part
        if current.is_symlink():
            raise EvidenceError(f"{relpath}: a symbolic link is not evidence")
    if not current.resolve().is_relative_to(folder.resolve()):
        raise EvidenceError(f"{relpath}: outside the run")
    with current.open("rb") as fh:
        return fh.read()


def verify(run_dir: Path) -> Verification:
    """Recompute every hash listed in the manifest; report missing, changed and extra files."""
    present = list(walk(run_dir))
    try:
        manifest = parse_manifest(read_inside(run_dir, MANIFEST))
    except (OSError, ValueError, EvidenceError):
        return unreadable(present)
    return compare(manifest.files, present, lambda p: read_inside(run_dir, p))
