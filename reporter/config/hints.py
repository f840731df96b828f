"""pydantic's validation errors as `ConfigProblem`s: the key, the value as written, a hint."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from reporter.errors import ConfigProblem

from .display import _MISSING, _display, _get, _path
from .masking import Loc
from .schema import _field_at, _item_section_type, _section_type


def _starts_with(loc: Loc, prefix: Loc) -> bool:
    return loc[: len(prefix)] == prefix


_MESSAGES = {
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
    "model_type": "expected a mapping of settings",
    "model_attributes_type": "expected a mapping of settings",
    "dict_type": "expected a mapping",
    "tuple_type": "expected a list",
    "list_type": "expected a list",
    "string_type": "expected text",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "path_type": "expected a path",
    "too_short": "must not be empty",
}


def _message(text: str) -> str:
    # pydantic says "Input should be greater than or equal to 1"; the problem already shows input.
    return re.sub(r"^Input should be ", "should be ", text)


def _with(base: str, description: str) -> str:
    return f"{base}. {description}" if description else base


def _hint_for(kind: str, loc: Loc, raw: Any) -> str:
    owner, field = _field_at(loc)
    key = str(loc[-1]) if loc else ""
    if kind == "extra_forbidden" and owner is not None:
        allowed = list(owner.model_fields)
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        return f"did you mean `{close[0]}`?" if close else f"allowed keys: {', '.join(allowed)}"
    description = field.description if field is not None and field.description else ""
    item_of_list = len(loc) >= 2 and isinstance(loc[-1], int)
    if kind in ("model_type", "model_attributes_type") and item_of_list and field is not None:
        items = _item_section_type(field)
        keys = ", ".join(items.model_fields) if items else ""
        return f"each item of `{loc[-2]}` is a mapping of settings ({keys})"
    if kind in ("model_type", "model_attributes_type") and field is not None:
        section = _section_type(field)
        keys = ", ".join(section.model_fields) if section else ""
        return f"indent the settings under `{key}:` ({keys})"
    if kind in ("tuple_type", "list_type"):
        item = repr(raw) if isinstance(raw, str | int | float) else "..."
        return f"write a YAML list, e.g. `{key}: [{item}]`"
    if kind in ("int_type", "int_parsing", "int_from_float", "float_type", "float_parsing"):
        default = field.get_default() if field is not None else None
        example = f", e.g. `{key}: {default}`" if isinstance(default, int | float) else ""
        return _with(f"write a number without quotes{example}", description)
    if kind in ("bool_type", "bool_parsing"):
        return _with("write `true` or `false`", description)
    if kind == "string_type":
        return _with(
            "quote it: YAML reads unquoted numbers, yes/no and dates as non-text", description
        )
    return description


def _problems_from_validation(
    error: ValidationError, raw: Mapping[str, Any], skip: list[Loc], refs: Mapping[Loc, str]
) -> list[ConfigProblem]:
    def shown(loc: Loc, validated: Any) -> Any:
        # The value as written in the file, so a reference shows as `${NAME}`, not its value;
        # a location missing from the file holds a default, which cannot be a resolved secret.
        written = _get(raw, loc)
        return validated if written is _MISSING else written

    entries: list[tuple[Loc, str, str, Any]] = []
    for detail in error.errors(include_url=False):
        loc: Loc = tuple(detail["loc"])
        ctx = detail.get("ctx") or {}
        if detail["type"] == "config_issues":
            for sub, message, hint, value in ctx["issues"]:
                entries.append(((*loc, *sub), message, hint, shown((*loc, *sub), value)))
            continue
        message = _MESSAGES.get(detail["type"]) or _message(detail["msg"])
        if loc and loc[-1] == "[key]":
            # A mapping key failed (e.g. a blank owner name): report it at the key, showing the key.
            loc = loc[:-1]
            entries.append((loc, f"key: {message}", ctx.get("hint") or "", loc[-1]))
            continue
        value = shown(loc, detail.get("input"))
        hint = ctx.get("hint") or _hint_for(detail["type"], loc, value)
        if loc not in refs:
            message = f"{message}: {ctx['detail']}" if ctx.get("detail") else message
            hint = ctx.get("value_hint") or hint
        entries.append((loc, message, hint, value))
    # A list whose only item is invalid is also "too short"; the item's problem says it all.
    failed = [loc for loc, *_ in entries]
    return [
        ConfigProblem(_path(loc), _display(value, loc), message, hint)
        for loc, message, hint, value in entries
        # Locations whose reference could not be resolved were reported already.
        if not any(_starts_with(loc, done) for done in skip)
        and not (
            message == _MESSAGES["too_short"]
            and any(len(other) > len(loc) and _starts_with(other, loc) for other in failed)
        )
    ]
