"""A run as one zip, `manifest.json` at its root: byte-for-byte the same every time it is made.

Determinism comes from fixing everything a zip records besides the content: entry order
(manifest first, then the listed files sorted), timestamps, permissions and compression level.
Two exports of the same run can then be compared by their own SHA-256.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from pathlib import Path

from .pack import MANIFEST, Verification, compare, parse_manifest, unreadable

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
    """Verify an exported zip without extracting it (so no entry name can point anywhere)."""
    with zipfile.ZipFile(path) as archive:
        names = [i.filename for i in archive.infolist() if not i.is_dir()]
        try:
            manifest = parse_manifest(archive.read(MANIFEST))
        except (KeyError, ValueError):
            return unreadable(names)
        return compare(manifest.files, names, archive.read)
