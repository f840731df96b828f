"""The stored form of a web user's password hash, `scrypt$N$r$p$SALT$HASH`, and its bounds.

The config accepts a hash only in this form and at a bounded cost (`hash_problem`) and shows no
more of it than `public_part`; `reporter.web.passwords` makes and checks hashes in this form.
Standard library only, so the config and the web page both build on it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

SCHEME = "scrypt"
# scrypt holds 128 * N * r bytes while it works, and every sign-in attempt makes one check, so
# a hash that asks for more than this is refused (a config error), never obeyed.
MAX_MEMORY = 64 * 2**20
_MAX_R, _MAX_P = 32, 16
_DKLEN = 32


class HashError(ValueError):
    """Not a hash this page accepts; the message never quotes the hash."""


@dataclass(frozen=True)
class _Parsed:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes


def _size(size: int) -> str:
    return f"{size / 2**30:g} GiB" if size >= 2**30 else f"{size / 2**20:g} MiB"


def _check_cost(n: int, r: int, p: int) -> None:
    if n < 2 or n & (n - 1) or not 1 <= r <= _MAX_R or not 1 <= p <= _MAX_P:
        raise HashError(
            f"unsupported scrypt parameters (N a power of two, r 1–{_MAX_R}, p 1–{_MAX_P})"
        )
    if 128 * n * r > MAX_MEMORY:
        raise HashError(
            f"scrypt cost too high: {_size(128 * n * r)} per login check "
            f"(128 * N * r; at most {_size(MAX_MEMORY)})"
        )


def _parse(stored: str) -> _Parsed:
    """Raises HashError for anything but a well-formed hash with bounded parameters."""
    try:
        scheme, n_text, r_text, p_text, salt_text, digest_text = stored.split("$")
        n, r, p = int(n_text), int(r_text), int(p_text)
        salt = base64.b64decode(salt_text, validate=True)
        digest = base64.b64decode(digest_text, validate=True)
    except (ValueError, TypeError) as exc:
        raise HashError("not a password hash made by `access-reporter hash-password`") from exc
    if scheme != SCHEME:
        raise HashError(f"unsupported hash scheme (only {SCHEME})")
    _check_cost(n, r, p)
    if len(salt) < 16 or len(digest) != _DKLEN:
        raise HashError("unsupported hash: salt shorter than 16 bytes or digest not 32 bytes")
    return _Parsed(n, r, p, salt, digest)


def hash_problem(text: str) -> str | None:
    """Why `text` is not an accepted password hash, or None when it is."""
    try:
        _parse(text)
    except HashError as exc:
        return str(exc)
    return None


def public_part(text: str) -> str:
    """`text` as it may be shown: the scheme and cost of a hash, salt and digest withheld.

    Anything that does not look like a hash (a password pasted by mistake) is withheld whole.
    """
    parts = text.split("$")
    if len(parts) == 6 and parts[0] == SCHEME and all(p.isdigit() for p in parts[1:4]):
        return "$".join([*parts[:4], "<redacted>"])
    return "<redacted>"
