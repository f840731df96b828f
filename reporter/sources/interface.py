"""What every finding source looks like to the pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from ..models import RawRecord


class FindingSource(Protocol):
    """Yields raw records exactly as the source returned them; `normalise` parses them."""

    name: str

    def collect(self) -> Iterator[RawRecord]: ...
