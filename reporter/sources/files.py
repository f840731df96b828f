"""Exported JSON files: reports from exports, with no AWS access at all.

Accepted shapes, alone or in a list: `aws securityhub get-findings` output (`{"Findings": [...]}`,
ASFF, or OCSF from `get-findings-v2`), a single ASFF record, `aws accessanalyzer
list-findings-v2` output (`{"findings": [...]}`), `get-finding-v2` output, and EventBridge events
from Access Analyzer or Security Hub; and newline-delimited JSON, one such document a line (as
EventBridge delivers events to S3 through Firehose). Each record is handed on under the source
whose shape it has, so one parser per shape serves files and APIs alike. What is not recognised
becomes a `files` record that `normalise` quarantines with the reason; a bad file never stops the
run.

Files are read incrementally, so memory follows the largest record, not the file: the shape is
told from the first top-level key (ijson parse events; a survey of the top-level keys when the
first is not `Findings`) or from the first line (NDJSON), then the records are built one at a time
by ijson's C backend. A document that is not a list of findings (one record, one event) is built
whole, as is each element of a top-level list and each line of NDJSON. Numbers come back as
`json.load` gives them (`int`, or `float`: ijson's `use_float`, never `Decimal`). Where a file
stops being valid JSON, what was read before is kept and the rest is one quarantined record
with the byte offset and the parser's reason (its first line only: yajl quotes the text around
the error, which may hold anything). Strict JSON (RFC 8259) in a document: `NaN`, `Infinity` and
integers beyond 64 bits, which no AWS export holds but Python's `json` accepts, stop the parser
there; NDJSON lines are read by `json`.

A file can claim anything, so nothing here vouches for a record: the ASFF and OCSF records in
exports and Security Hub events meet the same product check in `normalise` as the API's, and an
event shaped like Access Analyzer's that does not come from `aws.access-analyzer` is passed on
as a look-alike, for the quarantine.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, overload

import ijson  # type: ignore[import-untyped]

from ..models import RawRecord
from ..normalise import AA_EVENT_SOURCE

NAME = "files"

BOM = b"\xef\xbb\xbf"  # Windows tools (PowerShell's Out-File) start UTF-8 with one
BLOCK = 1 << 16  # bytes the parser is given at a time
PEEK = 1 << 20  # the first line is read up to this, to tell NDJSON from one document
# Deeper nesting is an error (AWS's records nest about 8 deep; Python's json stops near 1,000).
MAX_DEPTH = 512
_OPEN = frozenset({"start_map", "start_array"})
_CLOSE = frozenset({"end_map", "end_array"})
_BACKEND = ijson.get_backend(ijson.backend_name)  # yajl2_c, the C backend, where installed
_JSON_SPACE = b" \t\r\n"
# Top-level keys whose list holds the findings, in the order `records_in` tries them.
_LISTS = {"Findings": "security_hub", "findings": "access_analyzer"}


def unreadable(path: Path, reason: str, value: Any = None) -> RawRecord:
    """A record for the quarantine. An unrecognised document may hold anything (credentials,
    say), so only its shape and digest are kept, never its content."""
    text = json.dumps(value, sort_keys=True, default=str)
    shape = sorted(map(str, value))[:50] if isinstance(value, dict) else type(value).__name__
    return RawRecord(
        NAME,
        {
            "error": reason,
            "shape": shape,
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
        },
        origin=str(path),
    )


def records_in(value: Any, path: Path) -> Iterator[RawRecord]:
    """Every finding record in one parsed JSON document, under the source of its shape."""
    origin = str(path)
    if isinstance(value, list):
        for element in value:
            yield from records_in(element, path)
        return
    if not isinstance(value, dict):
        yield unreadable(path, f"unrecognised JSON value of type {type(value).__name__}", value)
        return
    if isinstance(value.get("Findings"), list):
        for finding in value["Findings"]:
            yield RawRecord("security_hub", finding, origin)
    elif isinstance(value.get("findings"), list):
        for finding in value["findings"]:
            yield RawRecord("access_analyzer", finding, origin)
    elif "SchemaVersion" in value or "ProductArn" in value:
        yield RawRecord("security_hub", value, origin)
    elif "findingType" in value or "findingDetails" in value:
        yield RawRecord("access_analyzer", value, origin)
    elif isinstance(value.get("detail"), dict):
        yield from _event(value, path)
    else:
        keys = ", ".join(sorted(map(str, value))[:8])
        yield unreadable(path, f"not a finding export (keys: {keys})", value)


def _event(event: dict[str, Any], path: Path) -> Iterator[RawRecord]:
    detail = event["detail"]
    if isinstance(detail.get("findings"), list):  # Security Hub: one ASFF finding per event
        for finding in detail["findings"]:
            yield RawRecord("security_hub", finding, str(path))
        return
    source = event.get("source")
    if source != AA_EVENT_SOURCE:
        # Kept as for an unrecognised document (shape and digest: the file is still there),
        # with who it claims to come from, for the security team's count.
        account = event.get("account")
        kept = unreadable(
            path,
            f"an event shaped like Access Analyzer's from source {str(source)[:100]!r} "
            f"(account {str(account)[:20]!r}), not {AA_EVENT_SOURCE}",
            event,
        )
        lookalike = {
            "product": "(no source)" if source is None else str(source)[:100],
            "account_id": "" if account is None else str(account)[:20],
        }
        yield RawRecord(NAME, {**kept.payload, "lookalike": lookalike}, kept.origin)
        return
    # Access Analyzer events carry a summary of the finding under other key names (reference
    # §1.12); map them onto the ListFindingsV2 summary so one parser serves both.
    resources = event.get("resources") or [""]
    yield RawRecord(
        "access_analyzer",
        {
            "id": detail.get("findingId") or detail.get("id"),
            "resource": detail.get("resource"),
            "resourceType": detail.get("resourceType"),
            "resourceOwnerAccount": detail.get("accountId"),
            "status": detail.get("status"),
            "findingType": detail.get("findingType") or "ExternalAccess",
            "error": detail.get("error"),
            "createdAt": detail.get("createdAt"),
            "updatedAt": detail.get("updatedAt"),
            "analyzerArn": resources[0] if isinstance(resources, list) and resources else "",
        },
        str(path),
    )


def read_export(path: Path) -> Iterator[RawRecord]:
    """Every record of one exported file, read incrementally (see the module docstring)."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        yield unreadable(path, f"cannot read file: {exc}")
        return
    with handle:
        try:
            start = len(BOM) if handle.read(len(BOM)) == BOM else 0
            ndjson = _is_ndjson(handle, start)
            handle.seek(start)
        except OSError as exc:
            yield unreadable(path, f"cannot read file: {exc}")
            return
        yield from (_lines(handle, path, start) if ndjson else _document(handle, path, start))


def _is_ndjson(handle: IO[bytes], start: int) -> bool:
    """A JSON value alone on the first line that holds anything, and another such line."""
    handle.seek(start)
    lines = (handle.readline(PEEK) for _ in range(1_000))  # blank lines: a few, not a gigabyte
    first = next((line for line in lines if line.strip(_JSON_SPACE) or not line), b"")
    if not first.endswith(b"\n"):  # one line, or longer than the peek: a single document
        return False
    try:
        json.loads(first.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return False
    return any(line.strip(_JSON_SPACE) for line in lines)


def _lines(handle: IO[bytes], path: Path, start: int) -> Iterator[RawRecord]:
    """Newline-delimited JSON: each line a document, read by `json`; a bad line is one
    quarantined record (line and byte offset) and the next line is read as usual."""
    offset = start
    for number, line in enumerate(handle, 1):
        here, offset = offset, offset + len(line)
        if not line.strip(_JSON_SPACE):
            continue
        where = f"line {number}, byte {here}"
        try:
            value = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            yield unreadable(path, f"not valid UTF-8 at byte {here + exc.start} (line {number})")
            continue
        except json.JSONDecodeError as exc:
            at = here + len(exc.doc[: exc.pos].encode("utf-8", "surrogatepass"))
            yield unreadable(path, f"not valid JSON at byte {at} (line {number}): {exc.msg}")
            continue
        except RecursionError:
            yield unreadable(path, f"JSON nested too deeply to read ({where})")
            continue
        yield from _guarded(records_in(value, path), path, where)


def _document(handle: IO[bytes], path: Path, start: int) -> Iterator[RawRecord]:
    """One JSON document, streamed: the findings of a list under a top-level key one by one,
    the elements of a top-level list one by one, anything else built whole."""
    prefix = _survey(handle)
    handle.seek(start)
    origin = str(path)
    try:
        if prefix in _LISTS:  # the findings of an export
            source = _LISTS[prefix]
            for finding in _values(handle, f"{prefix}.item"):
                yield RawRecord(source, finding, origin)
        else:  # "item": each element of a top-level list; "": the document
            for value in _values(handle, prefix):
                yield from _guarded(records_in(value, path), path, "")
    except ijson.JSONError as exc:
        text = str(exc).strip()
        reason = text.splitlines()[0] if text else type(exc).__name__
        yield unreadable(path, f"not valid JSON at byte {_stop(path, start)}: {reason}")
    except UnicodeDecodeError:
        yield unreadable(path, f"not valid UTF-8 in a string at byte {_stop(path, start)}")
    except TooDeep:
        yield unreadable(
            path, f"JSON nested deeper than {MAX_DEPTH} levels at byte {_stop(path, start)}"
        )


def _survey(handle: IO[bytes]) -> str:
    """Where the document's records are: "Findings" or "findings" (the list under that top-level
    key, as `records_in` would take it), "item" (a top-level list) or "" (build it whole).

    Reads parse events only as far as it must: to the first key when that is a `Findings` list
    (every get-findings export), to the end of the document otherwise. An error stops the
    survey; what it saw decides, and the reading that follows reports the error."""
    events = ijson.basic_parse(handle, use_float=True, buf_size=BLOCK)
    lists: set[str] = set()
    try:
        first, _ = next(events)
        if first == "start_array":
            return "item"
        if first != "start_map":
            return ""
        depth, key = 1, None
        for event, value in events:
            if key is not None:  # the first event of a top-level key's value
                if event == "start_array":
                    lists.add(key)
                    if key == "Findings":
                        break  # `records_in` takes a Findings list first, whatever follows
                else:
                    lists.discard(key)  # a repeated key: the last value counts, as in `json`
                key = None
            if event in _OPEN:
                depth += 1
                if depth > MAX_DEPTH:
                    break
            elif event in _CLOSE:
                depth -= 1
            elif event == "map_key" and depth == 1:
                key = value
    except (ijson.JSONError, UnicodeDecodeError, StopIteration):
        pass
    return next((name for name in _LISTS if name in lists), "")


class TooDeep(ValueError):
    """Containers nested deeper than `MAX_DEPTH`."""


@ijson.coroutine
def _capped(target: Any) -> Generator[None, tuple[str, Any], None]:
    """Pass basic parse events on, stopping at nesting deeper than `MAX_DEPTH`: ijson's
    prefixes grow with the depth and are kept for every level, so a file of 100,000 `[`
    would take gigabytes before the first value were built."""
    depth = 0
    send = target.send
    while True:
        event = yield
        if event[0] in _OPEN:
            depth += 1
            if depth > MAX_DEPTH:
                raise TooDeep(depth)
        elif event[0] in _CLOSE:
            depth -= 1
        send(event)


def _values(handle: IO[bytes], prefix: str) -> Iterator[Any]:
    """The values under `prefix`, built one at a time by the backend (its C code for the
    parsing and the building; only the depth check runs in Python)."""
    sink = ijson.sendable_list()
    parser = _BACKEND.basic_parse_basecoro(
        _capped(_BACKEND.parse_basecoro(_BACKEND.items_basecoro(sink, prefix))), use_float=True
    )
    while block := handle.read(BLOCK):
        parser.send(block)
        yield from sink
        del sink[:]
    parser.close()  # the end of the input: a document cut short fails here
    yield from sink


def _guarded(records: Iterator[RawRecord], path: Path, where: str) -> Iterator[RawRecord]:
    """`records_in`, with lists nested deeper than the stack as a quarantined record."""
    try:
        yield from records
    except RecursionError:  # lists in lists, deeper than the stack: the rest is lost
        yield unreadable(path, "JSON nested too deeply to read" + (f" ({where})" if where else ""))


def _stop(path: Path, start: int) -> int:
    """The byte offset at which the parser stops on this file. The error is only known by the
    block it came in, so the file is parsed again (only ever a file that has an error): in
    blocks up to the one that fails, then that block a byte at a time."""
    return _fails_at(path, start, bytewise_from=_fails_at(path, start, bytewise_from=None))


def _fails_at(path: Path, start: int, bytewise_from: int | None) -> int:
    sink = ijson.sendable_list()
    parser = _BACKEND.basic_parse_basecoro(_capped(sink), use_float=True)
    offset = start
    try:
        with path.open("rb") as handle:
            handle.seek(start)
            while True:
                size = 1 if bytewise_from is not None and offset >= bytewise_from else BLOCK
                chunk = handle.read(size)
                if not chunk:
                    break
                parser.send(chunk)
                del sink[:]
                offset += len(chunk)
            parser.close()
    except (ijson.JSONError, UnicodeDecodeError, TooDeep, OSError):
        pass
    return offset


@dataclass
class FileRead:
    """What one pass read from one file, for the evidence (`data/raw/`)."""

    path: Path
    # (size, mtime_ns) when reading began: a later copy checks the file is the one read.
    stat: tuple[int, int] | None
    records: int = 0
    # Records of which only shape and digest are kept (unrecognised, unreadable, look-alike
    # events): the file may hold anything, so it is referenced, not copied.
    unrecognised: int = 0


class ExportRecords(Sequence[RawRecord]):
    """The records of exported files, read from the files again on each iteration: an export
    is already on disk, so it is its own spool (as `collect.RecordSpool`'s temporary file is an
    API source's). `reads` describes the last complete pass, file by file."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = tuple(paths)
        self.reads: tuple[FileRead, ...] = ()
        self._count: int | None = None

    def __iter__(self) -> Iterator[RawRecord]:
        reads: list[FileRead] = []
        for path in self.paths:
            read = FileRead(path, file_stat(path))
            reads.append(read)
            for record in read_export(path):
                read.records += 1
                read.unrecognised += record.source == NAME
                yield record
        self.reads = tuple(reads)
        self._count = sum(r.records for r in reads)

    def __len__(self) -> int:
        if self._count is None:
            for _ in self:
                pass
        assert self._count is not None
        return self._count

    @overload
    def __getitem__(self, index: int) -> RawRecord: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[RawRecord]: ...

    def __getitem__(self, index: int | slice) -> RawRecord | Sequence[RawRecord]:
        # Sequential storage: positional access reads up to the position (tests, small runs).
        items = list(self)
        return items[index]


def file_stat(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


class FileSource:
    name = NAME

    def __init__(self, paths: Sequence[Path]) -> None:
        self._paths = tuple(paths)

    def collect(self) -> Iterator[RawRecord]:
        for path in self._paths:
            yield from read_export(path)
