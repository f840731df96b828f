"""Security Hub CSPM: Access Analyzer unused-access findings in ASFF (reference §2).

Read from the delegated administrator in the home Region, where GetFindings returns the
findings of every member account and linked Region.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..models import RawRecord

# Reference §2.5. The server-side filter keeps pages few; `normalise` checks every record
# again, because an emulator (or a future API change) may not honour every filter.
UNUSED_ACCESS_FILTER: dict[str, list[dict[str, str]]] = {
    "ProductName": [{"Value": "IAM Access Analyzer", "Comparison": "EQUALS"}],
    "Type": [
        {
            "Value": "Software and Configuration Checks/AWS Security Best Practices/Unused",
            "Comparison": "PREFIX",
        }
    ],
    "RecordState": [{"Value": "ACTIVE", "Comparison": "EQUALS"}],
    "WorkflowStatus": [{"Value": "SUPPRESSED", "Comparison": "NOT_EQUALS"}],
}

PAGE_SIZE = 100  # the API's maximum


class SecurityHubSource:
    name = "security_hub"

    def __init__(self, client: Any, region: str) -> None:
        self._client = client
        self._region = region

    def collect(self) -> Iterator[RawRecord]:
        pages = self._client.get_paginator("get_findings").paginate(
            Filters=UNUSED_ACCESS_FILTER,
            PaginationConfig={"PageSize": PAGE_SIZE},
        )
        for page in pages:
            for finding in page["Findings"]:
                yield RawRecord(source=self.name, payload=finding, origin=self._region)
