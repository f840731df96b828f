"""Organization access principals, and what "unused" was measured over. Pure.

Some principals are unused by design: the role through which the management account administers
a member account is assumed on the day it is needed and not before, and deleting it cuts the
organization off from the account. Access Analyzer reports them like any unused role. This
module recognises them so that the reports never tell an owner to delete them:

1. built-in patterns, each named by the AWS documentation page beside it (`BUILT_IN`, and
   `organization.account_access_role_name` for an organization that renamed Organizations' role);
2. the reporter's own roles (`organization.member_role_name` and the role ARNs of its config);
3. `remediation.protected_principals`: ARN globs with a reason (break-glass users and roles);
4. a role whose trust policy (read through the member role, `iam:GetRole`) lets the management
   account or a configured security-tooling account assume it. Where the trust policy was not
   read the role is not guessed at: the reports say which roles went unchecked.

First match wins, in that order. The observation window (`window_for`, `window_text`) is the
period over which a finding's source decided "unused": the analyzer's `unusedAccessAge`, the
fixed 90 days of Security Hub's service-linked analyzer, or `sources.iam.unused_after_days`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from fnmatch import fnmatchcase
from typing import Any

from .models import Finding, ObservationWindow, OrganizationAccess

DEFAULT_ACCOUNT_ACCESS_ROLE = "OrganizationAccountAccessRole"

# The AWS documentation that names each built-in role (README "Remediation" lists them too).
ORGANIZATIONS_DOC = (
    "https://docs.aws.amazon.com/organizations/latest/userguide/orgs_manage_accounts_access.html"
)
CONTROL_TOWER_DOC = "https://docs.aws.amazon.com/controltower/latest/userguide/roles-how.html"
STACKSETS_DOC = (
    "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/"
    "stacksets-prereqs-self-managed.html"
)
# Security Hub's service-linked analyzer looks back a fixed 90 days (reference §2.10, §8a).
SERVICE_LINKED_DAYS = 90
SERVICE_LINKED_DOC = (
    "https://docs.aws.amazon.com/securityhub/latest/userguide/unused-access-findings.html"
)

ORGANIZATIONS = "organizations_account_access"
CONTROL_TOWER = "control_tower"
STACKSETS = "stacksets_execution"
REPORTER = "reporter"
PROTECTED = "protected"
TRUSTS_MANAGEMENT = "trusts_management"

KIND_LABELS = {
    ORGANIZATIONS: "Organizations account access role",
    CONTROL_TOWER: "Control Tower role",
    STACKSETS: "StackSets execution role",
    REPORTER: "this reporter's own role",
    PROTECTED: "protected principal (config)",
    TRUSTS_MANAGEMENT: "trusted by the management or security-tooling account",
}

_UNUSED_BY_DESIGN = (
    "It looks unused because it is assumed only when that access is needed; unused is its "
    "normal state, and deleting it removes the access the day it is needed."
)


@dataclass(frozen=True)
class Pattern:
    """A built-in organization access role: its name (a glob), what it is for, and the source."""

    kind: str
    name: str  # fnmatch glob over the role name, case-sensitive
    purpose: str
    source_doc: str


BUILT_IN: tuple[Pattern, ...] = (
    Pattern(
        CONTROL_TOWER,
        "AWSControlTowerExecution",
        "the role through which AWS Control Tower, from the management account, sets up and "
        "governs this account (enrolment, landing-zone updates, controls)",
        CONTROL_TOWER_DOC,
    ),
    Pattern(
        CONTROL_TOWER,
        "aws-controltower-*",
        "a role AWS Control Tower deploys in every enrolled account (audit, logging, "
        "notifications from the audit and log archive accounts)",
        CONTROL_TOWER_DOC,
    ),
    Pattern(
        CONTROL_TOWER,
        "AWSControlTower*",
        "a role AWS Control Tower creates to manage the landing zone",
        CONTROL_TOWER_DOC,
    ),
    Pattern(
        STACKSETS,
        "AWSCloudFormationStackSetExecutionRole",
        "the role CloudFormation StackSets (self-managed permissions) assumes from the "
        "administrator account to deploy and update stack instances in this account",
        STACKSETS_DOC,
    ),
)


def account_access_pattern(name: str) -> Pattern:
    """Organizations' role in the accounts it creates, under the name the organization gave it."""
    return Pattern(
        ORGANIZATIONS,
        name,
        "the role through which the management account administers this member account; AWS "
        "Organizations creates it in every account it creates",
        ORGANIZATIONS_DOC,
    )


@dataclass(frozen=True)
class Rules:
    """What to recognise; `rules_from_settings` builds it from the config."""

    account_access_role_name: str = DEFAULT_ACCOUNT_ACCESS_ROLE
    # The reporter's own role names (member role) and role ARNs (management, delegated admin).
    reporter_role_names: tuple[str, ...] = ()
    reporter_role_arns: tuple[str, ...] = ()
    # (ARN glob, reason) from `remediation.protected_principals`.
    protected: tuple[tuple[str, str], ...] = ()
    # Account id -> what it is ("the management account", "security-tooling account").
    trusted_accounts: Mapping[str, str] = field(default_factory=dict)

    def patterns(self) -> tuple[Pattern, ...]:
        names = dict.fromkeys((self.account_access_role_name, DEFAULT_ACCOUNT_ACCESS_ROLE))
        return (*(account_access_pattern(n) for n in names), *BUILT_IN)


def rules_from_settings(settings: Any, management_account_id: str | None) -> Rules:
    """Rules from the `organization` and `remediation` sections and the discovered management
    account (None when Organizations was not read: exported files)."""
    org = settings.organization
    remediation = getattr(settings, "remediation", None)
    trusted: dict[str, str] = {}
    for account_id in getattr(org, "security_tooling_accounts", ()):
        trusted[str(account_id)] = f"security-tooling account {account_id}"
    if management_account_id:
        trusted[management_account_id] = f"the management account {management_account_id}"
    arns = tuple(a for a in (org.management_role_arn, org.delegated_admin_role_arn) if a)
    return Rules(
        account_access_role_name=getattr(
            org, "account_access_role_name", DEFAULT_ACCOUNT_ACCESS_ROLE
        ),
        reporter_role_names=(org.member_role_name,),
        reporter_role_arns=arns,
        protected=tuple(
            (p.arn, p.reason) for p in getattr(remediation, "protected_principals", ())
        ),
        trusted_accounts=trusted,
    )


def classify(finding: Finding, rules: Rules) -> OrganizationAccess | None:
    """Why the finding's principal is organization access, or None (see the module docstring)."""
    arn = finding.principal_arn
    for glob, reason in rules.protected:
        # `*` spans `/`, as in exception rules: `arn:aws:iam::*:role/break-glass/*`.
        if fnmatchcase(arn, glob):
            return OrganizationAccess(PROTECTED, f"{reason} (remediation.protected_principals)")
    if finding.principal_type != "role":
        return None
    name = finding.principal_name
    if arn in rules.reporter_role_arns or name in rules.reporter_role_names:
        return OrganizationAccess(
            REPORTER,
            "the unused-access reporter's own read-only role, named in its configuration; "
            "without it this report cannot read the account. " + _UNUSED_BY_DESIGN,
        )
    for pattern in rules.patterns():
        if fnmatchcase(name, pattern.name):
            return OrganizationAccess(
                pattern.kind,
                f"{pattern.purpose[0].upper()}{pattern.purpose[1:]}. {_UNUSED_BY_DESIGN}",
                pattern.source_doc,
            )
    if finding.trust_policy:
        for account_id in sorted(trusted_accounts(finding.trust_policy)):
            what = rules.trusted_accounts.get(account_id)
            # A role trusting its own account says nothing about the organization.
            if what and account_id != finding.account_id:
                return OrganizationAccess(
                    TRUSTS_MANAGEMENT,
                    f"Its trust policy lets {what} assume it: an administrative path from the "
                    f"organization into this account. {_UNUSED_BY_DESIGN}",
                )
    return None


_ACCOUNT_IN_PRINCIPAL = re.compile(r"^(?:arn:aws[a-z-]*:(?:iam|sts)::)?([0-9]{12})(?::|$)")


def trusted_accounts(document: str) -> frozenset[str]:
    """Account ids an IAM trust policy lets assume the role (Allow statements naming an AWS
    principal by account, root or ARN). A document that is not JSON trusts nothing we can name."""
    try:
        policy = json.loads(document)
    except ValueError:
        return frozenset()
    statements = policy.get("Statement") if isinstance(policy, Mapping) else None
    if isinstance(statements, Mapping):
        statements = [statements]
    found: set[str] = set()
    for statement in statements if isinstance(statements, list) else ():
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
            continue
        if not _allows_assume(statement.get("Action")):
            continue
        principal = statement.get("Principal")
        aws = principal.get("AWS") if isinstance(principal, Mapping) else None
        for value in [aws] if isinstance(aws, str) else aws if isinstance(aws, list) else ():
            match = _ACCOUNT_IN_PRINCIPAL.match(str(value))
            if match:
                found.add(match.group(1))
    return frozenset(found)


def _allows_assume(action: Any) -> bool:
    actions = [action] if isinstance(action, str) else action if isinstance(action, list) else []
    # `*`, `sts:*`, `sts:Assume*` and `sts:AssumeRole` all allow AssumeRole.
    return any(isinstance(a, str) and fnmatchcase("sts:assumerole", a.lower()) for a in actions)


# --- the observation window ---------------------------------------------------------------------

ANALYZER_CONFIGURATION = "analyzer_configuration"
SERVICE_LINKED_ANALYZER = "service_linked_analyzer"
IAM = "iam"
UNKNOWN = "unknown"
UNKNOWN_WINDOW = ObservationWindow(None, UNKNOWN)
# A finding reported by several sources takes the window of the first one here.
_PREFERENCE = ("access_analyzer", "security_hub", "security_hub_v2", "iam")


def window_for(finding: Finding, windows: Mapping[str, ObservationWindow]) -> ObservationWindow:
    """The window of the source that decided the finding (see `_PREFERENCE`)."""
    names = {s.source for s in finding.sources}
    for name in _PREFERENCE:
        if name in names and name in windows:
            return windows[name]
    return UNKNOWN_WINDOW


def analyzer_window(
    tracking_days: int | None, managed_by: str, created: date | None
) -> ObservationWindow:
    """The window of an Access Analyzer analyzer: its `unusedAccessAge`, or the service-linked
    analyzer's fixed 90 days (`managedBy` is set only on service-linked analyzers)."""
    if managed_by:
        return ObservationWindow(SERVICE_LINKED_DAYS, SERVICE_LINKED_ANALYZER, created)
    if tracking_days is None:
        return ObservationWindow(None, UNKNOWN, created)
    return ObservationWindow(tracking_days, ANALYZER_CONFIGURATION, created)


def window_text(window: ObservationWindow | None) -> str:
    """One sentence for the reports: over what "unused" was measured."""
    if window is None or window.days is None:
        since = f" (analyzer since {window.since.isoformat()})" if window and window.since else ""
        return (
            "Not used in the period its source tracks; the source did not say how many days "
            f"that is{since}"
        )
    since = window.since.isoformat() if window.since else "an unknown date"
    if window.source == ANALYZER_CONFIGURATION:
        return (
            f"Not used in the last {window.days} days that Access Analyzer tracks (tracking "
            f"period {window.days} days, from the analyzer's configuration; analyzer since "
            f"{since})"
        )
    if window.source == SERVICE_LINKED_ANALYZER:
        return (
            f"Not used in the last {window.days} days that Access Analyzer tracks (tracking "
            f"period {window.days} days, fixed for Security Hub's service-linked analyzer; "
            f"analyzer since {since})"
        )
    if window.source == IAM:
        return (
            f"Not used in the last {window.days} days by IAM's own last-used data (threshold "
            f"{window.days} days, sources.iam.unused_after_days; IAM keeps role use for 400 days)"
        )
    return f"Not used in the last {window.days} days ({window.source})"


def suggested_exception(
    finding: Finding, access: OrganizationAccess, approver: str, expires: date
) -> str:
    """An `exceptions.rules` entry, as YAML text, that keeps the principal on the record."""
    slug = re.sub(
        r"[^A-Za-z0-9_.:-]+", "-", f"org-access-{finding.account_id}-{finding.principal_name}"
    )
    reason = f"Organization access ({KIND_LABELS.get(access.kind, access.kind)}): kept on purpose"
    return "\n".join(
        (
            "exceptions:",
            "  rules:",
            f"    - id: {slug[:64]}",
            f"      principal_arn: {json.dumps(finding.principal_arn)}",
            f"      reason: {json.dumps(reason)}",
            f"      approved_by: {json.dumps(approver)}",
            f"      expires: {expires.isoformat()}",
        )
    )


def count_unchecked(findings: Sequence[Finding], recognised: set[str]) -> int:
    """Role principals that were neither recognised nor had their trust policy read."""
    roles = {
        f.principal_arn
        for f in findings
        if f.principal_type == "role" and not f.trust_policy and f.principal_arn not in recognised
    }
    return len(roles)
