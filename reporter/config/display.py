"""Config as people see it: paths, values from the file, the redacted settings, the docs table.

Everything shown goes through here, so a secret is hidden in one place: values as written in
the file (`_display`), the loaded settings (`redacted`, `dump_yaml`, `config_digest`, section
`repr`s via `_mask_sections`) and the documented defaults (`describe_fields`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr

from .fields import _Section
from .masking import (
    _ANY,
    REDACTED,
    Loc,
    _is_reference,
    _Shown,
    _shown,
    mask_url_credentials,
)
from .passwordhash import public_part
from .schema import _ALWAYS_SECRET, _MARKED, _marked_at, _section_type
from .settings import Settings

FILE_PATH = "<file>"
_VALUE_WIDTH = 80


def _path(loc: Loc) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not re.fullmatch(r"[\w$-]+", part):
            text += f"[{json.dumps(part)}]"  # e.g. an owner name with a space or a dot
        else:
            text += f".{part}" if text else part
    return text or "<root>"


_MISSING = object()


def _get(data: Any, loc: Loc) -> Any:
    for part in loc:
        in_list = isinstance(part, int) and isinstance(data, list | tuple) and 0 <= part < len(data)
        in_mapping = isinstance(part, str) and isinstance(data, Mapping) and part in data
        if not (in_list or in_mapping):
            return _MISSING
        data = data[part]
    return data


def _mask_raw(value: Any, loc: Loc) -> Any:
    """`value` (found at `loc` in the file) with always-secret parts masked, for display."""
    if loc in _ALWAYS_SECRET and value is not None and not _is_reference(value):
        return REDACTED
    kind = _marked_at(loc)
    if kind is _Shown.URL and isinstance(value, str):
        # As written: a reference in it may sit beside a literal password.
        return mask_url_credentials(value, keep_references=True)
    if kind is _Shown.PASSWORD_HASH and isinstance(value, str) and not _is_reference(value):
        return public_part(value)  # the scheme and cost say what is wrong; the rest stays hidden
    if isinstance(value, Mapping):
        return {k: _mask_raw(v, (*loc, k)) if isinstance(k, str) else v for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_raw(v, (*loc, i)) for i, v in enumerate(value)]
    return value


def _display(value: Any, loc: Loc) -> str:
    shown = _mask_raw(value, loc)
    # YAML reads `2026-06-30` as a date; show it as written, not as `datetime.date(...)`.
    text = shown.isoformat() if isinstance(shown, date) else repr(shown)
    return text if len(text) <= _VALUE_WIDTH else text[: _VALUE_WIDTH - 3] + "..."


@dataclasses.dataclass(frozen=True)
class FieldDoc:
    """One setting: dotted path, default (plain data), description, and whether it is a section."""

    path: str
    default: Any
    description: str
    is_section: bool


def describe_fields(model: type[_Section] = Settings, prefix: str = "") -> list[FieldDoc]:
    """Every setting of `model`, depth first, in declaration order."""
    docs: list[FieldDoc] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        section = _section_type(field)
        default = None if section else _plain(field.get_default(call_default_factory=True))
        docs.append(FieldDoc(path, default, field.description or "", section is not None))
        if section is not None:
            docs.extend(describe_fields(section, f"{path}."))
    return docs


def redacted(settings: Settings) -> dict[str, Any]:
    """The resolved settings as plain data, with every secret replaced by `<redacted…>`."""
    data: dict[str, Any] = settings.model_dump(mode="json")
    for loc in _ALWAYS_SECRET:
        if _get(data, loc) not in (_MISSING, None):
            _set(data, loc, REDACTED)
    for pattern, kind in _MARKED:
        for loc in list(_expand(data, pattern)):
            if isinstance(value := _get(data, loc), str):
                _set(data, loc, _shown(value, kind))
    for loc, written in settings._secret_refs:
        _set(data, loc, f"<redacted: {_written(written, loc)}>")
    return data


def _expand(data: Any, pattern: Loc, done: Loc = ()) -> Iterator[Loc]:
    """The locations in `data` that `pattern` names (`_ANY`: every key or index)."""
    if len(done) == len(pattern):
        yield done
        return
    node, part = _get(data, done), pattern[len(done)]
    keys: list[str | int] = [part]
    if part == _ANY:
        keys = list(node) if isinstance(node, Mapping) else []
        keys += range(len(node)) if isinstance(node, list) else []
    for key in keys:
        if _get(node, (key,)) is not _MISSING:
            yield from _expand(data, pattern, (*done, key))


def _written(written: str, loc: Loc) -> str:
    """What was written where a reference resolved, safe to show: a URL may hold a reference
    and a literal password side by side."""
    if _marked_at(loc) is _Shown.URL:
        return mask_url_credentials(written, keep_references=True)
    return written


def dump_yaml(data: Mapping[str, Any]) -> str:
    """Block-style YAML in the mapping's own key order (for `validate-config` output)."""
    return yaml.safe_dump(
        _plain(data), sort_keys=False, allow_unicode=True, default_flow_style=False
    )


def config_digest(settings: Settings) -> str:
    """SHA-256 (hex) of the redacted settings as canonical JSON: secrets rotate, it stays."""
    data = redacted(settings)
    if settings.exceptions.file_rules:
        # The rules of `exceptions.file` change what the reports say just as inline ones do.
        data["exceptions"]["file_rules"] = [
            rule.model_dump(mode="json") for rule in settings.exceptions.file_rules
        ]
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _plain(value: Any) -> Any:
    """Plain YAML/JSON-able data: mappings → dict, sequences → list, enums/paths → str."""
    # Settings handed over whole are redacted here, so no caller can dump a secret by accident.
    if isinstance(value, Settings):
        return redacted(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


def _set(data: Any, loc: Loc, value: Any) -> None:
    for part in loc[:-1]:
        data = data[part]
    data[loc[-1]] = value


def _mask_sections(settings: Settings, refs: tuple[tuple[Loc, str], ...]) -> None:
    # Tell each section which of its fields came from a reference, so that its own repr hides
    # them too (code may log `settings.state` on its own).
    for loc, written in refs:
        section: Any = settings
        for depth, part in enumerate(loc):
            child = getattr(section, str(part), None) if isinstance(part, str) else None
            if isinstance(child, _Section):
                section = child
                continue
            shown = f"<redacted: {_written(written, loc)}>" if depth == len(loc) - 1 else REDACTED
            section._masked[str(part)] = shown
            break
