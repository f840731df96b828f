"""The evidence pack of a run: every file it wrote, hashed, and `manifest.json` written last.

Files go into a hidden `.<run-id>.partial` folder; only when the manifest is written is the
folder renamed to `<run-id>`, so a folder without a manifest never looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class FileRecord:
    path: str
    sha256: str
    size: int


def _safe_relpath(relpath: str) -> PurePosixPath:
    path = PurePosixPath(relpath)
    if path.is_absolute() or ".." in path.parts or not path.parts or relpath == MANIFEST:
        raise ValueError(f"not a valid evidence path: {relpath!r}")
    return path


class RunFolder:
    """A run's evidence folder being written. Use as a context manager: an exception abandons it."""

    def __init__(self, root: Path, run_id: str) -> None:
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
        path = _safe_relpath(relpath)
        if str(path) in self._files:
            raise ValueError(f"{relpath} was already written in this run")
        target = self.partial.joinpath(*path.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        record = FileRecord(str(path), hashlib.sha256(data).hexdigest(), len(data))
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


@dataclass(frozen=True)
class Verification:
    missing: tuple[str, ...]
    changed: tuple[str, ...]
    extra: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.changed or self.extra)


def _walk(folder: Path) -> Iterator[str]:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            yield path.relative_to(folder).as_posix()


def verify(run_dir: Path) -> Verification:
    """Recompute every hash listed in the manifest; report missing, changed and extra files."""
    try:
        manifest = json.loads((run_dir / MANIFEST).read_text(encoding="utf-8"))
        listed = {str(f["path"]): f for f in manifest["files"]}
    except (ValueError, KeyError, TypeError):
        # An unreadable manifest proves nothing: every file counts as unaccounted for.
        return Verification(missing=(MANIFEST,), changed=(), extra=tuple(_walk(run_dir)))
    present = set(_walk(run_dir)) - {MANIFEST}
    changed = []
    for path in sorted(present & listed.keys()):
        data = (run_dir / path).read_bytes()
        entry = listed[path]
        if hashlib.sha256(data).hexdigest() != entry["sha256"] or len(data) != entry["size"]:
            changed.append(path)
    return Verification(
        missing=tuple(sorted(listed.keys() - present)),
        changed=tuple(changed),
        extra=tuple(sorted(present - listed.keys())),
    )
