"""Hostile content from AWS itself, and secrets, through a full sandbox run.

tests/test_hostile_run.py pushes hostile finding text through `run --from-file`. Here the
hostile values come from where an attacker inside the organization would put them: an IAM
role's path, name and tags (read by the IAM source), an account's `owner` tag (read from
Organizations), and the policy text of a recommendation. Delivery is real SMTP with STARTTLS and
AUTH against a local server, the password and the external id come from `${ENV}` references,
and every output of the run is then searched: PDF, HTML e-mail, workbook, CSV, JSON, logs.
"""

from __future__ import annotations

import csv
import email
import io
import ipaddress
import json
import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from moto.iam.models import iam_backends
from openpyxl import load_workbook
from pypdf import PdfReader

from reporter.cli import _execute
from reporter.config import load_data
from reporter.models import RunResult
from reporter.render.data import FORMULA_TRIGGERS
from reporter.sandbox import Sandbox, SandboxSpec
from tests.pdfs import link_actions
from tests.smtp_server import Recorder, smtp_server

PASSWORD = "Smtp-S3cret-4a7f19"
EXTERNAL_ID = "Ext-S3cret-90c2e5"
SCRIPT = "<script>alert(1)</script>"
STYLE = "</style><script>alert(2)</script>"
FORMULA = "=cmd|' /C calc'!A0"
RLO = "gpj.\u202eexe"
# IAM allows printable ASCII in a path and [\w+=,.@-] in a name: both can carry hostile text.
ROLE_PATH = f"/{STYLE}/{SCRIPT}/"
ROLE_NAME = "=cmd@+1"  # a formula prefix, and a valid IAM name
TAGS = {
    "owner": f"{SCRIPT}@example.com",
    "note": FORMULA,
    "plus": "+1+1",
    "minus": "-1+1",
    "at": "@SUM(1+1)",
    "tab": "\t=1+1",
    "rtl": RLO,
    "long": "L" * 256,  # the longest tag value IAM allows
}
# IAM speaks XML, which cannot carry control characters (moto's answer would not parse, and
# AWS refuses them in tags); Organizations speaks JSON, so the account tag carries them.
ACCOUNT_OWNER_TAG = f"{STYLE}{RLO}bell\x07esc\x1b[31m\nFAKE LOG LINE"


@dataclass
class HostileRun:
    result: RunResult
    run_dir: Path
    state_db: Path
    recorder: Recorder
    logins: list[tuple[bytes, bytes]]
    log_lines: list[str] = field(default_factory=list)
    progress: list[str] = field(default_factory=list)
    role_arn: str = ""


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, trusted by the client through SSL_CERT_FILE."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _plant(sandbox: Sandbox) -> tuple[str, str]:
    """A hostile role in one member account, unused for 300 days; a hostile owner tag on
    another account. Returns (role ARN, tagged account id)."""
    members = [
        a
        for a in sandbox.accounts
        if a.active and a.id not in (sandbox.management_account_id, sandbox.security_account_id)
    ]
    target, tagged = members[0].id, members[-1].id
    backend = iam_backends[target]["global"]
    role = backend.create_role(
        role_name=ROLE_NAME,
        assume_role_policy_document=json.dumps({"Version": "2012-10-17", "Statement": []}),
        path=ROLE_PATH,
        permissions_boundary=None,
        description="",
        tags=[{"Key": k, "Value": v} for k, v in TAGS.items()],
        max_session_duration="3600",
        linked_service=None,
    )
    role.create_date = (datetime.now(UTC) - timedelta(days=300)).replace(tzinfo=None)
    sandbox.session().client("organizations").tag_resource(
        ResourceId=tagged, Tags=[{"Key": "owner", "Value": ACCOUNT_OWNER_TAG}]
    )
    return str(role.arn), tagged


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileRun]:
    tmp = tmp_path_factory.mktemp("hostile-sandbox")
    cert, key = _certificate(tmp)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(*args: Any) -> AuthResult:
        data = args[-1]
        if isinstance(data, LoginPassword):
            logins.append((data.login, data.password))
        return AuthResult(success=True)

    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    # INFO is the most the CLI ever logs (`-v`); botocore's DEBUG output would print request
    # parameters, AssumeRole's ExternalId among them, and the product never turns it on.
    handler = Keep(logging.INFO)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    with (
        pytest.MonkeyPatch.context() as mp,
        smtp_server(
            tls_context=server_context,
            require_starttls=True,
            authenticator=authenticator,
            auth_require_tls=True,
        ) as (recorder, port),
        Sandbox(SandboxSpec(seed=5, member_accounts=3)) as sandbox,
    ):
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("SSL_CERT_FILE", str(cert))
        role_arn, _ = _plant(sandbox)
        settings = load_data(
            {
                "organization": {
                    "home_region": sandbox.home_region,
                    "delegated_admin_role_arn": sandbox.delegated_admin_role_arn,
                    "member_role_name": sandbox.member_role_name,
                    "external_id": "${REPORTER_EXTERNAL_ID}",
                },
                "sources": {
                    "security_hub": {"enabled": True},
                    "access_analyzer": {"enabled": True},
                    "iam": {"enabled": True, "mode": "always"},
                },
                "collection": {"recommendation_poll_seconds": 0.01},
                "reports": {"output_dir": str(tmp / "out"), "render_workers": 1},
                "state": {"database_url": f"sqlite:///{tmp}/state.db"},
                "mail": {
                    "transport": "smtp",
                    "smtp": {
                        "host": "127.0.0.1",
                        "port": port,
                        "security": "starttls",
                        "username": "reporter",
                        "password": "${SMTP_PASSWORD}",
                    },
                },
            },
            {"SMTP_PASSWORD": PASSWORD, "REPORTER_EXTERNAL_ID": EXTERNAL_ID},
            source="hostile",
        )
        progress: list[str] = []
        root.addHandler(handler)
        previous = root.level
        root.setLevel(logging.INFO)
        try:
            result = _execute(
                settings,
                tmp / "out",
                sandbox.session(),
                sandbox.configure_session,
                progress=progress.append,
            )
        finally:
            root.removeHandler(handler)
            root.setLevel(previous)
        yield HostileRun(
            result=result,
            run_dir=Path(result.run_dir),
            state_db=tmp / "state.db",
            recorder=recorder,
            logins=logins,
            log_lines=lines,
            progress=progress,
            role_arn=role_arn,
        )


def _findings(run: HostileRun) -> list[dict[str, Any]]:
    document = json.loads((run.run_dir / "data/findings.json").read_text(encoding="utf-8"))
    records: list[dict[str, Any]] = document["findings"]
    return records


def test_the_hostile_role_and_tags_reach_the_reports_exactly(hostile: HostileRun) -> None:
    """Not vacuous: the run reported the planted role, with its tags intact in the JSON."""
    assert hostile.role_arn.endswith(f":role{ROLE_PATH}{ROLE_NAME}")
    (record,) = [f for f in _findings(hostile) if f["principal_arn"] == hostile.role_arn]
    tags = {t["key"]: t["value"] for t in record["details"]["principal_tags"]}
    assert tags == TAGS  # JSON round-trips every value exactly, control characters included
    assert record["principal_name"] == ROLE_NAME
    notes = " ".join(n for f in _findings(hostile) for n in f["owner_notes"])
    assert "</style>" in notes  # the hostile account tag is quoted in the ownership notes


def test_workbooks_hold_hostile_text_as_text(hostile: HostileRun) -> None:
    books = [
        *hostile.run_dir.glob("owners/*/findings.xlsx"),
        hostile.run_dir / "summary/findings.xlsx",
    ]
    triggered = 0
    seen: set[str] = set()
    for path in books:
        for sheet in load_workbook(path).worksheets:
            for row in sheet.iter_rows():
                for cell in row:
                    assert cell.data_type != "f", (path.name, sheet.title, cell.coordinate)
                    if isinstance(cell.value, str):
                        seen.add(cell.value)
                        if cell.value.startswith(FORMULA_TRIGGERS):
                            # The project's rule: stored as a string, shown with a quote prefix.
                            assert cell.data_type == "s" and cell.quotePrefix, cell.coordinate
                            triggered += 1
    assert triggered and hostile.role_arn in seen
    assert any(value == ROLE_NAME for value in seen)


def test_csv_defuses_every_formula_prefix(hostile: HostileRun) -> None:
    text = (hostile.run_dir / "data/findings.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header, body = rows[0], rows[1:]
    for cell in (c for row in body for c in row):
        assert not cell.startswith(FORMULA_TRIGGERS), cell[:60]
    names = {row[header.index("principal_name")] for row in body}
    assert f"'{ROLE_NAME}" in names
    (tags,) = [row[header.index("principal_tags")] for row in body if row[0].endswith(ROLE_NAME)]
    assert FORMULA in tags and "\t=1+1" in tags  # inside the cell, the text is kept


def test_pdfs_show_markup_as_text_and_carry_no_active_content(hostile: HostileRun) -> None:
    pdfs = [*hostile.run_dir.glob("owners/*/report.pdf"), hostile.run_dir / "summary/summary.pdf"]
    shown = ""
    for path in pdfs:
        raw = path.read_bytes()
        for active in (b"/JavaScript", b"/JS", b"/Launch", b"/SubmitForm", b"/OpenAction"):
            assert active not in raw, (path, active)
        reader = PdfReader(path)
        shown += "".join(page.extract_text() for page in reader.pages)
        for action in link_actions(reader):
            assert action.get("/S") in ("/URI", "/GoTo"), action
            uri = str(action.get("/URI", ""))
            if uri:
                host = urlsplit(uri).hostname or ""
                assert uri.startswith("https://"), uri
                assert host == "aws.amazon.com" or host.endswith(".aws.amazon.com"), uri
    assert "<script>" in shown and "</style>" in shown  # printed, never interpreted
    # The override (in the account tag quoted by the ownership notes) is shown, never obeyed.
    assert "\u202e" not in shown and ("[U+202E]" in shown or "\\u202e" in shown)


def test_html_mail_escapes_markup_and_shows_overrides(hostile: HostileRun) -> None:
    assert hostile.recorder.received
    escaped = 0
    for received in hostile.recorder.received:
        message = email.message_from_bytes(received.data)
        for part in message.walk():
            if part.get_content_type() != "text/html":
                continue
            html = part.get_payload(decode=True).decode("utf-8")
            assert "<script" not in html.lower() and "</style><" not in html.lower()
            assert "\u202e" not in html
            # The role's name is shown as text, and rides in its console link percent-encoded.
            escaped += f">{ROLE_NAME}</a>" in html and "/%3Dcmd%40%2B1" in html
    assert escaped == 1, "the hostile role's owner sees its name, and a link that encodes it"


def test_log_lines_stay_single_lines_without_control_characters(hostile: HostileRun) -> None:
    lines = [*hostile.log_lines, *hostile.progress, hostile.result.run_dir]
    assert hostile.log_lines
    for line in lines:
        for piece in line.splitlines()[1:]:
            # A traceback may continue a record; a forged record would start like one.
            assert not piece.startswith(("FAKE LOG LINE", "INFO ", "WARNING ", "ERROR ")), line
        assert not set(line) & {"\x00", "\x07", "\x1b", "\r"}, repr(line[:200])


def test_secrets_were_used_but_appear_nowhere(hostile: HostileRun) -> None:
    # The password really went to the server (over TLS): the reference was resolved and used.
    assert (b"reporter", PASSWORD.encode()) in hostile.logins
    files = [p for p in hostile.run_dir.rglob("*") if p.is_file()]
    files += [hostile.state_db]
    assert any(p.name == "manifest.json" for p in files)
    for secret in (PASSWORD, EXTERNAL_ID):
        assert not [p for p in files if secret.encode() in p.read_bytes()], secret
        assert not [line for line in hostile.log_lines if secret in line]
        assert not [line for line in hostile.progress if secret in line]
        assert not [r for r in hostile.recorder.received if secret.encode() in r.data]


def test_the_run_itself_is_sound(hostile: HostileRun) -> None:
    assert hostile.result.undelivered == ()
    assert hostile.result.exit_code == 0, [c for c in hostile.result.coverage if not c.covered]
    # One message per owner and one summary, each accepted once.
    assert len(hostile.recorder.received) == len(hostile.result.owners) + 1


def test_hostile_policy_text_stays_inert(tmp_path: Path) -> None:
    """A recommendation's policy text (GetFindingRecommendation) carrying markup, CSS and formula
    prefixes, through `run --from-file`: shown as text in the PDF, kept exactly in the JSON,
    never a formula in the workbook, never markup in the e-mail."""
    from reporter.cli import main

    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Sid": f"{STYLE}{RLO}", "Effect": "Allow", "Action": "=cmd|calc"}],
        }
    )
    arn = "arn:aws:iam::111122223333:role/app"
    record = {
        "id": "f-1",
        "resource": arn,
        "resourceType": "AWS::IAM::Role",
        "status": "ACTIVE",
        "findingType": "UnusedPermission",
        "createdAt": "2026-01-05T10:00:00+00:00",
        "findingDetails": [{"unusedPermissionDetails": {"serviceNamespace": "s3"}}],
        "recommendation": {
            "status": "SUCCEEDED",
            "recommendedSteps": [
                {
                    "unusedPermissionsRecommendedStep": {
                        "recommendedAction": "CREATE_POLICY",
                        "existingPolicyId": f"=HYPERLINK({SCRIPT})",
                        "recommendedPolicy": policy,
                    }
                }
            ],
        },
    }
    export = tmp_path / "export.json"
    export.write_text(json.dumps({"findings": [record]}), encoding="utf-8")
    config = tmp_path / "c.yaml"
    config.write_text(f"state:\n  database_url: sqlite:///{tmp_path}/s.db\n", encoding="utf-8")
    out = tmp_path / "out"
    args = ["run", "-c", str(config), "--no-send", "--from-file", str(export), "--out", str(out)]
    assert main(args) == 0
    (run_dir,) = [p for p in out.iterdir() if (p / "manifest.json").is_file()]
    document = json.loads((run_dir / "data/findings.json").read_text(encoding="utf-8"))
    (step,) = document["findings"][0]["recommendation"]["steps"]
    assert step["recommended_policy"] == policy  # exactly, markup and override included
    shown = "".join(
        page.extract_text() for pdf in run_dir.rglob("*.pdf") for page in PdfReader(pdf).pages
    )
    assert "</style>" in shown and "\u202e" not in shown
    for path in run_dir.rglob("*.xlsx"):
        for sheet in load_workbook(path).worksheets:
            for row in sheet.iter_rows():
                assert all(cell.data_type != "f" for cell in row), path
    messages = list(run_dir.rglob("*.eml"))
    assert messages
    for path in messages:
        for part in email.message_from_bytes(path.read_bytes()).walk():
            if part.get_content_maintype() == "text":
                assert "<script" not in part.get_payload(decode=True).decode("utf-8").lower()


def test_an_endpoint_urls_credentials_never_reach_coverage_or_logs() -> None:
    from botocore.exceptions import EndpointConnectionError

    from reporter.errors import error_text, scrub

    exc = EndpointConnectionError(endpoint_url="https://user:s3cret@aws.internal:4566/")
    assert "s3cret" not in error_text(exc) and "user" not in error_text(exc)
    assert "https://<redacted>@aws.internal:4566/" in error_text(exc)
    assert scrub("see postgresql+psycopg://me:pw@db/x and s3://bucket/k") == (
        "see postgresql+psycopg://<redacted>@db/x and s3://bucket/k"
    )
