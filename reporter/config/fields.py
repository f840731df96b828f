"""Field types of the settings, each with its validator; the base of every section.

Each validator raises `_invalid(...)`. Its message and hint never quote the value, which may be
a resolved secret (the value shown to the user is taken from the file instead); text derived
from the value goes into `detail` / `value_hint`, which are only shown when the value did not
come from a secret reference.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError

from reporter.state import engine as statedb

from .masking import Loc, _marker, _Shown, _shown_under
from .passwordhash import hash_problem


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
# The base of every section of the model.
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


def _s3_prefix(value: str) -> str:
    if value and (value.startswith("/") or not value.endswith("/") or "//" in value):
        raise _invalid("not an S3 key prefix", "e.g. `unused-access-reporter/` (ends with `/`)")
    if ".." in value.split("/") or any(ord(ch) < 32 for ch in value):
        raise _invalid("not an S3 key prefix", "letters, digits and `/-_.`, ending with `/`")
    return value


def _password_hash(value: str) -> str:
    # The reason names the scheme or the cost, never the hash, so it may be shown for a value
    # from a reference too.
    if problem := hash_problem(value):
        raise _invalid(
            problem,
            "make one with `access-reporter hash-password` (never the password itself)",
        )
    return value


def _proxy_network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise _invalid("not an IP address or network", "e.g. `10.0.0.5` or `10.0.0.0/24`") from None


PasswordHash = Annotated[str, AfterValidator(_password_hash), _Shown.PASSWORD_HASH]

WebUserName = Annotated[
    str, _matcher(r"[A-Za-z0-9_.@-]{1,64}", "not a user name", "1–64 of letters, digits, `_.@-`")
]
