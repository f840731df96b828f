"""Reversible adjustments to moto 5.2.5 that the sandbox needs, each for a measured reason.

Applied by `Sandbox.__enter__` and undone by `__exit__`; nothing here outlives the sandbox.

- Account lookup: moto finds the calling account by scanning every IAM backend in every
  partition for the request's access key, creating the missing partition backends as it goes.
  With 2,000 accounts that is ~12,000 backends and 70 ms per request (measured), which would
  make any benchmark measure moto. The replacement scans only existing backends and remembers
  hits; the answer is the same.
- Security Hub delegated administrator: moto's Organizations does not list
  `securityhub.amazonaws.com` among the services that accept a delegated administrator, which
  real AWS does (EnableOrganizationAdminAccount registers it).
- Seeded ids: moto draws org, root, OU, role and user ids from its own RNG; seeding it for the
  build makes those ids repeat with the seed too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from unittest import mock

import moto.iam.models as iam_models
from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_api._internal import mock_random
from moto.organizations.models import FakeDelegatedAdministrator

SECURITY_HUB_PRINCIPAL = "securityhub.amazonaws.com"
_hits: dict[str, str] = {}


def account_for_access_key(access_key: str) -> str:
    """The account an access key belongs to, as moto decides it (default account if unknown)."""
    cached = _hits.get(access_key)
    if cached is not None and _holds(cached, access_key):
        return cached
    for account_id, partitions in list(iam_models.iam_backends.items()):
        # dict.values(): only backends that exist; indexing would create them.
        if any(access_key in backend.access_keys for backend in list(dict.values(partitions))):
            _hits[access_key] = account_id
            return account_id
    return DEFAULT_ACCOUNT_ID


def _holds(account_id: str, access_key: str) -> bool:
    partitions = iam_models.iam_backends.get(account_id)
    return partitions is not None and any(
        access_key in backend.access_keys for backend in list(dict.values(partitions))
    )


@contextmanager
def patched_moto() -> Iterator[None]:
    """The account lookup and the Security Hub delegated-administrator patches, undone on exit."""
    with ExitStack() as stack:
        stack.enter_context(
            mock.patch.object(iam_models, "get_account_id_from", account_for_access_key)
        )
        supported = FakeDelegatedAdministrator.SUPPORTED_SERVICES
        if SECURITY_HUB_PRINCIPAL not in supported:
            stack.enter_context(
                mock.patch.object(
                    FakeDelegatedAdministrator,
                    "SUPPORTED_SERVICES",
                    [*supported, SECURITY_HUB_PRINCIPAL],
                )
            )
        stack.callback(_hits.clear)
        yield


@contextmanager
def seeded_ids(seed: int) -> Iterator[None]:
    """Seed moto's id generator for the build, then give the previous state back."""
    state = mock_random.getstate()
    mock_random.seed(f"sandbox/{seed}/moto")
    try:
        yield
    finally:
        mock_random.setstate(state)


def naive_utc(moment: datetime) -> datetime:
    """moto keeps naive UTC datetimes (it builds them with utcnow) and serialises them as UTC."""
    return moment.replace(tzinfo=None)
