"""The sandbox's two public value types: what to build, and the ground truth tests compare to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class SandboxSpec:
    """What organization to build. Same spec (including `now`) ⇒ identical organization."""

    seed: int = 7
    # Member accounts besides management and security, spread over `ous` leaf OUs.
    member_accounts: int = 12
    ous: int = 4
    home_region: str = "us-east-1"
    # None = the realistic default mix (5-9 findings per account); an int for scale runs.
    findings_per_account: int | None = None
    # Ages are relative to this; None = the current UTC hour (so builds within an hour agree).
    now: datetime | None = None
    # Create IAM users/roles/keys in every account. None = only for the realistic default mix:
    # at scale the findings matter, and 70,000 IAM entities would cost memory for nothing.
    iam: bool | None = None
    # How findings reach Security Hub. None = BatchImportFindings through boto3 up to
    # `BULK_THRESHOLD` records, above that straight into moto's store (see security_hub.py).
    security_hub_via_api: bool | None = None
    # Faults the product must survive (see faults.py). Account ids whose member role may not be
    # assumed (AssumeRole answers AccessDenied); `Sandbox.faults` can add more after the build.
    deny_assume_role: frozenset[str] = frozenset()
    # ("service.Operation", N): the first N attempts of that operation are throttled.
    throttle: tuple[tuple[str, int], ...] = ()
    # Enforce the documented API rates (reporter.ratelimit), multiplied by this time scale, by
    # throttling a client that goes faster; None = no limits.
    rate_scale: float | None = None
    # Access Analyzer's rate when rates are enforced; AWS publishes none (requests/s, unscaled).
    access_analyzer_rate: float = 50.0
    # Accounts that are not Security Hub members of the administrator.
    security_hub_off: frozenset[str] = frozenset()
    # Accounts the unused-access analyzer's configuration excludes: it reports nothing there.
    analyzer_exclusions: frozenset[str] = frozenset()

    @property
    def builds_iam(self) -> bool:
        return self.iam if self.iam is not None else self.findings_per_account is None

    def __post_init__(self) -> None:
        if self.member_accounts < 2:
            raise ValueError("member_accounts must be at least 2 (one unowned, one suspended)")
        if self.ous < 1:
            raise ValueError("ous must be at least 1")
        if self.findings_per_account is not None and self.findings_per_account < 0:
            raise ValueError("findings_per_account must be >= 0")
        if self.rate_scale is not None and self.rate_scale <= 0:
            raise ValueError("rate_scale must be positive")
        if self.now is not None and self.now.tzinfo is None:
            raise ValueError("now must be timezone-aware (UTC)")


@dataclass(frozen=True)
class ExpectedFinding:
    """Ground truth for one unused-access finding, as both sources report it."""

    account_id: str
    principal_arn: str
    finding_type: str  # one of the four unused types (reporter.models.FindingType values)
    owner: str | None  # the account's `owner` tag value, None if the account has none
    active: bool  # False for the ones put in as RecordState ARCHIVED / status RESOLVED
    # The Access Analyzer finding id; Security Hub carries it as ProductFields.findingId.
    finding_id: str = ""
    status: str = "ACTIVE"  # Access Analyzer status: ACTIVE, ARCHIVED or RESOLVED
    access_key_ids: tuple[str, ...] = ()  # UnusedIAMUserAccessKey: the unused keys
    service_namespaces: tuple[str, ...] = ()  # UnusedPermission: the namespaces listed
