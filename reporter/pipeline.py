"""`run(settings, deps, now)`: the one place where the stages meet.

The CLI and the scheduler only call this. Per-account and per-source failures become coverage
entries; they are never swallowed and never fatal to the whole run.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy.exc import SQLAlchemyError

from . import __version__
from .aggregate import by_owner, summarise
from .config import Settings, config_digest
from .deliver.message import PDF_TYPE, XLSX_TYPE, Attachment, Envelope, build_message
from .deliver.outbox import as_bytes, eml_name
from .discover import Scope, coverage_for, fetch_organization, parse_accounts, split_scope
from .enrich import enrich, unknown_account
from .errors import CollectionError, StateError, UsageError
from .evidence import RunFolder
from .history import HistoryStore, diff
from .models import (
    Account,
    AccountCoverage,
    OwnerReport,
    RawRecord,
    RunContext,
    RunResult,
    owner_slug,
)
from .normalise import normalise
from .owners import OwnerRules
from .render.data import findings_csv, findings_json
from .render.environment import make_environment
from .render.pdf import render_owner_pdf, render_summary_pdf
from .render.xlsx import render_owner_xlsx, render_summary_xlsx
from .session import SessionFactory
from .sources.access_analyzer import AccessAnalyzerSource, SourceUnavailable
from .sources.files import FileSource
from .sources.interface import FindingSource
from .sources.security_hub import SecurityHubSource

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Dependencies:
    """The edges a run needs, injected so tests and the sandbox hand in their own."""

    sessions: SessionFactory | None
    output_dir: Path
    progress: Progress = field(default=lambda message: None)
    # Exported JSON files to read instead of AWS: no discovery, no AWS call at all.
    files: tuple[Path, ...] = ()


def new_run_id(now: datetime) -> str:
    """Sortable by time, unique across replicas."""
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def run(settings: Settings, deps: Dependencies, now: datetime) -> RunResult:
    context = RunContext(
        run_id=new_run_id(now),
        generated_at=now,
        period_start=(now - timedelta(days=settings.reports.period_days)).date(),
        period_end=now.date(),
        scope=_scope_text(settings),
    )
    deps.output_dir.mkdir(parents=True, exist_ok=True)
    with RunFolder(deps.output_dir, context.run_id) as folder:
        return _run(settings, deps, context, folder)


def _run(
    settings: Settings, deps: Dependencies, context: RunContext, folder: RunFolder
) -> RunResult:
    org = settings.organization
    sessions = deps.sessions
    accounts: list[Account] = []
    assess: list[Account] = []
    out_of_scope: list[AccountCoverage] = []
    caller: dict[str, Any] = {}
    sources: list[FindingSource]
    if deps.files:
        sources, failures = [FileSource(deps.files)], dict[str, str]()
    elif sessions is None:
        raise UsageError("no AWS session and no --from-file: nothing to read")
    else:
        deps.progress("discovering the organization")
        org_session = sessions.assume(org.management_role_arn) if org.management_role_arn else None
        org_data = fetch_organization(sessions.client("organizations", org_session))
        accounts = parse_accounts(org_data)
        assess, out_of_scope = split_scope(accounts, _scope(settings))
        caller = sessions.client("sts").get_caller_identity()
        sources, failures = _sources(settings, sessions)
    raw: dict[str, list[RawRecord]] = {}
    for source in sources:
        deps.progress(f"collecting from {source.name}")
        try:
            raw[source.name] = list(source.collect())
        except (ClientError, BotoCoreError, SourceUnavailable) as exc:
            failures[source.name] = _error_text(exc)
            log.warning("source %s failed: %s", source.name, failures[source.name])
    if not raw:
        raise CollectionError(
            "nothing could be collected: "
            + ("; ".join(f"{k}: {v}" for k, v in failures.items()) or "no source is enabled")
        )
    for name, records in raw.items():
        folder.write_json(f"data/raw/{name}.json", [dict(r.payload) for r in records])

    deps.progress("normalising")
    normalised = normalise(r for records in raw.values() for r in records)
    if not normalised.findings and not normalised.skipped and normalised.quarantined:
        raise CollectionError(
            f"nothing usable was collected: all {len(normalised.quarantined)} record(s) were "
            "malformed (first: " + normalised.quarantined[0].reason + ")"
        )
    if deps.files:
        # Exports name the accounts but not their names or tags: every one is in scope.
        seen = sorted({f.account_id for f in normalised.findings})
        assess = [unknown_account(account_id) for account_id in seen]
        accounts = list(assess)
    in_scope_ids = {a.id for a in assess}
    findings = [f for f in normalised.findings if f.account_id in in_scope_ids]
    out_of_scope_findings = len(normalised.findings) - len(findings)
    skipped_reasons = dict(normalised.skipped)
    if out_of_scope_findings:
        skipped_reasons["account not in scope"] = out_of_scope_findings
    coverage = _coverage(assess, out_of_scope, list(raw))
    history = HistoryStore(settings.state.database_url)
    changes = diff(
        history.load(),
        [(f.key, f.account_id, f.created_at) for f in findings],
        # An export may hold only part of an account's findings: it resolves nothing.
        frozenset() if deps.files else frozenset(c.account_id for c in coverage if c.covered),
        context.generated_at,
    )

    owners = settings.owners
    rules = OwnerRules(
        account_tag_keys=tuple(owners.account_tag_keys),
        names=dict(owners.names),
        allowed_domains=tuple(owners.allowed_domains),
        fallback=tuple(owners.fallback),
    )
    items = enrich(
        findings,
        {a.id: a for a in accounts},
        rules,
        org.home_region,
        context.generated_at,
        first_seen={k: seen.first_seen.date() for k, seen in changes.rows.items()},
    )
    reports = by_owner(items, rules.fallback, context, coverage)
    summary = summarise(
        items,
        reports,
        context,
        coverage,
        skipped=normalised.skipped_total + out_of_scope_findings,
        quarantined=len(normalised.quarantined),
    )

    deps.progress(f"rendering {len(reports)} owner reports")
    env = make_environment(settings.reports.template_dir)
    folder.write("data/findings.json", findings_json(summary.items, context))
    folder.write("data/findings.csv", findings_csv(summary.items))
    folder.write_json("data/coverage.json", [_coverage_record(c) for c in coverage])
    folder.write_json(
        "data/quarantine.json",
        [
            {"source": q.source, "origin": q.origin, "reason": q.reason, "record": q.record}
            for q in normalised.quarantined
        ],
    )
    folder.write("summary/summary.pdf", render_summary_pdf(summary, env))
    folder.write("summary/findings.xlsx", render_summary_xlsx(summary))

    envelope = Envelope(
        from_address=str(settings.mail.from_address),
        reply_to=str(settings.mail.reply_to) if settings.mail.reply_to else None,
        subject_prefix=settings.mail.subject_prefix,
    )
    deliveries = []
    outbox = []
    for report in reports:
        attachments = _owner_files(report, env, folder)
        message = build_message(report, attachments, envelope, env)
        name = eml_name(report.owner)
        folder.write(name, as_bytes(message))
        outbox.append(name)
        deliveries.append(
            {
                "recipient": report.owner,
                "transport": "outbox",
                "message_id": message["Message-ID"],
                "file": name,
                "attachments": [{"filename": a.filename, "sha256": a.sha256} for a in attachments],
            }
        )

    result = RunResult(
        context=context,
        run_dir=str(folder.final),
        owners=tuple((r.owner, len(r.items)) for r in reports),
        findings=len(items),
        files=len(folder.files) + 1,  # + the manifest
        coverage=tuple(coverage),
        skipped=summary.skipped,
        quarantined=summary.quarantined,
        outbox=tuple(outbox),
        new=len(changes.new),
        resolved=len(changes.resolved),
    )
    folder.commit(
        {
            "tool": "unused-access-reporter",
            "tool_version": __version__,
            "run_id": context.run_id,
            "started_at": context.generated_at.isoformat(),
            "finished_at": datetime.now(context.generated_at.tzinfo).isoformat(),
            "config_digest": config_digest(settings),
            "caller_identity": {k: caller.get(k) for k in ("Account", "Arn", "UserId")},
            "scope": context.scope,
            "counts": {
                "findings": len(items),
                "owners": len(reports),
                "new": len(changes.new),
                "resolved": len(changes.resolved),
                "skipped": summary.skipped,
                "skipped_reasons": skipped_reasons,
                "quarantined": summary.quarantined,
                "records": {name: len(records) for name, records in raw.items()},
            },
            "source_failures": failures,
            "coverage": [_coverage_record(c) for c in coverage],
            "deliveries": deliveries,
            "exit_code": result.exit_code,
        }
    )
    # Only a run whose evidence is complete moves the history on.
    try:
        history.save(context.run_id, context.generated_at, changes)
    except SQLAlchemyError as exc:
        raise StateError(
            f"run {context.run_id} is complete in {folder.final}, but its history could not "
            f"be saved ({type(exc).__name__}); the next run will count its findings as new"
        ) from exc
    finally:
        history.dispose()
    return result


def _owner_files(
    report: OwnerReport, env: jinja2.Environment, folder: RunFolder
) -> tuple[Attachment, ...]:
    slug = owner_slug(report.owner)
    attachments = (
        Attachment("report.pdf", render_owner_pdf(report, env), *PDF_TYPE),
        Attachment("findings.xlsx", render_owner_xlsx(report), *XLSX_TYPE),
    )
    for a in attachments:
        folder.write(f"owners/{slug}/{a.filename}", a.data)
    return attachments


def _sources(
    settings: Settings, sessions: SessionFactory
) -> tuple[list[FindingSource], dict[str, str]]:
    """The enabled sources; a source whose credentials fail is recorded, not fatal."""
    org = settings.organization
    sources: list[FindingSource] = []
    failures: dict[str, str] = {}
    wanted = [
        name
        for name, on in (
            ("security_hub", settings.sources.security_hub.enabled),
            ("access_analyzer", settings.sources.access_analyzer.enabled),
        )
        if on
    ]
    if not wanted:
        return sources, failures
    # Both sources are read in the delegated administrator, so one assumed session serves both.
    try:
        admin = (
            sessions.assume(org.delegated_admin_role_arn) if org.delegated_admin_role_arn else None
        )
    except (ClientError, BotoCoreError) as exc:
        return sources, dict.fromkeys(wanted, _error_text(exc))
    if "security_hub" in wanted:
        client = sessions.client("securityhub", admin, region=org.home_region)
        sources.append(SecurityHubSource(client, org.home_region))
    if "access_analyzer" in wanted:
        client = sessions.client("accessanalyzer", admin, region=org.home_region)
        arn = settings.sources.access_analyzer.analyzer_arn
        sources.append(AccessAnalyzerSource(client, arn or None))
    return sources, failures


def _coverage(
    assess: list[Account], out_of_scope: Iterable[AccountCoverage], collected: list[str]
) -> list[AccountCoverage]:
    # Reached only when at least one source answered (otherwise the run raised).
    return sorted([*coverage_for(assess, collected), *out_of_scope], key=lambda c: c.account_id)


def _coverage_record(c: AccountCoverage) -> dict[str, Any]:
    return {
        "account_id": c.account_id,
        "account_name": c.account_name,
        "state": c.state,
        "in_scope": c.in_scope,
        "covered": c.covered,
        "sources": list(c.sources),
        "reason": c.reason,
    }


def _scope(settings: Settings) -> Scope:
    org = settings.organization
    return Scope(
        include_accounts=frozenset(org.include_accounts),
        exclude_accounts=frozenset(org.exclude_accounts),
        include_ous=frozenset(org.include_ous),
        exclude_ous=frozenset(org.exclude_ous),
    )


def _scope_text(settings: Settings) -> str:
    org = settings.organization
    parts = []
    if org.include_accounts or org.include_ous:
        parts.append("included: " + ", ".join([*org.include_accounts, *org.include_ous]))
    if org.exclude_accounts or org.exclude_ous:
        parts.append("excluded: " + ", ".join([*org.exclude_accounts, *org.exclude_ous]))
    return "; ".join(parts) or "whole organization"


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip(": ")
    return str(exc)
