"""IAM Access Analyzer: unused-access findings through the v2 API (reference §1.4–1.8).

The v1 ListFindings never returns unused-access findings; ListFindingsV2 and GetFindingV2 do.
GetFindingV2 paginates `findingDetails` itself, so its paginator is used to get all of it.

Per ListFindingsV2 page (100 findings), details are fetched in a bounded thread pool (a call
is a network round trip; an organization has tens of thousands of findings). A finding whose
id and `updatedAt` are in the details cache (`reporter.cache`) is not fetched again.

UnusedPermission findings also get their recommendation (§1.8): GenerateFindingRecommendation,
then GetFindingRecommendation polled with exponential backoff up to a bound. Polls are
deferred, not waited for: while later pages are read the recommendations are computed, and
only the last ones are waited for at the end. The record carries the recommendation under
`recommendation` exactly as GetFindingRecommendation returned it (both spellings of
`recommendationType` occur; `normalise` reads either).

`analyzer()` describes the analyzer (GetAnalyzer): its type (an ACCOUNT_UNUSED_ACCESS analyzer
covers only its own account), the accounts its configuration excludes, its tracking period, when
it was created and, for a service-linked analyzer, who manages it (the observation window).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..cache import Cached, DetailsCache, stamp, to_json
from ..errors import ReporterError
from ..models import FindingType, RawRecord

log = logging.getLogger(__name__)

UNUSED_ANALYZER_TYPES = ("ORGANIZATION_UNUSED_ACCESS", "ACCOUNT_UNUSED_ACCESS")
ACTIVE_UNUSED_FILTER = {
    "status": {"eq": ["ACTIVE"]},
    "findingType": {"eq": [t.value for t in FindingType]},
}
TERMINAL = frozenset({"SUCCEEDED", "FAILED"})
# Errors that will not go away by asking again next week: stored as a FAILED recommendation.
_PERMANENT = frozenset({"ValidationException", "InvalidParameterException"})
_STEPS_PAGE = 1000  # GetFindingRecommendation's maximum maxResults


class SourceUnavailable(ReporterError):
    """The source cannot be read at all (e.g. no unused-access analyzer exists)."""


@dataclass(frozen=True)
class AnalyzerInfo:
    """What the analyzer's configuration says about coverage."""

    arn: str
    type: str  # ORGANIZATION_UNUSED_ACCESS | ACCOUNT_UNUSED_ACCESS | "" when unknown
    tracking_days: int | None = None
    excluded_accounts: frozenset[str] = frozenset()
    note: str = ""  # why type/exclusions are unknown, when they are
    # Set only on service-linked analyzers (e.g. `securityhubv2.amazonaws.com`): their tracking
    # period is fixed at 90 days, whatever the configuration says.
    managed_by: str = ""
    created_at: datetime | None = None

    @property
    def account_id(self) -> str:
        return self.arn.split(":")[4] if self.arn.count(":") >= 5 else ""

    @property
    def organization_wide(self) -> bool:
        return self.type != "ACCOUNT_UNUSED_ACCESS"


@dataclass(frozen=True)
class RecommendationPolicy:
    """Whether and how long to wait for recommendations."""

    enabled: bool = True
    first_poll_seconds: float = 0.5
    backoff: float = 2.0
    max_interval_seconds: float = 30.0
    max_polls: int = 10

    def delay(self, polls: int) -> float:
        return min(self.max_interval_seconds, self.first_poll_seconds * self.backoff**polls)


def find_analyzer(client: Any) -> str:
    """The organization analyzer if there is one, else the account's; ACTIVE only."""
    for analyzer_type in UNUSED_ANALYZER_TYPES:
        pages = client.get_paginator("list_analyzers").paginate(type=analyzer_type)
        for page in pages:
            for analyzer in page["analyzers"]:
                if analyzer.get("status") == "ACTIVE":
                    return str(analyzer["arn"])
    raise SourceUnavailable(
        "no ACTIVE unused-access analyzer in this account and Region "
        "(hint: set sources.access_analyzer.analyzer_arn, or create an "
        "ORGANIZATION_UNUSED_ACCESS analyzer in the delegated administrator)"
    )


def describe_analyzer(client: Any, arn: str) -> AnalyzerInfo:
    """GetAnalyzer → type, exclusions, tracking period. Unknown (with a note) if refused."""
    try:
        analyzer = client.get_analyzer(analyzerName=arn.rsplit("/", 1)[-1])["analyzer"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "Error")
        return AnalyzerInfo(arn, "", note=f"GetAnalyzer failed ({code}): exclusions unknown")
    unused = (analyzer.get("configuration") or {}).get("unusedAccess") or {}
    excluded: set[str] = set()
    for rule in (unused.get("analysisRule") or {}).get("exclusions") or ():
        excluded.update(str(a) for a in rule.get("accountIds") or ())
    age = unused.get("unusedAccessAge")
    created = analyzer.get("createdAt")
    return AnalyzerInfo(
        arn=str(analyzer.get("arn") or arn),
        type=str(analyzer.get("type") or ""),
        tracking_days=int(age) if isinstance(age, int) else None,
        excluded_accounts=frozenset(excluded),
        managed_by=str(analyzer.get("managedBy") or ""),
        created_at=created if isinstance(created, datetime) else None,
    )


@dataclass
class _Work:
    """One finding on its way to a record."""

    summary: Mapping[str, Any]
    details: Mapping[str, Any] | None = None  # GetFindingV2 result (None: vanished)
    recommendation: Mapping[str, Any] | None = None
    cached: bool = False
    fresh: bool = False  # the recommendation was obtained in this run
    generated: bool = False
    polls: int = 0
    due: float = 0.0

    @property
    def id(self) -> str:
        return str(self.summary["id"])

    @property
    def wants_recommendation(self) -> bool:
        return self.summary.get("findingType") == FindingType.UNUSED_PERMISSION.value

    @property
    def settled(self) -> bool:
        return self.recommendation is not None and self.recommendation.get("status") in TERMINAL


@dataclass
class _Counts:
    details_fetched: int = 0
    details_cached: int = 0
    recommendations_fetched: int = 0
    recommendations_cached: int = 0
    recommendations_unfinished: int = 0
    vanished: int = 0


class AccessAnalyzerSource:
    name = "access_analyzer"

    def __init__(
        self,
        client: Any,
        analyzer_arn: str | None = None,
        *,
        cache: DetailsCache | None = None,
        recommendations: RecommendationPolicy | None = None,
        workers: int = 8,
        on_page: Callable[[int], None] = lambda records: None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._analyzer_arn = analyzer_arn
        self._info: AnalyzerInfo | None = None
        self._cache = cache
        self._policy = recommendations or RecommendationPolicy()
        self._workers = max(1, workers)
        self._on_page = on_page
        self._clock = clock
        self._sleep = sleep
        self._now = now
        self.counts = _Counts()
        self.denied = ""  # set when recommendations may not be generated at all

    def analyzer(self) -> AnalyzerInfo:
        if self._info is None:
            arn = self._analyzer_arn or find_analyzer(self._client)
            self._info = describe_analyzer(self._client, arn)
        return self._info

    def collect(self) -> Iterator[RawRecord]:
        arn = self.analyzer().arn
        index = self._cache.index(arn) if self._cache else {}
        seen: set[str] = set()
        pending: dict[str, _Work] = {}
        pages = self._client.get_paginator("list_findings_v2").paginate(
            analyzerArn=arn, filter=ACTIVE_UNUSED_FILTER
        )
        with ThreadPoolExecutor(self._workers, thread_name_prefix="access-analyzer") as pool:
            for page in pages:
                summaries = page["findings"]
                self._on_page(len(summaries))
                seen.update(str(s["id"]) for s in summaries)
                work = self._from_cache(arn, summaries, index)
                for _ in pool.map(lambda w: self._fetch(arn, w), work):
                    pass
                self._counts_details(work)
                done: list[_Work] = []
                for w in work:
                    if w.details is None:
                        self.counts.vanished += 1
                    elif w.generated and not w.settled:
                        pending[w.id] = w
                    else:
                        done.append(w)
                done += self._poll(pool, arn, pending, wait=False)
                yield from self._finish(arn, done)
            yield from self._finish(arn, self._poll(pool, arn, pending, wait=True))
        if self._cache is not None:
            self._cache.forget(arn, [i for i in index if i not in seen])

    def _from_cache(
        self, arn: str, summaries: list[Mapping[str, Any]], index: Mapping[str, str]
    ) -> list[_Work]:
        hits = [
            str(s["id"]) for s in summaries if index.get(str(s["id"])) == stamp(s.get("updatedAt"))
        ]
        cached = self._cache.load(arn, hits) if self._cache and hits else {}
        work = []
        for summary in summaries:
            entry = cached.get(str(summary["id"]))
            if entry is None:
                work.append(_Work(summary))
            else:
                work.append(_Work(summary, entry.details, entry.recommendation, cached=True))
        return work

    def _fetch(self, arn: str, w: _Work) -> None:
        """GetFindingV2 (all detail pages) unless cached; GenerateFindingRecommendation if
        a recommendation is wanted and none is known."""
        if w.details is None:
            try:
                w.details = (
                    self._client.get_paginator("get_finding_v2")
                    .paginate(analyzerArn=arn, id=w.id)
                    .build_full_result()
                )
            except ClientError as exc:
                # Resolved or archived between the listing and now: nothing to report.
                if _code(exc) == "ResourceNotFoundException":
                    return
                raise
        if w.wants_recommendation and self._policy.enabled and not w.settled:
            self._generate(arn, w)

    def _generate(self, arn: str, w: _Work) -> None:
        if self.denied:
            return  # without the permission, asking per finding only costs calls
        try:
            self._client.generate_finding_recommendation(analyzerArn=arn, id=w.id)
        except ClientError as exc:
            if _code(exc) in ("AccessDeniedException", "AccessDenied"):
                # IAMAccessAnalyzerReadOnlyAccess lacks this action (reference §6).
                self.denied = f"GenerateFindingRecommendation denied: {_code(exc)}"
                log.warning("%s; no recommendations in this run", self.denied)
                return
            w.recommendation, w.fresh = _failed(exc), True
            return
        w.generated, w.due = True, self._clock() + self._policy.delay(0)

    def _poll(
        self, pool: ThreadPoolExecutor, arn: str, pending: dict[str, _Work], wait: bool
    ) -> list[_Work]:
        """Poll the recommendations that are due; with `wait`, until none is left."""
        finished: list[_Work] = []
        while pending:
            now = self._clock()
            due = [w for w in pending.values() if w.due <= now]
            if not due:
                if not wait:
                    break
                self._sleep(max(0.0, min(w.due for w in pending.values()) - now))
                continue
            for _ in pool.map(lambda w: self._get(arn, w), due):
                pass
            for w in due:
                if w.settled:
                    self.counts.recommendations_fetched += 1
                if w.settled or w.polls >= self._policy.max_polls:
                    if not w.settled:
                        self.counts.recommendations_unfinished += 1
                    finished.append(pending.pop(w.id))
                else:
                    w.due = self._clock() + self._policy.delay(w.polls)
        return finished

    def _get(self, arn: str, w: _Work) -> None:
        w.polls += 1
        try:
            result = (
                self._client.get_paginator("get_finding_recommendation")
                .paginate(analyzerArn=arn, id=w.id, PaginationConfig={"PageSize": _STEPS_PAGE})
                .build_full_result()
            )
        except ClientError as exc:
            w.recommendation, w.fresh = _failed(exc), True
            return
        if result.get("status") in TERMINAL:
            result.pop("ResponseMetadata", None)
            w.recommendation, w.fresh = result, True

    def _counts_details(self, work: list[_Work]) -> None:
        for w in work:
            if w.cached:
                self.counts.details_cached += 1
                if w.settled:
                    self.counts.recommendations_cached += 1
            elif w.details is not None:
                self.counts.details_fetched += 1

    def _finish(self, arn: str, done: list[_Work]) -> Iterator[RawRecord]:
        store: list[Cached] = []
        for w in done:
            if w.details is None:
                continue
            details = _plain(w.details)
            recommendation = _plain(w.recommendation) if w.settled and w.recommendation else None
            # Transient failures (throttled past every retry, ...) are not remembered.
            transient = recommendation is not None and bool(recommendation.pop("transient", 0))
            if not w.cached or (w.fresh and not transient):
                store.append(
                    Cached(
                        w.id,
                        stamp(w.summary.get("updatedAt")),
                        details,
                        None if transient else recommendation,
                    )
                )
            payload: dict[str, Any] = {**_plain(w.summary), **details, "analyzerArn": arn}
            if recommendation is not None:
                payload["recommendation"] = recommendation
            yield RawRecord(source=self.name, payload=payload, origin=arn)
        if self._cache is not None and store:
            self._cache.store(arn, store, self._now())


def _failed(exc: ClientError) -> dict[str, Any]:
    code = _code(exc)
    failed: dict[str, Any] = {
        "status": "FAILED",
        "error": {"code": code, "message": str(exc.response.get("Error", {}).get("Message", ""))},
    }
    if code not in _PERMANENT:
        failed["transient"] = True
    return failed


def _code(exc: ClientError | BotoCoreError) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "Error"))
    return type(exc).__name__


def _plain(value: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-safe (datetimes as ISO text), so a cached record equals a fetched one."""
    plain = json.loads(to_json(value))
    plain.pop("ResponseMetadata", None)
    return dict(plain)
