"""Exports read incrementally (issue 22): the same records as reading each file whole, memory
that does not grow with the file, and a bad file cut at the byte where it goes wrong."""

from __future__ import annotations

import hashlib
import json
import textwrap
import tracemalloc
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from reporter.cli import main
from reporter.models import RawRecord
from reporter.normalise import Normalised, normalise
from reporter.sandbox import records
from reporter.sandbox.data import build_plan
from reporter.sandbox.security_hub import ocsf_record
from reporter.sandbox.spec import SandboxSpec
from reporter.sources.files import MAX_DEPTH, ExportRecords, FileSource, records_in

from .conftest import SAMPLES

NOW = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)


def whole_file_records(path: Path) -> Iterator[RawRecord]:
    """The reference: how exports were read before issue 22 (the whole file at once, then
    `records_in`), kept here so the streaming reader is compared with it."""
    try:
        value = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return  # the old reader's error records are not what is compared
    yield from records_in(value, path)


def streamed(*paths: Path) -> list[RawRecord]:
    return list(FileSource(paths).collect())


def same_report(a: Normalised, b: Normalised) -> None:
    assert a.findings == b.findings  # finding for finding, every field
    assert a.skipped == b.skipped
    assert [(q.source, q.reason, q.record, q.lookalike) for q in a.quarantined] == [
        (q.source, q.reason, q.record, q.lookalike) for q in b.quarantined
    ]


@pytest.fixture(scope="module")
def plan() -> Any:
    return build_plan(SandboxSpec(seed=3, member_accounts=12, now=NOW), "123456789012", NOW)


@pytest.fixture(scope="module")
def analyzer(plan: Any) -> records.AnalyzerRef:
    security = plan.security.id
    arn = f"arn:aws:access-analyzer:us-east-1:{security}:analyzer/unused-access"
    return records.AnalyzerRef(arn, "unused-access", security, "us-east-1")


@pytest.fixture(scope="module")
def exports(
    tmp_path_factory: pytest.TempPathFactory, plan: Any, analyzer: records.AnalyzerRef
) -> dict[str, Path]:
    """One file of every accepted shape, built with the sandbox's record builders."""
    folder = tmp_path_factory.mktemp("exports")
    findings = plan.findings
    asff = [records.asff_record(f, analyzer, NOW) for f in findings]
    asff += [records.asff_external_record(f, analyzer) for f in plan.external]
    asff.append(records.lookalike_record(findings[0], analyzer, plan.members[1].id, NOW))
    asff[3]["Severity"]["Product"] = 40.5  # a float: json.load gives float, so must we
    summaries = [json.loads(json.dumps(records.aa_summary(f), default=str)) for f in findings]
    detailed = {
        **summaries[0],
        "findingDetails": json.loads(json.dumps(records.aa_details(findings[0], NOW), default=str)),
    }
    ocsf = [ocsf_record(f, analyzer) for f in findings[:5]]
    event = json.loads((SAMPLES / "eventbridge-aa-unused-permission-aws-docs.json").read_text())
    hub_event = {
        "version": "0",
        "detail-type": "Security Hub Findings - Imported",
        "source": "aws.securityhub",
        "detail": {"findings": asff[:3]},
    }
    files = {
        # As `aws securityhub get-findings` prints it: indented by 4, nested records too.
        "get-findings.json": '{\n    "Findings": [\n'
        + ",\n".join(textwrap.indent(json.dumps(r, indent=4), " " * 8) for r in asff)
        + '\n    ],\n    "NextToken": null\n}\n',
        "compact.json": json.dumps({"Findings": asff}, separators=(",", ":")),
        "token-first.json": json.dumps({"NextToken": "x", "Findings": asff[:7]}),
        "get-findings-v2.json": json.dumps({"Findings": ocsf}, indent=2),
        "list-findings-v2.json": json.dumps({"findings": summaries, "nextToken": None}),
        "both-lists.json": json.dumps({"findings": summaries[:2], "Findings": asff[:2]}),
        "get-finding-v2.json": json.dumps(detailed),
        "query-findings.json": json.dumps(asff[:9], indent=4),  # --query Findings
        "pages.json": json.dumps([{"Findings": asff[:4]}, {"Findings": asff[4:6]}, [event]]),
        "event.json": json.dumps(event),
        "security-hub-event.json": json.dumps(hub_event),
        "one-record.json": json.dumps(asff[1]),
        "bom.json": "\ufeff" + json.dumps({"Findings": asff[:2]}),
        "not-an-export.json": json.dumps({"Credentials": {"SecretAccessKey": "x"}}),
        "scalar.json": "42",
    }
    paths = {}
    for name, text in files.items():
        paths[name] = folder / name
        paths[name].write_text(text, encoding="utf-8")
    return paths


def test_every_shape_reads_as_the_whole_file_did(exports: dict[str, Path]) -> None:
    """Record for record, payload for payload, then finding for finding."""
    for name, path in exports.items():
        before, after = list(whole_file_records(path)), streamed(path)
        assert after == before, name
    every = sorted(exports.values())
    same_report(
        normalise(r for p in every for r in whole_file_records(p)), normalise(streamed(*every))
    )


def test_the_published_samples_read_as_the_whole_file_did() -> None:
    for path in sorted(SAMPLES.glob("*.json")):
        assert streamed(path) == list(whole_file_records(path)), path.name


def test_numbers_are_int_and_float_never_decimal(exports: dict[str, Path]) -> None:
    def numbers(value: Any) -> Iterator[Any]:
        if isinstance(value, dict):
            for v in value.values():
                yield from numbers(v)
        elif isinstance(value, list):
            for v in value:
                yield from numbers(v)
        elif isinstance(value, int | float | Decimal) and not isinstance(value, bool):
            yield value

    found = [n for r in streamed(exports["get-findings.json"]) for n in numbers(r.payload)]
    assert 40.5 in found and 40 in found
    assert {type(n) for n in found} == {int, float}


def test_ndjson_reads_each_line_and_quarantines_only_the_bad_one(
    tmp_path: Path, exports: dict[str, Path]
) -> None:
    """EventBridge events as Firehose writes them to S3: one a line."""
    events = [json.loads(exports["event.json"].read_text())] * 2
    hub = json.loads(exports["security-hub-event.json"].read_text())
    lines = [json.dumps(events[0]), json.dumps(hub), "", '{"detail": ', json.dumps(events[1])]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    found = streamed(path)
    good = [r for line in (0, 1, 4) for r in records_in(json.loads(lines[line]), path)]
    assert [r for r in found if r.source != "files"] == good
    (error,) = [r for r in found if r.source == "files"]
    # json stops after the line's newline, looking for the value.
    line_4 = len("\n".join(lines[:3])) + 1
    assert error.payload["error"].startswith(
        f"not valid JSON at byte {line_4 + len(lines[3]) + 1} (line 4): Expecting value"
    )


@pytest.mark.parametrize("cut", [0.3, 0.7])
def test_a_truncated_export_keeps_what_came_before_the_cut(
    tmp_path: Path, exports: dict[str, Path], cut: float
) -> None:
    whole = exports["get-findings.json"].read_bytes()
    path = tmp_path / "cut.json"
    path.write_bytes(whole[: int(len(whole) * cut)])
    found = streamed(path)
    *kept, error = found
    complete = list(whole_file_records(exports["get-findings.json"]))
    assert [r.payload for r in kept] == [r.payload for r in complete[: len(kept)]]
    assert 0 < len(kept) < len(complete)
    assert error.source == "files" and error.origin == str(path)
    assert error.payload["error"] == (
        f"not valid JSON at byte {path.stat().st_size}: parse error: premature EOF"
    )


def test_garbage_in_an_export_is_reported_at_its_byte_without_the_text_around_it(
    tmp_path: Path, exports: dict[str, Path]
) -> None:
    whole = exports["get-findings.json"].read_text()
    at = whole.index('"Id"', len(whole) // 2)
    path = tmp_path / "garbage.json"
    path.write_text(whole[:at] + "SECRET-TEXT " + whole[at:])
    *kept, error = streamed(path)
    assert kept and all(r.source == "security_hub" for r in kept)
    reason = error.payload["error"]
    assert reason.startswith(f"not valid JSON at byte {len(whole[:at].encode())}: lexical error")
    assert "SECRET" not in json.dumps(error.payload) and "\n" not in reason


def test_nesting_deeper_than_the_limit_is_quarantined_at_once(tmp_path: Path) -> None:
    """ijson keeps a prefix per level: 100,000 `[` would take gigabytes; the limit stops it."""
    path = tmp_path / "deep.json"
    path.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    tracemalloc.start()
    try:
        (error,) = streamed(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (
        error.payload["error"] == f"JSON nested deeper than {MAX_DEPTH} levels at byte {MAX_DEPTH}"
    )
    assert peak < 20_000_000


def test_memory_does_not_follow_the_size_of_the_file(
    tmp_path: Path, exports: dict[str, Path]
) -> None:
    """10,000 records (about 20 MB): what is held at once is a block's records."""
    record = json.loads(exports["one-record.json"].read_text())
    path = tmp_path / "big.json"
    with path.open("w") as out:
        out.write('{"Findings": [')
        out.write(",".join(json.dumps({**record, "Id": f"id-{n}"}) for n in range(10_000)))
        out.write("]}")
    tracemalloc.start()
    try:
        count = sum(1 for _ in FileSource([path]).collect())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 10_000
    assert peak < path.stat().st_size / 10, (peak, path.stat().st_size)


def test_export_records_read_again_on_each_pass_and_say_what_they_read(
    exports: dict[str, Path],
) -> None:
    paths: Sequence[Path] = [exports["get-findings.json"], exports["not-an-export.json"]]
    raw = ExportRecords(paths)
    assert list(raw) == list(raw) == streamed(*paths)
    assert len(raw) == len(streamed(*paths))
    assert [(r.path, r.unrecognised) for r in raw.reads] == [(paths[0], 0), (paths[1], 1)]


def test_a_run_keeps_exports_by_reference_and_copies_them_as_they_are(
    tmp_path: Path, exports: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    chosen = [exports["get-findings.json"], exports["not-an-export.json"]]
    args = ["run", "--no-send", "--out", str(tmp_path / "out")]
    for path in chosen:
        args += ["--from-file", str(path)]
    assert main(args) == 0
    (run_dir,) = (tmp_path / "out").iterdir()
    index = json.loads((run_dir / "data/raw/files.json").read_text())
    export, secret = index
    whole = chosen[0].read_bytes()
    assert export == {
        "file": str(chosen[0]),
        "records": len(streamed(chosen[0])),
        "sha256": hashlib.sha256(whole).hexdigest(),
        "size": len(whole),
        "copy": "data/raw/files/1-get-findings.json",
    }
    assert (run_dir / export["copy"]).read_bytes() == whole
    assert secret["copy"] is None and "only referenced" in secret["why"]
    assert secret["sha256"] == hashlib.sha256(chosen[1].read_bytes()).hexdigest()
    assert sorted(p.name for p in (run_dir / "data/raw/files").iterdir()) == ["1-get-findings.json"]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    assert listed[export["copy"]] == export["sha256"]
    assert manifest["counts"]["records"] == {"files": export["records"] + 1}
