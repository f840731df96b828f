"""IAM Access Analyzer: unused-access findings through the v2 API (reference §1.4–1.6).

The v1 ListFindings never returns unused-access findings; ListFindingsV2 and GetFindingV2 do.
GetFindingV2 paginates `findingDetails` itself, so the paginator is used to get all of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from ..errors import ReporterError
from ..models import FindingType, RawRecord

UNUSED_ANALYZER_TYPES = ("ORGANIZATION_UNUSED_ACCESS", "ACCOUNT_UNUSED_ACCESS")
ACTIVE_UNUSED_FILTER = {
    "status": {"eq": ["ACTIVE"]},
    "findingType": {"eq": [t.value for t in FindingType]},
}


class SourceUnavailable(ReporterError):
    """The source cannot be read at all (e.g. no unused-access analyzer exists)."""


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


class AccessAnalyzerSource:
    name = "access_analyzer"

    def __init__(self, client: Any, analyzer_arn: str | None = None) -> None:
        self._client = client
        self._analyzer_arn = analyzer_arn

    def collect(self) -> Iterator[RawRecord]:
        arn = self._analyzer_arn or find_analyzer(self._client)
        pages = self._client.get_paginator("list_findings_v2").paginate(
            analyzerArn=arn, filter=ACTIVE_UNUSED_FILTER
        )
        details = self._client.get_paginator("get_finding_v2")
        for page in pages:
            for summary in page["findings"]:
                try:
                    finding = details.paginate(
                        analyzerArn=arn, id=summary["id"]
                    ).build_full_result()
                except ClientError as exc:
                    # Resolved or archived between the listing and now: nothing to report.
                    if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                        continue
                    raise
                yield RawRecord(
                    source=self.name,
                    payload={**summary, **finding, "analyzerArn": arn},
                    origin=arn,
                )
