"""Secret references: `${NAME}` (whole or embedded) and `{"$env": NAME}`, resolved from `environ`.

References resolve into a copy of the data, never into the file's own mapping; the resolver
remembers where each one was and what was written there, so the loaded settings can show the
reference instead of the value.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from reporter.errors import ConfigProblem

from .display import _display, _path
from .masking import Loc
from .schema import _REFERENCE_ONLY

# `$${` is an escaped, literal `${`; `${` without a closing brace is an error.
_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclasses.dataclass
class _Resolver:
    environ: Mapping[str, str]
    refs: dict[Loc, str] = dataclasses.field(default_factory=dict)
    problems: list[tuple[Loc, ConfigProblem]] = dataclasses.field(default_factory=list)

    def problem(self, loc: Loc, shown: Any, message: str, hint: str) -> None:
        self.problems.append((loc, ConfigProblem(_path(loc), _display(shown, loc), message, hint)))

    def lookup(self, name: str, loc: Loc, shown: Any) -> str | None:
        if not _ENV_NAME.fullmatch(name):
            self.problem(loc, shown, "invalid environment variable name", "letters, digits, _")
            return None
        if name not in self.environ:
            self.problem(
                loc, shown, f"environment variable {name} is not set", f"export {name}=..."
            )
            return None
        return self.environ[name]

    def resolve(self, value: Any, loc: Loc) -> Any:
        if isinstance(value, Mapping) and "$env" in value:
            return self._env_mapping(value, loc)
        if isinstance(value, Mapping):
            result: dict[str, Any] = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    self.problem(
                        (*loc, str(key)),
                        key,
                        "key is not text",
                        "quote the key: YAML reads yes/no/on/off, numbers and dates as values",
                    )
                    continue
                result[key] = self.resolve(item, (*loc, key))
            return result
        if isinstance(value, list | tuple):
            return [self.resolve(item, (*loc, index)) for index, item in enumerate(value)]
        whole_reference = isinstance(value, str) and re.fullmatch(r"\$\{[^}]*\}", value)
        if loc in _REFERENCE_ONLY and value is not None and not whole_reference:
            self.problem(
                loc,
                value,
                "a literal password is not allowed",
                "export SMTP_PASSWORD=... and write `password: ${SMTP_PASSWORD}`",
            )
            return value
        if isinstance(value, str) and "$" in value:
            return self._substitute(value, loc)
        return value

    def _env_mapping(self, value: Mapping[Any, Any], loc: Loc) -> Any:
        name = value.get("$env")
        if set(value) != {"$env"} or not isinstance(name, str):
            self.problem(
                loc,
                value,
                "a secret reference has exactly one key, `$env`, naming a variable",
                'write `{"$env": "NAME"}` or "${NAME}"',
            )
            return value
        self.refs[loc] = f"${{{name}}}"
        resolved = self.lookup(name, loc, value)
        return value if resolved is None else resolved

    def _substitute(self, text: str, loc: Loc) -> str:
        found = False
        failed = False

        def replace(match: re.Match[str]) -> str:
            nonlocal found, failed
            if match.group(0) == "$${":
                return "${"
            if match.group(1) is None:
                self.problem(loc, text, "unterminated `${`", "close it: `${NAME}`; `$${` is `${`")
                failed = True
                return match.group(0)
            found = True
            resolved = self.lookup(match.group(1), loc, text)
            if resolved is None:
                failed = True
                return match.group(0)
            return resolved

        result = _REFERENCE.sub(replace, text)
        if found:
            self.refs[loc] = text
        return text if failed else result
