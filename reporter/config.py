"""Configuration: YAML → frozen, validated `Settings`, with secret references and redaction.

Every setting is declared once, below, as a pydantic field: its type is the validation, its
default is the default, and its `description` feeds error hints and the docs (`describe_fields`);
a test keeps `config/example.yaml` in step with the model. Loading is strict: unknown keys are
errors, and every problem in a file is reported at once as one `ConfigError`.

Secrets are referenced, never written inline: a string may be `${NAME}` (whole or embedded, e.g.
in a database URL) or a mapping `{"$env": "NAME"}`. References resolve from the `environ` argument
into a copy of the data; the loaded `Settings` remembers where they were, so `redacted()`,
`repr()` and error messages show the reference and never the value.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
import zoneinfo
from collections.abc import Iterator, Mapping
from datetime import UTC
from enum import StrEnum
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
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from reporter.errors import ConfigError, ConfigProblem
from reporter.owners import is_allowed

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


_REGION_RE = r"[a-z]{2}(-[a-z]+)+-\d{1,2}"
_IAM_NAME_RE = r"[A-Za-z0-9_+=,.@-]"
_ROLE_ARN_RE = rf"arn:aws[-a-z]*:iam::\d{{12}}:role/({_IAM_NAME_RE}+/)*{_IAM_NAME_RE}{{1,64}}"
_ANALYZER_ARN_RE = r"arn:aws[-a-z]*:access-analyzer:[a-z0-9-]+:\d{12}:analyzer/[A-Za-z0-9_.-]+"
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
    if isinstance(value, str) and not re.fullmatch(r"\d{12}", value):
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


def _http_url(value: str) -> str:
    if not re.fullmatch(r"https?://[^\s/?#]+([/?#]\S*)?", value):
        raise _invalid("not an http(s) URL", "e.g. `http://localhost:4566` for an emulator")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]


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
    if re.match(r"postgres(\+\w+)?://", value):
        raise _invalid("unsupported URL scheme", "SQLAlchemy spells it `postgresql://`")
    if not re.fullmatch(r"sqlite(\+\w+)?:///.+|postgresql(\+\w+)?://[^/\s]+/?\S*", value):
        raise _invalid(
            "not a supported database URL",
            "`sqlite:///state/reporter.db` or `postgresql://USER:${DB_PASSWORD}@HOST:5432/DBNAME`",
        )
    return value


DatabaseUrl = Annotated[str, AfterValidator(_database_url)]


def mask_url_credentials(url: str) -> str:
    """The URL with its password and query string replaced by `<redacted>`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    rest, question, _query = rest.partition("?")
    # rfind: an unencoded `@` in a password must not split the user info early.
    at = rest.rfind("@")
    if at >= 0 and ":" in rest[:at]:
        user = rest[:at].split(":", 1)[0]
        rest = f"{user}:{REDACTED}{rest[at:]}"
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
        for name, value in super().__repr_args__():
            if name is not None and name in self._masked:
                yield name, self._masked[name]
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
        None, description="http(s) URL of an AWS emulator for testing; null = real AWS."
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


class SourcesSettings(_Section):
    security_hub: SecurityHubSource = Field(
        default_factory=SecurityHubSource, description="Security Hub CSPM (ASFF findings)."
    )
    access_analyzer: AccessAnalyzerSource = Field(
        default_factory=AccessAnalyzerSource,
        description="IAM Access Analyzer (ListFindingsV2 / GetFindingV2).",
    )


class OwnersSettings(_Section):
    account_tag_keys: tuple[TagKey, ...] = Field(
        ("owner",),
        min_length=1,
        description="Account tag keys that name the owner, in order; the first present wins.",
    )
    names: dict[OwnerName, Email] = Field(
        default_factory=dict,
        description="Owner name → e-mail address, for owner tags that hold names.",
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
    smtp: SmtpSettings = Field(
        default_factory=SmtpSettings, description="Used when transport is smtp."
    )
    ses: SesSettings = Field(default_factory=SesSettings, description="Used when transport is ses.")


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


class StateSettings(_Section):
    database_url: DatabaseUrl = Field(
        "sqlite:///state/reporter.db",
        description="SQLAlchemy URL of the state database: sqlite:///PATH or "
        "postgresql://…; the password should be a secret reference.",
    )

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # A literal password in the URL is still a secret, reference or not.
        for name, value in super().__repr_args__():
            if name == "database_url" and name not in self._masked:
                yield name, mask_url_credentials(value)
            else:
                yield name, value


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
    for part in loc:
        if model is None:
            continue  # inside a list or mapping value: the field stays the same
        if not isinstance(part, str) or part not in model.model_fields:
            return model, None
        owner, field = model, model.model_fields[part]
        model = _section_type(field)
    return owner, field


def _secret_field_locs(model: type[_Section] = Settings, prefix: Loc = ()) -> list[Loc]:
    locs: list[Loc] = []
    for name, field in model.model_fields.items():
        section = _section_type(field)
        if section is not None:
            locs.extend(_secret_field_locs(section, (*prefix, name)))
        elif "SecretStr" in str(field.annotation):
            locs.append((*prefix, name))
    return locs


_ALWAYS_SECRET: frozenset[Loc] = frozenset(_secret_field_locs())
_URL_WITH_CREDENTIALS: frozenset[Loc] = frozenset({("state", "database_url")})
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
    if loc in _URL_WITH_CREDENTIALS and isinstance(value, str):
        return mask_url_credentials(value)
    if isinstance(value, Mapping):
        return {k: _mask_raw(v, (*loc, k)) if isinstance(k, str) else v for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_raw(v, (*loc, i)) for i, v in enumerate(value)]
    return value


def _display(value: Any, loc: Loc) -> str:
    text = repr(_mask_raw(value, loc))
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


def load_data(data: Mapping[str, Any], environ: Mapping[str, str], source: str = "") -> Settings:
    """Validate already-parsed configuration data; raises `ConfigError` with every problem."""
    if not isinstance(data, Mapping):
        problem = ConfigProblem(
            FILE_PATH,
            _display(data, ()),
            "the top level must be a mapping of settings",
            "start from config/example.yaml: `key: value` lines, sections indented",
        )
        raise ConfigError([problem], source=source)
    resolver = _Resolver(environ)
    try:
        resolved = resolver.resolve(data, ())
        problems = [problem for _, problem in resolver.problems]
        settings = Settings.model_validate(resolved)
    except ValidationError as exc:
        skip = [loc for loc, _ in resolver.problems]
        problems.extend(_problems_from_validation(exc, data, skip, resolver.refs))
    except RecursionError:
        # Only a YAML alias that contains itself (`a: &x [*x]`) nests this deep.
        problems = [ConfigProblem(FILE_PATH, "...", "nested too deeply", "remove the alias loop")]
    if problems:
        raise ConfigError(problems, source=source)
    refs = tuple(sorted(resolver.refs.items(), key=lambda item: _path(item[0])))
    settings._secret_refs = refs
    _mask_sections(settings, refs)
    return settings


def load_file(path: Path, environ: Mapping[str, str]) -> Settings:
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
        settings = load_data(data, environ, source)
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
    for loc in _URL_WITH_CREDENTIALS:
        value = _get(data, loc)
        if isinstance(value, str):
            _set(data, loc, mask_url_credentials(value))
    for loc, written in settings._secret_refs:
        _set(data, loc, f"<redacted: {written}>")
    return data


def dump_yaml(data: Mapping[str, Any]) -> str:
    """Block-style YAML in the mapping's own key order (for `validate-config` output)."""
    return yaml.safe_dump(
        _plain(data), sort_keys=False, allow_unicode=True, default_flow_style=False
    )


def config_digest(settings: Settings) -> str:
    """SHA-256 (hex) of the redacted settings as canonical JSON: secrets rotate, it stays."""
    canonical = json.dumps(
        redacted(settings), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------
# Helpers.
# --------------------------------------------------------------------------------------------


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
            shown = f"<redacted: {written}>" if depth == len(loc) - 1 else REDACTED
            section._masked[str(part)] = shown
            break


def _parse_yaml(text: str) -> tuple[Any, list[ConfigProblem]]:
    """(data, problems): data is None when the text is not YAML at all."""
    loader = yaml.SafeLoader(text)
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
