"""`data/findings.json` and `data/findings.csv`: the machine-readable records of a run.

`finding_record` is the one definition of what a finding looks like outside the program; the
CSV and the workbook are flattenings of it (`flat_record`), so the three cannot drift apart.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from typing import Any

from reporter.aggregate import sort_items
from reporter.models import (
    ExceptionMatch,
    ObservationWindow,
    OrganizationAccess,
    Recommendation,
    RemediationStep,
    ReportItem,
    Review,
    RunContext,
)

# 2: exception, recommendation, SLA, new, owner notes, policy documents, step detail.
# 3: organization_access, observation_window.
# 4: review (the owner's decision in force), exception.source.
SCHEMA_VERSION = 4

# Spreadsheet programs treat a cell starting with one of these as a formula (OWASP "CSV
# injection"); tab and carriage return are on the list because Excel strips them and then
# parses what follows.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

# The record's top-level scalars, copied into the flat form as they are.
_SCALARS: tuple[str, ...] = (
    "key",
    "type",
    "account_id",
    "account_name",
    "principal_arn",
    "principal_type",
    "principal_name",
    "status",
    "severity",
    "priority",
    "unused_days",
    "last_accessed",
    "first_seen",
    "new",
    "age_days",
    "sla_days",
    "sla_breached",
    "owner",
    "owner_rule",
    "owner_manager",
    "region",
    "created_at",
    "updated_at",
)
# The columns of the flattened record, in order: CSV header, and the first workbook columns.
FLAT_COLUMNS: tuple[str, ...] = (
    *_SCALARS,
    "owner_notes",
    "exception_id",
    "exception_reason",
    "exception_approved_by",
    "exception_expires",
    "exception_expired",
    "organization_access_kind",
    "organization_access_reason",
    "organization_access_source_doc",
    "observation_window_days",
    "observation_window_source",
    "observation_window_since",
    "access_key_ids",
    "unused_services",
    "unused_actions",
    "attached_policies",
    "principal_tags",
    "recommendation",
    "remediation_steps",
    "remediation_commands",
    "remediation_rollback",
    "link_console",
    "link_access_analyzer",
    "link_security_hub",
    "sources",
    "review_decision",
    "review_state",
    "review_by",
    "review_at",
    "review_until",
    "review_reason",
)

# Whitespace, quotes, angle brackets and backslashes never occur in the console URLs enrich builds.
_UNSAFE_URL = re.compile(r"[\s\"'<>\\]")


def linkable(url: object) -> bool:
    """Whether `url` may become a clickable link: web URLs only, never `javascript:` or `file:`."""
    return (
        isinstance(url, str)
        and url.startswith(("https://", "http://"))
        and not _UNSAFE_URL.search(url)
    )


def iso_datetime(value: datetime | None) -> str | None:
    """`2025-01-31T08:15:00Z`; naive values are taken as UTC (AWS timestamps are)."""
    if value is None:
        return None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


def iso_date(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _or_null(text: str) -> str | None:
    # The models use "" for "not known"; the record says null, as DESIGN.md asks.
    return text or None


def _url_or_null(url: str) -> str | None:
    # Consumers (PDF, workbook, the evidence page) make these clickable; the schema promises
    # they are web URLs, so anything else (javascript:, file:) is dropped here, once.
    return url if linkable(url) else None


def finding_record(item: ReportItem) -> dict[str, Any]:
    """The JSON record of one finding (DESIGN.md `data/findings.json`), keys in a fixed order."""
    f = item.finding
    return {
        "key": f.key,
        "type": f.type.value,
        "account_id": f.account_id,
        "account_name": item.account.name,
        "principal_arn": f.principal_arn,
        "principal_type": f.principal_type,
        "principal_name": f.principal_name,
        "status": item.status.value,
        "severity": f.severity,
        "priority": item.priority,
        "unused_days": item.unused_days,
        # A timestamp in the sources; kept to the second so evidence loses nothing.
        "last_accessed": iso_datetime(f.last_accessed),
        "first_seen": iso_date(item.first_seen),
        "new": item.new,
        "age_days": item.age_days,
        "sla_days": item.sla_days,
        "sla_breached": item.sla_breached,
        "owner": item.owner.owner,
        "owner_rule": item.owner.rule,
        "owner_manager": item.owner.manager,
        "owner_notes": list(item.owner.notes),
        "region": _or_null(f.region),
        "created_at": iso_datetime(f.created_at),
        "updated_at": iso_datetime(f.updated_at),
        "details": {
            "access_key_ids": list(f.access_key_ids),
            "services": [
                {
                    "namespace": s.namespace,
                    "last_accessed": iso_datetime(s.last_accessed),
                    "actions": [
                        {"action": a.action, "last_accessed": iso_datetime(a.last_accessed)}
                        for a in s.actions
                    ],
                }
                for s in f.services
            ],
            "attached_policies": list(f.attached_policies),
            # Sorted so the same finding always gives the same bytes.
            "principal_tags": [
                {"key": k, "value": f.principal_tags[k]} for k in sorted(f.principal_tags)
            ],
            "policy_documents": [
                {"policy_id": k, "document": f.policy_documents[k]}
                for k in sorted(f.policy_documents)
            ],
        },
        "recommendation": _recommendation(f.recommendation),
        "remediation": [step_record(step) for step in item.remediation],
        "links": {
            "console": _url_or_null(item.links.console),
            "access_analyzer": _url_or_null(item.links.access_analyzer),
            "security_hub": _url_or_null(item.links.security_hub),
        },
        "sources": [
            {"source": s.source, "id": s.id, "product_arn": _or_null(s.product_arn)}
            for s in f.sources
        ],
        "exception": exception_record(item.exception),
        "organization_access": organization_access_record(item.organization_access),
        "observation_window": window_record(item.window),
        "review": review_record(item.review),
    }


def review_record(review: Review | None) -> dict[str, Any] | None:
    """The owner's decision in force (access reviews) and where it stands, or None."""
    if review is None:
        return None
    return {
        "id": review.id,
        "decision": review.decision,
        "by": review.by,
        "at": iso_datetime(review.at),
        "until": iso_date(review.until),
        "reason": _or_null(review.reason),
        "state": review.state,
        "approved_by": review.approved_by,
    }


def organization_access_record(access: OrganizationAccess | None) -> dict[str, Any] | None:
    """Why the principal is organization access (`reporter.orgaccess`), or None."""
    if access is None:
        return None
    return {"kind": access.kind, "reason": access.reason, "source_doc": _or_null(access.source_doc)}


def window_record(window: ObservationWindow | None) -> dict[str, Any]:
    """What "unused" was measured over; `{"days": null, "source": "unknown"}` when not known."""
    if window is None:
        return {"days": None, "source": "unknown", "since": None}
    return {"days": window.days, "source": window.source, "since": iso_date(window.since)}


def step_record(step: RemediationStep) -> dict[str, Any]:
    return {
        "title": step.title,
        "command": step.command,
        "console_url": _url_or_null(step.console_url),
        "rollback": _or_null(step.rollback),
        "detail": _or_null(step_detail(step)),
    }


def step_detail(step: RemediationStep) -> str:
    """The optional long-form part of a step (a policy diff); "" when the step has none."""
    # Read defensively: `detail` is an optional field a step may or may not carry.
    detail = getattr(step, "detail", "")
    return detail if isinstance(detail, str) else ""


def _recommendation(rec: Recommendation | None) -> dict[str, Any] | None:
    if rec is None:
        return None
    return {
        "status": rec.status,
        "error": _or_null(rec.error),
        "steps": [
            {
                "action": s.action,
                "existing_policy_id": _or_null(s.existing_policy_id),
                "recommended_policy": _or_null(s.recommended_policy),
                "policy_updated_at": iso_datetime(s.policy_updated_at),
            }
            for s in rec.steps
        ],
    }


def exception_record(match: ExceptionMatch | None) -> dict[str, Any] | None:
    if match is None:
        return None
    return {
        "id": match.id,
        "reason": match.reason,
        "approved_by": match.approved_by,
        "expires": iso_date(match.expires),
        "expired": match.expired,
        "source": match.source,
    }


def findings_document(items: Iterable[ReportItem], context: RunContext) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": context.run_id,
        "generated_at": iso_datetime(context.generated_at),
        "findings": [finding_record(i) for i in sort_items(items)],
    }


def findings_json(items: Iterable[ReportItem], context: RunContext) -> bytes:
    """`data/findings.json`: UTF-8, one finding record per line, keys in record order.

    One record per line rather than indented: `grep` and `diff` find a finding by its line, and
    `jq .` pretty-prints the whole. Indenting each record (`indent=2`) forced the standard
    library's pure-Python encoder, 2.7 times slower than its C one (measured on 10,000
    records)."""
    return b"".join(json_piece for json_piece, _ in findings_data_chunks(items, context))


def findings_csv(items: Iterable[ReportItem], context: RunContext) -> bytes:
    """`data/findings.csv`: the flattened records, RFC 4180, UTF-8 without BOM."""
    return b"".join(csv_piece for _, csv_piece in findings_data_chunks(items, context))


# The C encoder: it is used only when `indent` is None.
_RECORD_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))


def findings_data_chunks(
    items: Iterable[ReportItem],
    context: RunContext,
    rows: int = 500,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[tuple[bytes, bytes]]:
    """`findings_json` and `findings_csv` together, `rows` findings at a time, for writing
    straight to disk (`RunFolder.write_together`): with 100,000 findings the whole texts would
    cost hundreds of megabytes. Each finding's record is built once for both files, and its
    flat form is handed to `on_record` (the organization workbook's Findings sheet)."""
    opening = json.dumps(findings_document((), context), indent=2, ensure_ascii=False)
    # `"findings": []` closes the document; the records go between its brackets.
    before, _, after = opening.rpartition("[]")
    json_parts = [before.encode("utf-8")]
    csv_lines = [csv_line(FLAT_COLUMNS)]
    first = b"[\n    "
    separator = first
    for n, item in enumerate(sort_items(items), 1):
        record = finding_record(item)
        json_parts.append(separator + _RECORD_ENCODER.encode(record).encode("utf-8"))
        separator = b",\n    "
        flat = flat_record(record)
        csv_lines.append(csv_line(flat.values()))
        if on_record is not None:
            on_record(flat)
        if n % rows == 0:
            yield b"".join(json_parts), "".join(csv_lines).encode("utf-8")
            json_parts, csv_lines = [], []
    json_parts.append(b"[]" if separator == first else b"\n  ]")
    json_parts.append((after + "\n").encode("utf-8"))
    yield b"".join(json_parts), "".join(csv_lines).encode("utf-8")


def _last_used(value: str | None) -> str:
    # Access Analyzer leaves lastAccessed out when the access was not used in its tracking window.
    return f"last used {value[:10]}" if value else "no recorded use"


def flat_record(record: dict[str, Any]) -> dict[str, Any]:
    """One finding record as a single row of scalars (str, int or None), keyed by FLAT_COLUMNS."""
    details = record["details"]
    services = details["services"]
    steps = record["remediation"]
    links = record["links"]
    flat = {k: record[k] for k in _SCALARS}
    exception = record["exception"] or {}
    access = record["organization_access"] or {}
    window = record["observation_window"]
    review = record["review"] or {}
    flat.update(
        owner_notes="\n".join(record["owner_notes"]),
        exception_id=exception.get("id"),
        exception_reason=exception.get("reason"),
        exception_approved_by=exception.get("approved_by"),
        exception_expires=exception.get("expires"),
        exception_expired=exception.get("expired"),
        organization_access_kind=access.get("kind"),
        organization_access_reason=access.get("reason"),
        organization_access_source_doc=access.get("source_doc"),
        observation_window_days=window["days"],
        observation_window_source=window["source"],
        observation_window_since=window["since"],
        access_key_ids="; ".join(details["access_key_ids"]),
        unused_services="; ".join(
            f"{s['namespace']} ({_last_used(s['last_accessed'])})" for s in services
        ),
        unused_actions="; ".join(
            f"{a['action']} ({_last_used(a['last_accessed'])})"
            for s in services
            for a in s["actions"]
        ),
        attached_policies="; ".join(details["attached_policies"]),
        principal_tags="; ".join(f"{t['key']}={t['value']}" for t in details["principal_tags"]),
        recommendation=_compact_json(record["recommendation"]),
        remediation_steps="; ".join(f"{n}. {s['title']}" for n, s in enumerate(steps, 1)),
        # One command per line: pasted into a shell, the cell runs the steps in order.
        remediation_commands="\n".join(s["command"] for s in steps),
        remediation_rollback="\n".join(
            f"{n}. {s['rollback']}" for n, s in enumerate(steps, 1) if s["rollback"]
        ),
        link_console=links["console"],
        link_access_analyzer=links["access_analyzer"],
        link_security_hub=links["security_hub"],
        sources="; ".join(f"{s['source']}:{s['id']}" for s in record["sources"]),
        review_decision=review.get("decision"),
        review_state=review.get("state"),
        review_by=review.get("by"),
        review_at=review.get("at"),
        review_until=review.get("until"),
        review_reason=review.get("reason"),
    )
    return {k: flat[k] for k in FLAT_COLUMNS}


def _compact_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def defuse_csv(value: str) -> str:
    """Prefix a formula-looking text with `'` so a spreadsheet shows it instead of running it.

    CSV has no cell types, so the apostrophe is the only defence that survives a double-click
    into Excel; it costs one visible character on hostile-looking values only.
    """
    return f"'{value}" if value.startswith(FORMULA_TRIGGERS) else value


# RFC 4180 as `csv.writer` writes it (excel dialect, QUOTE_MINIMAL): a field holding a comma,
# a quote, CR or LF is quoted, its quotes doubled. Done here because the csv module was the
# slowest part of the data files: the remediation columns are kilobytes of text per finding,
# which it scans a character at a time; `str.replace` does not. tests/fuzz checks that both give
# the same bytes.
_NEEDS_QUOTES = re.compile(r'[",\r\n]')


def csv_line(values: Iterable[Any]) -> str:
    """One CSV record (with its CRLF) of `values`, each as `_csv_cell` writes it."""
    return ",".join(map(_csv_field, values)) + "\r\n"


def _csv_field(value: Any) -> str:
    text = _csv_cell(value)
    if _NEEDS_QUOTES.search(text) is None:
        return text
    return '"' + text.replace('"', '""') + '"'


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return defuse_csv(value)
    return str(value)
