"""Password hashes for the web page's users: scrypt from the standard library, nothing more.

Stored as `scrypt$N$r$p$SALT$HASH` (salt and hash base64), so the cost travels with the hash
and can be raised later without breaking old entries. Parameters read from a config file are
bounded (`MAX_MEMORY` per check), so a hostile or mistyped hash cannot make one login take
gigabytes of memory; the config refuses such a hash with the reason (`hash_problem`). The form
and its bounds live in `reporter.config.passwordhash`, which the config checks hashes by;
this module makes and checks hashes.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

from reporter.config.passwordhash import (
    _DKLEN,
    MAX_MEMORY,
    SCHEME,
    HashError,
    _check_cost,
    _parse,
    hash_problem,
    public_part,
)

__all__ = [
    "DEFAULT_N",
    "DEFAULT_P",
    "DEFAULT_R",
    "MAX_MEMORY",
    "SCHEME",
    "HashError",
    "check_password",
    "hash_password",
    "hash_problem",
    "is_password_hash",
    "public_part",
]

# OWASP's scrypt baseline (N=2^17, r=8, p=1) costs 128 MiB per login; 2^15 keeps one check near
# 32 MiB and ~0.1 s on a small machine, which suits a page a few auditors open.
DEFAULT_N, DEFAULT_R, DEFAULT_P = 2**15, 8, 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _derive(password: str, n: int, r: int, p: int, salt: bytes) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        dklen=_DKLEN,
        maxmem=MAX_MEMORY + 128 * r * p + 2**20,  # the table, the p blocks, and some slack
    )


def hash_password(password: str, *, n: int = DEFAULT_N, r: int = DEFAULT_R, p: int = 1) -> str:
    """A new hash of `password`; raises HashError for a cost `check_password` would refuse."""
    _check_cost(n, r, p)
    salt = secrets.token_bytes(16)
    digest = _derive(password, n, r, p, salt)
    return f"{SCHEME}${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def is_password_hash(text: str) -> bool:
    return hash_problem(text) is None


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
