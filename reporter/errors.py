"""One exception base per edge; the CLI turns each into a message and an exit code."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


class ReporterError(Exception):
    """Base of every error the CLI knows how to explain."""

    exit_code = 1


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a configuration file: where, what was there, and how to fix it."""

    path: str
    value: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.path}: {self.message} (got {self.value})"
        return f"{text}\n    hint: {self.hint}" if self.hint else text


class ConfigError(ReporterError):
    """The configuration is invalid; carries every problem found, not just the first."""

    exit_code = 2

    def __init__(self, problems: list[ConfigProblem], source: str = "") -> None:
        self.problems = problems
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        where = f" in {self.source}" if self.source else ""
        head = f"{len(self.problems)} configuration problem(s){where}:"
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


class UsageError(ReporterError):
    exit_code = 2


class CollectionError(ReporterError):
    """Nothing at all could be collected."""

    exit_code = 3


class RenderError(ReporterError):
    pass


class StateError(ReporterError):
    """The state database cannot be opened, read or written: nothing can be trusted to run."""

    exit_code = 2


class DeliveryError(ReporterError):
    pass


# `scheme://user:password@` in a message: botocore quotes the endpoint URL as configured
# (`Could not connect to the endpoint URL: "https://user:secret@host/"`).
_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s\"'<>]*@")


def scrub(text: str) -> str:
    """`text` with the credentials of any URL in it replaced: fit for logs, coverage and the
    manifest."""
    return _USERINFO.sub(r"\1<redacted>@", text)


def error_text(exc: Exception) -> str:
    """An AWS (or other) error as coverage and source failures record it: the AWS error code
    and message, or the exception's text, never a URL's credentials."""
    response: Any = getattr(exc, "response", None)
    if isinstance(response, dict) and isinstance(response.get("Error"), dict):
        error = response["Error"]
        return scrub(f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip(": "))
    return scrub(str(exc))
