"""The settings: one section per part of the program, and `Settings`, the whole configuration.

Every setting is declared once, here, as a pydantic field: its type is the validation, its
default is the default, and its `description` feeds error hints and the docs
(`describe_fields`); a test keeps `config/example.yaml` in step with the model. Sections are in
the order of `config/example.yaml`.
"""

from __future__ import annotations

import difflib
import re
import zoneinfo
from collections.abc import Mapping
from datetime import UTC, date, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal, Self

from apscheduler.triggers.cron import CronTrigger
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from reporter.models import FindingType

from .fields import (
    AccountId,
    AnalyzerArn,
    ArnGlob,
    DatabaseUrl,
    Domain,
    Email,
    ExpiryDate,
    ExternalId,
    FolderPath,
    HttpUrl,
    IamRoleName,
    OuId,
    OwnerName,
    OwnerRef,
    PasswordHash,
    Region,
    RoleArn,
    RuleId,
    SessionName,
    TagKey,
    WebUserName,
    _file_path,
    _invalid,
    _Issues,
    _matcher,
    _non_blank,
    _one_line,
    _proxy_network,
    _s3_prefix,
    _Section,
    _today,
)
from .masking import Loc

# A live key or password is an open door: fix within a month; roles and permissions later.
DEFAULT_SLA_DAYS = {
    FindingType.UNUSED_ACCESS_KEY: 30,
    FindingType.UNUSED_PASSWORD: 30,
    FindingType.UNUSED_ROLE: 60,
    FindingType.UNUSED_PERMISSION: 90,
}


class RetryMode(StrEnum):
    STANDARD = "standard"
    ADAPTIVE = "adaptive"
    LEGACY = "legacy"


class Transport(StrEnum):
    OUTBOX = "outbox"
    SMTP = "smtp"
    SES = "ses"


class SmtpSecurity(StrEnum):
    STARTTLS = "starttls"
    TLS = "tls"
    NONE = "none"


class OrganizationSettings(_Section):
    home_region: Region = Field(
        "us-east-1",
        description="Region of the Organizations and Security Hub delegated administrator.",
    )
    management_role_arn: RoleArn | None = Field(
        None,
        description="IAM role ARN to assume for Organizations reads; null = the base credentials.",
    )
    delegated_admin_role_arn: RoleArn | None = Field(
        None,
        description="IAM role ARN in the Security Hub / Access Analyzer delegated administrator; "
        "null = the base credentials.",
    )
    member_role_name: IamRoleName = Field(
        "UnusedAccessReporterReadOnly",
        description="Name of the read-only IAM role assumed in member accounts.",
    )
    account_access_role_name: IamRoleName = Field(
        "OrganizationAccountAccessRole",
        description="Name of the role AWS Organizations created in member accounts for the "
        "management account (the default name unless the organization chose another); its "
        "findings are organization access, never to be deleted.",
    )
    security_tooling_accounts: tuple[AccountId, ...] = Field(
        (),
        description="Account ids (quoted) of the security-tooling accounts: a role whose trust "
        "policy trusts one of them (or the management account) is organization access.",
    )
    external_id: ExternalId | None = Field(
        None,
        description="External id passed to AssumeRole, if the roles require one; "
        "may be a secret reference; always redacted.",
    )
    session_name: SessionName = Field(
        "unused-access-reporter",
        description="Role session name, visible in CloudTrail (2–64 characters of [\\w+=,.@-]).",
    )
    include_accounts: tuple[AccountId, ...] = Field(
        (), description="Only these 12-digit account ids (quoted); empty = every account."
    )
    exclude_accounts: tuple[AccountId, ...] = Field(
        (), description="Account ids (quoted) left out of every report."
    )
    include_ous: tuple[OuId, ...] = Field(
        (),
        description="Only accounts under these OU or root ids (children included); "
        "empty = every OU.",
    )
    exclude_ous: tuple[OuId, ...] = Field(
        (), description="Accounts under these OU ids (children included) are left out."
    )

    @model_validator(mode="after")
    def _no_contradictions(self) -> Self:
        issues = _Issues()
        for include, exclude in (
            ("include_accounts", "exclude_accounts"),
            ("include_ous", "exclude_ous"),
        ):
            included = set(getattr(self, include))
            for index, item in enumerate(getattr(self, exclude)):
                if item in included:
                    issues.add(
                        (exclude, index),
                        f"also listed in {include}",
                        "list it in one of the two",
                        item,
                    )
        issues.raise_any()
        return self


class AwsSettings(_Section):
    endpoint_url: HttpUrl | None = Field(
        None,
        description="http(s) URL of an AWS emulator for testing; null = real AWS. Any "
        "`user:password@` in it is shown as <redacted>.",
    )
    retry_mode: RetryMode = Field(
        RetryMode.ADAPTIVE, description="botocore retry mode: standard, adaptive or legacy."
    )
    max_attempts: int = Field(
        10, ge=1, le=50, description="botocore attempts per call, retries included (1–50)."
    )


class SecurityHubSource(_Section):
    enabled: bool = Field(
        True, description="Read findings from Security Hub CSPM in the delegated administrator."
    )


class AccessAnalyzerSource(_Section):
    enabled: bool = Field(
        False,
        description="Read findings from the organization's unused-access analyzer directly.",
    )
    analyzer_arn: AnalyzerArn | None = Field(
        None,
        description="ARN of the organization unused-access analyzer; "
        "null = find it in the delegated administrator.",
    )
    recommendations: bool = Field(
        True,
        description="Fetch the policy recommendation of every UnusedPermission finding "
        "(needs access-analyzer:GenerateFindingRecommendation; cached between runs).",
    )


class CollectionSettings(_Section):
    workers: int = Field(
        8,
        ge=1,
        le=64,
        description="Threads that read member accounts and Access Analyzer finding details "
        "at the same time (1–64).",
    )
    account_timeout_seconds: float = Field(
        300,
        gt=0,
        le=86400,
        description="An account source that takes longer than this for one account leaves "
        "that account not covered (seconds).",
    )
    recommendation_poll_seconds: float = Field(
        0.5,
        gt=0,
        le=60,
        description="First wait before asking for a recommendation; doubles per poll, at "
        "most 30 s (seconds).",
    )
    recommendation_max_polls: int = Field(
        10,
        ge=1,
        le=50,
        description="Polls of one recommendation before it is reported without (1–50).",
    )
    access_analyzer_rate: float = Field(
        0,
        ge=0,
        le=1000,
        description="Requests per second for Access Analyzer calls; 0 = not paced (AWS "
        "publishes no rate; adaptive retries handle throttling).",
    )


class IamMode(StrEnum):
    FALLBACK = "fallback"
    ALWAYS = "always"


class IamSettings(_Section):
    enabled: bool = Field(
        True,
        description="Read IAM's own last-used data (credential report, GetRole) in member "
        "accounts through the member role.",
    )
    mode: IamMode = Field(
        IamMode.FALLBACK,
        description="fallback: only accounts the unused-access analyzer does not cover; "
        "always: every account in scope.",
    )
    unused_after_days: int = Field(
        90,
        ge=1,
        le=365,
        description="Days without use after which a role, password or access key is unused "
        "(1–365); like the analyzer's tracking period, principals younger than this are not "
        "assessed.",
    )


class SecurityHubV2Settings(_Section):
    enabled: bool = Field(
        False,
        description="Read findings from the new Security Hub (OCSF, GetFindingsV2) in the "
        "delegated administrator.",
    )
    product_name: str | None = Field(
        "IAM Access Analyzer",
        min_length=1,
        description="metadata.product.name that GetFindingsV2 filters on; null = no server-side "
        "filter (every finding is read and checked client-side).",
    )


class SourcesSettings(_Section):
    security_hub: SecurityHubSource = Field(
        default_factory=SecurityHubSource, description="Security Hub CSPM (ASFF findings)."
    )
    access_analyzer: AccessAnalyzerSource = Field(
        default_factory=AccessAnalyzerSource,
        description="IAM Access Analyzer (ListFindingsV2 / GetFindingV2).",
    )
    iam: IamSettings = Field(
        default_factory=IamSettings,
        description="IAM last-used data per member account (no analyzer needed).",
    )
    security_hub_v2: SecurityHubV2Settings = Field(
        default_factory=SecurityHubV2Settings,
        description="The new Security Hub (OCSF findings).",
    )


# --- owners -------------------------------------------------------------------------------------


class Step(StrEnum):
    """The rungs of the ladder, as `owners.ladder` spells them."""

    PRINCIPAL_TAG = "principal_tag"
    ACCOUNT_TAG = "account_tag"
    OU = "ou"
    OWNER_MAP = "owner_map"
    ALTERNATE_CONTACT = "alternate_contact"
    FALLBACK = "fallback"


DEFAULT_LADDER: tuple[Step, ...] = tuple(Step)


# One plain address and nothing else: a tag value such as "evil@x.test a@example.com" must
# not pass as an address in example.com (a mail parser would take the first one).
PLAIN_ADDRESS = re.compile(
    r"^[A-Za-z0-9.!#$%&*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$"
)


def is_allowed(address: str, allowed_domains: tuple[str, ...]) -> bool:
    """Mail only goes to a plain address in one of the configured domains (exact match, as
    `owners.allowed_domains` is documented)."""
    if not PLAIN_ADDRESS.match(address):
        return False
    domain = address.rpartition("@")[2].lower()
    return domain in {d.lower() for d in allowed_domains}


class OwnersSettings(_Section):
    ladder: tuple[Step, ...] = Field(
        DEFAULT_LADDER,
        min_length=1,
        description="Owner rules tried in this order, first usable owner wins: principal_tag, "
        "account_tag, ou, owner_map, alternate_contact; `fallback` last.",
    )
    principal_tag_keys: tuple[TagKey, ...] = Field(
        ("owner",),
        min_length=1,
        description="IAM user/role tag keys that name the owner, in order; the first present wins.",
    )
    account_tag_keys: tuple[TagKey, ...] = Field(
        ("owner",),
        min_length=1,
        description="Account tag keys that name the owner, in order; the first present wins.",
    )
    ous: dict[OuId, OwnerRef] = Field(
        default_factory=dict,
        description="OU or root id → owner (address or a name from names); the OU nearest the "
        "account wins.",
    )
    accounts: dict[AccountId, OwnerRef] = Field(
        default_factory=dict,
        description="Account id (quoted) → owner (address or a name from names).",
    )
    names: dict[OwnerName, Email] = Field(
        default_factory=dict,
        description="Owner name → e-mail address, for owner values that hold names; inside "
        "allowed_domains.",
    )
    managers: dict[Email, Email] = Field(
        default_factory=dict,
        description="Owner address → manager address, for escalation; both inside allowed_domains.",
    )
    fallback: tuple[Email, ...] = Field(
        ("security-team@example.com",),
        min_length=1,
        description="Addresses that receive findings nobody owns; inside allowed_domains.",
    )
    allowed_domains: tuple[Domain, ...] = Field(
        ("example.com",),
        min_length=1,
        description="Mail only goes to addresses in these domains (exact match); others fall "
        "through to the fallback.",
    )
    security_team: tuple[Email, ...] = Field(
        ("security-team@example.com",),
        min_length=1,
        description="Recipients of the organization summary; inside allowed_domains.",
    )

    def allows(self, address: str) -> bool:
        """Whether mail may go to `address`: the one rule, shared with owner resolution."""
        return is_allowed(address, tuple(self.allowed_domains))

    @model_validator(mode="after")
    def _recipients_inside_allowed_domains(self) -> Self:
        issues = _Issues()
        hint = f"use an address at {', '.join(self.allowed_domains)} or add its domain there"
        for key in ("fallback", "security_team"):
            for index, address in enumerate(getattr(self, key)):
                if not self.allows(address):
                    issues.add((key, index), "address outside allowed_domains", hint, address)
        for name, address in self.names.items():
            if not self.allows(address):
                issues.add(("names", name), "address outside allowed_domains", hint, address)
        for owner, manager in self.managers.items():
            if not self.allows(owner):
                issues.add(("managers", owner), "owner outside allowed_domains", hint, owner)
            if not self.allows(manager):
                issues.add(("managers", owner), "manager outside allowed_domains", hint, manager)
        for key in ("ous", "accounts"):
            for where, value in getattr(self, key).items():
                if "@" not in value:
                    if value not in self.names:
                        issues.add(
                            (key, where),
                            "name not in owners.names",
                            f"add `{value}: ADDRESS` under owners.names, or write the address",
                            value,
                        )
                elif not self.allows(value):
                    issues.add((key, where), "not a plain address in allowed_domains", hint, value)
        ladder = list(self.ladder)
        for index, step in enumerate(ladder):
            if step in ladder[:index]:
                issues.add(("ladder", index), "step listed twice", "list each step once", step)
        if ladder[-1:] != [Step.FALLBACK]:
            issues.add(
                ("ladder",),
                "must end with `fallback`",
                "findings nobody owns go to the fallback recipients: end the list with fallback",
                [str(step) for step in ladder],
            )
        issues.raise_any()
        return self


class SmtpSettings(_Section):
    host: Annotated[
        str, _matcher(r"[^\s/]+", "not a host name", "a host name or IP address, no scheme or port")
    ] = Field("localhost", description="SMTP server host name.")
    port: int = Field(587, ge=1, le=65535, description="SMTP server port (1–65535).")
    security: SmtpSecurity = Field(
        SmtpSecurity.STARTTLS,
        description="starttls (upgrade a plain connection), tls (implicit TLS, usually port "
        "465) or none.",
    )
    username: str | None = Field(None, description="SMTP login; null = no authentication.")
    password: SecretStr | None = Field(
        None,
        description="SMTP password; only a secret reference such as ${SMTP_PASSWORD} is "
        "accepted; always redacted.",
    )
    timeout_seconds: float = Field(
        30.0, gt=0, le=600, description="Socket timeout per SMTP operation, in seconds."
    )

    @model_validator(mode="after")
    def _credentials_make_sense(self) -> Self:
        issues = _Issues()
        if self.password is not None and self.username is None:
            issues.add(
                ("username",),
                "password is set but username is not",
                "add the SMTP login that goes with the password",
                None,
            )
        if self.username is not None and self.password is None:
            issues.add(
                ("password",),
                "username is set but password is not",
                "add `password: ${SMTP_PASSWORD}` and export SMTP_PASSWORD",
                None,
            )
        if self.password is not None and self.security is SmtpSecurity.NONE:
            issues.add(
                ("security",),
                "would send the password unencrypted",
                "use `starttls` or `tls`",
                self.security.value,
            )
        issues.raise_any()
        return self


class SesSettings(_Section):
    region: Region | None = Field(
        None, description="Region of the SES v2 endpoint; null = organization.home_region."
    )
    configuration_set: (
        Annotated[
            str,
            _matcher(
                r"[A-Za-z0-9_-]{1,64}", "not a configuration set name", "1–64 of [A-Za-z0-9_-]"
            ),
        ]
        | None
    ) = Field(None, description="SES configuration set name for event publishing; null = none.")


class MailRetrySettings(_Section):
    attempts: int = Field(
        4,
        ge=1,
        le=10,
        description="Tries per message within one run for temporary failures (4xx, "
        "throttling, dropped connections), the first included (1–10).",
    )
    backoff_seconds: float = Field(
        2.0,
        ge=0,
        le=300,
        description="Wait before the first retry, in seconds; doubled before each further one.",
    )
    interval_minutes: int = Field(
        30,
        ge=1,
        le=1440,
        description="`serve` tries messages still undelivered after a run again this often, in "
        "minutes (1–1440).",
    )
    until_hours: int = Field(
        24,
        ge=1,
        le=168,
        description="…for this many hours after the run's slot (1–168); whatever is still "
        "undelivered then is tried again by the next run, and `health` counts it.",
    )


class LargeAttachmentSettings(_Section):
    bucket: (
        Annotated[
            str,
            _matcher(
                r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]",
                "not an S3 bucket name",
                "3–63 of lower-case letters, digits, `.` and `-` (the name, not an s3:// URL)",
            ),
        ]
        | None
    ) = Field(
        None,
        description="S3 bucket that receives the attachments of a message over the size "
        "limit, which then carries presigned links instead; null = such a message fails.",
    )
    prefix: Annotated[str, AfterValidator(_one_line)] = Field(
        "deliveries/", description="Key prefix in the bucket; `<run>/<owner>/<file>` follows."
    )
    expiry_seconds: int = Field(
        7 * 24 * 3600,
        ge=60,
        le=7 * 24 * 3600,
        description="How long the presigned links work, in seconds (60–604800; a link signed "
        "with temporary role credentials stops working when they expire).",
    )


class SecurityHubWorkflowSettings(_Section):
    mark_notified: bool = Field(
        False,
        description="After an owner's e-mail is sent, set their Security Hub findings' "
        "workflow status to NOTIFIED with a note (needs securityhub:BatchUpdateFindings).",
    )
    updated_by: Annotated[
        str, _matcher(r"\S.{0,127}", "not a valid UpdatedBy", "1–128 characters")
    ] = Field("unused-access-reporter", description="Name written as the note's UpdatedBy.")


class MailSettings(_Section):
    transport: Transport = Field(
        Transport.OUTBOX,
        description="outbox (write .eml files under the run folder), smtp or ses.",
    )
    from_address: Email = Field(
        "unused-access-reporter@example.com", description="Sender address (From)."
    )
    reply_to: Email | None = Field(None, description="Reply-To address; null = none.")
    subject_prefix: Annotated[str, AfterValidator(_one_line)] = Field(
        "[Unused access]", description="Text put before every subject line."
    )
    message_id_domain: Domain | None = Field(
        None,
        description="Right part of every Message-ID (`<uar.…@DOMAIN>`); null = the domain of "
        "from_address.",
    )
    smtp: SmtpSettings = Field(
        default_factory=SmtpSettings, description="Used when transport is smtp."
    )
    ses: SesSettings = Field(default_factory=SesSettings, description="Used when transport is ses.")
    cc_manager_on_sla_breach: bool = Field(
        True,
        description="Copy the owner's manager when the report has findings past their SLA.",
    )
    max_message_bytes: int | None = Field(
        None,
        ge=10_000,
        le=100_000_000,
        description="Largest message to send, in bytes; above it attachments become links "
        "(see large_attachments); null = the transport's limit (SES v2 40 MB, SMTP the size "
        "the server announces or 25 MB, outbox none).",
    )
    retry: MailRetrySettings = Field(
        default_factory=MailRetrySettings, description="Retries of temporary failures."
    )
    large_attachments: LargeAttachmentSettings = Field(
        default_factory=LargeAttachmentSettings,
        description="Where attachments go when a message would be too large.",
    )
    security_hub: SecurityHubWorkflowSettings = Field(
        default_factory=SecurityHubWorkflowSettings,
        description="Security Hub workflow updates after delivery.",
    )


class ReportsSettings(_Section):
    output_dir: FolderPath = Field(
        Path("reports"), description="Folder that receives one sub-folder per run (evidence)."
    )
    template_dir: FolderPath | None = Field(
        None,
        description="Folder whose files override the packaged templates one by one; "
        "null = packaged templates only.",
    )
    period_days: int = Field(
        7, ge=1, le=366, description="Days covered by one report (“resolved since”, 1–366)."
    )
    render_workers: int = Field(
        0, ge=0, le=256, description="Processes that render reports; 0 = one per CPU."
    )
    pdf_findings_per_account: int | None = Field(
        10,
        ge=0,
        le=10_000,
        description="Findings each account lists in the owner PDF, highest priority first, "
        "one line each; the workbook lists every finding. null = all (slow for big owners).",
    )
    pdf_detailed_findings: int = Field(
        3,
        ge=0,
        le=100,
        description="Highest-priority findings of an owner PDF shown with their full "
        "remediation commands and rollbacks (“Start here”); the workbook has every command.",
    )
    sla_days: dict[FindingType, Annotated[int, Field(ge=1, le=3650)]] = Field(
        default_factory=lambda: dict(DEFAULT_SLA_DAYS),
        description="Days a finding of each type may stay open before it breaches its SLA "
        "(keys: the four finding types; types left out have no SLA).",
    )


class StateSettings(_Section):
    database_url: DatabaseUrl = Field(
        "sqlite:///state/reporter.db",
        description="SQLAlchemy URL of the state database: sqlite:///PATH or "
        "postgresql://…; the password should be a secret reference.",
    )


_CRON_HINT = "five fields: minute hour day-of-month month day-of-week, e.g. `0 7 * * mon`"


class ScheduleSettings(_Section):
    cron: str = Field(
        "0 7 * * mon",
        description="When `serve` runs the report: a 5-field crontab line, weekdays by name.",
    )
    timezone: str = Field("UTC", description="IANA time zone the cron line is read in.")
    misfire_grace_seconds: int = Field(
        3600,
        ge=1,
        le=7 * 24 * 3600,
        description="A run missed (service down) by up to this many seconds still happens.",
    )
    lock_lease_seconds: int = Field(
        900,
        ge=30,
        le=24 * 3600,
        description="Run lock lease in the state database, renewed while a run is alive; a "
        "replica that died holding it is taken over after this many seconds (30–86400).",
    )

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        fields = value.split()
        if len(fields) != 5:
            raise _invalid(f"expected 5 fields, got {len(fields)}", _CRON_HINT)
        # APScheduler 3 numbers weekdays from 0 = Monday while cron uses 0 = Sunday; names are
        # read the same by both, so numbers are refused rather than silently shifted by a day.
        if re.search(r"\d", re.sub(r"/\d+", "", fields[4])):
            raise _invalid(
                "day of week must use names",
                "write `mon`…`sun` (e.g. `mon-fri`): "
                "APScheduler counts 0 = Monday, cron 0 = Sunday",
            )
        try:
            CronTrigger.from_crontab(value, timezone=UTC)
        except (ValueError, TypeError, LookupError) as exc:
            raise _invalid("invalid cron expression", _CRON_HINT, detail=str(exc)) from None
        return " ".join(fields)

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            close = difflib.get_close_matches(value, sorted(zoneinfo.available_timezones()), 1)
            raise _invalid(
                "unknown time zone",
                "an IANA name like `Europe/Berlin`",
                value_hint=f"did you mean `{close[0]}`?" if close else "",
            ) from None
        return value

    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def trigger(self) -> CronTrigger:
        """The APScheduler trigger for `cron` in `timezone`."""
        return CronTrigger.from_crontab(self.cron, timezone=self.zone())


# --- exceptions and remediation -----------------------------------------------------------------


class ExceptionRuleSettings(_Section):
    """One exception: which findings it covers, why, who approved it, and until when."""

    id: RuleId = Field(description="Unique name of the exception, e.g. `EXC-2024-017`; required.")
    accounts: tuple[AccountId, ...] = Field(
        (), description="Matches findings in these 12-digit account ids (quoted)."
    )
    principal_arn: ArnGlob | None = Field(
        None,
        description="Matches principal ARNs by glob: `*` is any text, `/` included, `?` one "
        "character, e.g. `arn:aws:iam::*:role/ci-*`.",
    )
    types: tuple[FindingType, ...] = Field(
        (),
        description="Matches these finding types: UnusedIAMRole, UnusedIAMUserAccessKey, "
        "UnusedIAMUserPassword, UnusedPermission.",
    )
    principal_tags: dict[TagKey, str] = Field(
        default_factory=dict,
        description="Matches principals carrying every one of these tags with exactly this value.",
    )
    reason: Annotated[str, AfterValidator(_non_blank)] = Field(
        description="Why the access must stay (a sentence, a ticket); required."
    )
    approved_by: Email = Field(
        description="E-mail address of whoever approved the exception; required."
    )
    expires: ExpiryDate = Field(
        description="Last day the exception applies (YYYY-MM-DD), at most "
        "exceptions.max_days_ahead days from today; required."
    )


class ExceptionsSettings(_Section):
    file: Annotated[Path, BeforeValidator(_file_path)] | None = Field(
        None,
        description="YAML file with more rules (`rules:` list, as below), relative to this "
        "config file, e.g. `exceptions.yaml`; null = rules only here.",
    )
    max_days_ahead: int = Field(
        365, ge=1, le=3650, description="Latest allowed expiry, in days from today (1–3650)."
    )
    warn_days: int = Field(
        14,
        ge=0,
        le=365,
        description="An exception expiring within this many days is listed for its owners and "
        "approver (0–365).",
    )
    rules: tuple[ExceptionRuleSettings, ...] = Field(
        (),
        description="Exceptions: id, matchers (accounts, principal_arn, types, principal_tags; "
        "all given must match), reason, approved_by, expires. The first matching rule applies.",
    )

    # Rules read from `file` by the loader, and the file as written in the config (for labels).
    _file_rules: tuple[ExceptionRuleSettings, ...] = PrivateAttr(default=())
    _file_label: str = PrivateAttr(default="")

    @property
    def file_rules(self) -> tuple[ExceptionRuleSettings, ...]:
        return self._file_rules

    def all_rules(self) -> tuple[tuple[str, ExceptionRuleSettings], ...]:
        """(where it is written, rule) for every rule: these rules first, then `file`'s."""
        inline = tuple((f"exceptions.rules[{i}]", r) for i, r in enumerate(self.rules))
        label = self._file_label
        loaded = tuple((f"{label}:rules[{i}]", r) for i, r in enumerate(self._file_rules))
        return inline + loaded

    @model_validator(mode="after")
    def _dates_and_ids(self, info: ValidationInfo) -> Self:
        issues = _Issues()
        rules, days, today = self.rules, self.max_days_ahead, _today(info)
        # The loader validates `exceptions.file` through this model too, under its own name.
        context = info.context if isinstance(info.context, Mapping) else {}
        label = str(context.get("rules_label", "exceptions.rules"))
        _check_rules(rules, ("rules",), label, days, today, {}, issues)
        issues.raise_any()
        return self


def _check_rules(
    rules: tuple[ExceptionRuleSettings, ...],
    prefix: Loc,
    label: str,
    max_days_ahead: int,
    today: date,
    seen: dict[str, str],
    issues: _Issues,
) -> None:
    """Some matcher; expiry not too far ahead; ids unique (`seen`: id → where, across files)."""
    latest = today + timedelta(days=max_days_ahead)
    for index, rule in enumerate(rules):
        if not (rule.accounts or rule.principal_arn or rule.types or rule.principal_tags):
            # Matching everything by accident would hide every finding of the organization.
            issues.add(
                (*prefix, index),
                "no matcher: an exception must say which findings it covers",
                "add at least one of accounts, principal_arn, types, principal_tags",
                rule.id,
            )
        if rule.expires > latest:
            issues.add(
                (*prefix, index, "expires"),
                f"more than {max_days_ahead} days ahead",
                f"expire on or before {latest.isoformat()} (exceptions.max_days_ahead from "
                f"{today.isoformat()}), and renew it then",
                rule.expires.isoformat(),
            )
        where = f"{label}[{index}]"
        if rule.id in seen:
            issues.add(
                (*prefix, index, "id"),
                f"duplicate id (also {seen[rule.id]})",
                "give every exception its own id",
                rule.id,
            )
        else:
            seen[rule.id] = where


class ReviewsSettings(_Section):
    """Access reviews: what owners' decisions (`decisions import`) may say and what they do."""

    max_keep_days: int = Field(
        90,
        ge=1,
        le=3650,
        description="Latest `Keep until` date an owner may write, in days from the import "
        "(1–3650).",
    )
    remove_within_days: int = Field(
        14,
        ge=1,
        le=365,
        description="A `Remove` decision is due this many days after it is recorded; still "
        "found after that, it is overdue and the owner's manager is Cc'd (1–365).",
    )
    keep_requires_approval: bool = Field(
        False,
        description="A `Keep` stays pending (the finding stays active) until the owner's "
        "manager or the security team approves it with `decisions approve ID --by NAME`.",
    )


class ProtectedPrincipalSettings(_Section):
    """A principal the organization keeps on purpose (break-glass): never to be deleted."""

    arn: ArnGlob = Field(
        description="Principal ARNs by glob: `*` is any text, `/` included, `?` one character, "
        "e.g. `arn:aws:iam::*:role/break-glass-*`; required."
    )
    reason: Annotated[str, AfterValidator(_non_blank)] = Field(
        description="Why it is kept (shown beside every finding it matches); required."
    )


class RemediationSettings(_Section):
    protected_principals: tuple[ProtectedPrincipalSettings, ...] = Field(
        (),
        description="Organization access principals of your own (break-glass users and roles): "
        "arn (glob) and reason. Their findings get no deletion commands; they are listed for "
        "the security team.",
    )
    read_trust_policies: bool = Field(
        True,
        description="Read the trust policy of every role with a finding through the member "
        "role (iam:GetRole), to recognise roles the management or a security-tooling account "
        "may assume.",
    )
    exception_days: int = Field(
        180,
        ge=1,
        le=3650,
        description="Expiry, in days from the run, of the exception the reports suggest for an "
        "organization access principal (1–3650; at most exceptions.max_days_ahead is applied).",
    )


class EvidenceStoreKind(StrEnum):
    LOCAL = "local"
    S3 = "s3"


class ServerSideEncryption(StrEnum):
    AES256 = "AES256"
    KMS = "aws:kms"


class ObjectLockMode(StrEnum):
    GOVERNANCE = "GOVERNANCE"
    COMPLIANCE = "COMPLIANCE"


class EvidenceS3Settings(_Section):
    bucket: (
        Annotated[
            str,
            _matcher(
                r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]",
                "not an S3 bucket name",
                "3–63 lowercase letters, digits, `.` and `-`",
            ),
        ]
        | None
    ) = Field(None, description="Bucket holding the runs; required when store is s3.")
    prefix: Annotated[str, AfterValidator(_s3_prefix)] = Field(
        "unused-access-reporter/",
        description="Key prefix; each run goes under PREFIX<run-id>/ (empty or ending in `/`).",
    )
    region: Region | None = Field(
        None, description="Region of the bucket; null = organization.home_region."
    )
    sse: ServerSideEncryption = Field(
        ServerSideEncryption.AES256,
        description="Server-side encryption of every object: AES256 (SSE-S3) or aws:kms.",
    )
    kms_key_id: str | None = Field(
        None, description="KMS key id or ARN for sse aws:kms; null = the AWS managed key."
    )
    object_lock_mode: ObjectLockMode | None = Field(
        None,
        description="Object Lock retention set on every object: GOVERNANCE or COMPLIANCE; "
        "null = none (the bucket must have Object Lock enabled otherwise).",
    )
    object_lock_days: int = Field(
        0, ge=0, le=36500, description="Days each object is locked; required with a mode."
    )


class EvidenceWebSettings(_Section):
    enabled: bool = Field(False, description="`serve` also serves the evidence web page.")
    host: Annotated[
        str, _matcher(r"[^\s/]+", "not a host or address", "e.g. `127.0.0.1` or `0.0.0.0`")
    ] = Field("127.0.0.1", description="Address the web page listens on.")
    port: int = Field(8080, ge=1, le=65535, description="TCP port of the web page (1–65535).")
    users: dict[WebUserName, PasswordHash] = Field(
        default_factory=dict,
        description="User name → password hash from `access-reporter hash-password` "
        "(HTTP Basic login); a hash costing more than 64 MiB per check is refused. "
        "Shown as <redacted>.",
    )
    trusted_header: (
        Annotated[
            str,
            _matcher(r"[A-Za-z0-9-]{1,64}", "not a header name", "e.g. `X-Forwarded-User`"),
        ]
        | None
    ) = Field(
        None,
        description="Header naming the user, set by an authenticating reverse proxy; "
        "believed only from trusted_proxies.",
    )
    trusted_proxies: tuple[Annotated[str, AfterValidator(_proxy_network)], ...] = Field(
        (),
        description="Addresses or networks of that proxy, matched against the connection's "
        "own peer address; X-Forwarded-For, Forwarded and X-Real-IP are never believed.",
    )


class EvidenceSettings(_Section):
    store: EvidenceStoreKind = Field(
        EvidenceStoreKind.LOCAL,
        description="Where finished runs are kept: local (reports.output_dir) or s3.",
    )
    retention_days: int | None = Field(
        None,
        ge=1,
        description="`evidence prune` removes complete runs older than this; null = keep all.",
    )
    s3: EvidenceS3Settings = Field(
        default_factory=EvidenceS3Settings, description="Used when store is s3."
    )
    web: EvidenceWebSettings = Field(
        default_factory=EvidenceWebSettings, description="The auditors' web page."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        issues = _Issues()
        s3, web = self.s3, self.web
        if self.store is EvidenceStoreKind.S3 and s3.bucket is None:
            issues.add(("s3", "bucket"), "required when store is s3", "name the bucket", None)
        if s3.kms_key_id and s3.sse is not ServerSideEncryption.KMS:
            issues.add(
                ("s3", "kms_key_id"), "set but sse is not aws:kms", "set `sse: aws:kms`", "…"
            )
        if s3.object_lock_mode and s3.object_lock_days == 0:
            issues.add(
                ("s3", "object_lock_days"),
                "must be at least 1 with object_lock_mode",
                "the days each object stays locked, e.g. 400",
                0,
            )
        if s3.object_lock_days and not s3.object_lock_mode:
            issues.add(
                ("s3", "object_lock_mode"),
                "required with object_lock_days",
                "GOVERNANCE or COMPLIANCE",
                None,
            )
        if web.trusted_header and not web.trusted_proxies:
            issues.add(
                ("web", "trusted_proxies"),
                "empty while trusted_header is set",
                "list the proxy's addresses: the header is believed only from them",
                [],
            )
        issues.raise_any()
        return self


class Settings(_Section):
    """The whole configuration. Build it with `load_file` / `load_data`; `Settings()` = defaults."""

    version: Literal[1] = Field(1, description="Configuration format version; only 1 exists.")
    organization: OrganizationSettings = Field(
        default_factory=OrganizationSettings,
        description="Where the organization is and which accounts are in scope.",
    )
    aws: AwsSettings = Field(default_factory=AwsSettings, description="AWS client behaviour.")
    sources: SourcesSettings = Field(
        default_factory=SourcesSettings, description="Where findings are read from."
    )
    collection: CollectionSettings = Field(
        default_factory=CollectionSettings,
        description="How sources are read: parallelism, timeouts, recommendation polling.",
    )
    owners: OwnersSettings = Field(
        default_factory=OwnersSettings, description="Who receives which findings."
    )
    mail: MailSettings = Field(default_factory=MailSettings, description="How mail is sent.")
    reports: ReportsSettings = Field(
        default_factory=ReportsSettings, description="Report output and templates."
    )
    state: StateSettings = Field(
        default_factory=StateSettings, description="Run history and delivery ledger."
    )
    schedule: ScheduleSettings = Field(
        default_factory=ScheduleSettings, description="When `serve` runs the report."
    )
    exceptions: ExceptionsSettings = Field(
        default_factory=ExceptionsSettings,
        description="Approved exceptions: findings reported as excepted until they expire.",
    )
    remediation: RemediationSettings = Field(
        default_factory=RemediationSettings,
        description="Organization access principals: recognised, never given deletion commands.",
    )
    evidence: EvidenceSettings = Field(
        default_factory=EvidenceSettings,
        description="Where run evidence is kept, how long, and the auditors' web page.",
    )
    reviews: ReviewsSettings = Field(
        default_factory=ReviewsSettings,
        description="Access reviews: owners' decisions from returned workbooks.",
    )

    # Where secret references were, and what was written there (e.g. "${DB_PASSWORD}").
    _secret_refs: tuple[tuple[Loc, str], ...] = PrivateAttr(default=())
