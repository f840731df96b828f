"""The commands as a user runs them: demo end to end, run, validate-config, evidence."""

from __future__ import annotations

import email
import io
import json
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from reporter.cli import main
from reporter.evidence import verify
from reporter.sandbox import Sandbox, SandboxSpec

ROOT = Path(__file__).resolve().parents[1]


def findings_doc(run_dir: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((run_dir / "data/findings.json").read_text())


def test_demo_writes_every_file_and_the_manifest_verifies(demo_run: Path) -> None:
    manifest = json.loads((demo_run / "manifest.json").read_text())
    listed = {f["path"] for f in manifest["files"]}
    for required in (
        "summary/summary.pdf",
        "summary/findings.xlsx",
        "data/findings.json",
        "data/findings.csv",
        "data/coverage.json",
        "schema/findings.schema.json",
    ):
        assert required in listed
    assert verify(demo_run).ok
    assert manifest["run_id"] == demo_run.name
    assert manifest["caller_identity"]["Account"]
    assert len(manifest["config_digest"]) == 64


def test_demo_findings_match_the_sandbox_ground_truth(demo_run: Path) -> None:
    with Sandbox(SandboxSpec()) as sandbox:
        suspended = {a.id for a in sandbox.accounts if a.state != "ACTIVE"}
        expected = {
            (e.account_id, e.finding_type, e.principal_arn)
            for e in sandbox.expected
            if e.active and e.account_id not in suspended
        }
        admin = sandbox.security_account_id
    doc = findings_doc(demo_run)
    got = {(f["account_id"], f["type"], f["principal_arn"]) for f in doc["findings"]}
    assert got == expected
    # Findings are attributed to the principal's account, never to the analyzer's.
    assert all(f["principal_arn"].split(":")[4] == f["account_id"] for f in doc["findings"])
    assert any(f["account_id"] != admin for f in doc["findings"])


def test_each_owner_gets_a_pdf_and_workbook_naming_their_findings(demo_run: Path) -> None:
    doc = findings_doc(demo_run)
    owners = sorted(p for p in (demo_run / "owners").iterdir())
    assert len(owners) >= 3
    for folder in owners:
        pdf_text = "\n".join(page.extract_text() for page in PdfReader(folder / "report.pdf").pages)
        mine = [f for f in doc["findings"] if f["owner"] == folder.name]
        if not mine:  # the fallback recipient gets the unowned findings
            mine = [f for f in doc["findings"] if f["owner"] is None]
        assert mine
        assert folder.name in pdf_text.lower()
        for f in mine:
            assert f["principal_name"][:20] in pdf_text.replace("\n", "")
        workbook = load_workbook(folder / "findings.xlsx")
        rows = list(workbook["Findings"].iter_rows(min_row=2, values_only=True))
        assert len([r for r in rows if any(r)]) == len(mine)


def test_each_recipient_gets_one_eml_with_both_attachments(demo_run: Path) -> None:
    emls = sorted((demo_run / "outbox").glob("*.eml"))
    owners = sorted(p.name for p in (demo_run / "owners").iterdir())
    assert [p.stem for p in emls] == owners
    for path in emls:
        msg = email.message_from_bytes(path.read_bytes(), policy=default)
        assert isinstance(msg, EmailMessage)
        assert msg["To"].lower() == path.stem
        names = sorted(part.get_filename() for part in msg.iter_attachments())
        assert names == ["findings.xlsx", "report.pdf"]
        pdf = next(p for p in msg.iter_attachments() if p.get_filename() == "report.pdf")
        assert (demo_run / "owners" / path.stem / "report.pdf").read_bytes() == pdf.get_content()
        assert msg.get_body(("plain",)) is not None and msg.get_body(("html",)) is not None


def test_demo_coverage_lists_suspended_account_as_not_in_scope(demo_run: Path) -> None:
    coverage = json.loads((demo_run / "data/coverage.json").read_text())
    suspended = [c for c in coverage if c["state"] == "SUSPENDED"]
    assert len(suspended) == 1 and not suspended[0]["in_scope"]
    assert all(c["covered"] for c in coverage if c["in_scope"])


def test_evidence_commands(demo_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = str(demo_run.parent)
    assert main(["evidence", "list", "--dir", root]) == 0
    assert demo_run.name in capsys.readouterr().out
    assert main(["evidence", "verify", demo_run.name, "--dir", root]) == 0
    assert main(["evidence", "verify", "no-such-run", "--dir", root]) == 2


def test_validate_config_accepts_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate-config", "-c", str(ROOT / "config/example.yaml")]) == 0
    assert "home_region" in capsys.readouterr().out


def test_validate_config_names_every_problem_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "organisation: {}\n"  # unknown key (typo)
        "schedule:\n  cron: '0 7 * * funday'\n"
        "mail:\n  smtp:\n    port: not-a-number\n"
    )
    assert main(["validate-config", "-c", str(bad)]) == 2
    err = capsys.readouterr().err
    for path in ("organisation", "schedule.cron", "mail.smtp.port"):
        assert path in err
    assert "Traceback" not in err


def test_run_against_an_endpoint_with_a_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Sandbox(SandboxSpec(member_accounts=4)) as sandbox:
        config = tmp_path / "reporter.yaml"
        config.write_text(
            "organization:\n"
            f"  home_region: {sandbox.home_region}\n"
            f"  delegated_admin_role_arn: {sandbox.delegated_admin_role_arn}\n"
            f"state:\n  database_url: sqlite:///{tmp_path}/state.db\n"
        )
        code = main(["run", "-c", str(config), "--no-send", "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr()
    (run_dir,) = (tmp_path / "out").iterdir()
    assert findings_doc(run_dir)["findings"]
    assert list((run_dir / "outbox").glob("*.eml"))


def test_python_dash_m_is_the_same_program() -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "reporter", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "access-reporter" in out.stdout


def test_demo_prints_a_table(tmp_path: Path) -> None:
    buffer = io.StringIO()
    from contextlib import redirect_stdout

    with redirect_stdout(buffer):
        code = main(["demo", "--out", str(tmp_path), "--accounts", "3"])
    text = buffer.getvalue()
    assert code == 0
    assert "owner" in text and "findings" in text and "Reports: " in text


# What a command imports, in a fresh interpreter: its exit code and whether WeasyPrint loaded.
IMPORTS = (
    "import sys\n"
    "from reporter.cli import main\n"
    "code = main(sys.argv[1:]) if len(sys.argv) > 1 else 0\n"
    "print(code, 'weasyprint' in sys.modules)\n"
)


@pytest.mark.parametrize("command", ["import", "validate-config", "evidence verify", "demo"])
def test_only_commands_that_render_load_weasyprint(command: str, tmp_path: Path) -> None:
    """A WeasyPrint upgrade, or its system libraries missing, must not break a command that
    never renders; the CLI imports the renderer where a run renders."""
    import subprocess
    import sys

    from reporter.evidence import RunFolder

    with RunFolder(tmp_path, "run-1") as folder:
        folder.write("data/a.txt", b"alpha")
        folder.commit({"run_id": "run-1", "started_at": "2026-11-28T12:00:00+00:00"})
    argv = {
        "import": [],
        "validate-config": ["validate-config", "-c", str(ROOT / "config/example.yaml")],
        "evidence verify": ["evidence", "verify", "run-1", "--dir", str(tmp_path)],
        "demo": ["demo", "--out", str(tmp_path / "demo"), "--accounts", "2"],
    }[command]
    out = subprocess.run(
        [sys.executable, "-c", IMPORTS, *argv], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == f"0 {command == 'demo'}"


def test_the_demo_closes_the_review_loop(demo_run: Path) -> None:
    from reporter.evidence import verify

    out = demo_run.parent
    _, second = sorted(p for p in out.iterdir() if (p / "manifest.json").is_file())
    decisions = json.loads((second / "data" / "decisions.json").read_text())
    assert sorted(d["state"] for d in decisions["decisions"]) == ["kept", "removed", "triage"]
    (imported,) = decisions["imported_since_previous_run"]
    assert (second / imported["path"]).is_file()
    findings = {
        f["key"]: f for f in json.loads((second / "data/findings.json").read_text())["findings"]
    }
    kept = next(d for d in decisions["decisions"] if d["state"] == "kept")
    assert findings[kept["key"]]["exception"]["source"] == "review"
    (attestation,) = (out / ".attestations").iterdir()
    assert verify(attestation).ok
