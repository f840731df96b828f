"""`run(settings, deps, now)`: the one place where the stages meet.

The CLI and the scheduler only call this. Per-account and per-source failures become coverage
entries; they are never swallowed and never fatal to the whole run.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import re
import secrets
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import boto3
from sqlalchemy.exc import SQLAlchemyError

from . import __version__
from .aggregate import by_owner, summarise
from .collect import collect, collect_files, files_coverage
from .config import ReviewsSettings, Settings, config_digest
from .contacts import ContactsResult, fetch_security_contacts
from .deliver.driver import Preview, close_deliverer, open_deliverer
from .deliver.message import PDF_TYPE, XLSX_TYPE, Attachment
from .discover import (
    Scope,
    fetch_organization,
    management_account_id,
    parse_accounts,
    split_scope,
)
from .enrich import enrich, unknown_account
from .errors import CollectionError, StateError, UsageError
from .evidence import RunFolder, publish_run
from .evidence.pack import read_inside
from .exceptions import ExceptionOutcome, apply_exceptions, notices_by_recipient, notices_for
from .exceptions import rules_from_settings as rules_from_settings_exceptions
from .history import HistoryDiff, diff, resolved_findings
from .models import (
    Account,
    AccountCoverage,
    ExceptionNotice,
    Finding,
    FindingType,
    Lookalike,
    ReportItem,
    ResolvedFinding,
    RunContext,
    RunResult,
    TrendPoint,
    owner_slug,
)
from .normalise import normalise
from .orgaccess import Rules as OrganizationRules
from .orgaccess import classify
from .orgaccess import rules_from_settings as organization_rules
from .owners import OwnerRules, needs_contacts, resolve_owner, rules_from_settings
from .render.data import findings_data_chunks, iso_datetime
from .render.environment import make_environment
from .render.schema import SCHEMA_PATH, schema_json
from .render.xlsx import SummaryWorkbook
from .reviews.decisions import (
    RecordedDecision,
    apply_reviews,
    decision_record,
    outcome,
    progress,
    removals_verified,
    review_exceptions,
    verified,
)
from .session import SessionFactory
from .sources.files import ExportRecords, FileRead, file_stat
from .sources.trust import read_trust_policies
from .state.decisions import DecisionStore
from .state.history import HistoryStore

if TYPE_CHECKING:
    from .render.parallel import OwnerFilesRendered

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
    # The delivery round this run belongs to (a schedule slot); None = the run is its own. A
    # second run of the same round sends only what the ledger does not record as sent.
    delivery_round: str | None = None
    # The schedule slot of that round: undelivered mail is retried until a while after it.
    delivery_slot: datetime | None = None
    # Asked between messages; True abandons the run there (the service is stopping).
    should_stop: Callable[[], bool] = field(default=lambda: False)
    # `access-reporter preview`: deliver one owner's message only, to the previewer or the
    # outbox, without the ledger.
    preview: Preview | None = None


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
    try:
        with RunFolder(deps.output_dir, context.run_id) as folder:
            result = _run(settings, deps, context, folder)
    finally:
        gc.unfreeze()  # see _run; the scheduler's next run starts from a normal collector
    # Complete and on disk first; then into the configured store (S3), which may fail on its own.
    publish_run(settings, folder.final, deps.sessions)
    return result


def _run(
    settings: Settings, deps: Dependencies, context: RunContext, folder: RunFolder
) -> RunResult:
    org = settings.organization
    sessions = deps.sessions
    accounts: list[Account] = []
    assess: list[Account] = []
    out_of_scope: list[AccountCoverage] = []
    caller: dict[str, Any] = {}
    org_session: boto3.Session | None = None
    management_id: str | None = None
    if deps.files:
        collection = collect_files(deps.files, deps.progress)
    elif sessions is None:
        raise UsageError("no AWS session and no --from-file: nothing to read")
    else:
        deps.progress("discovering the organization")
        if org.management_role_arn:
            org_session = sessions.assume(org.management_role_arn)
        org_data = fetch_organization(sessions.client("organizations", org_session))
        accounts = parse_accounts(org_data)
        management_id = management_account_id(org_data)
        assess, out_of_scope = split_scope(accounts, _scope(settings))
        caller = sessions.client("sts").get_caller_identity()
        collection = collect(
            settings,
            sessions,
            assess,
            out_of_scope,
            deps.progress,
            settings.state.database_url,
            context.generated_at,
        )
    raw, failures = collection.raw, dict(collection.failures)
    if not raw:
        raise CollectionError(
            "nothing could be collected: "
            + ("; ".join(f"{k}: {v}" for k, v in failures.items()) or "no source is enabled")
        )
    for name, records in raw.items():
        if not isinstance(records, ExportRecords):  # exports: kept as they are, below
            folder.write_json(f"data/raw/{name}.json", [dict(r.payload) for r in records])

    deps.progress("reading and normalising exported files" if deps.files else "normalising")
    normalised = normalise(r for records in raw.values() for r in records)
    for records in raw.values():
        if isinstance(records, ExportRecords):
            _keep_exports(folder, records.reads)
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
    for reason, count in collection.skipped.items():  # dropped by a source's own filter
        skipped_reasons[reason] = skipped_reasons.get(reason, 0) + count
    coverage = files_coverage(assess) if deps.files else list(collection.coverage)
    history = HistoryStore(settings.state.database_url)
    changes = diff(
        history.load(),
        [(f.key, f.account_id, f.created_at) for f in findings],
        # An export may hold only part of an account's findings: it resolves nothing.
        frozenset() if deps.files else frozenset(c.account_id for c in coverage if c.covered),
        context.generated_at,
    )

    rules = rules_from_settings(settings.owners)
    by_id = {a.id: a for a in accounts}
    contacts = ContactsResult()
    wanted = [] if deps.files or sessions is None else needs_contacts(findings, by_id, rules)
    if wanted and sessions is not None:
        deps.progress(f"reading SECURITY contacts of {len(wanted)} account(s)")
        contacts = fetch_security_contacts(
            sessions.client("account", org_session),
            wanted,
            # The caller's own account is asked without AccountId (the API requires it).
            str(caller.get("Account", ""))
            if org_session is None
            else sessions.client("sts", org_session).get_caller_identity()["Account"],
        )
        for account_id, why in contacts.failed.items():
            log.warning("SECURITY contact of %s not readable: %s", account_id, why)
    org_rules = organization_rules(settings, management_id)
    findings, org_notes = _trust_policies(settings, deps, findings, org_rules)
    exceptions = apply_exceptions(
        findings,
        rules_from_settings_exceptions(settings.exceptions),
        context.generated_at.date(),
        settings.exceptions.warn_days,
    )
    # Access reviews: owners' decisions in force. A Keep is an exception (source: review); a
    # live exception of the config comes first.
    decisions = DecisionStore(settings.state.database_url)
    previous_runs = history.trend(limit=1)
    in_force = decisions.in_force()
    reviewing = settings.reviews
    today = context.generated_at.date()
    excepted = review_exceptions(
        in_force, today, keep_requires_approval=reviewing.keep_requires_approval
    )
    for key, match in exceptions.by_key.items():
        if not match.expired or key not in excepted:
            excepted[key] = match
    items = enrich(
        findings,
        by_id,
        rules,
        org.home_region,
        context.generated_at,
        first_seen={k: seen.first_seen.date() for k, seen in changes.rows.items()},
        new_keys=changes.new,
        exceptions=excepted,
        sla_days={t.value: d for t, d in settings.reports.sla_days.items()},
        contacts=contacts.contacts,
        contact_errors=contacts.failed,
        organization=org_rules,
        windows=collection.windows,
        exception_approver=(settings.owners.security_team or rules.fallback or ("",))[0],
        exception_expires=(
            context.generated_at
            + timedelta(
                days=min(settings.remediation.exception_days, settings.exceptions.max_days_ahead)
            )
        ).date(),
    )
    items = apply_reviews(
        items,
        in_force,
        today,
        remove_within_days=reviewing.remove_within_days,
        keep_requires_approval=reviewing.keep_requires_approval,
    )
    # A promised removal is verified by the first run that reads its account and no longer
    # finds it (an export may hold only part of an account: it verifies nothing).
    newly_verified = (
        []
        if deps.files
        else removals_verified(
            in_force, (f.key for f in findings), (c.account_id for c in coverage if c.covered)
        )
    )
    in_force = {
        **in_force,
        **{d.key: verified(d, context.run_id, context.generated_at) for d in newly_verified},
    }
    resolved = resolved_findings(changes)
    reports = by_owner(
        items,
        rules.fallback,
        context,
        coverage,
        resolved=resolved,
        resolved_owner=lambda r: _resolved_owner(r, by_id, rules, contacts.contacts),
        notices_by_recipient=_notices(exceptions, items, rules.fallback, settings.owners.allows),
    )
    summary = summarise(
        items,
        reports,
        context,
        coverage,
        skipped=sum(skipped_reasons.values()),
        quarantined=len(normalised.quarantined),
        resolved=resolved,
        notices=exceptions.notices,
        trend=(*history.trend(limit=11), _this_run(context, changes)),
        lookalikes=tuple(
            Counter(q.lookalike for q in normalised.quarantined if q.lookalike).items()
        ),
        organization_access_notes=org_notes,
        review_progress=progress(
            in_force, items, keep_requires_approval=reviewing.keep_requires_approval
        ),
    )

    # The findings, items and reports live until the run ends and hold no reference cycles.
    # Moved out of the collector's sight, they stop making every full collection walk 100,000
    # findings' objects while the data files and the organization summary are written.
    gc.freeze()
    # WeasyPrint loads here, where a run renders, not when the CLI starts: commands that never
    # render (validate-config, evidence verify...) neither pay for it nor break with it.
    from .render.parallel import render_owner_files
    from .render.pdf import PdfLimits, render_summary_pdf

    deps.progress(f"rendering {len(reports)} owner reports")
    env = make_environment(settings.reports.template_dir)
    # Owner files render in worker processes from here on, while this process writes the data
    # files and the organization summary.
    owner_files = render_owner_files(
        reports,
        settings.reports.template_dir,
        settings.reports.render_workers,
        PdfLimits(
            settings.reports.pdf_findings_per_account, settings.reports.pdf_detailed_findings
        ),
    )
    # One pass over the findings writes both data files and the organization workbook's
    # Findings sheet; the workbook's other sheets follow after the summary PDF.
    with SummaryWorkbook(summary) as org_book:
        folder.write_together(
            ("data/findings.json", "data/findings.csv"),
            findings_data_chunks(org_book.items, context, on_record=org_book.add),
        )
        # The schema the data files were written to, hashed with them in the manifest.
        folder.write(SCHEMA_PATH, schema_json())
        folder.write_json("data/coverage.json", [_coverage_record(c) for c in coverage])
        folder.write_json(
            "data/quarantine.json",
            [
                {
                    "source": q.source,
                    "origin": q.origin,
                    "reason": q.reason,
                    # Who really produced a look-alike of an Access Analyzer finding; else null.
                    "lookalike": _lookalike_record(q.lookalike) if q.lookalike else None,
                    "record": q.record,
                }
                for q in normalised.quarantined
            ],
        )
        _review_evidence(
            folder,
            decisions,
            in_force,
            items,
            context,
            reviewing,
            since=previous_runs[-1].started_at if previous_runs else None,
        )
        folder.write("summary/summary.pdf", render_summary_pdf(summary, env))
        folder.write("summary/findings.xlsx", org_book.finish())

    deliverer = open_deliverer(
        settings,
        env=env,
        run_id=context.run_id,
        write=folder.write,
        sessions=sessions,
        round_id=deps.delivery_round,
        should_stop=deps.should_stop,
        preview=deps.preview,
        slot=deps.delivery_slot,
    )
    deps.progress(f"delivering by {deliverer.transport.name} (round {deliverer.round_id})")
    try:
        delivery = deliverer.deliver(
            ((r.report, _owner_files(r, folder)) for r in owner_files),
            summary,
            (
                # Read back from the run folder: what is mailed is what the manifest hashes.
                Attachment("summary.pdf", _written(folder, "summary/summary.pdf"), *PDF_TYPE),
                Attachment("findings.xlsx", _written(folder, "summary/findings.xlsx"), *XLSX_TYPE),
            ),
        )
    finally:
        owner_files.close()
        close_deliverer(deliverer)
    deliveries = delivery.manifest()
    outbox = delivery.files

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
        undelivered=tuple(
            (address, error) for d in delivery.failures for address, _, error in d.undelivered()
        ),
        new=len(changes.new),
        resolved=len(changes.resolved),
        lookalikes=summary.lookalikes,
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
                "lookalikes": [
                    {**_lookalike_record(origin), "findings": count}
                    for origin, count in summary.lookalikes
                ],
                "records": {name: len(records) for name, records in raw.items()},
            },
            "source_failures": failures,
            "telemetry": collection.telemetry.as_dict() if collection.telemetry else None,
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
    try:
        decisions.verify_removals([d.id for d in newly_verified], context.run_id,
                                  context.generated_at)  # fmt: skip
    finally:
        decisions.dispose()
    return result


def _review_evidence(
    folder: RunFolder,
    store: DecisionStore,
    in_force: Mapping[str, RecordedDecision],
    items: Sequence[ReportItem],
    context: RunContext,
    reviewing: ReviewsSettings,
    since: datetime | None,
) -> None:
    """`data/decisions.json` (every decision in force, with its provenance and where it stands)
    and every workbook imported since the previous run, byte for byte (`data/imports/`)."""
    found = {i.finding.key: i.review for i in items if i.review is not None}
    today = context.generated_at.date()
    imported = store.imports(since=since, until=context.generated_at, content=True)
    paths = {}
    for f in imported:
        paths[f.sha256] = folder.write(f"data/imports/{f.sha256}.xlsx", f.content).path
    folder.write_json(
        "data/decisions.json",
        {
            "schema_version": 1,
            "run_id": context.run_id,
            "generated_at": iso_datetime(context.generated_at),
            "decisions": [
                decision_record(
                    d,
                    outcome(
                        d,
                        found,
                        today,
                        remove_within_days=reviewing.remove_within_days,
                        keep_requires_approval=reviewing.keep_requires_approval,
                    ),
                    reviewing.remove_within_days,
                )
                for d in sorted(in_force.values(), key=lambda d: d.id)
            ],
            "imported_since_previous_run": [
                {
                    "sha256": f.sha256,
                    "file_name": f.filename,
                    "path": paths[f.sha256],
                    "run_id": f.run_id,
                    "owner": f.owner,
                    "imported_by": f.imported_by,
                    "imported_at": iso_datetime(f.imported_at),
                    "recorded": f.recorded,
                    "rejected": f.rejected,
                }
                for f in imported
            ],
        },
    )


def _trust_policies(
    settings: Settings,
    deps: Dependencies,
    findings: list[Finding],
    rules: OrganizationRules,
) -> tuple[list[Finding], tuple[str, ...]]:
    """Findings with the trust policy of each role not recognised by name (read through the
    member role), and what could not be read, for the security team's list."""
    roles: dict[str, dict[str, str]] = {}
    for f in findings:
        if f.principal_type == "role" and not f.trust_policy and classify(f, rules) is None:
            roles.setdefault(f.account_id, {})[f.principal_arn] = f.principal_name
    if not roles:
        return findings, ()
    count = sum(len(r) for r in roles.values())
    if deps.files or deps.sessions is None:
        return findings, (
            f"Trust policies of {count} role(s) were not read (exported files, no AWS access): "
            "they were recognised by name only.",
        )
    if not settings.remediation.read_trust_policies:
        return findings, (
            f"Trust policies of {count} role(s) were not read (remediation.read_trust_policies "
            "is false): they were recognised by name only.",
        )
    deps.progress(f"reading trust policies of {count} role(s) in {len(roles)} account(s)")
    read = read_trust_policies(
        deps.sessions,
        settings.organization.member_role_name,
        {account: sorted(names.items()) for account, names in roles.items()},
        settings.collection.workers,
    )
    notes = tuple(
        f"Trust policies of {len(roles[account])} role(s) in account {account} were not read "
        f"({why}): they were recognised by name only."
        for account, why in sorted(read.failures.items())
    )
    docs = read.documents
    return [
        replace(f, trust_policy=docs[f.principal_arn]) if f.principal_arn in docs else f
        for f in findings
    ], notes


def _keep_exports(folder: RunFolder, reads: Sequence[FileRead]) -> None:
    """`data/raw/` of a run from files: each export by reference (`files.json`: its path,
    SHA-256, size and records) and, when every document in it was recognised, a copy as it is
    (`files/<n>-<name>`), streamed. A file with anything unrecognised or unreadable in it may
    hold anything (credentials, say), as its quarantine entries keep only shape and digest, so
    it is referenced and not copied; so is a file that changed after the run read it."""
    index: list[dict[str, Any]] = []
    width = len(str(len(reads)))
    for n, read in enumerate(reads, 1):
        entry: dict[str, Any] = {"file": str(read.path), "records": read.records}
        why = None
        if read.unrecognised:
            why = (
                f"{read.unrecognised} record(s) not recognised or not readable: it may hold "
                "anything, so it is only referenced"
            )
        elif file_stat(read.path) != read.stat:
            why = "changed after the run read it"
        try:
            handle = read.path.open("rb")
        except OSError as exc:  # gone since the run read it
            index.append({**entry, "sha256": None, "size": None, "copy": None, "why": str(exc)})
            continue
        with handle:
            if why is None:
                name = re.sub(r"[^A-Za-z0-9._-]", "_", read.path.name).lstrip(".") or "export"
                kept = folder.write_chunks(f"data/raw/files/{n:0{width}d}-{name}", _blocks(handle))
                entry.update(sha256=kept.sha256, size=kept.size, copy=kept.path)
            else:
                digest = hashlib.file_digest(handle, "sha256")
                entry.update(sha256=digest.hexdigest(), size=handle.tell(), copy=None, why=why)
        index.append(entry)
    folder.write_json("data/raw/files.json", index)


def _blocks(handle: BinaryIO, size: int = 1 << 20) -> Iterator[bytes]:
    while block := handle.read(size):
        yield block


def _written(folder: RunFolder, relpath: str) -> bytes:
    return read_inside(folder.partial, relpath)


def _owner_files(rendered: OwnerFilesRendered, folder: RunFolder) -> tuple[Attachment, ...]:
    slug = owner_slug(rendered.report.owner)
    attachments = (
        Attachment("report.pdf", rendered.pdf, *PDF_TYPE),
        Attachment("findings.xlsx", rendered.xlsx, *XLSX_TYPE),
    )
    for a in attachments:
        folder.write(f"owners/{slug}/{a.filename}", a.data)
    return attachments


def _lookalike_record(origin: Lookalike) -> dict[str, str]:
    return {"product": origin.product, "account_id": origin.account_id}


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


def _resolved_owner(
    resolved: ResolvedFinding,
    accounts: Mapping[str, Account],
    rules: OwnerRules,
    contacts: Mapping[str, str] | None = None,
) -> str | None:
    """Who hears that a finding is gone: its principal no longer exists, so the ladder runs on
    what remains (account tag, OU, owner map, the SECURITY contacts this run read for open
    findings) — the owner who had it, in the usual case."""
    finding = Finding(FindingType(resolved.type), resolved.account_id, resolved.principal_arn)
    account = accounts.get(resolved.account_id) or unknown_account(resolved.account_id)
    return resolve_owner(finding, account, rules, contacts or {}).owner


def _this_run(context: RunContext, changes: HistoryDiff) -> TrendPoint:
    return TrendPoint(
        run_id=context.run_id,
        started_at=context.generated_at,
        findings=len(changes.new) + len(changes.still_open),
        new=len(changes.new),
        resolved=len(changes.resolved),
    )


def _notices(
    outcome: ExceptionOutcome,
    items: Sequence[ReportItem],
    fallback: Sequence[str],
    allows: Callable[[str], bool],
) -> dict[str, tuple[ExceptionNotice, ...]]:
    """Exception notices per recipient: owners and approvers, and the fallback recipients for
    the unowned findings they receive."""
    grouped = dict(
        notices_by_recipient(outcome, {i.finding.key: i.owner.owner for i in items}, allows)
    )
    unowned = notices_for([i.finding.key for i in items if i.owner.owner is None], outcome)
    for recipient in fallback if unowned else ():
        have = grouped.get(recipient, ())
        grouped[recipient] = (*have, *(n for n in unowned if n not in have))
    return grouped
