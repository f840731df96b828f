"""Priority: one documented score from 0 to 100 per finding; reports sort by it, highest first.

    score = type + staleness + broad          (at most 100)
    excepted findings keep 19 % of it:  score * 19 // 100

- type: what an attacker gets from the unused access. A forgotten access key works from anywhere
  without MFA (45); a console password is an interactive door (40); an unused role can still be
  assumed by whoever its trust policy names (35); unused permissions widen a principal that is in
  use, but do not add a way in (20).
- staleness: 30 * min(unused days, 365) / 365, rounded down, so a year or more unused adds 30.
  Unknown (the source gave no last access; Access Analyzer then usually means "never used") adds
  20, between a few months and a year.
- broad: 25 when the AWS managed policy `AdministratorAccess` is attached, 20 for `IAMFullAccess`
  (the power to grant itself anything), else 0; the larger one counts, not both. Known from the
  finding's attached policies or the policies an Access Analyzer recommendation names.
- excepted: an approved exception keeps the finding visible but drops it to at most 19, below
  every active finding (an active one scores at least 20). An expired exception is not excepted.
- organization access (`reporter.orgaccess`: the roles that hold the organization together,
  protected principals): the same 19 %, so they sort below every actionable finding; they are
  for review with the security team, not for removal.
"""

from __future__ import annotations

import re

from .models import Finding, FindingType

TYPE_WEIGHT = {
    FindingType.UNUSED_ACCESS_KEY: 45,
    FindingType.UNUSED_PASSWORD: 40,
    FindingType.UNUSED_ROLE: 35,
    FindingType.UNUSED_PERMISSION: 20,
}
STALENESS_MAX = 30
STALENESS_UNKNOWN = 20
BROAD_WEIGHT = {"AdministratorAccess": 25, "IAMFullAccess": 20}
EXCEPTED_PERCENT = 19

# Only the AWS managed policies (account `aws`, any partition): a customer policy that borrows the
# name says nothing about what it grants.
_AWS_MANAGED = re.compile(r"arn:[a-z-]+:iam::aws:policy/(?P<name>[^/]+)")


def broad_policies(finding: Finding) -> tuple[str, ...]:
    """Names of the broad AWS managed policies known to be attached to the principal."""
    ids = [*finding.attached_policies]
    if finding.recommendation is not None:
        ids += [step.existing_policy_id for step in finding.recommendation.steps]
    names = []
    for policy_id in ids:
        match = _AWS_MANAGED.fullmatch(policy_id)
        if match and match["name"] in BROAD_WEIGHT and match["name"] not in names:
            names.append(match["name"])
    return tuple(names)


def priority(
    finding: Finding,
    unused_days: int | None,
    excepted: bool = False,
    organization_access: bool = False,
) -> int:
    if unused_days is None:
        staleness = STALENESS_UNKNOWN
    else:
        staleness = max(0, min(unused_days, 365)) * STALENESS_MAX // 365
    broad = max((BROAD_WEIGHT[name] for name in broad_policies(finding)), default=0)
    score = min(100, TYPE_WEIGHT[finding.type] + staleness + broad)
    return score * EXCEPTED_PERCENT // 100 if excepted or organization_access else score
