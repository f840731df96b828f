"""Hostile content through a whole run: names and details an attacker controls stay inert in
the PDF, the HTML e-mail, the workbook, the CSV, the JSON and the logs.

IAM paths allow almost any printable character, so a principal ARN can carry markup, formula
prefixes and a right-to-left override; Access Analyzer details carry service and action names.
"""

from __future__ import annotations

import csv
import email
import io
import json
import logging
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from reporter.cli import main
from tests.pdfs import link_actions

ACCOUNT = "111122223333"
SCRIPT = "<script>alert(1)</script>"
FORMULA = '=HYPERLINK("evil.test";"x")+cmd|calc!A0'
RLO = "gpj.\u202eexe"  # shows as "exe.jpg" if the override were honoured
HOSTILE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/{SCRIPT}/{RLO}/{FORMULA}"
HOSTILE_USER = f"arn:aws:iam::{ACCOUNT}:user/@SUM(1+1)/+cmd|calc"
LONG = "A" * 10_000


def _finding(finding_id: str, arn: str, kind: str, details: list[dict[str, object]]) -> dict:
    return {
        "id": finding_id,
        "resource": arn,
        "resourceType": "AWS::IAM::Role" if ":role/" in arn else "AWS::IAM::User",
        "resourceOwnerAccount": ACCOUNT,
        "status": "ACTIVE",
        "findingType": kind,
        "createdAt": "2026-01-05T10:00:00+00:00",
        "updatedAt": "2026-01-05T10:00:00+00:00",
        "analyzedAt": "2026-01-05T10:00:00+00:00",
        "findingDetails": details,
    }


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("hostile")
    export = tmp / "export.json"
    export.write_text(
        json.dumps(
            {
                "findings": [
                    _finding(
                        "f-1",
                        HOSTILE_ROLE,
                        "UnusedPermission",
                        [
                            {
                                "unusedPermissionDetails": {
                                    "serviceNamespace": f"-2+3{SCRIPT}",
                                    "actions": [{"action": f"\t=cmd|' /C calc'!A0{LONG}"}],
                                }
                            }
                        ],
                    ),
                    _finding(
                        "f-2",
                        HOSTILE_USER,
                        "UnusedIAMUserPassword",
                        [{"unusedIamUserPasswordDetails": {}}],
                    ),
                ]
            }
        ),
        encoding="utf-8",
    )
    config = tmp / "c.yaml"
    config.write_text(f"state:\n  database_url: sqlite:///{tmp}/s.db\n", encoding="utf-8")
    out = tmp / "out"
    code = main(
        ["run", "-c", str(config), "--no-send", "--from-file", str(export), "--out", str(out)]
    )
    assert code == 0
    (run_dir,) = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return run_dir


def test_json_keeps_the_text_exactly(hostile_run: Path) -> None:
    doc = json.loads((hostile_run / "data/findings.json").read_text(encoding="utf-8"))
    arns = {f["principal_arn"] for f in doc["findings"]}
    assert arns == {HOSTILE_ROLE, HOSTILE_USER}


def test_csv_cells_are_defused(hostile_run: Path) -> None:
    rows = list(csv.reader(io.StringIO((hostile_run / "data/findings.csv").read_text("utf-8"))))
    cells = [cell for row in rows for cell in row]
    assert cells, "the CSV has rows"
    for cell in cells:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell[:80]
    names = {row[rows[0].index("principal_name")] for row in rows[1:]}
    assert f"'{FORMULA}" in names


def test_no_workbook_cell_is_a_formula(hostile_run: Path) -> None:
    books = [*hostile_run.glob("owners/*/findings.xlsx"), hostile_run / "summary/findings.xlsx"]
    seen_hostile = False
    for path in books:
        book = load_workbook(path)
        for sheet in book.worksheets:
            for row in sheet.iter_rows():
                for cell in row:
                    assert cell.data_type != "f", (path.name, sheet.title, cell.coordinate)
                    seen_hostile |= cell.value == FORMULA
    assert seen_hostile, "the hostile name is in the workbook, as text"


def test_pdf_shows_markup_as_text_and_links_only_to_the_console(hostile_run: Path) -> None:
    pdfs = [*hostile_run.glob("owners/*/report.pdf"), hostile_run / "summary/summary.pdf"]
    for path in pdfs:
        reader = PdfReader(path)
        text = "".join(page.extract_text() for page in reader.pages)
        assert "<script>" in text  # shown literally, never interpreted
        for action in link_actions(reader):
            assert action.get("/S") in ("/URI", "/GoTo"), action
            uri = str(action.get("/URI", ""))
            if uri:  # the name may be in the path (URL-encoded), never decide the host
                host = urlsplit(uri).hostname or ""
                assert uri.startswith("https://"), uri
                assert host.endswith(".aws.amazon.com") or host == "aws.amazon.com", uri


def test_html_mail_escapes_the_markup(hostile_run: Path) -> None:
    messages = list(hostile_run.glob("outbox/**/*.eml"))
    assert messages
    for path in messages:
        message = email.message_from_bytes(path.read_bytes())
        for part in message.walk():
            if part.get_content_type() == "text/html":
                html = part.get_payload(decode=True).decode("utf-8")
                assert "<script" not in html.lower()


def test_log_lines_stay_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """A finding's text cannot forge a line of output: where a malformed record is described
    (quarantine reason, logs, the run summary) its newline stays escaped."""
    export = tmp_path / "bad.json"
    bad = _finding("f-9", f"arn:aws:iam::{ACCOUNT}:group/x\nFAKE LOG LINE", "UnusedIAMRole", [])
    good = _finding("f-1", HOSTILE_USER, "UnusedIAMUserPassword", [])
    export.write_text(json.dumps({"findings": [bad, good]}), encoding="utf-8")
    config = tmp_path / "c.yaml"
    config.write_text(f"state:\n  database_url: sqlite:///{tmp_path}/s.db\n", encoding="utf-8")
    out = tmp_path / "o"
    args = ["-v", "run", "-c", str(config), "--no-send", "--from-file", str(export)]
    with caplog.at_level(logging.DEBUG):
        assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr()
    lines = [*printed.out.splitlines(), *printed.err.splitlines()]
    lines += [line for r in caplog.records for line in r.getMessage().splitlines()]
    assert lines and not [line for line in lines if line.startswith("FAKE LOG LINE")]
    (run_dir,) = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    (quarantined,) = json.loads((run_dir / "data/quarantine.json").read_text(encoding="utf-8"))
    assert "\\nFAKE LOG LINE" in quarantined["reason"]


def test_secrets_never_reach_logs_mail_or_evidence(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    password, external_id = "Sm7p-S3cret-Value-41", "ext-Id-S3cret-77"
    monkeypatch.setenv("SMTP_PASSWORD", password)
    monkeypatch.setenv("EXTERNAL_ID", external_id)
    export = tmp_path / "export.json"
    good = _finding("f-1", HOSTILE_USER, "UnusedIAMUserPassword", [])
    export.write_text(json.dumps({"findings": [good]}), encoding="utf-8")
    config = tmp_path / "c.yaml"
    config.write_text(
        "organization:\n  external_id: ${EXTERNAL_ID}\n"
        "mail:\n  transport: smtp\n  smtp:\n    host: 127.0.0.1\n    username: reporter\n"
        "    password: ${SMTP_PASSWORD}\n"
        f"state:\n  database_url: sqlite:///{tmp_path}/s.db\n",
        encoding="utf-8",
    )
    out = tmp_path / "o"
    args = ["-v", "run", "-c", str(config), "--no-send", "--from-file", str(export)]
    with caplog.at_level(logging.DEBUG):
        assert main([*args, "--out", str(out)]) == 0
        assert main(["validate-config", "-c", str(config)]) == 0
    printed = capsys.readouterr()
    haystacks = [printed.out, printed.err, *(r.getMessage() for r in caplog.records)]
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "manifest.json" for p in files) and any(p.suffix == ".eml" for p in files)
    for secret in (password, external_id):
        assert not [h for h in haystacks if secret in h]
        assert not [p for p in files if secret.encode() in p.read_bytes()]
