"""Faults in some accounts, each on its own sandbox: AssumeRole refused, Security Hub off."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from moto.core import DEFAULT_ACCOUNT_ID

from reporter.sandbox import Sandbox
from reporter.sandbox.data import build_plan

from .conftest import OFF, SPEC, complete_runs, execute, expected_keys, keys, manifest, settings_for


def _active_members(sandbox: Sandbox) -> list[str]:
    return [a.id for a in sandbox.accounts if a.active and a.id != sandbox.management_account_id]


def test_assume_role_denied_in_a_tenth_of_the_accounts(tmp_path: Path) -> None:
    with Sandbox(SPEC) as sandbox:
        iam_only = {
            "security_hub": OFF,
            "access_analyzer": OFF,
            "iam": {"enabled": True, "mode": "always"},
        }
        settings = settings_for(sandbox, tmp_path, sources=iam_only)
        baseline = execute(sandbox, settings)
        assert baseline.exit_code == 0
        before = keys(baseline.run_dir)
        members = _active_members(sandbox)
        # A tenth of the accounts, each one with findings to lose.
        with_findings = sorted({k[0] for k in before} & set(members))
        denied = set(with_findings[: math.ceil(len(members) / 10)])
        assert denied
        sandbox.faults.deny_assume_role(*denied)

        result = execute(sandbox, settings)
        assert result.exit_code == 1
        coverage = {c.account_id: c for c in result.coverage}
        for account_id in denied:
            assert not coverage[account_id].covered and coverage[account_id].in_scope
            assert "AssumeRole denied: AccessDenied" in coverage[account_id].reason
        assert all(c.covered for c in result.coverage if c.in_scope and c.account_id not in denied)
        # Every other account's findings are there; the denied accounts' are neither reported
        # nor counted as resolved (an account not read resolves nothing).
        assert keys(result.run_dir) == {k for k in before if k[0] not in denied}
        assert result.resolved == 0 and result.new == 0
        rows = {r["account_id"]: r for r in manifest(result.run_dir)["coverage"]}
        assert all("AccessDenied" in rows[a]["reason"] for a in denied)
        assert manifest(result.run_dir)["exit_code"] == 1
        assert sandbox.faults.denied.keys() == denied
        assert len(complete_runs(tmp_path / "out")) == 2


def test_security_hub_off_in_an_account_is_said_and_the_analyzer_covers_it(
    tmp_path: Path,
) -> None:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    spec = replace(SPEC, now=hour)
    plan = build_plan(spec, DEFAULT_ACCOUNT_ID, hour)
    off = next(a.id for a in plan.members if a.active)
    with Sandbox(replace(spec, security_hub_off=frozenset({off}))) as sandbox:
        result = execute(sandbox, settings_for(sandbox, tmp_path))
        assert result.exit_code == 0
        coverage = {c.account_id: c for c in result.coverage}
        assert coverage[off].covered and coverage[off].sources == ("access_analyzer",)
        assert "security_hub: Security Hub off" in coverage[off].reason
        others = [c for c in result.coverage if c.in_scope and c.account_id != off]
        assert all(c.sources == ("access_analyzer", "security_hub") for c in others)
        assert keys(result.run_dir) == expected_keys(sandbox)
        assert off in {k[0] for k in keys(result.run_dir)}
