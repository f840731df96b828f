"""The fuzz package's summary: how many examples ran, per test and in total (README figure)."""

from __future__ import annotations

import pytest

from tests.fuzz.strategies import EXAMPLES, OUTCOMES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not EXAMPLES:
        return
    terminalreporter.section("fuzz examples")
    for test in sorted({*EXAMPLES, *OUTCOMES}):
        outcomes = OUTCOMES.get(test)
        detail = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())) if outcomes else ""
        count = f"{EXAMPLES[test]} examples" if test in EXAMPLES else "outcomes"
        terminalreporter.write_line(f"{test}: {count}" + (f" ({detail})" if detail else ""))
    terminalreporter.write_line(f"total: {sum(EXAMPLES.values())} examples")
