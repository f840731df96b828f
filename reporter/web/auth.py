"""Who may see the evidence page: configured users (HTTP Basic), or a trusted proxy's header.

Closed by default: with neither configured, nobody gets in. The proxy's header is believed only
on connections that come straight from a configured proxy address, so a client cannot name
itself by sending the header directly.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import threading
from collections.abc import Mapping

from reporter.config import EvidenceWebSettings

from .passwords import check_password

_CACHE_LIMIT = 256
# Far above any real name:password pair; a longer header is refused before it is decoded.
_MAX_AUTHORIZATION = 1024


class Access:
    def __init__(self, web: EvidenceWebSettings) -> None:
        self.users: Mapping[str, str] = dict(web.users)
        self.header = web.trusted_header.lower() if web.trusted_header else None
        self.proxies = tuple(ipaddress.ip_network(p) for p in web.trusted_proxies)
        # Basic sends the password with every request and scrypt is slow on purpose: a
        # successful check is remembered as an HMAC under a key that lives only in this process.
        self._key = secrets.token_bytes(32)
        self._verified: set[bytes] = set()
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        return bool(self.users or self.header)

    @property
    def uses_passwords(self) -> bool:
        return bool(self.users)

    def user(self, headers: Mapping[str, str], client_host: str | None) -> str | None:
        """The signed-in user for a request, or None. `headers` keys are lower-case."""
        if self.header and client_host and self._from_proxy(client_host):
            name = headers.get(self.header, "").strip()
            if name:
                return name
        if self.users:
            return self._basic(headers.get("authorization", ""))
        return None

    def _from_proxy(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped  # an IPv4 peer of a dual-stack socket
        return any(address in network for network in self.proxies)

    def _basic(self, header: str) -> str | None:
        credentials = _credentials(header)
        if credentials is None:
            return None
        name, password = credentials
        stored = self.users.get(name)
        token_key = hmac.new(
            self._key, f"{name}\0{password}\0{stored}".encode(), hashlib.sha256
        ).digest()
        with self._lock:
            if stored is not None and token_key in self._verified:
                return name
        if not check_password(password, stored):
            return None
        with self._lock:
            if len(self._verified) >= _CACHE_LIMIT:
                self._verified.clear()
            self._verified.add(token_key)
        return name


def _credentials(header: str) -> tuple[str, str] | None:
    """(name, password) from `Basic TOKEN`, or None for anything malformed.

    `header` is the raw value decoded as Latin-1, so it may hold any byte; exactly one space
    separates the scheme from the token, as browsers send it.
    """
    if len(header) > _MAX_AUTHORIZATION:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token.isascii():
        return None
    try:
        decoded = base64.b64decode(token, validate=True).decode("utf-8")
    except ValueError:  # binascii.Error and UnicodeDecodeError are both ValueErrors
        return None
    name, sep, password = decoded.partition(":")
    if not sep or not name:
        return None
    return name, password
