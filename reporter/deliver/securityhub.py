"""After an owner is e-mailed: their Security Hub findings to workflow status NOTIFIED.

BatchUpdateFindings takes at most 100 finding identifiers a call. Findings Security Hub could not
update come back as `UnprocessedFindings` and are reported, not retried; an API that is not there
(not enabled, not allowed, not implemented) is reported once and the rest is skipped: the e-mail
went out, and that is what counts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..models import ReportItem

log = logging.getLogger(__name__)
BATCH = 100
SOURCE = "security_hub"


@dataclass(frozen=True)
class WorkflowResult:
    processed: int = 0
    unprocessed: tuple[tuple[str, str], ...] = ()  # (finding id, error code: message)
    error: str = ""  # why the update could not be made at all


def finding_identifiers(items: Iterable[ReportItem]) -> list[dict[str, str]]:
    """Every Security Hub source id of the items, once each, in a stable order."""
    seen: dict[tuple[str, str], None] = {}
    for item in items:
        for ref in item.finding.sources:
            if ref.source == SOURCE and ref.id and ref.product_arn:
                seen[(ref.id, ref.product_arn)] = None
    return [{"Id": i, "ProductArn": arn} for i, arn in seen]


def note_text(owner: str, now: datetime, run_id: str) -> str:
    # Security Hub limits the note to 512 characters; an address is at most 320.
    return f"Owner {owner} notified by e-mail on {now:%Y-%m-%d} (run {run_id})"[:512]


def mark_notified(
    client: Any,
    items: Iterable[ReportItem],
    *,
    note: str,
    updated_by: str,
) -> WorkflowResult:
    identifiers = finding_identifiers(items)
    processed = 0
    unprocessed: list[tuple[str, str]] = []
    for start in range(0, len(identifiers), BATCH):
        batch = identifiers[start : start + BATCH]
        try:
            response = client.batch_update_findings(
                FindingIdentifiers=batch,
                Workflow={"Status": "NOTIFIED"},
                Note={"Text": note, "UpdatedBy": updated_by},
            )
        except (ClientError, BotoCoreError, NotImplementedError) as exc:
            text = _error_text(exc)
            log.warning("Security Hub workflow update not made: %s", text)
            remaining = [(i["Id"], "not attempted") for i in identifiers[start:]]
            return WorkflowResult(processed, (*unprocessed, *remaining), text)
        processed += len(response.get("ProcessedFindings", []))
        for failed in response.get("UnprocessedFindings", []):
            ident = failed.get("FindingIdentifier", {}).get("Id", "?")
            unprocessed.append(
                (ident, f"{failed.get('ErrorCode', '')}: {failed.get('ErrorMessage', '')}")
            )
    return WorkflowResult(processed, tuple(unprocessed))


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip(": ")
    return f"{type(exc).__name__}: {exc}"
