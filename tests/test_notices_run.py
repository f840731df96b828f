"""Exception notices reach who must act on them, through a whole `--from-file` run."""

from __future__ import annotations

import json
from pathlib import Path

from pypdf import PdfReader

from reporter.cli import main

from .test_hostile_run import ACCOUNT, HOSTILE_USER, _finding


def test_fallback_recipients_hear_of_exceptions_on_unowned_findings(tmp_path: Path) -> None:
    """An export names no owners: every finding goes to the fallback, and so must the notice
    of an exception about to expire on one of them."""
    from datetime import UTC, datetime, timedelta

    from reporter.models import owner_slug

    export = tmp_path / "export.json"
    good = _finding("f-1", HOSTILE_USER, "UnusedIAMUserPassword", [])
    export.write_text(json.dumps({"findings": [good]}), encoding="utf-8")
    expires = (datetime.now(UTC) + timedelta(days=5)).date().isoformat()
    config = tmp_path / "c.yaml"
    config.write_text(
        f"state:\n  database_url: sqlite:///{tmp_path}/s.db\n"
        "exceptions:\n  rules:\n    - id: vendor-sso-user\n"
        f'      principal_arn: "arn:aws:iam::{ACCOUNT}:user/*"\n'
        "      reason: vendor access until the contract ends\n"
        "      approved_by: ciso@example.com\n"
        f"      expires: {expires}\n",
        encoding="utf-8",
    )
    out = tmp_path / "o"
    args = ["run", "-c", str(config), "--no-send", "--from-file", str(export), "--out", str(out)]
    assert main(args) == 0
    (run_dir,) = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    pdf = run_dir / "owners" / owner_slug("security-team@example.com") / "report.pdf"
    text = "".join(page.extract_text() for page in PdfReader(pdf).pages)
    assert "Exceptions that need attention" in text
    assert "vendor-sso-user" in text and expires in text

    # The approver owns no finding; they still get the notice, in a report of their own.
    approver = run_dir / "owners" / owner_slug("ciso@example.com") / "report.pdf"
    text = "".join(page.extract_text() for page in PdfReader(approver).pages)
    assert "No unused access was found in your accounts for this period." in text
    assert "The exceptions below need your attention." in text
    assert "vendor-sso-user" in text and expires in text
    assert "Nothing to do" not in text
