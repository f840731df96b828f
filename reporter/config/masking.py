"""What a secret looks like when config is shown: the `_Shown` marker, URL masking, references.

The bottom of the package. Field types carry a `_Shown` marker, and every place that prints,
logs or digests config hides what the marker says: a URL's user info and query string, a whole
password hash. A value that is wholly a secret reference (`${NAME}`) names a variable and holds
no secret, so it may be shown.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from enum import Enum
from typing import Annotated, Any, TypeAlias

from pydantic.fields import FieldInfo

REDACTED = "<redacted>"

Loc: TypeAlias = tuple[str | int, ...]


class _Shown(Enum):
    """How a value of a marked type is shown wherever config is printed, digested or logged.

    Put on a type with `Annotated[..., _Shown.URL]`; the model walk (`schema`) finds every field
    that carries it (inside `X | None`, a mapping's values or a sequence's items too), so a new
    setting of a marked type is redacted without being listed anywhere.
    """

    URL = "url"  # user info and query string replaced: they carry passwords and tokens
    PASSWORD_HASH = "password_hash"  # an offline-guessable verifier: never shown


def mask_url_credentials(url: str, *, keep_references: bool = False) -> str:
    """The URL with its user info (`user:password@`) and query string replaced by `<redacted>`.

    The whole user info goes, not only a password: `https://TOKEN@host` carries its secret as
    the user name. With `keep_references` (for the URL as written in the file), a user or
    password that is wholly a reference such as `${DB_PASSWORD}` stays, since it names a
    variable and holds no secret: `postgresql://<redacted>:${DB_PASSWORD}@db/x`.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    rest, question, _query = rest.partition("?")
    # rfind: an unencoded `@` (or `/`) in a password must not end the user info early. Only an
    # `@` in a path with no `:` before it (`sqlite:////srv/a@b/db`) is not user info; reading
    # anything else as user info at worst hides some host or path.
    at = rest.rfind("@")
    userinfo = rest[:at]
    if at >= 0 and (":" in userinfo or "/" not in userinfo):
        parts = userinfo.split(":", 1)
        references = [bool(re.fullmatch(r"\$\{[^}]*\}", part)) for part in parts]
        if keep_references and any(references):
            shown = [
                p if ref or not p else REDACTED for p, ref in zip(parts, references, strict=True)
            ]
            rest = f"{':'.join(shown)}{rest[at:]}"
        else:
            rest = f"{REDACTED}{rest[at:]}"
    return f"{scheme}://{rest}{'?' + REDACTED if question else ''}"


_ANY = "*"  # in a marked location: any key of a mapping, any index of a sequence


def _marker_in(annotation: Any) -> tuple[_Shown, Loc] | None:
    """The `_Shown` marker `annotation` carries, and where under a value of it: () for the
    value itself, (_ANY,) for each value of a mapping or item of a sequence."""
    if typing.get_origin(annotation) is Annotated:
        for meta in annotation.__metadata__:
            if isinstance(meta, _Shown):
                return meta, ()
        return _marker_in(typing.get_args(annotation)[0])
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (dict, Mapping):
        found = _marker_in(args[1])
    elif origin in (tuple, list):
        found = _marker_in(args[0])
    else:  # X | None, or a type without parameters
        return next((m for m in map(_marker_in, args) if m is not None), None)
    return (found[0], (_ANY, *found[1])) if found is not None else None


def _marker(field: FieldInfo) -> tuple[_Shown, Loc] | None:
    for meta in field.metadata:  # pydantic keeps a top-level Annotated's extras here
        if isinstance(meta, _Shown):
            return meta, ()
    return _marker_in(field.annotation)


def _shown(value: str, kind: _Shown) -> str:
    return mask_url_credentials(value) if kind is _Shown.URL else REDACTED


def _shown_under(value: Any, kind: _Shown, under: Loc) -> Any:
    """`value` with what `kind` hides hidden at every place `under` names."""
    if not under:
        return _shown(value, kind) if isinstance(value, str) else value
    if isinstance(value, Mapping):
        return {k: _shown_under(v, kind, under[1:]) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_shown_under(v, kind, under[1:]) for v in value)
    return value


def _is_reference(value: Any) -> bool:
    if isinstance(value, Mapping):
        return "$env" in value
    return isinstance(value, str) and bool(re.search(r"(?<!\$)\$\{", value))
