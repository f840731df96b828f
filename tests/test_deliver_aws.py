"""Delivery through AWS: SES v2 and S3 on moto, Security Hub workflow updates."""

from __future__ import annotations

import email
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.stub import Stubber
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from reporter.deliver.driver import Deliverer, RetryPolicy
from reporter.deliver.ledger import Ledger, Status
from reporter.deliver.links import S3LinkStore
from reporter.deliver.message import PDF_TYPE, XLSX_TYPE, Attachment, Envelope
from reporter.deliver.securityhub import mark_notified
from reporter.deliver.ses import SesTransport
from reporter.models import SourceRef
from reporter.render.environment import make_environment
from tests.factories import make_finding, make_item, make_report

REGION = "us-east-1"
ENVELOPE = Envelope("reporter@example.com", None, "[Unused access]")
ALICE = "alice@example.com"
PRODUCT = "arn:aws:securityhub:us-east-1::product/aws/access-analyzer"


def sent_messages() -> list[Any]:
    return list(ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages)


def parsed(raw: Any) -> EmailMessage:
    msg = email.message_from_string(raw.raw_data, policy=default)
    assert isinstance(msg, EmailMessage)
    return msg


def big_files(size: int) -> tuple[Attachment, ...]:
    blob = hashlib.sha256(b"seed").digest() * (size // 32)
    return (
        Attachment("report.pdf", b"%PDF-" + blob, *PDF_TYPE),
        Attachment("findings.xlsx", b"PK" + blob[::-1], *XLSX_TYPE),
    )


@pytest.fixture
def aws() -> Iterator[boto3.Session]:
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        session.client("sesv2").create_email_identity(EmailIdentity="example.com")
        yield session


def ses_deliverer(
    session: boto3.Session, tmp_path: Path, **kwargs: Any
) -> tuple[Deliverer, Ledger, list[float]]:
    ledger = Ledger.open(f"sqlite:///{tmp_path}/state.db")
    sleeps: list[float] = []
    options: dict[str, Any] = {
        "transport": SesTransport(session.client("sesv2"), configuration_set="reporter"),
        "envelope": ENVELOPE,
        "env": make_environment(),
        "allowed_domains": ("example.com",),
        "run_id": "20250310T063000Z-bbbbbb",
        "round_id": "round-ses",
        "ledger": ledger,
        "retry": RetryPolicy(3, 1.0),
        "sleep": sleeps.append,
    }
    options.update(kwargs)
    return Deliverer(**options), ledger, sleeps


def test_ses_sends_the_raw_message_with_both_attachments(
    aws: boto3.Session, tmp_path: Path
) -> None:
    aws.client("sesv2").create_configuration_set(ConfigurationSetName="reporter")
    d, ledger, _ = ses_deliverer(aws, tmp_path)
    report = make_report(owner=ALICE, items=(make_item(owner=ALICE),))
    files = big_files(1_000)
    delivery = d.owner(report, files)
    assert delivery.status == Status.SENT and delivery.receipt

    (raw,) = sent_messages()
    assert raw.source == "reporter@example.com" and ALICE in raw.destinations[0]
    msg = parsed(raw)
    assert msg["To"] == ALICE
    assert {p.get_filename(): p.get_content() for p in msg.iter_attachments()} == {
        a.filename: a.data for a in files
    }
    entry = ledger.round("round-ses")[0]
    assert entry.status is Status.SENT and entry.provider_id == delivery.receipt
    ledger.dispose()


def test_ses_throttling_is_retried_and_a_rejection_is_permanent(
    aws: boto3.Session, tmp_path: Path
) -> None:
    client = aws.client("sesv2")
    stub = Stubber(client)
    stub.add_client_error(
        "send_email", "TooManyRequestsException", "Maximum sending rate exceeded.", 429
    )
    stub.add_response("send_email", {"MessageId": "0100-abc"})
    stub.add_client_error("send_email", "MessageRejected", "Email address is not verified.", 400)
    report = make_report(owner=ALICE, items=(make_item(owner=ALICE),))
    with stub:
        d, ledger, sleeps = ses_deliverer(aws, tmp_path, transport=SesTransport(client))
        first = d.owner(report, big_files(100))
        other = make_report(owner="bob@example.com", items=(make_item(owner="bob@example.com"),))
        second = d.owner(other, big_files(100))
    assert (first.status, first.attempts, first.receipt) == (Status.SENT, 2, "0100-abc")
    assert sleeps == [1.0]
    assert second.status == Status.FAILED_PERMANENT and "MessageRejected" in second.error
    ledger.dispose()


def test_too_large_message_goes_out_with_presigned_links_that_work(
    aws: boto3.Session, tmp_path: Path
) -> None:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="evidence-bucket")
    links = S3LinkStore(
        s3, "evidence-bucket", "deliveries/", 3600, lambda: datetime(2025, 3, 10, tzinfo=UTC)
    )
    d, ledger, _ = ses_deliverer(
        aws,
        tmp_path,
        transport=SesTransport(aws.client("sesv2"), max_bytes=50_000),
        links=links,
    )
    files = big_files(40_000)
    delivery = d.owner(make_report(owner=ALICE, items=(make_item(owner=ALICE),)), files)
    assert delivery.status == Status.SENT and delivery.linked

    (raw,) = sent_messages()
    msg = parsed(raw)
    assert len(raw.raw_data) < 50_000
    assert list(msg.iter_attachments()) == []
    body = msg.get_body(("plain",))
    assert body is not None
    urls = [
        line.strip()
        for line in body.get_content().splitlines()
        if line.strip().startswith("https://evidence-bucket.")
    ]
    assert len(urls) == 2
    for url, attachment in zip(urls, files, strict=True):
        assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url and "X-Amz-Expires=3600" in url
        assert f"deliveries/{d.run_id}/alice%40example.com/{attachment.filename}?" in url
        fetched = requests.get(url, timeout=10)
        assert fetched.status_code == 200 and fetched.content == attachment.data
    # The ledger keeps the hashes of what the links point to.
    assert ledger.round("round-ses")[0].attachments == tuple((a.filename, a.sha256) for a in files)
    ledger.dispose()


# --- Security Hub workflow -------------------------------------------------------------------


def hub_items(count: int) -> tuple[Any, ...]:
    return tuple(
        make_item(
            owner=ALICE,
            finding=make_finding(
                name=f"role-{n}",
                sources=(
                    SourceRef("security_hub", f"arn:aws:finding/{n}", PRODUCT),
                    SourceRef("access_analyzer", f"aa-{n}", ""),
                ),
            ),
        )
        for n in range(count)
    )


def test_security_hub_findings_are_marked_notified_in_batches_of_100() -> None:
    client = boto3.client("securityhub", region_name=REGION)
    stub = Stubber(client)
    items = hub_items(250)
    ids = [{"Id": f"arn:aws:finding/{n}", "ProductArn": PRODUCT} for n in range(250)]
    note = {"Text": "Owner alice notified", "UpdatedBy": "unused-access-reporter"}
    for start, unprocessed in ((0, []), (100, [ids[150]]), (200, [])):
        batch = ids[start : start + 100]
        stub.add_response(
            "batch_update_findings",
            {
                "ProcessedFindings": [i for i in batch if i not in unprocessed],
                "UnprocessedFindings": [
                    {"FindingIdentifier": i, "ErrorCode": "FindingNotFound", "ErrorMessage": "gone"}
                    for i in unprocessed
                ],
            },
            {"FindingIdentifiers": batch, "Workflow": {"Status": "NOTIFIED"}, "Note": note},
        )
    with stub:
        result = mark_notified(
            client, items, note=note["Text"], updated_by="unused-access-reporter"
        )
    stub.assert_no_pending_responses()
    assert result.processed == 249 and result.error == ""
    assert result.unprocessed == (("arn:aws:finding/150", "FindingNotFound: gone"),)


def test_security_hub_unavailable_is_reported_and_the_mail_still_counts(
    aws: boto3.Session, tmp_path: Path
) -> None:
    hub = aws.client("securityhub")
    d, ledger, _ = ses_deliverer(
        aws,
        tmp_path,
        notifier=lambda report: mark_notified(
            hub, report.items, note="notified", updated_by="unused-access-reporter"
        ),
    )
    delivery = d.owner(make_report(owner=ALICE, items=hub_items(3)), big_files(100))
    assert delivery.status == Status.SENT
    assert delivery.workflow is not None and delivery.workflow.processed == 0
    assert delivery.workflow.error  # moto has no BatchUpdateFindings: said, not fatal
    assert len(delivery.workflow.unprocessed) == 3
    assert delivery.record()["security_hub"]["error"] == delivery.workflow.error
    ledger.dispose()
