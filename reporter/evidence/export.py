"""A run as one zip, `manifest.json` at its root: byte-for-byte the same every time it is made.

Determinism comes from fixing everything a zip records besides the content: entry order
(manifest first, then the listed files sorted), timestamps, permissions and compression level.
Two exports of the same run can then be compared by their own SHA-256.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from .pack import MANIFEST, EvidenceError, Verification, compare, parse_manifest, unreadable
from .zipcheck import Layout, not_a_zip, read_layout

# A manifest is a few MB at 100,000 findings; a larger one is not ours.
_MANIFEST_LIMIT = 256 * 1024 * 1024
# The earliest time a zip can hold; any fixed value would do.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # Unix, so the permission bits below mean what they say
    info.external_attr = 0o100644 << 16
    return info


def build_zip(manifest: bytes, files: Iterable[tuple[str, bytes]]) -> bytes:
    """The zip of a run: `manifest` first, then `files` in path order."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compresslevel=6) as archive:
        archive.writestr(_entry(MANIFEST), manifest)
        for path, data in sorted(files):
            archive.writestr(_entry(path), data)
    return buffer.getvalue()


def verify_zip(path: Path) -> Verification:
    """Verify an exported zip without extracting it (so no entry name can point anywhere).

    The zip must read the same in every tool (`zipcheck`): an entry listed twice, bytes no
    listing covers, a local header that disagrees with the central directory, an unsafe or
    directory name, an encrypted entry each fail verification. Raises `EvidenceError` when the
    file is not a zip or is cut short.
    """
    with path.open("rb") as fh:
        layout = read_layout(fh)
        if not layout.complete:
            return Verification(missing=(), changed=(), extra=(), invalid=layout.problems)
        try:
            archive = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, ValueError, EOFError) as exc:
            raise not_a_zip(str(exc)) from None
        with archive:
            return _compare_entries(archive, layout)


def _compare_entries(archive: zipfile.ZipFile, layout: Layout) -> Verification:
    invalid = list(layout.problems)
    infos = archive.infolist()
    if [(i.orig_filename, i.header_offset) for i in infos] != [
        (e.name, e.offset) for e in layout.entries
    ]:
        invalid.append("zipfile lists the entries differently from the zip's own directory")
        infos = []
    # Only an entry with a name of its own and nothing wrong with it is read; the others count
    # as present (so a listed path is not also "missing") and as unreadable.
    readable = {
        e.name: info for e, info in zip(layout.entries, infos, strict=False) if not e.problems
    }
    names = [e.name for e in layout.entries]

    def read(name: str, limit: int) -> bytes:
        info = readable.get(name)
        if info is None:
            raise EvidenceError(f"{name}: not readable from this zip")
        try:
            with archive.open(info) as fh:
                # At most one byte past the size the manifest records: enough to tell it differs.
                return fh.read(limit + 1)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError) as exc:
            raise EvidenceError(f"{name}: {exc}") from None

    try:
        manifest = parse_manifest(read(MANIFEST, _MANIFEST_LIMIT))
    except (EvidenceError, ValueError):
        result = unreadable(names)
    else:
        files = manifest.files
        result = compare(files, names, lambda p: read(p, files[p].size))
    return replace(result, invalid=tuple(invalid))
