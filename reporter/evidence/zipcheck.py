"""An exported zip read strictly, so that it holds nothing one tool sees and another does not.

A zip lists its entries twice: a local header before each entry's data, and the central
directory at the end. Tools differ in which listing they trust (zipfile and `unzip -l` read the
central directory; streaming readers read the local headers), in which of two entries of the same
name wins (zipfile the last, `unzip -n` the first), in the name they take (Info-ZIP prefers a
Unicode Path extra field to the header's), and in whether they notice bytes that no listing
covers. Verification can only vouch for what every tool reads, so `read_layout` accounts for
every byte: the entries back to back from offset 0, each local header agreeing with its central
entry, then the central directory, the (zip64) end records and the comment, and nothing after.
Comments are allowed; they are not extracted.

Problems are returned as sentences for the verification report. A file that is not a zip at
all, or is cut short, raises `EvidenceError` instead: there is nothing to report on.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, replace
from typing import BinaryIO

from .pack import EvidenceError, safe_relpath

_LOCAL = b"PK\x03\x04"
_CENTRAL = b"PK\x01\x02"
_DESCRIPTOR = b"PK\x07\x08"
_END = b"PK\x05\x06"
_END64 = b"PK\x06\x06"
_LOCATOR64 = b"PK\x06\x07"

# The fixed parts of the records, as zipfile's struct* formats.
_CENTRAL_FMT = "<4s4B4HL2L5H2L"
_LOCAL_FMT = "<4s2B4HL2L2H"
_END_FMT = "<4s4H2LH"  # structEndArchive
_END64_FMT = "<4sQ2H2L4Q"  # structEndArchive64 (no extensible data: zipfile assumes none)
_LOCATOR64_FMT = "<4sLQL"  # structEndArchive64Locator
_CENTRAL_SIZE = struct.calcsize(_CENTRAL_FMT)
_LOCAL_SIZE = struct.calcsize(_LOCAL_FMT)
_END_SIZE = struct.calcsize(_END_FMT)
_END64_SIZE = struct.calcsize(_END64_FMT)
_LOCATOR64_SIZE = struct.calcsize(_LOCATOR64_FMT)
_MAX_COMMENT = 0xFFFF

_ENCRYPTED = 0x0001 | 0x0040 | 0x2000  # traditional, strong, masked central directory
_DATA_DESCRIPTOR = 0x0008
_UTF8 = 0x0800
_ZIP64_EXTRA = 0x0001
_UNICODE_PATH_EXTRA = 0x7075
_METHODS = {0: "stored", 8: "deflated", 12: "bzip2", 14: "lzma"}  # what zipfile can read
_DRIVE = re.compile(r"[A-Za-z]:")


def not_a_zip(why: str) -> EvidenceError:
    return EvidenceError(
        f"not a zip file, or a truncated one: {why}\n"
        "    hint: export the run again (`access-reporter evidence export RUN`) or copy the "
        "whole file"
    )


@dataclass(frozen=True)
class Entry:
    """One central directory entry: its name, where its local header is, what it declares."""

    name: str
    raw_name: bytes
    offset: int
    flags: int
    method: int
    crc: int
    compressed_size: int
    size: int
    zip64: bool
    # Why the entry cannot be trusted as a file (unsafe name, encrypted, …); empty if it can.
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Layout:
    entries: tuple[Entry, ...]  # in central directory order
    problems: tuple[str, ...]  # every problem, the entries' included
    # False when the entries could not even be located: there is nothing to compare.
    complete: bool = True


def read_layout(fh: BinaryIO) -> Layout:
    """Read and check the structure of the zip in `fh` (seekable); raises `EvidenceError` when
    it is not a zip or is cut short."""
    size = fh.seek(0, 2)
    problems: list[str] = []
    start, count, cd_size, cd_offset = _end_records(fh, size, problems)
    if cd_offset + cd_size > start:
        raise not_a_zip("the central directory runs past the end records")
    if cd_offset + cd_size < start:
        # zipfile shifts every offset by the difference; other tools do not. Nothing after
        # this can be located reliably.
        problems.append(
            f"{start - cd_offset - cd_size} bytes before the central directory that no listing "
            "accounts for (prepended to the zip, or between its directory and end records)"
        )
        return Layout((), tuple(problems), complete=False)
    entries = _central_directory(_read(fh, cd_offset, cd_size), count, problems)
    position = _local_entries(fh, entries, problems)
    if position < cd_offset:
        problems.append(
            f"{cd_offset - position} bytes between the last entry and the central directory "
            "that no listing accounts for"
        )
    elif position > cd_offset:
        problems.append("the last entry runs into the central directory")
    names: dict[str, int] = {}
    for entry in entries:
        names[entry.name] = names.get(entry.name, 0) + 1
    checked = tuple(_with_name_problems(e, names[e.name]) for e in entries)
    problems += [p for e in checked for p in e.problems]
    return Layout(checked, tuple(dict.fromkeys(problems)))  # a duplicate's problem once


def _read(fh: BinaryIO, offset: int, length: int) -> bytes:
    fh.seek(offset)
    data = fh.read(length)
    if len(data) != length:
        raise not_a_zip(f"{length} bytes expected at offset {offset}, the file ends before")
    return data


def _end_records(fh: BinaryIO, size: int, problems: list[str]) -> tuple[int, int, int, int]:
    """(where the end records start, entry count, central directory size and offset).

    The last end-of-central-directory signature is the one zipfile and unzip take."""
    if size < _END_SIZE:
        raise not_a_zip(f"{size} bytes is too short for a zip")
    tail_start = max(0, size - _END_SIZE - _MAX_COMMENT)
    tail = _read(fh, tail_start, size - tail_start)
    found = tail.rfind(_END)
    if found < 0 or len(tail) - found < _END_SIZE:
        raise not_a_zip("no end of central directory record")
    end = tail_start + found
    _, disk, cd_disk, on_disk, count, cd_size, cd_offset, comment = struct.unpack(
        _END_FMT, tail[found : found + _END_SIZE]
    )
    after = end + _END_SIZE + comment
    if after > size:
        raise not_a_zip("the archive comment runs past the end of the file")
    if after < size:
        problems.append(f"{size - after} bytes after the end of the zip")
    if disk or cd_disk or on_disk != count:
        problems.append("the zip claims to span several disks")
    start = end
    # zipfile reads a zip64 locator whenever one sits just before the end record.
    if end >= _LOCATOR64_SIZE and _read(fh, end - _LOCATOR64_SIZE, 4) == _LOCATOR64:
        locator = end - _LOCATOR64_SIZE
        _, disk64, record, disks = struct.unpack(
            _LOCATOR64_FMT, _read(fh, locator, _LOCATOR64_SIZE)
        )
        # zipfile assumes the zip64 record sits right before the locator, without extensible
        # data; anything else reads differently in different tools.
        start = locator - _END64_SIZE
        if record != start or start < 0:
            raise not_a_zip("the zip64 end record is not where its locator says")
        sig, length, _, _, disk, cd_disk, on_disk, count, cd_size, cd_offset = struct.unpack(
            _END64_FMT, _read(fh, start, _END64_SIZE)
        )
        if sig != _END64 or length != _END64_SIZE - 12:
            raise not_a_zip("a damaged zip64 end record")
        if disk or cd_disk or disk64 or disks > 1 or on_disk != count:
            problems.append("the zip claims to span several disks")
    return start, count, cd_size, cd_offset


def _central_directory(data: bytes, count: int, problems: list[str]) -> list[Entry]:
    """Every central entry, read as zipfile reads them: until the directory's bytes run out."""
    entries = []
    at = 0
    while at < len(data):
        if len(data) - at < _CENTRAL_SIZE or data[at : at + 4] != _CENTRAL:
            raise not_a_zip(f"a damaged central directory entry at byte {at} of the directory")
        # From the flags to the comment's length, then the local header's offset.
        flags, method, _, _, crc, csize, usize, nlen, xlen, clen = struct.unpack_from(
            "<4H3L3H", data, at + 8
        )
        (offset,) = struct.unpack_from("<L", data, at + 42)
        at += _CENTRAL_SIZE
        raw_name = data[at : at + nlen]
        extra = data[at + nlen : at + nlen + xlen]
        at += nlen + xlen + clen
        if at > len(data):
            raise not_a_zip("a central directory entry runs past the directory")
        entry_problems: list[str] = []
        name = _decode(raw_name, flags, entry_problems)
        fields = _extra_fields(extra, name, entry_problems)
        zip64 = _ZIP64_EXTRA in fields
        if zip64:
            usize, csize, offset = _zip64_sizes(fields[_ZIP64_EXTRA], (usize, csize, offset))
        entries.append(
            Entry(
                name,
                raw_name,
                offset,
                flags,
                method,
                crc,
                csize,
                usize,
                zip64,
                tuple(entry_problems),
            )
        )
    if len(entries) != count:
        problems.append(
            f"the end record counts {count} entries, the central directory holds {len(entries)}"
        )
    return entries


def _zip64_sizes(field: bytes, declared: tuple[int, ...]) -> tuple[int, ...]:
    """As zipfile reads them: the zip64 field holds, in order, those of the declared sizes and
    offset that are saturated (0xFFFFFFFF)."""
    values = iter(struct.unpack(f"<{len(field) // 8}Q", field[: len(field) // 8 * 8]))
    return tuple(next(values, value) if value == 0xFFFFFFFF else value for value in declared)


def _decode(raw: bytes, flags: int, problems: list[str]) -> str:
    if flags & _UTF8:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"the name {raw!r} is marked UTF-8 but is not")
            return raw.decode("utf-8", "replace")
    name = raw.decode("cp437")  # zipfile's default; every byte decodes
    if not raw.isascii():
        problems.append(
            f"{name!r}: a non-ASCII name not marked UTF-8 (tools decode it differently)"
        )
    return name


def _extra_fields(extra: bytes, name: str, problems: list[str]) -> dict[int, bytes]:
    fields: dict[int, bytes] = {}
    at = 0
    while at < len(extra):
        if len(extra) - at < 4:
            problems.append(f"{name!r}: a damaged extra field")
            break
        tag, length = struct.unpack("<2H", extra[at : at + 4])
        if at + 4 + length > len(extra):
            problems.append(f"{name!r}: a damaged extra field")
            break
        if tag == _UNICODE_PATH_EXTRA:
            problems.append(f"{name!r}: carries a second name (Unicode Path field) that unzip uses")
        fields.setdefault(tag, extra[at + 4 : at + 4 + length])
        at += 4 + length
    return fields


def _local_entries(fh: BinaryIO, entries: list[Entry], problems: list[str]) -> int:
    """Check each local header against its central entry, and that the entries lie back to back
    from offset 0; returns where the last one ends."""
    position = 0
    for entry in sorted(entries, key=lambda e: e.offset):
        label = repr(entry.name)
        if entry.offset > position:
            problems.append(
                f"{entry.offset - position} bytes before {label} that no listing accounts for"
            )
        elif entry.offset < position:
            problems.append(f"{label} overlaps the entry before it")
        header = _read(fh, entry.offset, _LOCAL_SIZE)
        # From the flags to the extra field's length.
        flags, method, _, _, crc, csize, usize, nlen, xlen = struct.unpack_from(
            "<4H3L2H", header, 6
        )
        if header[:4] != _LOCAL:
            problems.append(f"{label}: no local header where the central directory points")
            position = entry.offset + _LOCAL_SIZE
            continue
        raw_name = _read(fh, entry.offset + _LOCAL_SIZE, nlen)
        local_problems: list[str] = []
        fields = _extra_fields(
            _read(fh, entry.offset + _LOCAL_SIZE + nlen, xlen), entry.name, local_problems
        )
        problems += local_problems
        if raw_name != entry.raw_name:
            problems.append(
                f"the local header of {label} names it {raw_name.decode('cp437')!r}: the two "
                "listings of the zip disagree"
            )
        if (flags, method) != (entry.flags, entry.method):
            problems.append(f"{label}: the local header's flags or compression method differ")
        data = entry.offset + _LOCAL_SIZE + nlen + xlen
        position = data + entry.compressed_size
        declared = (crc, csize, usize)
        if flags & _DATA_DESCRIPTOR:
            declared, position = _descriptor(fh, position, entry.zip64)
        elif _ZIP64_EXTRA in fields:
            usize, csize = _zip64_sizes(fields[_ZIP64_EXTRA], (usize, csize))
            declared = (crc, csize, usize)
        if declared != (entry.crc, entry.compressed_size, entry.size):
            problems.append(f"{label}: the local header's CRC or sizes differ")
    return position


def _descriptor(fh: BinaryIO, at: int, zip64: bool) -> tuple[tuple[int, int, int], int]:
    """A data descriptor's (CRC, compressed size, size), and where it ends."""
    if _read(fh, at, 4) == _DESCRIPTOR:
        at += 4
    fmt = "<L2Q" if zip64 else "<3L"
    length = struct.calcsize(fmt)
    crc, csize, usize = struct.unpack(fmt, _read(fh, at, length))
    return (crc, csize, usize), at + length


def _with_name_problems(entry: Entry, seen: int) -> Entry:
    label = repr(entry.name)
    problems = list(entry.problems)
    if seen > 1:
        problems.append(
            f"{seen} entries named {label} (zipfile reads the last, unzip -n the first)"
        )
    if entry.name.endswith("/"):
        problems.append(f"{label}: a directory entry (the manifest lists files only)")
    else:
        try:
            safe_relpath(entry.name, allow_manifest=True)
            if "" in entry.name.split("/") or _DRIVE.match(entry.name):
                raise ValueError(entry.name)
        except ValueError:
            problems.append(f"{label}: an unsafe name (absolute, .., \\ or an empty part)")
    if entry.flags & _ENCRYPTED:
        problems.append(f"{label}: encrypted")
    if entry.method not in _METHODS:
        problems.append(f"{label}: compression method {entry.method}, which zipfile cannot read")
    return replace(entry, problems=tuple(problems))
