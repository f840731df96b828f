"""`exceptions.file`: more exception rules in their own YAML file, checked as if written inline.

Problems name their place in that file (`exceptions.yaml:rules[0].expires`), and rule ids must
be unique across the config and the file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reporter.errors import ConfigProblem

from .display import FILE_PATH, _display, _path
from .fields import _Issues
from .hints import _problems_from_validation
from .settings import ExceptionRuleSettings, ExceptionsSettings, Settings, _check_rules
from .yamlfile import _parse_yaml


def _exceptions_file(
    resolved: Any, base_dir: Path, today: date
) -> tuple[str, tuple[ExceptionRuleSettings, ...], list[ConfigProblem]]:
    """(label, rules, problems) of `exceptions.file`; problems name their place in that file."""
    section = resolved.get("exceptions") if isinstance(resolved, Mapping) else None
    written = section.get("file") if isinstance(section, Mapping) else None
    if not isinstance(written, str) or not written.strip() or "\x00" in written:
        return "", (), []  # no file, or a value that validation reports at exceptions.file
    path = base_dir / written

    def unreadable(message: str, hint: str) -> tuple[str, tuple[()], list[ConfigProblem]]:
        return written, (), [ConfigProblem("exceptions.file", repr(written), message, hint)]

    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        return unreadable(
            "file not found",
            f"a relative path is read from the config file's folder: looked for {path.absolute()}",
        )
    except IsADirectoryError:
        return unreadable("is a directory", "name the YAML file, e.g. `exceptions.yaml`")
    except PermissionError:
        return unreadable("permission denied", "make the file readable by the reporter's user")
    except OSError as exc:
        return unreadable(f"cannot read: {exc.strerror}", "check the path")
    except UnicodeDecodeError as exc:
        return unreadable(f"not UTF-8 (byte {exc.start})", "save the file as UTF-8")

    def located(path_in_file: str) -> str:
        return written if path_in_file == FILE_PATH else f"{written}:{path_in_file}"

    data, parsed = _parse_yaml(text)
    problems = [dataclasses.replace(p, path=located(p.path)) for p in parsed]
    if data is None:
        return written, (), problems
    if not isinstance(data, Mapping):
        hint = "write `rules:` and below it a list of exceptions, as in config/exceptions.yaml"
        problems.append(
            ConfigProblem(written, _display(data, ()), "expected a mapping with `rules:`", hint)
        )
        return written, (), problems
    for key in data:
        if key != "rules":
            hint = "an exceptions file holds only `rules:`; other exceptions settings belong "
            problems.append(
                ConfigProblem(
                    located(_path((str(key),))), repr(key), "unknown key", hint + "in the config"
                )
            )
    days = section.get("max_days_ahead") if isinstance(section, Mapping) else None
    if not (isinstance(days, int) and not isinstance(days, bool) and 1 <= days <= 3650):
        days = ExceptionsSettings.model_fields["max_days_ahead"].default
    # Validated as if written in the config, so types, hints and checks are the same.
    wrapped = {"exceptions": {"max_days_ahead": days, "rules": data.get("rules") or []}}
    try:
        context = {"today": today, "rules_label": f"{written}:rules"}
        rules = Settings.model_validate(wrapped, context=context).exceptions.rules
    except ValidationError as exc:
        for problem in _problems_from_validation(exc, wrapped, [], {}):
            inside = problem.path.removeprefix("exceptions.")
            problems.append(dataclasses.replace(problem, path=located(inside)))
        return written, (), problems
    # Ids must be unique across the config and the file too.
    inline = section.get("rules") if isinstance(section, Mapping) else None
    seen = {
        rule["id"]: f"exceptions.rules[{index}]"
        for index, rule in reversed(list(enumerate(inline if isinstance(inline, list) else [])))
        if isinstance(rule, Mapping) and isinstance(rule.get("id"), str)
    }
    issues = _Issues()
    _check_rules(rules, ("rules",), f"{written}:rules", days, today, seen, issues)
    problems.extend(
        ConfigProblem(located(_path(loc)), _display(value, ()), message, hint)
        for loc, message, hint, value in issues.items
    )
    return written, rules, problems
