"""Security Hub CSPM in the security account (the delegated administrator), home Region.

Facts about moto 5.2.5's Security Hub, read in its source; tests/test_sandbox.py asserts the
first three:

- GetFindings ignores `Filters` and `SortCriteria` and returns records in import order; the
  product has to filter client-side (it does anyway for what GetFindings cannot express).
- Records round-trip unchanged: moto stores the imported JSON and returns it as is, including
  ProductFields' free-form keys and the deprecated `WorkflowState`.
- `MaxResults` must be 1-100 (InvalidInputException otherwise); NextToken pages work with the
  boto3 paginator and the last page has no NextToken.
- Neither BatchImportFindings nor GetFindings checks that the hub is enabled, that the caller
  may import for the ProductArn, or AwsAccountId; real Security Hub does.
- BatchImportFindings looks each Id up in a list (quadratic), and GetFindings resolves every
  NextToken by scanning all records from the start, so moto's paths slow down with the square
  of the record count. Above `BULK_THRESHOLD` records the sandbox therefore seeds moto's
  findings store directly with records rendered on demand, and pages GetFindings by position
  (same answers: filters ignored, same MaxResults check, import order).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, TypeVar

import boto3
from moto.core.exceptions import InvalidToken
from moto.securityhub.exceptions import InvalidInputException
from moto.securityhub.models import Finding, SecurityHubBackend, securityhub_backends

T_contra = TypeVar("T_contra", contravariant=True)
BULK_THRESHOLD = 5_000
_IMPORT_BATCH = 100  # BatchImportFindings takes at most 100 findings per call


def enable(management: boto3.Session, security: boto3.Session, security_account: str) -> None:
    """Enable the hub in the security account and make it the organization's administrator."""
    security.client("securityhub").enable_security_hub(EnableDefaultStandards=False)
    management.client("securityhub").enable_organization_admin_account(
        AdminAccountId=security_account
    )


def import_via_api(security: boto3.Session, records: Sequence[dict[str, Any]]) -> None:
    client = security.client("securityhub")
    for start in range(0, len(records), _IMPORT_BATCH):
        batch = list(records[start : start + _IMPORT_BATCH])
        response = client.batch_import_findings(Findings=batch)
        if response["FailedCount"]:
            raise RuntimeError(f"Security Hub refused findings: {response['FailedFindings']}")


class Renderer(Protocol[T_contra]):
    """Turns a stored item into its ASFF `Id` and record, on demand."""

    def asff_id(self, item: T_contra) -> str: ...

    def record(self, item: T_contra) -> dict[str, Any]: ...


class _LazyFinding(Finding):
    """A stored finding whose ASFF record is rendered when read, not held in memory."""

    # Slots only: no per-instance dict, ~60 bytes a record instead of the record itself.
    __slots__ = ("_item", "_renderer")

    def __init__(self, item: Any, renderer: Renderer[Any]) -> None:
        # Deliberately not calling Finding.__init__: it would store the rendered record.
        self._item = item
        self._renderer = renderer

    @property
    def id(self) -> str:  # type: ignore[override]
        return self._renderer.asff_id(self._item)

    @property
    def data(self) -> dict[str, Any]:  # type: ignore[override]
        return self._renderer.record(self._item)

    def as_dict(self) -> dict[str, Any]:
        return self._renderer.record(self._item)


def seed_store(
    account_id: str, region: str, items: Iterable[T_contra], renderer: Renderer[T_contra]
) -> None:
    """Put items straight into moto's store, rendered when read; page GetFindings by position."""
    backend: SecurityHubBackend = securityhub_backends[account_id][region]
    backend.findings.extend(_LazyFinding(item, renderer) for item in items)

    def get_findings(
        filters: dict[str, Any] | None = None,
        sort_criteria: list[dict[str, str]] | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        limit = 100 if max_results is None else int(max_results)
        if not 1 <= limit <= 100:
            raise InvalidInputException(
                op="GetFindings", msg="MaxResults must be a number between 1 and 100"
            )
        start = _position(next_token) if next_token else 0
        end = start + limit
        token = _token(end) if end < len(backend.findings) else None
        return [f.as_dict() for f in backend.findings[start:end]], token

    # An instance attribute shadows the class's method; moto's response layer calls it.
    backend.get_findings = get_findings  # type: ignore[method-assign, assignment]


def _token(position: int) -> str:
    return base64.b64encode(json.dumps({"position": position}).encode()).decode()


def _position(token: str) -> int:
    try:
        position = json.loads(base64.b64decode(token))["position"]
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidToken("Invalid token") from error
    if not isinstance(position, int):
        raise InvalidToken("Invalid token")
    return position
