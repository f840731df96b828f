"""`access-reporter review report --from --to`: the access review attestation of a period, for
auditors (SOC 2 CC6.2/CC6.3, ISO 27001 A.5.18, FedRAMP AC-2): scope, coverage, who reviewed
what, decisions and outcomes, open items, exceptions with approver and expiry.

`attestation_document` is pure (the runs' findings and the decisions in, a JSON document out);
`write_attestation` reads the evidence store and the state database and writes
`attestation.pdf`, `attestation.xlsx`, `attestation.json` and a `manifest.json` into a folder
that `access-reporter evidence verify FOLDER` checks like a run's.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from reporter import __version__
from reporter.config import ReviewsSettings, Settings
from reporter.evidence import EvidenceStore, RunFolder, RunStatus

from .decisions import Decision, RecordedDecision, decision_record

__all__ = ["PeriodRun", "attestation_document", "write_attestation"]

FINDINGS_JSON = "data/findings.json"


@dataclass(frozen=True)
class PeriodRun:
    """A complete run of the period and what its findings.json says: key → (owner, record)."""

    run_id: str
    started_at: datetime
    findings: Mapping[str, Mapping[str, Any]]


def _end(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(), UTC)


def state_at(d: RecordedDecision, end: datetime, reviews: ReviewsSettings) -> str:
    """Where a decision stood at the end of the period."""
    day = (end - timedelta(seconds=1)).date()
    if d.decision is Decision.REMOVE:
        if d.verified_at is not None and d.verified_at < end:
            return "removed"
        return "overdue" if day > d.due(reviews.remove_within_days) else "promised"
    if d.decision is Decision.KEEP:
        approved = d.approved_at is not None and d.approved_at < end
        if reviews.keep_requires_approval and not approved:
            return "pending"
        return "expired" if d.keep_until is not None and day > d.keep_until else "kept"
    return "triage"


def attestation_document(
    start: date,
    stop: date,
    runs: Sequence[PeriodRun],
    history: Sequence[RecordedDecision],
    reviews: ReviewsSettings,
    config_exceptions: Sequence[Mapping[str, Any]],
    now: datetime,
) -> dict[str, Any]:
    """The attestation of [start, stop] as a JSON-able document."""
    end = _end(stop)
    recorded = [d for d in history if d.recorded_at < end]
    in_force: dict[str, RecordedDecision] = {}
    superseded: dict[int, int] = {}
    for d in recorded:  # oldest first: the latest wins
        if d.key in in_force:
            superseded[in_force[d.key].id] = d.id
        in_force[d.key] = d
    reported: dict[str, Mapping[str, Any]] = {}
    for period_run in sorted(runs, key=lambda r: r.started_at):
        reported.update(period_run.findings)
    last = max(runs, key=lambda r: r.started_at).findings if runs else {}
    states = {d.id: state_at(d, end, reviews) for d in in_force.values()}

    owners: dict[str, dict[str, Any]] = {}

    def row(owner: str) -> dict[str, Any]:
        return owners.setdefault(
            owner,
            {"owner": owner, "findings": 0, "decided": 0, "remove": 0, "keep": 0,
             "not_mine": 0, "removed_verified": 0, "overdue": 0, "pending": 0, "undecided": 0},
        )  # fmt: skip

    for key, record in reported.items():
        owner = str(record.get("owner") or "unowned")
        counts = row(owner)
        counts["findings"] += 1
        decision = in_force.get(key)
        if decision is None:
            counts["undecided"] += 1
            continue
        counts["decided"] += 1
        counts[decision.decision.value] += 1
        state = states[decision.id]
        counts["removed_verified"] += state == "removed"
        counts["overdue"] += state == "overdue"
        counts["pending"] += state == "pending"

    open_items = []
    for key, record in sorted(last.items()):
        decision = in_force.get(key)
        if decision is None:
            why = "no decision"
        else:
            why = {
                "promised": "removal promised, not yet verified",
                "overdue": "removal overdue",
                "pending": "Keep pending approval",
                "triage": "Not mine: in security team triage",
                "expired": "Keep expired: active again",
            }.get(states[decision.id], "")
        if why:
            open_items.append(
                {"key": key, "owner": record.get("owner"), "principal_arn":
                 record.get("principal_arn"), "type": record.get("type"), "open": why}
            )  # fmt: skip

    exceptions = [
        {
            "id": f"review-{d.id}",
            "source": "review",
            "key": d.key,
            "reason": d.reason,
            "approved_by": d.approved_by or d.decided_by,
            "approved_at": _iso(d.approved_at or d.recorded_at),
            "expires": _iso(d.keep_until),
            "state": states[d.id],
        }
        for d in in_force.values()
        if d.decision is Decision.KEEP
    ] + [dict(e) for e in config_exceptions]

    decided = sum(1 for key in reported if key in in_force)
    return {
        "schema_version": 1,
        "kind": "access-review-attestation",
        "tool_version": __version__,
        "period": {"from": start.isoformat(), "to": stop.isoformat()},
        "generated_at": _iso(now),
        "scope": {
            "runs": [
                {"run_id": r.run_id, "started_at": _iso(r.started_at), "findings": len(r.findings)}
                for r in sorted(runs, key=lambda r: r.started_at)
            ],
            "findings_reported": len(reported),
            "owners": len(owners),
        },
        "coverage": {
            "findings": len(reported),
            "decided": decided,
            "percent": round(100 * decided / len(reported), 1) if reported else 100.0,
        },
        "owners": [owners[o] for o in sorted(owners)],
        "decisions": [
            {
                **decision_record(d, states.get(d.id, "superseded"), reviews.remove_within_days),
                "superseded_by": superseded.get(d.id),
            }
            for d in recorded
            if d.recorded_at >= _end(start) - timedelta(days=1) or d.key in in_force
        ],
        "open_items": open_items,
        "exceptions": exceptions,
    }


def _iso(value: date | datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return value.isoformat()


def period_runs(store: EvidenceStore, start: date, stop: date) -> list[PeriodRun]:
    """The complete runs that started in [start, stop], with their findings."""
    import importlib

    ijson = importlib.import_module("ijson")  # no type information shipped
    found = []
    for info in store.runs():
        if info.status is not RunStatus.COMPLETE or not start <= info.when.date() <= stop:
            continue
        raw = store.read(info.run_id, FINDINGS_JSON)
        findings = {
            str(r["key"]): {k: r.get(k) for k in ("owner", "principal_arn", "type", "status")}
            for r in ijson.items(io.BytesIO(raw), "findings.item")
        }
        found.append(PeriodRun(info.run_id, info.when, findings))
    return found


def _config_exceptions(settings: Settings) -> list[dict[str, Any]]:
    return [
        {
            "id": rule.id,
            "source": "config",
            "where": where,
            "reason": rule.reason,
            "approved_by": rule.approved_by,
            "expires": rule.expires.isoformat(),
        }
        for where, rule in settings.exceptions.all_rules()
    ]


def render_attestation_xlsx(doc: Mapping[str, Any], stamp: datetime) -> bytes:
    from reporter.render.sheetxml import Look, Workbook

    book = Workbook(stamp, f"Access review attestation {doc['period']['from']} to "
                    f"{doc['period']['to']}")  # fmt: skip
    with book.sheet("Summary", (34, 50)) as sheet:
        sheet.row(("Access review attestation",), Look.TITLE)
        for label, value in (
            ("Period from", doc["period"]["from"]),
            ("Period to", doc["period"]["to"]),
            ("Generated (UTC)", doc["generated_at"]),
            ("Runs in the period", len(doc["scope"]["runs"])),
            ("Findings reported", doc["coverage"]["findings"]),
            ("Findings decided by their owner", doc["coverage"]["decided"]),
            ("Coverage (%)", doc["coverage"]["percent"]),
            ("Open items", len(doc["open_items"])),
        ):
            sheet.row((label, value))

    def table(name: str, rows: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> None:
        with book.sheet(name, [24] * len(fields), freeze_header=True, auto_filter=True) as s:
            s.row(list(fields), Look.HEADER)
            for r in rows:
                s.row([_cell(r.get(f)) for f in fields])

    table("Owners", doc["owners"], list(doc["owners"][0]) if doc["owners"] else ["owner"])
    table(
        "Decisions",
        [{**d, **{f"source_{k}": v for k, v in d["source"].items()},
          "verified_by_run": (d["verified"] or {}).get("run_id")} for d in doc["decisions"]],
        ["id", "owner", "key", "decision", "state", "keep_until", "due", "reason", "decided_by",
         "recorded_at", "approved_by", "approved_at", "verified_by_run", "superseded_by",
         "source_file_name", "source_file_sha256", "source_run_id", "source_sheet_row",
         "source_imported_by"],
    )  # fmt: skip
    table("Open items", doc["open_items"], ["owner", "key", "type", "open"])
    table("Exceptions", doc["exceptions"],
          ["id", "source", "key", "reason", "approved_by", "expires", "state"])  # fmt: skip
    table("Runs", doc["scope"]["runs"], ["run_id", "started_at", "findings"])
    return book.finish()


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def render_attestation_pdf(doc: Mapping[str, Any], template_dir: Path | None) -> bytes:
    from reporter.models import RunContext
    from reporter.render.environment import make_environment
    from reporter.render.pdf import html_to_pdf, render_template

    env = make_environment(template_dir)
    period = doc["period"]
    context = RunContext(
        run_id=f"attestation {period['from']} to {period['to']}",
        generated_at=datetime.fromisoformat(doc["generated_at"].replace("Z", "+00:00")),
        period_start=date.fromisoformat(period["from"]),
        period_end=date.fromisoformat(period["to"]),
        scope="access review",
    )
    html = render_template(env, "attestation.html.j2", {"context": context, "doc": doc})
    return html_to_pdf(html)


def write_attestation(
    settings: Settings,
    evidence: EvidenceStore,
    history: Sequence[RecordedDecision],
    start: date,
    stop: date,
    out: Path,
    now: datetime,
) -> Path:
    """The attestation's folder `out/attestation-FROM-TO-STAMP`, manifest last."""
    doc = attestation_document(
        start,
        stop,
        period_runs(evidence, start, stop),
        history,
        settings.reviews,
        _config_exceptions(settings),
        now,
    )
    name = f"attestation-{start:%Y%m%d}-{stop:%Y%m%d}-{now:%Y%m%dT%H%M%SZ}"
    out.mkdir(parents=True, exist_ok=True)
    with RunFolder(out, name) as folder:
        folder.write_json("attestation.json", doc)
        folder.write("attestation.xlsx", render_attestation_xlsx(doc, now))
        folder.write("attestation.pdf", render_attestation_pdf(doc, settings.reports.template_dir))
        return folder.commit(
            {
                "tool": "unused-access-reporter",
                "tool_version": __version__,
                "kind": "access-review-attestation",
                "run_id": name,
                "started_at": _iso(now),
                "period": doc["period"],
                "runs": [r["run_id"] for r in doc["scope"]["runs"]],
                "evidence_store": evidence.location,
            }
        )
