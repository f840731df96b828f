"""The collect stage: every enabled source, with credentials, pacing, telemetry and coverage.

    collection = collect(settings, sessions, accounts, out_of_scope, progress, state_url, now)

Two phases. First the organization-wide sources (Security Hub CSPM, the new Security Hub,
Access Analyzer), one thread each, all read in the delegated administrator. Then the account
sources (the IAM fallback) in a bounded thread pool, one AssumeRole per account, for the
accounts that need them: with `sources.iam.mode: fallback` those no organization-wide source
covered, with `always` every account in scope. A failure costs only what it touches: a
source that fails is a `failures` entry, an account whose role cannot be assumed is not
covered by that source, with the AWS error code; the run goes on.

Coverage is per account and per source (`discover.combine_coverage`): Security Hub covers its
members and the administrator; an organization analyzer covers every account but the ones its
configuration excludes and the ones younger than its tracking period (their principals cannot
have been unused for that long yet); an account analyzer covers only its own account.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, overload

from botocore.exceptions import BotoCoreError, ClientError

from .cache import DetailsCache
from .config import Settings
from .discover import Verdict, combine_coverage, coverage_for
from .errors import error_text
from .models import Account, AccountCoverage, ObservationWindow, RawRecord
from .orgaccess import SERVICE_LINKED_ANALYZER, SERVICE_LINKED_DAYS, analyzer_window
from .ratelimit import Rate
from .session import SessionFactory
from .sources.access_analyzer import (
    AccessAnalyzerSource,
    AnalyzerInfo,
    RecommendationPolicy,
    SourceUnavailable,
    describe_analyzer,
    find_analyzer,
)
from .sources.files import ExportRecords
from .sources.interface import AccountSource
from .sources.security_hub import SecurityHubSource
from .telemetry import Display, NullDisplay, SourceStats, TelemetryReport, auto_display

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

# AssumeRole error codes that mean "this role may not be assumed", as opposed to a failure.
_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "InvalidClientTokenId"})


class RecordSpool(Sequence[RawRecord]):
    """A source's raw records on disk (JSON lines in a private temporary file), read back on
    each iteration: 100,000 parsed findings with details would otherwise hold ~1 GB of dicts.

    Payloads come back JSON-plain (timestamps as ISO 8601 text), which `normalise` reads like
    the API's datetimes. Written by one thread, then read-only; the file goes with the object.
    """

    def __init__(self, records: Iterable[RawRecord] = ()) -> None:
        handle, name = tempfile.mkstemp(prefix="reporter-raw-", suffix=".jsonl")
        self._path = Path(name)
        self._count = 0
        self._cleanup = weakref.finalize(self, _remove, self._path)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            for record in records:
                out.write(json.dumps([record.source, record.origin, record.payload], default=_iso))
                out.write("\n")
                self._count += 1

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[RawRecord]:
        with self._path.open(encoding="utf-8") as lines:
            for line in lines:
                source, origin, payload = json.loads(line)
                yield RawRecord(source, payload, origin)

    @overload
    def __getitem__(self, index: int) -> RawRecord: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[RawRecord]: ...

    def __getitem__(self, index: int | slice) -> RawRecord | Sequence[RawRecord]:
        # Sequential storage: positional access reads up to the position (tests, small runs).
        items = list(self)
        return items[index]


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot spool {type(value).__name__}")


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Collection:
    """What the collect stage hands on: raw records per source and how far they reach."""

    raw: Mapping[str, Sequence[RawRecord]]  # a RecordSpool per source
    failures: Mapping[str, str]
    # Every account listed: in scope (covered or why not) and out of scope, sorted by id.
    coverage: tuple[AccountCoverage, ...]
    telemetry: TelemetryReport | None = None
    # Records a source dropped by its own client-side filter, by reason (counted as skipped).
    skipped: Mapping[str, int] = field(default_factory=dict)
    # What "unused" was measured over, per source that was read (`orgaccess.window_for`).
    windows: Mapping[str, ObservationWindow] = field(default_factory=dict)


@dataclass(frozen=True)
class CollectOptions:
    """The `collection` settings, with defaults for a Settings that has no such section yet."""

    workers: int = 8
    account_timeout_seconds: float = 300.0
    recommendation_poll_seconds: float = 0.5
    recommendation_max_polls: int = 10
    access_analyzer_rate: float = 0.0  # requests/s; 0 = not paced (AWS publishes none)

    @classmethod
    def of(cls, settings: Settings) -> CollectOptions:
        section = getattr(settings, "collection", None)
        if section is None:
            return cls()
        return cls(
            **{
                name: getattr(section, name)
                for name in cls.__dataclass_fields__
                if hasattr(section, name)
            }
        )


class _OrgSource(Protocol):
    name: str

    def collect(self) -> Iterator[RawRecord]: ...


@dataclass
class _Run:
    """Mutable state of one collection; only `collect` sees it."""

    settings: Settings
    sessions: SessionFactory
    display: Display
    options: CollectOptions
    now: datetime
    state_url: str
    raw: dict[str, Sequence[RawRecord]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    totals: dict[str, int | None] = field(default_factory=dict)
    caches: list[DetailsCache] = field(default_factory=list)
    windows: dict[str, ObservationWindow] = field(default_factory=dict)

    def page(self, source: str, records: int) -> None:
        stats = self.sessions.telemetry.source(source, pages=1, records=records)
        self.display.update(source, stats, self.totals.get(source))

    def account_done(self, source: str, records: int, failed: bool) -> None:
        stats = self.sessions.telemetry.source(
            source, accounts=1, records=records, failed_accounts=int(failed)
        )
        self.display.update(source, stats, self.totals.get(source))


def collect(
    settings: Settings,
    sessions: SessionFactory,
    accounts: Sequence[Account],
    out_of_scope: Sequence[AccountCoverage],
    progress: Progress,
    state_url: str,
    now: datetime,
    *,
    display: Display | None = None,
) -> Collection:
    """Read every enabled source for `accounts` (in scope); see the module docstring."""
    options = CollectOptions.of(settings)
    if options.access_analyzer_rate > 0:
        sessions.limiter.set_rate(
            "accessanalyzer.*",
            Rate(options.access_analyzer_rate, max(1, int(options.access_analyzer_rate))),
        )
    run = _Run(settings, sessions, display or auto_display(), options, now, state_url)
    try:
        _org_phase(run, accounts, progress)
        _account_phase(run, accounts, progress)
    finally:
        for cache in run.caches:
            cache.dispose()
    coverage = combine_coverage(accounts, run.verdicts)
    report = sessions.telemetry.report(sessions.limiter.waited())
    run.display.finish(report)
    return Collection(
        raw=dict(run.raw),
        failures=dict(run.failures),
        coverage=tuple(sorted([*coverage, *out_of_scope], key=lambda c: c.account_id)),
        telemetry=report,
        skipped=dict(run.skipped),
        windows=dict(run.windows),
    )


def collect_files(paths: Sequence[Path], progress: Progress) -> Collection:
    """Exported files only: no AWS at all. Coverage follows from what the files name.

    Nothing is read here: the records are read from the files, incrementally, whenever they
    are iterated (`ExportRecords`), so a run holds one record at a time, not the export."""
    progress("reading exported files")
    return Collection(raw={"files": ExportRecords(paths)}, failures={}, coverage=())


def files_coverage(accounts: Sequence[Account]) -> list[AccountCoverage]:
    return coverage_for(accounts, ["files"])


# Phase 1: organization-wide sources, read in the delegated administrator.


def _org_phase(run: _Run, accounts: Sequence[Account], progress: Progress) -> None:
    sources_settings = run.settings.sources
    wanted = [
        name
        for name in ("security_hub", "security_hub_v2", "access_analyzer")
        if getattr(getattr(sources_settings, name, None), "enabled", False)
    ]
    if not wanted:
        return
    org = run.settings.organization
    sessions = run.sessions
    try:
        admin = (
            sessions.assume(org.delegated_admin_role_arn) if org.delegated_admin_role_arn else None
        )
    except (ClientError, BotoCoreError) as exc:
        text = "delegated administrator role: " + _assume_error(exc)
        for name in wanted:
            run.failures[name] = text
            run.verdicts[name] = _nowhere(text)
        return
    region = org.home_region
    analyzer = _analyzer_source(run, admin) if "access_analyzer" in wanted else None
    info = _analyzer_info(run, admin, analyzer)
    _windows(run, wanted, info)
    built: list[tuple[_OrgSource, Callable[[], Verdict]]] = []
    if "security_hub" in wanted:
        hub = SecurityHubSource(
            sessions.client("securityhub", admin, region=region),
            region,
            on_page=lambda n: run.page("security_hub", n),
        )
        built.append((hub, _hub_verdict(run, hub, admin, info)))
    if "security_hub_v2" in wanted:
        v2 = _security_hub_v2(run, admin, region)
        if v2 is not None:
            members = SecurityHubSource(
                sessions.client("securityhub", admin, region=region), region
            )
            built.append((v2, _hub_verdict(run, members, admin, info)))
    if analyzer is not None:
        built.append((analyzer, lambda: _analyzer_verdict(info, run.now)))
    progress("collecting from " + ", ".join(source.name for source, _ in built))
    with ThreadPoolExecutor(len(built) or 1, thread_name_prefix="collect") as pool:
        futures = [(source, verdict, pool.submit(_drain, run, source)) for source, verdict in built]
        for source, verdict, future in futures:
            error = future.result()
            run.skipped.update(getattr(source, "dropped", None) or {})
            if error:
                run.failures[source.name] = error
                run.verdicts[source.name] = _nowhere(f"source failed ({error})")
                log.warning("source %s failed: %s", source.name, error)
                continue
            try:
                run.verdicts[source.name] = verdict()
            except (ClientError, BotoCoreError) as exc:
                text = error_text(exc)
                run.verdicts[source.name] = _nowhere(f"coverage unknown ({text})")
    if analyzer is not None:
        counts = analyzer.counts
        telemetry = run.sessions.telemetry
        telemetry.count_cache("details_fetched", counts.details_fetched)
        telemetry.count_cache("details_cached", counts.details_cached)
        telemetry.count_cache("recommendations_fetched", counts.recommendations_fetched)
        telemetry.count_cache("recommendations_cached", counts.recommendations_cached)
        telemetry.count_cache("recommendations_unfinished", counts.recommendations_unfinished)
        if analyzer.denied:
            run.failures["access_analyzer.recommendations"] = analyzer.denied


def _windows(run: _Run, wanted: Sequence[str], info: AnalyzerInfo | None) -> None:
    """The observation window of each organization-wide source: Access Analyzer and Security
    Hub CSPM relay the analyzer's (its `unusedAccessAge`, or 90 days fixed when it is Security
    Hub's service-linked analyzer); the new Security Hub's unused findings come from its
    service-linked analyzer (reference §2.10)."""
    created = info.created_at.date() if info and info.created_at else None
    window = analyzer_window(
        info.tracking_days if info else None, info.managed_by if info else "", created
    )
    for name in wanted:
        if name == "security_hub_v2":
            since = created if info and info.managed_by else None
            run.windows[name] = ObservationWindow(
                SERVICE_LINKED_DAYS, SERVICE_LINKED_ANALYZER, since
            )
        else:
            run.windows[name] = window


def _drain(run: _Run, source: _OrgSource) -> str:
    """Read a source to the end in this thread; the error text, or "" when it worked."""
    started = time.monotonic()
    try:
        records = RecordSpool(source.collect())
    except (ClientError, BotoCoreError, SourceUnavailable) as exc:
        return error_text(exc)
    finally:
        run.sessions.telemetry.source(source.name, seconds=time.monotonic() - started)
    run.raw[source.name] = records
    return ""


def _analyzer_source(run: _Run, admin: Any) -> AccessAnalyzerSource:
    settings = run.settings.sources.access_analyzer
    options = run.options
    cache: DetailsCache | None = DetailsCache(run.state_url) if run.state_url else None
    if cache is not None:
        run.caches.append(cache)
    wants = getattr(settings, "recommendations", True)
    return AccessAnalyzerSource(
        run.sessions.client("accessanalyzer", admin, region=run.settings.organization.home_region),
        settings.analyzer_arn or None,
        cache=cache,
        recommendations=RecommendationPolicy(
            enabled=bool(wants),
            first_poll_seconds=options.recommendation_poll_seconds,
            max_polls=options.recommendation_max_polls,
        ),
        workers=options.workers,
        on_page=lambda n: run.page("access_analyzer", n),
    )


def _analyzer_info(
    run: _Run, admin: Any, source: AccessAnalyzerSource | None
) -> AnalyzerInfo | None:
    """The unused-access analyzer's configuration, also when only Security Hub is read:
    Security Hub's unused findings come from it, so its exclusions limit Security Hub too."""
    try:
        if source is not None:
            return source.analyzer()
        client = run.sessions.client(
            "accessanalyzer", admin, region=run.settings.organization.home_region
        )
        return describe_analyzer(client, find_analyzer(client))
    except (ClientError, BotoCoreError, SourceUnavailable) as exc:
        log.info("analyzer configuration unknown: %s", error_text(exc))
        return None


def _security_hub_v2(run: _Run, admin: Any, region: str) -> _OrgSource | None:
    try:
        from .sources.security_hub_v2 import SecurityHubV2Source
    except ImportError:  # pragma: no cover - the module ships with the package
        run.failures["security_hub_v2"] = "not available in this version"
        return None
    source: _OrgSource = SecurityHubV2Source(
        run.sessions.client("securityhub", admin, region=region), region
    )
    return source


def _hub_verdict(
    run: _Run, hub: SecurityHubSource, admin: Any, info: AnalyzerInfo | None
) -> Callable[[], Verdict]:
    def verdict() -> Verdict:
        members = set(hub.members())
        sts = run.sessions.client("sts", admin)
        members.add(str(sts.get_caller_identity()["Account"]))
        analyzer = _analyzer_verdict(info, run.now) if info is not None else None

        def covers(account: Account) -> str | None:
            if account.id not in members:
                return "Security Hub off (not a member of the administrator)"
            # Security Hub only relays the analyzer's findings.
            return analyzer(account) if analyzer is not None else ""

        return covers

    return verdict


def _analyzer_verdict(info: AnalyzerInfo | None, now: datetime) -> Verdict:
    if info is None:
        return _nowhere("no unused-access analyzer")

    def covers(account: Account) -> str | None:
        if not info.organization_wide and account.id != info.account_id:
            return f"the account analyzer covers only account {info.account_id}"
        if account.id in info.excluded_accounts:
            return "excluded by the analyzer"
        if (
            info.tracking_days
            and account.joined_at is not None
            and account.joined_at > now - timedelta(days=info.tracking_days)
        ):
            return f"younger than the analyzer's tracking period ({info.tracking_days} days)"
        return ""

    return covers


def _nowhere(reason: str) -> Verdict:
    return lambda account: reason


# Phase 2: account sources, one AssumeRole per account, in a bounded pool.


def _account_phase(run: _Run, accounts: Sequence[Account], progress: Progress) -> None:
    iam = getattr(run.settings.sources, "iam", None)
    if iam is None or not getattr(iam, "enabled", False):
        return
    mode = str(getattr(iam, "mode", "fallback"))
    org_verdicts = dict(run.verdicts)
    if mode == "always":
        targets = list(accounts)
    else:
        targets = [a for a in accounts if not any(v(a) == "" for v in org_verdicts.values())]
    source = _iam_source(run, iam)
    if source is None:
        return
    name = source.name
    run.windows[name] = ObservationWindow(int(getattr(iam, "unused_after_days", 90)), "iam")
    run.totals[name] = len(targets)
    targeted = {a.id for a in targets}
    outcome: dict[str, str] = {}
    if targets:
        progress(f"collecting from {name} in {len(targets)} account(s)")
        started = time.monotonic()
        records: list[RawRecord] = []
        with ThreadPoolExecutor(run.options.workers, thread_name_prefix=name) as pool:
            for account, (found, error) in zip(
                targets, pool.map(lambda a: _read_account(run, source, a), targets), strict=True
            ):
                outcome[account.id] = error
                records.extend(found)
                run.account_done(name, len(found), bool(error))
        run.sessions.telemetry.source(name, seconds=time.monotonic() - started)
        run.raw[name] = RecordSpool(records)

    def covers(account: Account) -> str | None:
        if account.id not in targeted:
            return None  # another source covers it; the fallback was not needed
        return outcome.get(account.id, "not read")

    run.verdicts[name] = covers


def _iam_source(run: _Run, iam: Any) -> AccountSource | None:
    try:
        from .sources.iam import IamSource
    except ImportError:  # pragma: no cover - the module ships with the package
        run.failures["iam"] = "not available in this version"
        return None
    days = getattr(iam, "unused_after_days", 90)
    source: AccountSource = IamSource(int(days), run.now)
    return source


def _read_account(
    run: _Run, source: AccountSource, account: Account
) -> tuple[list[RawRecord], str]:
    """One account: assume its role, read it within the timeout. (records, "" or why not)."""
    sessions = run.sessions
    role = sessions.member_role_arn(account.id, run.settings.organization.member_role_name)
    try:
        session = sessions.assume(role)
    except (ClientError, BotoCoreError) as exc:
        return [], _assume_error(exc)
    deadline = time.monotonic() + run.options.account_timeout_seconds
    records: list[RawRecord] = []
    try:
        for record in source.collect_account(
            account, lambda service: sessions.client(service, session)
        ):
            records.append(record)
            if time.monotonic() > deadline:
                return [], f"timed out after {run.options.account_timeout_seconds:g} s"
    except (ClientError, BotoCoreError) as exc:
        return [], error_text(exc)
    except Exception as exc:  # one account's surprise must not end the run
        log.exception("account %s: %s failed", account.id, source.name)
        return [], f"{type(exc).__name__}: {error_text(exc)}"
    return records, ""


def _assume_error(exc: ClientError | BotoCoreError) -> str:
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "Error"))
        return f"AssumeRole denied: {code}" if code in _DENIED else f"AssumeRole failed: {code}"
    return f"AssumeRole failed: {type(exc).__name__}"


__all__ = [
    "CollectOptions",
    "Collection",
    "NullDisplay",
    "SourceStats",
    "collect",
    "collect_files",
    "files_coverage",
]
