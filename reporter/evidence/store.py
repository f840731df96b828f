"""Where finished evidence packs live: the interface every store shares, and the local folder.

A store answers three questions — which runs are there, what files does a run hold, what are
their bytes — and everything an auditor does (show, verify, export, prune) is built once on top
of those. Reading is always by run id and a path the manifest lists, so no request can name a
file outside a run.
"""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from .export import build_zip
from .pack import (
    MANIFEST,
    EvidenceError,
    Manifest,
    RunNotFound,
    Verification,
    check_run_id,
    compare,
    is_run_id,
    parse_manifest,
    read_inside,
    unreadable,
    verify,
    walk,
)

# An incomplete run younger than this may still be running: prune leaves it alone.
RUNNING_GRACE = timedelta(days=1)


class RunStatus(StrEnum):
    COMPLETE = "complete"
    INCOMPLETE = "incomplete"  # no manifest: crashed, or still running
    DAMAGED = "damaged"  # a manifest that cannot be read: kept, never pruned


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    status: RunStatus
    # When the run started (complete runs) or last wrote a file (incomplete ones); prune's clock.
    when: datetime
    manifest: Manifest | None = None
    problem: str = ""

    @property
    def counts(self) -> dict[str, Any]:
        counts = self.manifest.data.get("counts") if self.manifest else None
        return counts if isinstance(counts, dict) else {}

    @property
    def exit_code(self) -> Any:
        return self.manifest.data.get("exit_code") if self.manifest else None


@dataclass(frozen=True)
class PruneReport:
    removed: tuple[tuple[str, str], ...] = ()  # (run id, why it was due)
    kept: tuple[tuple[str, str], ...] = field(default=())  # (run id, why it had to stay)


def run_time(manifest: Manifest, fallback: datetime) -> datetime:
    started = manifest.data.get("started_at")
    try:
        when = datetime.fromisoformat(str(started))
    except ValueError:
        return fallback
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def prune_plan(
    runs: Sequence[RunInfo], now: datetime, retention_days: int | None
) -> list[tuple[RunInfo, str]]:
    """Which runs are due for removal, and why. Pure: the stores do the removing."""
    due = []
    for run in runs:
        age = now - run.when
        if run.status is RunStatus.INCOMPLETE and age > RUNNING_GRACE:
            due.append((run, "incomplete for more than a day"))
        elif (
            run.status is RunStatus.COMPLETE
            and retention_days is not None
            and age > timedelta(days=retention_days)
        ):
            due.append((run, f"older than {retention_days} days"))
    return due


class EvidenceStore(ABC):
    """A place holding run folders; subclasses say what is there and how to read it."""

    location: str

    @abstractmethod
    def runs(self) -> list[RunInfo]:
        """Every run, complete or not, sorted by run id (which sorts by time)."""

    @abstractmethod
    def _read(self, run_id: str, relpath: str) -> bytes:
        """The stored bytes; FileNotFoundError when absent. `relpath` is already checked."""

    @abstractmethod
    def _present(self, run_id: str) -> list[str]:
        """Every file stored for the run; RunNotFound when there is no such run at all."""

    @abstractmethod
    def publish(self, run_dir: Path) -> str:
        """Put a finished local run folder into the store; returns where it now is."""

    @abstractmethod
    def _remove(self, run: RunInfo, now: datetime) -> str | None:
        """Delete a run, manifest first; or return why it must stay (e.g. Object Lock)."""

    def manifest(self, run_id: str) -> Manifest:
        check_run_id(run_id)
        try:
            raw = self._read(run_id, MANIFEST)
        except FileNotFoundError:
            raise RunNotFound(
                f"no complete run {run_id!r} in {self.location}\n"
                "    hint: `access-reporter evidence list` shows the runs"
            ) from None
        try:
            return parse_manifest(raw)
        except ValueError as exc:
            raise EvidenceError(f"run {run_id}: {exc}") from None

    def read(self, run_id: str, relpath: str) -> bytes:
        """A file of a complete run, if its manifest lists it (or the manifest itself)."""
        manifest = self.manifest(run_id)
        if relpath == MANIFEST:
            return manifest.raw
        if relpath not in manifest.files:
            raise RunNotFound(f"run {run_id} has no file {relpath!r}")
        try:
            return self._read(run_id, relpath)
        except FileNotFoundError:
            raise RunNotFound(f"run {run_id}: {relpath} is missing from the store") from None

    def verify(self, run_id: str) -> Verification:
        present = self._present(check_run_id(run_id))
        try:
            manifest = parse_manifest(self._read(run_id, MANIFEST))
        except (FileNotFoundError, ValueError):
            return unreadable(present)
        return compare(manifest.files, present, lambda p: self._read(run_id, p))

    def export(self, run_id: str) -> bytes:
        """The run as a deterministic zip; refuses a run that no longer matches its manifest."""
        result = self.verify(run_id)
        if not result.ok:
            raise EvidenceError(
                f"run {run_id} fails verification ({len(result.missing)} missing, "
                f"{len(result.changed)} changed, {len(result.extra)} extra): not exported\n"
                f"    hint: `access-reporter evidence verify {run_id}` lists the differences"
            )
        manifest = self.manifest(run_id)
        return build_zip(manifest.raw, ((p, self._read(run_id, p)) for p in manifest.files))

    def prune(self, now: datetime, retention_days: int | None) -> PruneReport:
        removed, kept = [], []
        for run, why in prune_plan(self.runs(), now, retention_days):
            reason = self._remove(run, now)
            if reason is None:
                removed.append((run.run_id, why))
            else:
                kept.append((run.run_id, reason))
        return PruneReport(tuple(removed), tuple(kept))


def _mtime(path: Path) -> datetime:
    newest = path.lstat().st_mtime
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            newest = max(newest, (Path(dirpath) / name).lstat().st_mtime)
    return datetime.fromtimestamp(newest, UTC)


class LocalStore(EvidenceStore):
    """Run folders under one local folder (`reports.output_dir`), as `RunFolder` leaves them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def _run_dir(self, run_id: str) -> Path:
        run_dir = self.root / run_id
        if run_dir.is_symlink() or not run_dir.is_dir():
            raise RunNotFound(
                f"no run {run_id!r} in {self.root}\n"
                "    hint: `access-reporter evidence list` shows the runs"
            )
        return run_dir

    def runs(self) -> list[RunInfo]:
        found: list[RunInfo] = []
        if not self.root.is_dir():
            return found
        for entry in self.root.iterdir():
            if entry.is_symlink() or not entry.is_dir():
                continue
            name = entry.name
            if name.startswith(".") and name.endswith(".partial") and is_run_id(name[1:-8]):
                found.append(RunInfo(name[1:-8], RunStatus.INCOMPLETE, _mtime(entry)))
            elif is_run_id(name):
                found.append(self._info(name, entry))
        return sorted(found, key=lambda r: (r.run_id, r.status))

    def _info(self, run_id: str, run_dir: Path) -> RunInfo:
        try:
            raw = read_inside(run_dir, MANIFEST)
        except FileNotFoundError:
            return RunInfo(run_id, RunStatus.INCOMPLETE, _mtime(run_dir))
        except (OSError, EvidenceError) as exc:
            return RunInfo(run_id, RunStatus.DAMAGED, _mtime(run_dir), problem=str(exc))
        try:
            manifest = parse_manifest(raw)
        except ValueError as exc:
            return RunInfo(run_id, RunStatus.DAMAGED, _mtime(run_dir), problem=str(exc))
        when = run_time(manifest, _mtime(run_dir))
        return RunInfo(run_id, RunStatus.COMPLETE, when, manifest)

    def _read(self, run_id: str, relpath: str) -> bytes:
        try:
            run_dir = self._run_dir(run_id)
        except RunNotFound:
            raise FileNotFoundError(relpath) from None
        return read_inside(run_dir, relpath)

    def _present(self, run_id: str) -> list[str]:
        return list(walk(self._run_dir(run_id)))

    def verify(self, run_id: str) -> Verification:
        return verify(self._run_dir(check_run_id(run_id)))

    def publish(self, run_dir: Path) -> str:
        target = self.root / run_dir.name
        if target.resolve() != run_dir.resolve():
            if target.exists():
                raise EvidenceError(f"run {run_dir.name} is already in {self.root}")
            shutil.copytree(run_dir, target, symlinks=True)
        return str(target)

    def _remove(self, run: RunInfo, now: datetime) -> str | None:
        name = run.run_id if run.status is not RunStatus.INCOMPLETE else f".{run.run_id}.partial"
        folder = self.root / name
        if not folder.is_dir():
            folder = self.root / run.run_id  # an incomplete run left under its final name
        # Manifest first: a removal cut short leaves an incomplete run, never a "complete" one
        # with files missing.
        (folder / MANIFEST).unlink(missing_ok=True)
        shutil.rmtree(folder)
        return None
