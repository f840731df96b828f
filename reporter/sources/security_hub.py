"""Security Hub CSPM: Access Analyzer unused-access findings in ASFF (reference §2).

Read from the delegated administrator in the home Region, where GetFindings returns the
findings of every member account and linked Region. GetFindings is the tightest documented
limit (3 requests/s, burst 6): pages of the maximum 100 keep the calls at ceil(findings / 100),
and the collect stage's limiter paces them.

The owning account is the IAM principal's (its ARN, or ProductFields `resourceOwnerAccount`),
never `AwsAccountId`, which is the analyzer owner's for organization analyzers (§2.4); see
`normalise.from_asff`. Coverage: the administrator sees only its member accounts
(`members()`), and its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..models import RawRecord

# Reference §2.5. The server-side filter keeps pages few; records are checked against it again
# here, because an emulator (or a future API change) may not honour every filter.
UNUSED_TYPE_PREFIX = "Software and Configuration Checks/AWS Security Best Practices/Unused"
PRODUCT_NAME = "IAM Access Analyzer"
# Asked by product *name*, which a look-alike can write too, not by ProductArn: the look-alikes a
# member account imports under its own product are then fetched, and `normalise`, which checks
# every record's ProductArn whatever was asked for, quarantines them and warns the security team
# (a member account forging Access Analyzer's findings is worth knowing about). Asking by
# ProductArn would hide them, and would need the ARN of every Region a finding can come from.
UNUSED_ACCESS_FILTER: dict[str, list[dict[str, str]]] = {
    "ProductName": [{"Value": PRODUCT_NAME, "Comparison": "EQUALS"}],
    "Type": [{"Value": UNUSED_TYPE_PREFIX, "Comparison": "PREFIX"}],
    "RecordState": [{"Value": "ACTIVE", "Comparison": "EQUALS"}],
    "WorkflowStatus": [{"Value": "SUPPRESSED", "Comparison": "NOT_EQUALS"}],
}


PAGE_SIZE = 100  # the API's maximum
# ListMembers statuses of accounts whose findings reach the administrator.
_ASSOCIATED = frozenset({"enabled", "associated"})


def filtered_out(asff: Mapping[str, Any]) -> str:
    """Why a record fails UNUSED_ACCESS_FILTER, or "" if it passes. The product is left to
    `normalise`: a look-alike the server let through is quarantined and shown to the security
    team there, not dropped here as if it were merely out of scope."""
    types = asff.get("Types")
    if not isinstance(types, list) or not any(
        isinstance(t, str) and t.startswith(UNUSED_TYPE_PREFIX) for t in types
    ):
        return "not unused access"
    if asff.get("RecordState") != "ACTIVE":
        return "archived in Security Hub"
    workflow = asff.get("Workflow")
    if isinstance(workflow, Mapping) and workflow.get("Status") == "SUPPRESSED":
        return "suppressed in Security Hub"
    return ""


class SecurityHubSource:
    name = "security_hub"

    def __init__(
        self,
        client: Any,
        region: str,
        *,
        on_page: Callable[[int], None] = lambda records: None,
    ) -> None:
        self._client = client
        self._region = region
        self._on_page = on_page
        # Records the server should have filtered out, by reason (counted as skipped).
        self.dropped: Counter[str] = Counter()

    def collect(self) -> Iterator[RawRecord]:
        pages = self._client.get_paginator("get_findings").paginate(
            Filters=UNUSED_ACCESS_FILTER,
            PaginationConfig={"PageSize": PAGE_SIZE},
        )
        for page in pages:
            findings = page["Findings"]
            self._on_page(len(findings))
            for finding in findings:
                reason = filtered_out(finding)
                if reason:
                    self.dropped[reason] += 1
                    continue
                yield RawRecord(source=self.name, payload=finding, origin=self._region)

    def members(self) -> frozenset[str]:
        """Accounts whose findings this administrator receives (ListMembers, associated)."""
        accounts: set[str] = set()
        for page in self._client.get_paginator("list_members").paginate(OnlyAssociated=True):
            for member in page.get("Members", ()):
                status = str(member.get("MemberStatus", "")).replace("_", "").lower()
                if status in _ASSOCIATED and member.get("AccountId"):
                    accounts.add(str(member["AccountId"]))
        return frozenset(accounts)
