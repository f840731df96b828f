"""What every finding source looks like to the pipeline.

Two kinds: an organization-wide source reads everything from the delegated administrator in one
pass (Security Hub, Access Analyzer, files); an account source reads one member account through
the role assumed there (the IAM fallback). The collect stage drives both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

from ..models import Account, RawRecord

# Makes a boto3 client for a service name inside one account's assumed-role session.
ClientFor = Callable[[str], Any]


class FindingSource(Protocol):
    """Yields raw records exactly as the source returned them; `normalise` parses them."""

    name: str

    def collect(self) -> Iterator[RawRecord]: ...


class AccountSource(Protocol):
    """Reads one member account; raising marks only that account not covered by this source."""

    name: str

    def collect_account(self, account: Account, client: ClientFor) -> Iterator[RawRecord]: ...
