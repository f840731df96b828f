"""Configuration: YAML → frozen, validated `Settings`, with secret references and redaction.

Every setting is declared once, below, as a pydantic field: its type is the validation, its
default is the default, and its `description` feeds error hints and the docs (`describe_fields`);
a test keeps `config/example.yaml` in step with the model. Loading is strict: unknown keys are
errors, and every problem in a file is reported at once as one `ConfigError`.

Secrets are referenced, never written inline: a string may be `${NAME}` (whole or embedded, e.g.
in a database URL) or a mapping `{"$env": "NAME"}`. References resolve from the `environ` argument
into a copy of the data; the loaded `Settings` remembers where they were, so `redacted()`,
`repr()` and error messages show the reference and never the value. Some values are secret
however they were written: every URL-typed setting loses its user info and query string, and
password hashes are shown as `<redacted>` (the `_Shown` marker on their types), in printed
config, in `repr()`, in errors and in `config_digest`, which hashes the redacted config.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
import typing
import zoneinfo
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeAlias

import yaml
from apscheduler.triggers.cron import CronTrigger
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from reporter.errors import ConfigError, ConfigProblem
from reporter.models import FindingType
from reporter.owners import DEFAULT_LADDER, Step, is_allowed
from reporter.state import engine as statedb

# A live key or password is an open door: fix within a month; roles and permissions later.
DEFAULT_SLA_DAYS = {
    FindingType.UNUSED_ACCESS_KEY: 30,
    FindingType.UNUSED_PASSWORD: 30,
    FindingType.UNUSED_ROLE: 60,
    FindingType.UNUSED_PERMISSION: 90,
}

__all__ = [
    "REDACTED",
    "FieldDoc",
    "Settings",
    "config_digest",
    "describe_fields",
    "dump_yaml",
    "load_data",
    "load_file",
    "mask_url_credentials",
    "redacted",
]

REDACTED = "<redacted>"
FILE_PATH = "<file>"
_VALUE_WIDTH = 80

Loc: TypeAlias = tuple[str | int, ...]


# --------------------------------------------------------------------------------------------
# Field types. Each validator raises `_invalid(...)`. Its message and hint never quote the value,
# which may be a resolved secret (the value shown to the user is taken from the file instead);
# text derived from the value goes into `detail` / `value_hint`, which are only shown when the
# value did not come from a secret reference.
# --------------------------------------------------------------------------------------------


def _invalid(
    message: str, hint: str = "", *, detail: str = "", value_hint: str = ""
) -> PydanticCustomError:
    context = {"hint": hint, "detail": detail, "value_hint": value_hint}
    return PydanticCustomError("config_value", message, context)


def _matcher(pattern: str, message: str, hint: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise _invalid(message, hint)
        return value

    return AfterValidator(check)


_REGION_RE = r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}"
_IAM_NAME_RE = r"[A-Za-z0-9_+=,.@-]"
_ROLE_ARN_RE = rf"arn:aws[-a-z]*:iam::[0-9]{{12}}:role/({_IAM_NAME_RE}+/)*{_IAM_NAME_RE}{{1,64}}"
_ANALYZER_ARN_RE = r"arn:aws[-a-z]*:access-analyzer:[a-z0-9-]+:[0-9]{12}:analyzer/[A-Za-z0-9_.-]+"
_OU_RE = r"ou-[0-9a-z]{4,32}-[0-9a-z]{8,32}|r-[0-9a-z]{4,32}"
_DOMAIN_RE = r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
_LOCAL_PART_RE = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"

Region = Annotated[
    str,
    _matcher(_REGION_RE, "not an AWS Region code", "a Region code such as `us-east-1`"),
]
RoleArn = Annotated[
    str,
    _matcher(
        _ROLE_ARN_RE,
        "not an IAM role ARN",
        "write it as `arn:aws:iam::123456789012:role/RoleName` (the role's full ARN)",
    ),
]
AnalyzerArn = Annotated[
    str,
    _matcher(
        _ANALYZER_ARN_RE,
        "not an Access Analyzer analyzer ARN",
        "write it as `arn:aws:access-analyzer:us-east-1:123456789012:analyzer/NAME`; "
        "`aws accessanalyzer list-analyzers --type ORGANIZATION_UNUSED_ACCESS` prints it",
    ),
]
IamRoleName = Annotated[
    str,
    _matcher(
        rf"{_IAM_NAME_RE}{{1,64}}",
        "not an IAM role name",
        "1–64 characters of letters, digits and `_+=,.@-` (the name, not the ARN)",
    ),
]
SessionName = Annotated[
    str,
    _matcher(
        rf"{_IAM_NAME_RE}{{2,64}}",
        "not a valid role session name",
        "2–64 characters of letters, digits and `_+=,.@-`",
    ),
]
OuId = Annotated[
    str,
    _matcher(
        _OU_RE,
        "not an organizational unit or root id",
        "an OU id like `ou-ab12-cd34ef56` or a root id like `r-ab12` (not the OU's name)",
    ),
]


def _account_id(value: Any) -> Any:
    # YAML reads unquoted digits as a number, dropping leading zeros or even reading them as octal
    # (012345670123 → 1402433619), so the only safe spelling of an account id is a quoted string.
    if isinstance(value, int) and not isinstance(value, bool):
        raise _invalid(
            "account id must be a quoted string",
            "put it in quotes, e.g. '012345678901': unquoted, YAML reads it as a number "
            "and may drop leading zeros",
        )
    if isinstance(value, str) and not re.fullmatch(r"[0-9]{12}", value):
        raise _invalid("not an AWS account id", "exactly 12 digits, in quotes, e.g. '012345678901'")
    return value


AccountId = Annotated[str, BeforeValidator(_account_id)]


def _email(value: str) -> str:
    local, at, domain = value.strip().rpartition("@")
    domain = domain.lower()
    if not at or not re.fullmatch(_LOCAL_PART_RE, local) or not re.fullmatch(_DOMAIN_RE, domain):
        raise _invalid(
            "not an e-mail address",
            "a bare address like `team@example.com` (no display name, no angle brackets)",
        )
    return f"{local}@{domain}"


def _domain(value: str) -> str:
    domain = value.strip().lower()
    if not re.fullmatch(_DOMAIN_RE, domain):
        raise _invalid("not a domain name", "a domain like `example.com`, without `@` or scheme")
    return domain


Email = Annotated[str, AfterValidator(_email)]
Domain = Annotated[str, AfterValidator(_domain)]
TagKey = Annotated[str, Field(min_length=1, max_length=128)]
OwnerName = Annotated[
    str, _matcher(r".*\S.*", "owner name is blank", "the name as the owner tags spell it")
]


def _owner_ref(value: str) -> str:
    value = value.strip()
    if not value:
        raise _invalid("owner is blank", "an e-mail address, or a name listed in owners.names")
    return value


# An address or a name from `owners.names`; which of the two is checked with the section.
OwnerRef = Annotated[str, AfterValidator(_owner_ref)]


class _Shown(Enum):
    """How a value of a marked type is shown wherever config is printed, digested or logged.

    Put on a type with `Annotated[..., _Shown.URL]`; the model walk below finds every field
    that carries it (inside `X | None`, a mapping's values or a sequence's items too), so a new
    setting of a marked type is redacted without being listed anywhere.
    """

    URL = "url"  # user info and query string replaced: they carry passwords and tokens
    PASSWORD_HASH = "password_hash"  # an offline-guessable verifier: never shown


def _http_url(value: str) -> str:
    if not re.fullmatch(r"https?://[^\s/?#]+([/?#]\S*)?", value):
        raise _invalid("not an http(s) URL", "e.g. `http://localhost:4566` for an emulator")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url), _Shown.URL]


def _one_line(value: str) -> str:
    # A line break in a header value would let the config inject extra mail headers.
    if any(ch in value for ch in "\r\n"):
        raise _invalid("must be a single line", "remove the line break")
    return value


def _non_empty_path(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise _invalid("path is empty", "write a folder path, e.g. `reports`")
    return value


FolderPath = Annotated[Path, BeforeValidator(_non_empty_path)]


def _external_id(value: SecretStr) -> SecretStr:
    if not re.fullmatch(r"[A-Za-z0-9_+=,.@:/-]{2,1224}", value.get_secret_value()):
        raise _invalid(
            "not a valid external id", "2–1224 characters of letters, digits and `_+=,.@:/-`"
        )
    return value


ExternalId = Annotated[SecretStr, AfterValidator(_external_id)]


def _database_url(value: str) -> str:
    # The same rule the state database opens by (reporter.state.engine.engine_url).
    problem = statedb.url_problem(value)
    if problem is not None:
        raise _invalid(*problem)
    if not re.fullmatch(r"sqlite[+\w]*:///.+|postgres(ql)?[+\w]*://[^/\s]+/?\S*", value):
        raise _invalid("not a supported database URL", statedb.EXAMPLES)
    return value


DatabaseUrl = Annotated[str, AfterValidator(_database_url), _Shown.URL]


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


# --------------------------------------------------------------------------------------------
# Cross-field checks raise all their findings at once, each with the exact sub-key, as one
# pydantic error that `_problems_from_validation` unfolds again.
# --------------------------------------------------------------------------------------------


class _Issues:
    def __init__(self) -> None:
        self.items: list[tuple[Loc, str, str, Any]] = []

    def add(self, loc: Loc, message: str, hint: str, value: Any) -> None:
        self.items.append((loc, message, hint, value))

    def raise_any(self) -> None:
        if self.items:
            raise PydanticCustomError(
                "config_issues", "cross-field problems", {"issues": tuple(self.items)}
            )


# --------------------------------------------------------------------------------------------
# The model.
# --------------------------------------------------------------------------------------------


class _Section(BaseModel):
    # validate_default: defaults pass the same validators as file values (and normalise alike).
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    # Field name → what repr shows instead of the value; filled by `load_data` for fields that
    # came from secret references. Private, so it is not a setting but survives pickling.
    _masked: dict[str, str] = PrivateAttr(default_factory=dict)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        fields = type(self).model_fields
        for name, value in super().__repr_args__():
            if name is not None and name in self._masked:
                yield name, self._masked[name]
            elif name in fields and (marked := _marker(fields[name])) is not None:
                # A URL's user info or a password hash is hidden whether or not it was a
                # reference: a literal there is still a secret.
                yield name, _shown_under(value, *marked)
            else:
                yield name, value


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


# --- exceptions ---------------------------------------------------------------------------------

_DATE_HINT = "write the date as YYYY-MM-DD, e.g. `expires: 2026-06-30`"


def _today(info: ValidationInfo) -> date:
    # `load_data(today=...)` passes the day in, so tests and runs agree on what "ahead" means.
    context = info.context if isinstance(info.context, Mapping) else {}
    today = context.get("today")
    return today if isinstance(today, date) else datetime.now(UTC).date()


def _expiry_date(value: Any) -> Any:
    # pydantic would read a number as a Unix timestamp (20260630 → 1970-08-23) and a datetime
    # as its date; an exception date is a calendar day written as such, nothing else.
    if isinstance(value, datetime):
        raise _invalid("must be a date without a time", _DATE_HINT)
    if isinstance(value, date):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError as exc:
            raise _invalid("not a valid date", _DATE_HINT, detail=str(exc)) from None
    raise _invalid("not a date", _DATE_HINT)


def _arn_glob(value: str) -> str:
    if not value.strip() or any(ch in value for ch in "\r\n"):
        raise _invalid("empty or multi-line pattern", "one line, e.g. `arn:aws:iam::*:role/ci-*`")
    if not value.startswith(("arn:", "*", "?", "[")):
        raise _invalid(
            "not an ARN pattern",
            "match the whole principal ARN, e.g. `arn:aws:iam::*:role/ci-*` "
            "(a bare name matches nothing)",
        )
    return value


def _non_blank(value: str) -> str:
    if not value.strip():
        raise _invalid("is blank", "say why the access must stay, e.g. the approving ticket")
    return value


RuleId = Annotated[
    str,
    _matcher(
        r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}",
        "not a valid exception id",
        "1–64 letters, digits and `_.:-`, starting with a letter or digit, e.g. `EXC-2024-017`",
    ),
]
ExpiryDate = Annotated[date, BeforeValidator(_expiry_date)]
ArnGlob = Annotated[str, AfterValidator(_arn_glob)]


def _file_path(value: Any) -> Any:
    if isinstance(value, str) and (not value.strip() or "\x00" in value):
        raise _invalid("not a file path", "e.g. `exceptions.yaml`, next to this config file")
    return value


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


def _s3_prefix(value: str) -> str:
    if value and (value.startswith("/") or not value.endswith("/") or "//" in value):
        raise _invalid("not an S3 key prefix", "e.g. `unused-access-reporter/` (ends with `/`)")
    if ".." in value.split("/") or any(ord(ch) < 32 for ch in value):
        raise _invalid("not an S3 key prefix", "letters, digits and `/-_.`, ending with `/`")
    return value


def _password_hash(value: str) -> str:
    from reporter.web.passwords import hash_problem

    # The reason names the scheme or the cost, never the hash, so it may be shown for a value
    # from a reference too.
    if problem := hash_problem(value):
        raise _invalid(
            problem,
            "make one with `access-reporter hash-password` (never the password itself)",
        )
    return value


def _proxy_network(value: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise _invalid("not an IP address or network", "e.g. `10.0.0.5` or `10.0.0.0/24`") from None


PasswordHash = Annotated[str, AfterValidator(_password_hash), _Shown.PASSWORD_HASH]

WebUserName = Annotated[
    str, _matcher(r"[A-Za-z0-9_.@-]{1,64}", "not a user name", "1–64 of letters, digits, `_.@-`")
]


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


# --------------------------------------------------------------------------------------------
# Model introspection: one walk over the model serves docs, hints and redaction.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FieldDoc:
    """One setting: dotted path, default (plain data), description, and whether it is a section."""

    path: str
    default: Any
    description: str
    is_section: bool


def _section_type(field: FieldInfo) -> type[_Section] | None:
    annotation = field.annotation
    if isinstance(annotation, type) and issubclass(annotation, _Section):
        return annotation
    return None


def describe_fields(model: type[_Section] = Settings, prefix: str = "") -> list[FieldDoc]:
    """Every setting of `model`, depth first, in declaration order."""
    docs: list[FieldDoc] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        section = _section_type(field)
        default = None if section else _plain(field.get_default(call_default_factory=True))
        docs.append(FieldDoc(path, default, field.description or "", section is not None))
        if section is not None:
            docs.extend(describe_fields(section, f"{path}."))
    return docs


def _field_at(loc: Loc) -> tuple[type[_Section] | None, FieldInfo | None]:
    """The section holding the last model field named in `loc`, and that field."""
    model: type[_Section] | None = Settings
    owner: type[_Section] | None = None
    field: FieldInfo | None = None
    items: type[_Section] | None = None
    for part in loc:
        if isinstance(part, int) and items is not None:
            model, items = items, None  # an item of a list of sections, e.g. exceptions.rules[0]
            continue
        if model is None:
            continue  # inside a list or mapping value: the field stays the same
        if not isinstance(part, str) or part not in model.model_fields:
            return model, None
        owner, field = model, model.model_fields[part]
        model, items = _section_type(field), _item_section_type(field)
    return owner, field


def _item_section_type(field: FieldInfo) -> type[_Section] | None:
    """X for a field typed `tuple[X, ...]` where X is a section."""
    args = typing.get_args(field.annotation)
    if args and isinstance(args[0], type) and issubclass(args[0], _Section):
        return args[0]
    return None


def _secret_field_locs(model: type[_Section] = Settings, prefix: Loc = ()) -> list[Loc]:
    locs: list[Loc] = []
    for name, field in model.model_fields.items():
        section = _section_type(field)
        if section is not None:
            locs.extend(_secret_field_locs(section, (*prefix, name)))
        elif "SecretStr" in str(field.annotation):
            locs.append((*prefix, name))
    return locs


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


def _marked_locs(model: type[_Section] = Settings, prefix: Loc = ()) -> list[tuple[Loc, _Shown]]:
    found: list[tuple[Loc, _Shown]] = []
    for name, field in model.model_fields.items():
        section, items = _section_type(field), _item_section_type(field)
        if section is not None:
            found.extend(_marked_locs(section, (*prefix, name)))
        elif items is not None:
            found.extend(_marked_locs(items, (*prefix, name, _ANY)))
        elif (marked := _marker(field)) is not None:
            found.append(((*prefix, name, *marked[1]), marked[0]))
    return found


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


def _marked_at(loc: Loc) -> _Shown | None:
    for pattern, kind in _MARKED:
        if len(pattern) == len(loc) and all(
            p in (_ANY, part) for p, part in zip(pattern, loc, strict=True)
        ):
            return kind
    return None


_ALWAYS_SECRET: frozenset[Loc] = frozenset(_secret_field_locs())
# Every URL (user info may hold a password) and every password hash in the model.
_MARKED: tuple[tuple[Loc, _Shown], ...] = tuple(_marked_locs())
# A literal here would put a live password in a file that gets committed and copied around.
_REFERENCE_ONLY: frozenset[Loc] = frozenset({("mail", "smtp", "password")})


# --------------------------------------------------------------------------------------------
# Paths and value display.
# --------------------------------------------------------------------------------------------


def _path(loc: Loc) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not re.fullmatch(r"[\w$-]+", part):
            text += f"[{json.dumps(part)}]"  # e.g. an owner name with a space or a dot
        else:
            text += f".{part}" if text else part
    return text or "<root>"


_MISSING = object()


def _get(data: Any, loc: Loc) -> Any:
    for part in loc:
        in_list = isinstance(part, int) and isinstance(data, list | tuple) and 0 <= part < len(data)
        in_mapping = isinstance(part, str) and isinstance(data, Mapping) and part in data
        if not (in_list or in_mapping):
            return _MISSING
        data = data[part]
    return data


def _starts_with(loc: Loc, prefix: Loc) -> bool:
    return loc[: len(prefix)] == prefix


def _mask_raw(value: Any, loc: Loc) -> Any:
    """`value` (found at `loc` in the file) with always-secret parts masked, for display."""
    if loc in _ALWAYS_SECRET and value is not None and not _is_reference(value):
        return REDACTED
    kind = _marked_at(loc)
    if kind is _Shown.URL and isinstance(value, str):
        # As written: a reference in it may sit beside a literal password.
        return mask_url_credentials(value, keep_references=True)
    if kind is _Shown.PASSWORD_HASH and isinstance(value, str) and not _is_reference(value):
        from reporter.web.passwords import public_part

        return public_part(value)  # the scheme and cost say what is wrong; the rest stays hidden
    if isinstance(value, Mapping):
        return {k: _mask_raw(v, (*loc, k)) if isinstance(k, str) else v for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_raw(v, (*loc, i)) for i, v in enumerate(value)]
    return value


def _display(value: Any, loc: Loc) -> str:
    shown = _mask_raw(value, loc)
    # YAML reads `2026-06-30` as a date; show it as written, not as `datetime.date(...)`.
    text = shown.isoformat() if isinstance(shown, date) else repr(shown)
    return text if len(text) <= _VALUE_WIDTH else text[: _VALUE_WIDTH - 3] + "..."


# --------------------------------------------------------------------------------------------
# Secret references.
# --------------------------------------------------------------------------------------------

# `$${` is an escaped, literal `${`; `${` without a closing brace is an error.
_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _is_reference(value: Any) -> bool:
    if isinstance(value, Mapping):
        return "$env" in value
    return isinstance(value, str) and bool(re.search(r"(?<!\$)\$\{", value))


@dataclasses.dataclass
class _Resolver:
    environ: Mapping[str, str]
    refs: dict[Loc, str] = dataclasses.field(default_factory=dict)
    problems: list[tuple[Loc, ConfigProblem]] = dataclasses.field(default_factory=list)

    def problem(self, loc: Loc, shown: Any, message: str, hint: str) -> None:
        self.problems.append((loc, ConfigProblem(_path(loc), _display(shown, loc), message, hint)))

    def lookup(self, name: str, loc: Loc, shown: Any) -> str | None:
        if not _ENV_NAME.fullmatch(name):
            self.problem(loc, shown, "invalid environment variable name", "letters, digits, _")
            return None
        if name not in self.environ:
            self.problem(
                loc, shown, f"environment variable {name} is not set", f"export {name}=..."
            )
            return None
        return self.environ[name]

    def resolve(self, value: Any, loc: Loc) -> Any:
        if isinstance(value, Mapping) and "$env" in value:
            return self._env_mapping(value, loc)
        if isinstance(value, Mapping):
            result: dict[str, Any] = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    self.problem(
                        (*loc, str(key)),
                        key,
                        "key is not text",
                        "quote the key: YAML reads yes/no/on/off, numbers and dates as values",
                    )
                    continue
                result[key] = self.resolve(item, (*loc, key))
            return result
        if isinstance(value, list | tuple):
            return [self.resolve(item, (*loc, index)) for index, item in enumerate(value)]
        whole_reference = isinstance(value, str) and re.fullmatch(r"\$\{[^}]*\}", value)
        if loc in _REFERENCE_ONLY and value is not None and not whole_reference:
            self.problem(
                loc,
                value,
                "a literal password is not allowed",
                "export SMTP_PASSWORD=... and write `password: ${SMTP_PASSWORD}`",
            )
            return value
        if isinstance(value, str) and "$" in value:
            return self._substitute(value, loc)
        return value

    def _env_mapping(self, value: Mapping[Any, Any], loc: Loc) -> Any:
        name = value.get("$env")
        if set(value) != {"$env"} or not isinstance(name, str):
            self.problem(
                loc,
                value,
                "a secret reference has exactly one key, `$env`, naming a variable",
                'write `{"$env": "NAME"}` or "${NAME}"',
            )
            return value
        self.refs[loc] = f"${{{name}}}"
        resolved = self.lookup(name, loc, value)
        return value if resolved is None else resolved

    def _substitute(self, text: str, loc: Loc) -> str:
        found = False
        failed = False

        def replace(match: re.Match[str]) -> str:
            nonlocal found, failed
            if match.group(0) == "$${":
                return "${"
            if match.group(1) is None:
                self.problem(loc, text, "unterminated `${`", "close it: `${NAME}`; `$${` is `${`")
                failed = True
                return match.group(0)
            found = True
            resolved = self.lookup(match.group(1), loc, text)
            if resolved is None:
                failed = True
                return match.group(0)
            return resolved

        result = _REFERENCE.sub(replace, text)
        if found:
            self.refs[loc] = text
        return text if failed else result


# --------------------------------------------------------------------------------------------
# Validation errors → ConfigProblem.
# --------------------------------------------------------------------------------------------

_MESSAGES = {
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
    "model_type": "expected a mapping of settings",
    "model_attributes_type": "expected a mapping of settings",
    "dict_type": "expected a mapping",
    "tuple_type": "expected a list",
    "list_type": "expected a list",
    "string_type": "expected text",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "path_type": "expected a path",
    "too_short": "must not be empty",
}


def _message(text: str) -> str:
    # pydantic says "Input should be greater than or equal to 1"; the problem already shows input.
    return re.sub(r"^Input should be ", "should be ", text)


def _with(base: str, description: str) -> str:
    return f"{base}. {description}" if description else base


def _hint_for(kind: str, loc: Loc, raw: Any) -> str:
    owner, field = _field_at(loc)
    key = str(loc[-1]) if loc else ""
    if kind == "extra_forbidden" and owner is not None:
        allowed = list(owner.model_fields)
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        return f"did you mean `{close[0]}`?" if close else f"allowed keys: {', '.join(allowed)}"
    description = field.description if field is not None and field.description else ""
    item_of_list = len(loc) >= 2 and isinstance(loc[-1], int)
    if kind in ("model_type", "model_attributes_type") and item_of_list and field is not None:
        items = _item_section_type(field)
        keys = ", ".join(items.model_fields) if items else ""
        return f"each item of `{loc[-2]}` is a mapping of settings ({keys})"
    if kind in ("model_type", "model_attributes_type") and field is not None:
        section = _section_type(field)
        keys = ", ".join(section.model_fields) if section else ""
        return f"indent the settings under `{key}:` ({keys})"
    if kind in ("tuple_type", "list_type"):
        item = repr(raw) if isinstance(raw, str | int | float) else "..."
        return f"write a YAML list, e.g. `{key}: [{item}]`"
    if kind in ("int_type", "int_parsing", "int_from_float", "float_type", "float_parsing"):
        default = field.get_default() if field is not None else None
        example = f", e.g. `{key}: {default}`" if isinstance(default, int | float) else ""
        return _with(f"write a number without quotes{example}", description)
    if kind in ("bool_type", "bool_parsing"):
        return _with("write `true` or `false`", description)
    if kind == "string_type":
        return _with(
            "quote it: YAML reads unquoted numbers, yes/no and dates as non-text", description
        )
    return description


def _problems_from_validation(
    error: ValidationError, raw: Mapping[str, Any], skip: list[Loc], refs: Mapping[Loc, str]
) -> list[ConfigProblem]:
    def shown(loc: Loc, validated: Any) -> Any:
        # The value as written in the file, so a reference shows as `${NAME}`, not its value;
        # a location missing from the file holds a default, which cannot be a resolved secret.
        written = _get(raw, loc)
        return validated if written is _MISSING else written

    entries: list[tuple[Loc, str, str, Any]] = []
    for detail in error.errors(include_url=False):
        loc: Loc = tuple(detail["loc"])
        ctx = detail.get("ctx") or {}
        if detail["type"] == "config_issues":
            for sub, message, hint, value in ctx["issues"]:
                entries.append(((*loc, *sub), message, hint, shown((*loc, *sub), value)))
            continue
        message = _MESSAGES.get(detail["type"]) or _message(detail["msg"])
        if loc and loc[-1] == "[key]":
            # A mapping key failed (e.g. a blank owner name): report it at the key, showing the key.
            loc = loc[:-1]
            entries.append((loc, f"key: {message}", ctx.get("hint") or "", loc[-1]))
            continue
        value = shown(loc, detail.get("input"))
        hint = ctx.get("hint") or _hint_for(detail["type"], loc, value)
        if loc not in refs:
            message = f"{message}: {ctx['detail']}" if ctx.get("detail") else message
            hint = ctx.get("value_hint") or hint
        entries.append((loc, message, hint, value))
    # A list whose only item is invalid is also "too short"; the item's problem says it all.
    failed = [loc for loc, *_ in entries]
    return [
        ConfigProblem(_path(loc), _display(value, loc), message, hint)
        for loc, message, hint, value in entries
        # Locations whose reference could not be resolved were reported already.
        if not any(_starts_with(loc, done) for done in skip)
        and not (
            message == _MESSAGES["too_short"]
            and any(len(other) > len(loc) and _starts_with(other, loc) for other in failed)
        )
    ]


# --------------------------------------------------------------------------------------------
# Public API.
# --------------------------------------------------------------------------------------------


def load_data(
    data: Mapping[str, Any],
    environ: Mapping[str, str],
    source: str = "",
    *,
    base_dir: Path | None = None,
    today: date | None = None,
) -> Settings:
    """Validate already-parsed configuration data; raises `ConfigError` with every problem.

    `base_dir` is where a relative `exceptions.file` is read from (default: the working
    directory); `today` (default: today in UTC) is what exception expiry dates are checked against.
    """
    if not isinstance(data, Mapping):
        problem = ConfigProblem(
            FILE_PATH,
            _display(data, ()),
            "the top level must be a mapping of settings",
            "start from config/example.yaml: `key: value` lines, sections indented",
        )
        raise ConfigError([problem], source=source)
    today = today or datetime.now(UTC).date()
    resolver = _Resolver(environ)
    resolved: Any = None
    try:
        resolved = resolver.resolve(data, ())
        problems = [problem for _, problem in resolver.problems]
        settings = Settings.model_validate(resolved, context={"today": today})
    except ValidationError as exc:
        skip = [loc for loc, _ in resolver.problems]
        problems.extend(_problems_from_validation(exc, data, skip, resolver.refs))
    except RecursionError:
        # Only a YAML alias that contains itself (`a: &x [*x]`) nests this deep.
        problems = [ConfigProblem(FILE_PATH, "...", "nested too deeply", "remove the alias loop")]
    label, file_rules, file_problems = _exceptions_file(resolved, base_dir or Path(), today)
    problems.extend(file_problems)
    if problems:
        raise ConfigError(problems, source=source)
    refs = tuple(sorted(resolver.refs.items(), key=lambda item: _path(item[0])))
    settings._secret_refs = refs
    settings.exceptions._file_rules, settings.exceptions._file_label = file_rules, label
    _mask_sections(settings, refs)
    return settings


def load_file(path: Path, environ: Mapping[str, str], *, today: date | None = None) -> Settings:
    """Read a YAML file and validate it; raises `ConfigError` with every problem."""
    source = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        hint = "check the path; config/example.yaml is a documented starting point"
        raise ConfigError(
            [ConfigProblem(FILE_PATH, repr(source), "file not found", hint)], source
        ) from None
    except IsADirectoryError:
        hint = "pass the YAML file itself, not its folder"
        raise ConfigError(
            [ConfigProblem(FILE_PATH, repr(source), "is a directory", hint)], source
        ) from None
    except PermissionError:
        hint = "make the file readable by the user that runs the reporter"
        raise ConfigError(
            [ConfigProblem(FILE_PATH, repr(source), "permission denied", hint)], source
        ) from None
    except OSError as exc:
        problem = ConfigProblem(FILE_PATH, repr(source), f"cannot read: {exc.strerror}", "")
        raise ConfigError([problem], source) from None
    except UnicodeDecodeError as exc:
        problem = ConfigProblem(
            FILE_PATH, repr(source), f"not UTF-8 (byte {exc.start})", "save the file as UTF-8"
        )
        raise ConfigError([problem], source) from None
    data, problems = _parse_yaml(text)
    if data is None:
        raise ConfigError(problems, source)
    try:
        settings = load_data(data, environ, source, base_dir=Path(path).parent, today=today)
    except ConfigError as exc:
        raise ConfigError([*problems, *exc.problems], source) from None
    if problems:
        raise ConfigError(problems, source)
    return settings


def redacted(settings: Settings) -> dict[str, Any]:
    """The resolved settings as plain data, with every secret replaced by `<redacted…>`."""
    data: dict[str, Any] = settings.model_dump(mode="json")
    for loc in _ALWAYS_SECRET:
        if _get(data, loc) not in (_MISSING, None):
            _set(data, loc, REDACTED)
    for pattern, kind in _MARKED:
        for loc in list(_expand(data, pattern)):
            if isinstance(value := _get(data, loc), str):
                _set(data, loc, _shown(value, kind))
    for loc, written in settings._secret_refs:
        _set(data, loc, f"<redacted: {_written(written, loc)}>")
    return data


def _expand(data: Any, pattern: Loc, done: Loc = ()) -> Iterator[Loc]:
    """The locations in `data` that `pattern` names (`_ANY`: every key or index)."""
    if len(done) == len(pattern):
        yield done
        return
    node, part = _get(data, done), pattern[len(done)]
    keys: list[str | int] = [part]
    if part == _ANY:
        keys = list(node) if isinstance(node, Mapping) else []
        keys += range(len(node)) if isinstance(node, list) else []
    for key in keys:
        if _get(node, (key,)) is not _MISSING:
            yield from _expand(data, pattern, (*done, key))


def _written(written: str, loc: Loc) -> str:
    """What was written where a reference resolved, safe to show: a URL may hold a reference
    and a literal password side by side."""
    if _marked_at(loc) is _Shown.URL:
        return mask_url_credentials(written, keep_references=True)
    return written


def dump_yaml(data: Mapping[str, Any]) -> str:
    """Block-style YAML in the mapping's own key order (for `validate-config` output)."""
    return yaml.safe_dump(
        _plain(data), sort_keys=False, allow_unicode=True, default_flow_style=False
    )


def config_digest(settings: Settings) -> str:
    """SHA-256 (hex) of the redacted settings as canonical JSON: secrets rotate, it stays."""
    data = redacted(settings)
    if settings.exceptions.file_rules:
        # The rules of `exceptions.file` change what the reports say just as inline ones do.
        data["exceptions"]["file_rules"] = [
            rule.model_dump(mode="json") for rule in settings.exceptions.file_rules
        ]
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------
# Helpers.
# --------------------------------------------------------------------------------------------


def _exceptions_file(
    resolved: Any, base_dir: Path, today: date
) -> tuple[str, tuple[ExceptionRuleSettings, ...], list[ConfigProblem]]:
    """(label, rules, problems) of `exceptions.file`; problems name their place in that file."""
    section = resolved.get("exceptions") if isinstance(resolved, Mapping) else None
    written = section.get("file") if isinstance(section, Mapping) else None
    if not isinstance(written, str) or not written.strip() or "\x00" in written:
        return "", (), []  # no file, or a value that validation reports at exceptions.file
    path = base_dir / written

    def unreadable(message: str, hint: str) -> tuple[str, tuple[()], list[ConfigProblem]]:
        return written, (), [ConfigProblem("exceptions.file", repr(written), message, hint)]

    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        return unreadable(
            "file not found",
            f"a relative path is read from the config file's folder: looked for {path.absolute()}",
        )
    except IsADirectoryError:
        return unreadable("is a directory", "name the YAML file, e.g. `exceptions.yaml`")
    except PermissionError:
        return unreadable("permission denied", "make the file readable by the reporter's user")
    except OSError as exc:
        return unreadable(f"cannot read: {exc.strerror}", "check the path")
    except UnicodeDecodeError as exc:
        return unreadable(f"not UTF-8 (byte {exc.start})", "save the file as UTF-8")

    def located(path_in_file: str) -> str:
        return written if path_in_file == FILE_PATH else f"{written}:{path_in_file}"

    data, parsed = _parse_yaml(text)
    problems = [dataclasses.replace(p, path=located(p.path)) for p in parsed]
    if data is None:
        return written, (), problems
    if not isinstance(data, Mapping):
        hint = "write `rules:` and below it a list of exceptions, as in config/exceptions.yaml"
        problems.append(
            ConfigProblem(written, _display(data, ()), "expected a mapping with `rules:`", hint)
        )
        return written, (), problems
    for key in data:
        if key != "rules":
            hint = "an exceptions file holds only `rules:`; other exceptions settings belong "
            problems.append(
                ConfigProblem(
                    located(_path((str(key),))), repr(key), "unknown key", hint + "in the config"
                )
            )
    days = section.get("max_days_ahead") if isinstance(section, Mapping) else None
    if not (isinstance(days, int) and not isinstance(days, bool) and 1 <= days <= 3650):
        days = ExceptionsSettings.model_fields["max_days_ahead"].default
    # Validated as if written in the config, so types, hints and checks are the same.
    wrapped = {"exceptions": {"max_days_ahead": days, "rules": data.get("rules") or []}}
    try:
        context = {"today": today, "rules_label": f"{written}:rules"}
        rules = Settings.model_validate(wrapped, context=context).exceptions.rules
    except ValidationError as exc:
        for problem in _problems_from_validation(exc, wrapped, [], {}):
            inside = problem.path.removeprefix("exceptions.")
            problems.append(dataclasses.replace(problem, path=located(inside)))
        return written, (), problems
    # Ids must be unique across the config and the file too.
    inline = section.get("rules") if isinstance(section, Mapping) else None
    seen = {
        rule["id"]: f"exceptions.rules[{index}]"
        for index, rule in reversed(list(enumerate(inline if isinstance(inline, list) else [])))
        if isinstance(rule, Mapping) and isinstance(rule.get("id"), str)
    }
    issues = _Issues()
    _check_rules(rules, ("rules",), f"{written}:rules", days, today, seen, issues)
    problems.extend(
        ConfigProblem(located(_path(loc)), _display(value, ()), message, hint)
        for loc, message, hint, value in issues.items
    )
    return written, rules, problems


def _plain(value: Any) -> Any:
    """Plain YAML/JSON-able data: mappings → dict, sequences → list, enums/paths → str."""
    # Settings handed over whole are redacted here, so no caller can dump a secret by accident.
    if isinstance(value, Settings):
        return redacted(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


def _set(data: Any, loc: Loc, value: Any) -> None:
    for part in loc[:-1]:
        data = data[part]
    data[loc[-1]] = value


def _mask_sections(settings: Settings, refs: tuple[tuple[Loc, str], ...]) -> None:
    # Tell each section which of its fields came from a reference, so that its own repr hides
    # them too (code may log `settings.state` on its own).
    for loc, written in refs:
        section: Any = settings
        for depth, part in enumerate(loc):
            child = getattr(section, str(part), None) if isinstance(part, str) else None
            if isinstance(child, _Section):
                section = child
                continue
            shown = f"<redacted: {_written(written, loc)}>" if depth == len(loc) - 1 else REDACTED
            section._masked[str(part)] = shown
            break


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps an impossible date (`2026-02-30`) as text instead of crashing."""

    def construct_yaml_timestamp(self, node: yaml.Node) -> Any:
        try:
            return super().construct_yaml_timestamp(node)  # type: ignore[arg-type]
        except ValueError:
            # Validation then reports it at its key, with the value and a hint.
            return self.construct_scalar(node)  # type: ignore[arg-type]


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


def _parse_yaml(text: str) -> tuple[Any, list[ConfigProblem]]:
    """(data, problems): data is None when the text is not YAML at all."""
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:  # PyYAML refuses control characters up front
        at_line = text.count("\n", 0, max(exc.position, 0)) + 1
        code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1])
        message = f"character U+{code:04X} at line {at_line} is not allowed in YAML"
        hint = "remove it; in a double-quoted string it may be written as an escape"
        return None, [ConfigProblem(FILE_PATH, "...", message, hint)]
    try:
        node = loader.get_single_node()
        problems = _duplicate_keys(node)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        line = text.splitlines()[mark.line] if mark and mark.line < len(text.splitlines()) else ""
        message = f"YAML syntax error at {where}: {exc.problem or exc.context}"
        hint = "check indentation (spaces, not tabs) and quote values containing `: ` or `#`"
        return None, [ConfigProblem(FILE_PATH, _display(line.strip(), ()), message, hint)]
    except yaml.YAMLError as exc:
        return None, [ConfigProblem(FILE_PATH, "...", f"not valid YAML: {exc}", "save as UTF-8")]
    except RecursionError:
        return None, [ConfigProblem(FILE_PATH, "...", "nested too deeply", "flatten the file")]
    finally:
        loader.dispose()
    # An empty document (blank, comments only, or a bare `---`) means "all defaults".
    return ({} if data is None else data), problems


def _duplicate_keys(node: yaml.Node | None) -> list[ConfigProblem]:
    # PyYAML silently keeps the last of two equal keys; a second `mail:` block would quietly
    # replace the first, so duplicates are errors here.
    problems: list[ConfigProblem] = []
    seen_nodes: set[int] = set()

    def walk(current: yaml.Node, loc: Loc) -> None:
        if id(current) in seen_nodes:
            return
        seen_nodes.add(id(current))
        if isinstance(current, yaml.MappingNode):
            first_line: dict[str, int] = {}
            for key_node, value_node in current.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                    continue
                key = key_node.value
                line = key_node.start_mark.line + 1
                if key in first_line:
                    problems.append(
                        ConfigProblem(
                            _path((*loc, key)),
                            repr(key),
                            f"duplicate key at line {line} (first at line {first_line[key]})",
                            "keep one: YAML would silently use only the last",
                        )
                    )
                else:
                    first_line[key] = line
                walk(value_node, (*loc, key))
        elif isinstance(current, yaml.SequenceNode):
            for index, item in enumerate(current.value):
                walk(item, (*loc, index))

    if node is not None:
        walk(node, ())
    return problems
