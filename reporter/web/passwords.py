"""Password hashes for the web page's users: scrypt from the standard library, nothing more.

Stored as `scrypt$N$r$p$SALT$HASH` (salt and hash base64), so the cost travels with the hash
and can be raised later without breaking old entries. Parameters read from a config file are
bounded, so a hostile or mistyped hash cannot make one login take gigabytes of memory.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass

SCHEME = "scrypt"
# OWASP's scrypt baseline (N=2^17, r=8, p=1) costs 128 MiB per login; 2^15 keeps one check near
# 32 MiB and ~0.1 s on a small machine, which suits a page a few auditors open.
DEFAULT_N, DEFAULT_R, DEFAULT_P = 2**15, 8, 1
_MAX_N, _MAX_R, _MAX_P = 2**20, 32, 16
_DKLEN = 32


@dataclass(frozen=True)
class _Parsed:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _parse(stored: str) -> _Parsed:
    """Raises ValueError for anything but a well-formed hash with sane parameters."""
    try:
        scheme, n_text, r_text, p_text, salt_text, digest_text = stored.split("$")
        n, r, p = int(n_text), int(r_text), int(p_text)
        salt = base64.b64decode(salt_text, validate=True)
        digest = base64.b64decode(digest_text, validate=True)
    except (ValueError, TypeError) as exc:
        raise ValueError("not a password hash made by `access-reporter hash-password`") from exc
    if scheme != SCHEME or n < 2 or n & (n - 1) or n > _MAX_N:
        raise ValueError("unsupported hash scheme or cost")
    if not (1 <= r <= _MAX_R and 1 <= p <= _MAX_P and len(salt) >= 16 and len(digest) == _DKLEN):
        raise ValueError("unsupported hash parameters")
    return _Parsed(n, r, p, salt, digest)


def _derive(password: str, n: int, r: int, p: int, salt: bytes) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=_DKLEN, maxmem=256 * n * r * p
    )


def hash_password(password: str, *, n: int = DEFAULT_N, r: int = DEFAULT_R, p: int = 1) -> str:
    salt = secrets.token_bytes(16)
    digest = _derive(password, n, r, p, salt)
    return f"{SCHEME}${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def is_password_hash(text: str) -> bool:
    try:
        _parse(text)
    except ValueError:
        return False
    return True


@functools.cache
def _dummy() -> str:
    # Checked for unknown users, so a wrong name costs as long as a wrong password.
    return hash_password("")


def check_password(password: str, stored: str | None) -> bool:
    try:
        parsed = _parse(stored if stored is not None else _dummy())
    except ValueError:
        return False
    digest = _derive(password, parsed.n, parsed.r, parsed.p, parsed.salt)
    return hmac.compare_digest(digest, parsed.digest) and stored is not None
