"""Model introspection: one walk over the model serves docs, hints and redaction.

Where the secrets are (`SecretStr` fields, `_Shown`-marked types, references-only keys), and
which section and field a location in the file names.
"""

from __future__ import annotations

import typing

from pydantic.fields import FieldInfo

from .fields import _Section
from .masking import _ANY, Loc, _marker, _Shown
from .settings import Settings


def _section_type(field: FieldInfo) -> type[_Section] | None:
    annotation = field.annotation
    if isinstance(annotation, type) and issubclass(annotation, _Section):
        return annotation
    return None


def _field_at(loc: Loc) -> tuple[type[_Section] | None, FieldInfo | None]:
    """The section holding the last model field named in `loc`, and that field."""
    model: type[_Section] | None = Settings
    owner: type[_Section] | None = None
    field: FieldInfo | None = None
    items: type[_Section] | None = None
    for part in loc:
        if isinstance(part, int) and items is not None:
            model, items = items, None  # an item of a list of sections, e.g. exceptions.rules[0]
            continue
        if model is None:
            continue  # inside a list or mapping value: the field stays the same
        if not isinstance(part, str) or part not in model.model_fields:
            return model, None
        owner, field = model, model.model_fields[part]
        model, items = _section_type(field), _item_section_type(field)
    return owner, field


def _item_section_type(field: FieldInfo) -> type[_Section] | None:
    """X for a field typed `tuple[X, ...]` where X is a section."""
    args = typing.get_args(field.annotation)
    if args and isinstance(args[0], type) and issubclass(args[0], _Section):
        return args[0]
    return None


def _secret_field_locs(model: type[_Section] = Settings, prefix: Loc = ()) -> list[Loc]:
    locs: list[Loc] = []
    for name, field in model.model_fields.items():
        section = _section_type(field)
        if section is not None:
            locs.extend(_secret_field_locs(section, (*prefix, name)))
        elif "SecretStr" in str(field.annotation):
            locs.append((*prefix, name))
    return locs


def _marked_locs(model: type[_Section] = Settings, prefix: Loc = ()) -> list[tuple[Loc, _Shown]]:
    found: list[tuple[Loc, _Shown]] = []
    for name, field in model.model_fields.items():
        section, items = _section_type(field), _item_section_type(field)
        if section is not None:
            found.extend(_marked_locs(section, (*prefix, name)))
        elif items is not None:
            found.extend(_marked_locs(items, (*prefix, name, _ANY)))
        elif (marked := _marker(field)) is not None:
            found.append(((*prefix, name, *marked[1]), marked[0]))
    return found


def _marked_at(loc: Loc) -> _Shown | None:
    for pattern, kind in _MARKED:
        if len(pattern) == len(loc) and all(
            p in (_ANY, part) for p, part in zip(pattern, loc, strict=True)
        ):
            return kind
    return None


_ALWAYS_SECRET: frozenset[Loc] = frozenset(_secret_field_locs())
# Every URL (user info may hold a password) and every password hash in the model.
_MARKED: tuple[tuple[Loc, _Shown], ...] = tuple(_marked_locs())
# A literal here would put a live password in a file that gets committed and copied around.
_REFERENCE_ONLY: frozenset[Loc] = frozenset({("mail", "smtp", "password")})
