"""Exported files (`FileSource`): JSON documents of every accepted shape, mutated, wrapped,
nested, truncated, or not JSON or not UTF-8 at all, written to a real file and read back."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from reporter.normalise import normalise, parse_record
from reporter.sources.files import FileSource, records_in
from tests.conftest import sample
from tests.fuzz.strategies import CAUGHT, budget, check_finding, json_values, ran, records

SECRET = "file-secret-4f1c9a"  # a value inside documents nobody recognises
DOCUMENTS = [
    sample("asff-unused-permission-aws-docs.json"),
    sample("asff-external-access-s3-aws-docs.json"),
    sample("aa-list-findings-v2-unused-permission-aws-blog.json"),
    sample("aa-get-finding-v2-external-access-awscli.json"),
    sample("eventbridge-aa-unused-permission-aws-docs.json"),
    sample("eventbridge-aa-unused-iamrole-error-aws-docs.json"),
    sample("eventbridge-aa-external-access-aws-docs.json"),
    {"credentials": {"password": SECRET}, "note": [SECRET]},
]
_values = st.one_of(
    st.sampled_from(DOCUMENTS).flatmap(lambda d: records(d, max_ops=5)),
    st.lists(st.sampled_from(DOCUMENTS).flatmap(records), max_size=3),
    st.fixed_dictionaries({"detail": json_values, "resources": json_values}),
    st.fixed_dictionaries({"Findings": st.lists(json_values, max_size=3)}),
    st.fixed_dictionaries({"findings": st.lists(json_values, max_size=3)}),
    json_values,
)
_documents = st.one_of(
    _values.map(lambda doc: json.dumps(doc, allow_nan=True).encode()),
    # Newline-delimited: one document a line (json.dumps never writes a raw newline).
    st.lists(_values, min_size=2, max_size=3).map(
        lambda docs: b"\n".join(json.dumps(d, allow_nan=True).encode() for d in docs)
    ),
)
# Text that is not a document: broken JSON, other encodings, nesting deeper than any parser.
_raw = st.one_of(
    st.binary(max_size=300),
    _documents.flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n])),  # truncated
    _documents.map(lambda b: b.decode().encode("utf-16")),
    st.sampled_from(
        [
            b"",
            b"\xef\xbb\xbf{}",
            b"[" * 100_000 + b"]" * 100_000,
            b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
            b"[" * 900 + b"]" * 900,
            b'{"findings":' * 400 + b"[]" + b"}" * 400,
            b"[" * 400 + json.dumps(DOCUMENTS[2]).encode() + b"]" * 400,
            b'{"Findings": [{"Id": "\\ud800", "SchemaVersion": "\\u0000"}]}',
        ]
    ),
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("fuzz-files")


@budget(350)
@given(content=st.one_of(_documents, _documents, _raw))
def test_any_file_becomes_findings_skips_or_quarantined_records(
    folder: Path, content: bytes
) -> None:
    path = folder / "export.json"
    path.write_bytes(content)
    found = list(FileSource([path]).collect())
    if not _readable(content):
        # Not a document: a record says why, so the file is never silently ignored.
        assert [r for r in found if r.source == "files" and r.payload["error"]]
    outcomes = {"finding": 0, "skip": 0, "quarantine": 0}
    for record in found:
        assert record.source in ("security_hub", "access_analyzer", "files")
        assert record.origin == str(path)
        if record.source == "files":
            # An unrecognised document may hold anything: only its shape and digest are kept
            # (and, for a look-alike event, the source and account it claims).
            assert set(record.payload) <= {"error", "shape", "sha256", "lookalike"}
            assert SECRET not in json.dumps(record.payload)
        try:
            outcome = parse_record(record)
        except CAUGHT:
            outcomes["quarantine"] += 1
        else:
            outcomes["finding" if not hasattr(outcome, "reason") else "skip"] += 1
    result = normalise(found)
    assert result.skipped_total == outcomes["skip"]
    assert len(result.quarantined) == outcomes["quarantine"]
    assert len(result.findings) <= outcomes["finding"]  # same access from two records merges
    assert all(q.reason.strip() for q in result.quarantined)
    for finding in result.findings:
        check_finding(finding)
    ran("files", "findings" if result.findings else "no findings")


def _readable(content: bytes) -> bool:
    """One JSON document, or newline-delimited JSON (every line that holds anything one)."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return False
    for documents in ([text], [line for line in text.split("\n") if line.strip(" \t\r")]):
        try:
            for document in documents:
                json.loads(document)
        except (ValueError, RecursionError):
            continue
        return bool(documents)
    return False


def _plain(value: Any) -> bool:
    """JSON both readers take alike: no NaN or infinity, no integer beyond 64 bits, no lone
    surrogate (RFC 8259 leaves them to parsers; ijson's yajl refuses the first two and
    replaces the third, Python's json keeps them; AWS writes none)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    if isinstance(value, str):
        return not any("\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(_plain(k) and _plain(v) for k, v in value.items())
    return True


@budget(200)
@given(value=_values, indent=st.sampled_from([None, 2, 4]))
def test_streaming_reads_what_the_whole_file_gives(folder: Path, value: Any, indent: int) -> None:
    """The streaming reader against the whole-file reader it replaced, on any document both
    can read: the same records, in the same order."""
    assume(_plain(value))
    path = folder / "same.json"
    path.write_text(json.dumps(value, indent=indent))
    try:
        expected = list(records_in(json.loads(path.read_text()), path))
    except RecursionError:
        expected = None  # deeper than the old reader could go: not compared
    if expected is not None:
        assert list(FileSource([path]).collect()) == expected
    ran("files-equivalence", "compared" if expected is not None else "too deep")
