"""Look-alikes (issue 17): records shaped like IAM Access Analyzer findings that another product
produced. Any member account can import such a record into Security Hub under its own default
product; it is quarantined and counted for the security team, never merged with a real finding
and never reported to an owner — from the API, from exported files and from events alike."""

from __future__ import annotations

import copy
import email
import email.policy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from reporter.cli import main
from reporter.config import load_data
from reporter.models import Lookalike, RawRecord
from reporter.normalise import NotAccessAnalyzer, Skip, from_asff, from_ocsf, normalise
from reporter.pipeline import Dependencies, run
from reporter.sandbox import Sandbox, SandboxSpec
from reporter.session import AwsOptions, SessionFactory
from reporter.sources.security_hub import UNUSED_ACCESS_FILTER, filtered_out

from .conftest import sample
from .test_ocsf import ocsf

MEMBER = "222233334444"  # the account that imports the look-alike
OWNER = "111122223333"  # the account of the role it names (AWS's sample)
DEFAULT_PRODUCT = f"arn:aws:securityhub:us-west-2:{MEMBER}:product/{MEMBER}/default"
WARNING = "claiming to be Access Analyzer's came from another product"


def genuine() -> dict[str, Any]:
    """AWS's published unused-permission record, made ACTIVE."""
    record: dict[str, Any] = copy.deepcopy(sample("asff-unused-permission-aws-docs.json"))
    return {**record["Findings"][0], "RecordState": "ACTIVE"}


def forged(product_arn: str | None = DEFAULT_PRODUCT) -> dict[str, Any]:
    """The same record as a member account can import it: every field AWS's but the product
    Security Hub assigns, the importer's AwsAccountId and its own Id."""
    record = genuine()
    record["Id"] = f"{MEMBER}/imported/1"
    record["AwsAccountId"] = MEMBER
    if product_arn is None:
        del record["ProductArn"]
    else:
        record["ProductArn"] = product_arn
    return record


# --- The product rule ------------------------------------------------------------------


@pytest.mark.parametrize(
    "product_arn",
    [
        "arn:aws:securityhub:us-west-2::product/aws/access-analyzer",
        "arn:aws-cn:securityhub:cn-north-1::product/aws/access-analyzer",
        "arn:aws-us-gov:securityhub:us-gov-west-1::product/aws/access-analyzer",
        "arn:aws:securityhub:ap-southeast-3::product/aws/access-analyzer",
    ],
)
def test_aws_access_analyzer_product_in_any_partition_and_region(product_arn: str) -> None:
    finding = from_asff({**genuine(), "ProductArn": product_arn})
    assert not isinstance(finding, Skip)
    assert finding.account_id == OWNER


@pytest.mark.parametrize(
    "product_arn",
    [
        DEFAULT_PRODUCT,
        None,
        "",
        # Near misses a substring or suffix test would let through.
        f"arn:aws:securityhub:us-west-2:{MEMBER}:product/aws/access-analyzer",
        "arn:aws:securityhub:us-west-2::product/aws/access-analyzer/x",
        "arn:aws:securityhub:us-west-2::product/aws/access-analyzer-x",
        "arn:aws:securityhub:us-west-2::product/aws/access-analyzer\n",
        "xarn:aws:securityhub:us-west-2::product/aws/access-analyzer",
        f"arn:aws:securityhub:us-west-2:{MEMBER}:product/{MEMBER}/aws/access-analyzer",
        "arn:aws-fake:securityhub:us-west-2::product/aws/access-analyzer",
        "arn:aws:securityhub:::product/aws/access-analyzer",
        "arn:aws:securityhub:us-west-2::productv2/aws/access-analyzer",  # OCSF's spelling
    ],
)
def test_any_other_product_is_a_lookalike(product_arn: str | None) -> None:
    with pytest.raises(NotAccessAnalyzer) as raised:
        from_asff(forged(product_arn))
    assert raised.value.lookalike.account_id == MEMBER
    assert "claims to be an IAM Access Analyzer finding" in str(raised.value)


def test_lookalike_is_quarantined_with_who_made_it_and_never_merged() -> None:
    """The look-alike names the same role as a real finding: the real one keeps its own
    sources only, and the look-alike is a quarantine entry with the product and account."""
    result = normalise(
        [RawRecord("security_hub", genuine(), "api"), RawRecord("security_hub", forged(), "api")]
    )
    (finding,) = result.findings
    assert {s.id for s in finding.sources} == {
        genuine()["Id"],
        genuine()["ProductFields"]["findingId"],
    }
    (quarantined,) = result.quarantined
    assert quarantined.lookalike == Lookalike(DEFAULT_PRODUCT, MEMBER)
    assert DEFAULT_PRODUCT in quarantined.reason
    assert quarantined.record["Id"] == f"{MEMBER}/imported/1"


def test_not_unused_access_from_another_product_is_only_skipped() -> None:
    """An ordinary finding of another product (a full Security Hub export) claims nothing."""
    other = {**forged(), "Types": ["TTPs/Initial Access"], "ProductFields": {}}
    assert isinstance(from_asff(other), Skip)


def test_ocsf_product_uid_decides_not_its_name() -> None:
    assert not isinstance(from_ocsf(ocsf()), Skip)
    record = ocsf()
    record["metadata"]["product"]["uid"] = (
        f"arn:aws:securityhub:us-east-1:{MEMBER}:productv2/{MEMBER}/default"
    )
    record["cloud"]["account"]["uid"] = MEMBER
    # Name and vendor still say Access Analyzer / AWS: an importer writes those.
    assert record["metadata"]["product"]["name"] == "IAM Access Analyzer"
    result = normalise([RawRecord("security_hub_v2", record)])
    assert result.findings == ()
    (quarantined,) = result.quarantined
    assert quarantined.lookalike == Lookalike(record["metadata"]["product"]["uid"], MEMBER)
    no_product = ocsf()
    del no_product["metadata"]["product"]
    assert normalise([RawRecord("security_hub_v2", no_product)]).quarantined[0].lookalike


def test_getfindings_asks_by_product_name_so_lookalikes_are_fetched_and_judged() -> None:
    # The name, which a look-alike carries too: it is fetched, and normalise judges its ARN.
    assert UNUSED_ACCESS_FILTER["ProductName"] == [
        {"Value": "IAM Access Analyzer", "Comparison": "EQUALS"}
    ]
    assert "ProductArn" not in UNUSED_ACCESS_FILTER
    assert filtered_out(forged()) == ""


# --- Exported files and EventBridge events --------------------------------------------------


def test_run_from_files_quarantines_lookalikes_in_exports_and_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    export = tmp_path / "get-findings.json"
    export.write_text(json.dumps({"Findings": [genuine(), forged()]}))
    custom_action = tmp_path / "custom-action-event.json"
    custom_action.write_text(
        json.dumps(
            {
                "version": "0",
                "detail-type": "Security Hub Findings - Custom Action",
                "source": "aws.securityhub",
                "account": MEMBER,
                "detail": {"actionName": "x", "findings": [forged()]},
            }
        )
    )
    aa_event = sample("eventbridge-aa-unused-permission-aws-docs.json")
    fake_event = tmp_path / "fake-aa-event.json"
    fake_event.write_text(json.dumps({**aa_event, "source": "custom.forger", "account": MEMBER}))
    real_event = tmp_path / "real-aa-event.json"
    real_event.write_text(json.dumps(aa_event))

    monkeypatch.chdir(tmp_path)
    args = ["run", "--no-send", "--out", str(tmp_path / "out")]
    for path in (export, custom_action, fake_event, real_event):
        args += ["--from-file", str(path)]
    assert main(args) == 0
    (run_dir,) = (tmp_path / "out").iterdir()

    findings = json.loads((run_dir / "data/findings.json").read_text())["findings"]
    assert sorted(f["principal_arn"] for f in findings) == [
        "arn:aws:iam::111122223333:role/FindingIntegTestFakeRole",  # the genuine event
        "arn:aws:iam::111122223333:role/TestRole",  # the genuine ASFF record
    ]
    sources = [s["id"] for f in findings for s in f["sources"]]
    assert not [s for s in sources if MEMBER in s]
    quarantine = json.loads((run_dir / "data/quarantine.json").read_text())
    assert sorted((Path(q["origin"]).name, q["lookalike"]["product"]) for q in quarantine) == [
        ("custom-action-event.json", DEFAULT_PRODUCT),
        ("fake-aa-event.json", "custom.forger"),
        ("get-findings.json", DEFAULT_PRODUCT),
    ]
    assert all(q["lookalike"]["account_id"] == MEMBER for q in quarantine)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["counts"]["lookalikes"] == [
        {"product": DEFAULT_PRODUCT, "account_id": MEMBER, "findings": 2},
        {"product": "custom.forger", "account_id": MEMBER, "findings": 1},
    ]
    text = _pdf_text(run_dir / "summary/summary.pdf")
    assert f"2 findings {WARNING}" in text and "custom.forger" in text


# --- Through the whole pipeline on the sandbox ----------------------------------------------

NOW = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def forged_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One member account imports, with BatchImportFindings under its own default product, a
    look-alike of a real finding about a role in another account; then a normal run.

    moto ignores GetFindings filters, so the look-alike is fetched although the source asks
    for AWS's product only: exactly what a filter that is not honoured would do, which is why
    the filter is not the trust boundary."""
    tmp = tmp_path_factory.mktemp("lookalike")
    with Sandbox(SandboxSpec(seed=5, member_accounts=4, ous=2, now=NOW)) as sandbox:
        target = next(e for e in sandbox.reportable if e.account_id != sandbox.security_account_id)
        importer = next(
            a.id
            for a in sandbox.accounts
            if a.active
            and a.id
            not in (target.account_id, sandbox.security_account_id, sandbox.management_account_id)
        )
        record = sandbox.import_lookalike(target.finding_id, importer)
        settings = load_data(
            {
                "organization": {
                    "home_region": sandbox.home_region,
                    "delegated_admin_role_arn": sandbox.delegated_admin_role_arn,
                    "member_role_name": sandbox.member_role_name,
                },
                "sources": {
                    "security_hub": {"enabled": True},
                    "access_analyzer": {"enabled": True},
                    "iam": {"enabled": False},
                },
                "collection": {"recommendation_poll_seconds": 0.01},
                "state": {"database_url": f"sqlite:///{tmp / 'state.db'}"},
            },
            environ={},
            source="test",
            today=NOW.date(),
        )
        sessions = SessionFactory(
            sandbox.session(), AwsOptions(region=sandbox.home_region), sandbox.configure_session
        )
        result = run(settings, Dependencies(sessions=sessions, output_dir=tmp / "out"), NOW)
        yield {
            "result": result,
            "run_dir": Path(result.run_dir),
            "record": record,
            "importer": importer,
            "target": target,
            "reportable": sandbox.reportable,
        }


def test_lookalike_reaches_no_owner_and_changes_no_finding(forged_run: dict[str, Any]) -> None:
    run_dir, record, target = forged_run["run_dir"], forged_run["record"], forged_run["target"]
    doc = json.loads((run_dir / "data/findings.json").read_text())
    assert len(doc["findings"]) == len(forged_run["reportable"])  # nothing added
    ids = {s["id"] for f in doc["findings"] for s in f["sources"]}
    assert record["Id"] not in ids
    (real,) = [
        f
        for f in doc["findings"]
        if f["principal_arn"] == target.principal_arn and f["type"] == target.finding_type
    ]
    assert {s["product_arn"] for s in real["sources"] if s["source"] == "security_hub"} == {
        f"arn:aws:securityhub:{record['Region']}::product/aws/access-analyzer"
    }
    assert len([s for s in real["sources"] if s["source"] == "security_hub"]) == 1
    # No owner's report or e-mail mentions the look-alike's Id.
    for path in [*run_dir.glob("owners/**/*"), *run_dir.glob("outbox/*.eml")]:
        if path.is_file():
            assert record["Id"].encode() not in path.read_bytes(), path


def test_lookalike_is_quarantined_and_counted_for_the_security_team(
    forged_run: dict[str, Any],
) -> None:
    run_dir, record, importer = forged_run["run_dir"], forged_run["record"], forged_run["importer"]
    (entry,) = [
        q for q in json.loads((run_dir / "data/quarantine.json").read_text()) if q["lookalike"]
    ]
    assert entry["lookalike"] == {"product": record["ProductArn"], "account_id": importer}
    assert entry["record"]["Id"] == record["Id"]
    assert "claims to be an IAM Access Analyzer finding" in entry["reason"]
    assert forged_run["result"].lookalikes == ((Lookalike(record["ProductArn"], importer), 1),)

    text = _pdf_text(run_dir / "summary/summary.pdf")
    assert f"1 finding {WARNING}" in text and importer in text
    (summary_mail,) = run_dir.glob("outbox/summary/*.eml")
    message = email.message_from_bytes(summary_mail.read_bytes(), policy=email.policy.default)
    assert "1 look-alike finding quarantined" in message["Subject"]
    bodies = [_decoded(part) for part in message.walk() if part.get_content_maintype() == "text"]
    assert len(bodies) == 2
    for body in bodies:
        assert WARNING in body and record["ProductArn"] in body and importer in body


def _pdf_text(path: Path) -> str:
    return " ".join(" ".join(page.extract_text().split()) for page in PdfReader(path).pages)


def _decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode(part.get_content_charset() or "utf-8")
