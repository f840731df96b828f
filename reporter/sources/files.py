"""Exported JSON files: reports from exports, with no AWS access at all.

Accepted shapes, alone or in a list: `aws securityhub get-findings` output (`{"Findings": [...]}`),
a single ASFF record, `aws accessanalyzer list-findings-v2` output (`{"findings": [...]}`),
`get-finding-v2` output, and EventBridge events from Access Analyzer or Security Hub. Each record
is handed on under the source whose shape it has, so one parser per shape serves files and APIs
alike. What is not recognised becomes a `files` record that `normalise` quarantines with the
reason; a bad file never stops the run.

A file can claim anything, so nothing here vouches for a record: the ASFF and OCSF records in
exports and Security Hub events meet the same product check in `normalise` as the API's, and an
event shaped like Access Analyzer's that does not come from `aws.access-analyzer` is passed on
as a look-alike, for the quarantine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..models import RawRecord
from ..normalise import AA_EVENT_SOURCE

NAME = "files"


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


class FileSource:
    name = NAME

    def __init__(self, paths: Sequence[Path]) -> None:
        self._paths = tuple(paths)

    def collect(self) -> Iterator[RawRecord]:
        for path in self._paths:
            try:
                # utf-8-sig: Windows tools (PowerShell's Out-File) start UTF-8 with a BOM.
                value = json.loads(path.read_text(encoding="utf-8-sig"))
            except (OSError, UnicodeDecodeError) as exc:
                yield unreadable(path, f"cannot read file: {exc}")
                continue
            except json.JSONDecodeError as exc:
                yield unreadable(path, f"not valid JSON: {exc}")
                continue
            except RecursionError:
                yield unreadable(path, "JSON nested too deeply to read")
                continue
            try:
                yield from records_in(value, path)
            except RecursionError:  # lists in lists, deeper than the stack: the rest is lost
                yield unreadable(path, "JSON lists nested too deeply to read")
