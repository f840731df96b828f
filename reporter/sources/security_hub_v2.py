"""The new Security Hub (OCSF): Access Analyzer unused-access findings via GetFindingsV2.

For organizations on the new Security Hub, which runs its own service-linked unused-access
analyzer (90-day lookback, reference §2.10). Read from the delegated administrator, which sees
every member account's findings; `Scopes` is left out so nothing is narrowed.

AWS publishes no OCSF sample of these findings (reference §2.10, §8). The server-side filter
therefore uses a single value that has a documented counterpart: the product name, which is
`IAM Access Analyzer` in ASFF (`ProductName`, reference §2.1) and which AWS's ASFF→OCSF mapping
carries into `metadata.product.name`. It is configurable (`sources.security_hub_v2.
product_name`), and `None` turns server-side filtering off. Everything else (finding type,
status, owner) is checked client-side by `normalise.from_ocsf`, whose comments list the OCSF
fields relied on; records it does not understand are quarantined, not guessed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..models import RawRecord

NAME = "security_hub_v2"
PRODUCT_NAME = "IAM Access Analyzer"
PAGE_SIZE = 100  # the API's maximum (MaxResults 1-100)


def unused_access_filter(product_name: str) -> dict[str, Any]:
    """`Filters` for GetFindingsV2: findings of the Access Analyzer product only."""
    return {
        "CompositeFilters": [
            {
                "StringFilters": [
                    {
                        "FieldName": "metadata.product.name",
                        "Filter": {"Value": product_name, "Comparison": "EQUALS"},
                    }
                ],
                "Operator": "AND",
            }
        ],
        "CompositeOperator": "AND",
    }


class SecurityHubV2Source:
    """A `FindingSource`; `client` is a securityhub client in the delegated administrator."""

    name = NAME

    def __init__(self, client: Any, region: str, product_name: str | None = PRODUCT_NAME) -> None:
        self._client = client
        self._region = region
        self._product_name = product_name

    def collect(self) -> Iterator[RawRecord]:
        arguments: dict[str, Any] = {"PaginationConfig": {"PageSize": PAGE_SIZE}}
        if self._product_name:
            arguments["Filters"] = unused_access_filter(self._product_name)
        pages = self._client.get_paginator("get_findings_v2").paginate(**arguments)
        for page in pages:
            for finding in page.get("Findings", ()):
                yield RawRecord(source=self.name, payload=finding, origin=self._region)
