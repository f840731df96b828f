"""IAM's own last-used signals, one member account at a time (reference §4.1–4.2).

For accounts the unused-access analyzer does not cover; the collect stage decides which (config
`sources.iam.mode`). IAM is global, so one pass per account, in any Region.

Per account:

- the credential report (GenerateCredentialReport, polled until COMPLETE within a bounded
  wait, then GetCredentialReport): users' console passwords and first two access keys. Every
  documented column is read; older reports without some columns are accepted, and a credential
  whose last-used column is missing is not assessed (one quarantined note says so), because
  "no column" is not "never used". `no_information`, `N/A` and `not_supported` mean "no date";
  `<root_account>` is skipped (the root user is not an IAM user and cannot be removed).
- ListRoles, then GetRole for every role: ListRoles does not return `RoleLastUsed` (§4.2).
  GetRole also returns the role's tags.
- for flagged principals only: their tags (ListUserTags; roles' come with GetRole), attached
  managed policy ARNs (ListAttached{User,Role}Policies) and, for unused keys, ListAccessKeys to
  name the keys (the credential report has slots, not key ids; slots are matched by creation
  time).

The rule follows the analyzer's tracking period (§1.1): a credential is unused when it has not
been used for `unused_after_days` days; a principal (or, for keys, a key) that has existed for
less than that is not assessed yet, used or not. Inactive keys and users without a password
grant nothing and are not reported.

Types: UnusedIAMRole, UnusedIAMUserPassword, UnusedIAMUserAccessKey. Not UnusedPermission: IAM
alone cannot say which actions went unused without a service-last-accessed job per principal
(§4.3: asynchronous, readable only by the session that started it, management actions only),
which is out of scope.

Service-linked roles (path `/aws-service-role/`) are reported like any role: Access Analyzer
documents no exclusion for them and the sandbox has it report them, so both sources agree and
merge; the record marks them (`service_linked`) because only their service can delete them.

Record shape (`RawRecord.payload`, parsed by `normalise.from_iam`; times ISO 8601 UTC text):

    {"source": "iam", "finding_type": "UnusedIAMRole" | "UnusedIAMUserPassword"
         | "UnusedIAMUserAccessKey",
     "account_id": "123456789012", "principal_arn": "arn:aws:iam::…:role/…",
     "principal_created_at": time, "last_accessed": time | null (never, or not in the
         window IAM tracks), "unused_since": time (when it crossed the threshold),
     "evaluated_at": time, "unused_after_days": 90, "service_linked": false,
     "access_keys": [{"id": "AKIA…" | "", "slot": 1, "created_at": time,
         "last_used": time | null, "last_used_region": "", "last_used_service": ""}],
     "password_last_used": time | null (passwords only), "last_used_region": "" (roles),
     "trust_policy": {…} | null (roles: GetRole's AssumeRolePolicyDocument, for
         `reporter.orgaccess`),
     "tags": {"key": "value"}, "attached_policies": ["arn:aws:iam::aws:policy/…"]}

A part of an account the source cannot read (a bad date in a row, columns missing) becomes
`{"source": "iam", "error": reason, "account_id": …, "row": {…}}`, which `normalise`
quarantines with that reason; the rest of the account is still reported.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

from ..errors import ReporterError
from ..models import Account, FindingType, RawRecord
from .interface import ClientFor

NAME = "iam"
ROOT_USER = "<root_account>"
# Values AWS writes where a date or flag has nothing to say (§4.1).
NO_VALUE = frozenset({"", "n/a", "no_information", "not_supported"})
REQUIRED_COLUMNS = ("user", "arn", "user_creation_time")
REPORT_WAIT_SECONDS = 60.0
_POLL_SECONDS = 2.0


class CredentialReportUnavailable(ReporterError):
    """The credential report did not become ready, or its content is unreadable as a whole."""


@dataclass(frozen=True)
class KeySlot:
    """`access_key_1_*` or `access_key_2_*` of a credential-report row."""

    slot: int
    active: bool
    last_rotated: datetime | None
    last_used: datetime | None
    last_used_region: str = ""
    last_used_service: str = ""
    # False when the report has no last-used column for keys (an old column set).
    assessable: bool = True


@dataclass(frozen=True)
class CredentialRow:
    """One IAM user of the credential report, parsed."""

    user: str
    arn: str
    created: datetime
    password_enabled: bool
    password_last_used: datetime | None
    password_last_changed: datetime | None
    password_next_rotation: datetime | None
    mfa_active: bool
    keys: tuple[KeySlot, ...]
    certs_active: tuple[bool, ...] = ()
    additional_credentials: int = 0
    password_assessable: bool = True


@dataclass(frozen=True)
class ParsedReport:
    rows: tuple[CredentialRow, ...]
    # (reason, raw row) for every row or cell that could not be parsed.
    problems: tuple[tuple[str, dict[str, str]], ...] = ()
    missing_columns: tuple[str, ...] = ()


class BadValue(ValueError):
    pass


def parse_credential_report(content: bytes | str) -> ParsedReport:
    """The CSV text of GetCredentialReport; pure. A bad row is a problem, not an exception;
    content that is not UTF-8 CSV at all raises CredentialReportUnavailable."""
    try:
        text = content.decode("utf-8-sig") if isinstance(content, bytes) else content
        return _parse_report(text.lstrip("\ufeff"))
    except (UnicodeDecodeError, csv.Error) as exc:  # e.g. a field over the csv module's limit
        raise CredentialReportUnavailable(f"credential report is not readable CSV: {exc}") from None


def _parse_report(text: str) -> ParsedReport:
    reader = csv.DictReader(io.StringIO(text))
    columns = tuple(c.strip() for c in reader.fieldnames or ())
    lacking = tuple(c for c in REQUIRED_COLUMNS if c not in columns)
    if lacking:
        raise CredentialReportUnavailable(
            f"credential report lacks the column(s) {', '.join(lacking)} (columns: "
            f"{', '.join(columns[:30]) or 'none'})"
        )
    reader.fieldnames = list(columns)
    optional = (
        "password_last_used",
        "access_key_1_last_used_date",
        "access_key_2_last_used_date",
    )
    missing = tuple(c for c in optional if c not in columns)
    rows: list[CredentialRow] = []
    problems: list[tuple[str, dict[str, str]]] = []
    for raw in reader:
        row = {k: (v or "").strip() for k, v in raw.items() if isinstance(k, str)}
        if row.get("user") == ROOT_USER or row.get("arn", "").endswith(":root"):
            continue
        try:
            rows.append(_row(row, columns))
        except BadValue as exc:
            problems.append((f"credential report row for user {row.get('user')!r}: {exc}", row))
    return ParsedReport(tuple(rows), tuple(problems), missing)


def _row(row: Mapping[str, str], columns: tuple[str, ...]) -> CredentialRow:
    if not row.get("user") or not row.get("arn"):
        raise BadValue("user or arn is empty")
    created = _date(row, "user_creation_time")
    if created is None:
        raise BadValue("user_creation_time is empty")
    keys = tuple(
        KeySlot(
            slot=n,
            active=_flag(row, f"access_key_{n}_active"),
            last_rotated=_date(row, f"access_key_{n}_last_rotated"),
            last_used=_date(row, f"access_key_{n}_last_used_date"),
            last_used_region=_text(row, f"access_key_{n}_last_used_region"),
            last_used_service=_text(row, f"access_key_{n}_last_used_service"),
            assessable=f"access_key_{n}_last_used_date" in columns,
        )
        for n in (1, 2)
    )
    extra = _text(row, "additional_credentials_info")
    return CredentialRow(
        user=row["user"],
        arn=row["arn"],
        created=created,
        password_enabled=_flag(row, "password_enabled"),
        password_last_used=_date(row, "password_last_used"),
        password_last_changed=_date(row, "password_last_changed"),
        password_next_rotation=_date(row, "password_next_rotation"),
        mfa_active=_flag(row, "mfa_active"),
        keys=keys,
        certs_active=tuple(_flag(row, f"cert_{n}_active") for n in (1, 2)),
        additional_credentials=len([p for p in extra.split(";") if p.strip()]) if extra else 0,
        password_assessable="password_last_used" in columns,
    )


def _date(row: Mapping[str, str], column: str) -> datetime | None:
    value = row.get(column, "")
    if value.lower() in NO_VALUE:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadValue(f"{column} is not a date: {value[:40]!r}") from None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _flag(row: Mapping[str, str], column: str) -> bool:
    # Documented as TRUE/FALSE, printed lower case in AWS's examples (§4.1).
    value = row.get(column, "").lower()
    if value == "true":
        return True
    if value == "false" or value in NO_VALUE:
        return False
    raise BadValue(f"{column} is not true/false: {value[:40]!r}")


def _text(row: Mapping[str, str], column: str) -> str:
    value = row.get(column, "")
    return "" if value.lower() in NO_VALUE else value


# --- The rule ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """Unused after `days` days; nothing younger than that is assessed (the tracking period)."""

    days: int
    now: datetime

    @property
    def cutoff(self) -> datetime:
        return self.now - timedelta(days=self.days)

    def unused(self, existed_since: datetime, last_used: datetime | None) -> bool:
        if existed_since > self.cutoff:
            return False
        return last_used is None or last_used <= self.cutoff

    def unused_since(self, existed_since: datetime, last_used: datetime | None) -> datetime:
        return max(existed_since, last_used or existed_since) + timedelta(days=self.days)


@dataclass(frozen=True)
class _Flagged:
    finding_type: FindingType
    principal_arn: str
    created: datetime
    last_accessed: datetime | None
    unused_since: datetime
    keys: tuple[KeySlot, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


def user_findings(row: CredentialRow, rule: Rule) -> list[_Flagged]:
    """Unused password and unused active keys of one credential-report user; pure."""
    flagged: list[_Flagged] = []
    if (
        row.password_enabled
        and row.password_assessable
        and rule.unused(row.created, row.password_last_used)
    ):
        flagged.append(
            _Flagged(
                FindingType.UNUSED_PASSWORD,
                row.arn,
                row.created,
                row.password_last_used,
                rule.unused_since(row.created, row.password_last_used),
                extra={"password_last_used": _iso(row.password_last_used)},
            )
        )
    unused_keys = tuple(
        key
        for key in row.keys
        if key.active
        and key.assessable
        and rule.unused(key.last_rotated or row.created, key.last_used)
    )
    if unused_keys:
        last = max((k.last_used for k in unused_keys if k.last_used), default=None)
        since = min(
            rule.unused_since(k.last_rotated or row.created, k.last_used) for k in unused_keys
        )
        flagged.append(
            _Flagged(FindingType.UNUSED_ACCESS_KEY, row.arn, row.created, last, since, unused_keys)
        )
    return flagged


def role_finding(role: Mapping[str, Any], rule: Rule) -> _Flagged | None:
    """A GetRole `Role`; None if it was used within the window (or is too young)."""
    created = _aware(role.get("CreateDate"))
    if created is None:
        raise BadValue("CreateDate is missing")
    last_used_info = role.get("RoleLastUsed") or {}
    # An empty RoleLastUsed means "not used in the 400 days IAM tracks" (§4.2).
    last_used = _aware(last_used_info.get("LastUsedDate"))
    if not rule.unused(created, last_used):
        return None
    return _Flagged(
        FindingType.UNUSED_ROLE,
        str(role["Arn"]),
        created,
        last_used,
        rule.unused_since(created, last_used),
        extra={
            "last_used_region": str(last_used_info.get("Region") or ""),
            "trust_policy": _trust_policy(role.get("AssumeRolePolicyDocument")),
        },
    )


def _trust_policy(document: Any) -> Any:
    """GetRole's trust policy: boto3 hands it over parsed; the raw API URL-encodes the JSON."""
    if isinstance(document, str):
        try:
            return json.loads(unquote(document))
        except ValueError:
            return None
    return document if isinstance(document, dict) else None


def _aware(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise BadValue(f"not a date: {value[:40]!r}") from None
    if not isinstance(value, datetime):
        raise BadValue(f"not a date: {str(value)[:40]!r}")
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None


# --- The source (I/O) --------------------------------------------------------------------


class IamSource:
    """An `AccountSource`: reads one member account through the role assumed there."""

    name = NAME

    def __init__(
        self,
        unused_after_days: int,
        now: datetime,
        *,
        report_wait_seconds: float = REPORT_WAIT_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if unused_after_days < 1:
            raise ValueError("unused_after_days must be at least 1")
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        self._rule = Rule(unused_after_days, now.astimezone(UTC))
        self._wait = report_wait_seconds
        self._sleep = sleep

    def collect_account(self, account: Account, client: ClientFor) -> Iterator[RawRecord]:
        iam = client("iam")
        yield from self._users(account, iam)
        yield from self._roles(account, iam)

    # Users, from the credential report.

    def _users(self, account: Account, iam: Any) -> Iterator[RawRecord]:
        report = parse_credential_report(self._credential_report(iam))
        if report.missing_columns:
            yield self._error(
                account,
                "credential report lacks "
                + ", ".join(report.missing_columns)
                + "; those credentials were not assessed",
            )
        for reason, bad_row in report.problems:
            yield self._error(account, reason, bad_row)
        for row in report.rows:
            flagged = user_findings(row, self._rule)
            if not flagged:
                continue
            user_name = row.arn.rsplit("/", 1)[-1]
            tags = _tags(iam.get_paginator("list_user_tags").paginate(UserName=user_name))
            policies = _policies(
                iam.get_paginator("list_attached_user_policies").paginate(UserName=user_name)
            )
            for item in flagged:
                key_ids: dict[int, str] = {}
                if item.keys:
                    key_ids = _key_ids(iam, user_name, row.keys)
                yield self._record(account, item, tags, policies, key_ids)

    def _credential_report(self, iam: Any) -> bytes | str:
        deadline = time.monotonic() + self._wait
        while True:
            state = iam.generate_credential_report().get("State")
            if state == "COMPLETE":
                try:
                    return iam.get_credential_report()["Content"]  # type: ignore[no-any-return]
                except ClientError as exc:
                    # Expired or replaced between the two calls: generate again.
                    if _code(exc) not in ("ReportInProgress", "ReportExpired", "ReportNotPresent"):
                        raise
            if time.monotonic() >= deadline:
                raise CredentialReportUnavailable(
                    f"credential report not ready after {self._wait:.0f} s (last state {state})"
                )
            self._sleep(_POLL_SECONDS)

    # Roles, from ListRoles + GetRole.

    def _roles(self, account: Account, iam: Any) -> Iterator[RawRecord]:
        for page in iam.get_paginator("list_roles").paginate():
            for listed in page["Roles"]:
                name = listed["RoleName"]
                try:
                    role = iam.get_role(RoleName=name)["Role"]
                except ClientError as exc:
                    if _code(exc) == "NoSuchEntity":  # deleted since the listing
                        continue
                    raise
                try:
                    item = role_finding(role, self._rule)
                except BadValue as exc:
                    yield self._error(account, f"role {name!r}: {exc}", {"RoleName": name})
                    continue
                if item is None:
                    continue
                tags = {str(t["Key"]): str(t["Value"]) for t in role.get("Tags") or ()}
                policies = _policies(
                    iam.get_paginator("list_attached_role_policies").paginate(RoleName=name)
                )
                yield self._record(account, item, tags, policies, {})

    def _record(
        self,
        account: Account,
        item: _Flagged,
        tags: Mapping[str, str],
        policies: list[str],
        key_ids: Mapping[int, str],
    ) -> RawRecord:
        payload: dict[str, Any] = {
            "source": NAME,
            "finding_type": item.finding_type.value,
            "account_id": account.id,
            "principal_arn": item.principal_arn,
            "principal_created_at": _iso(item.created),
            "last_accessed": _iso(item.last_accessed),
            "unused_since": _iso(item.unused_since),
            "evaluated_at": _iso(self._rule.now),
            "unused_after_days": self._rule.days,
            "service_linked": ":role/aws-service-role/" in item.principal_arn,
            "access_keys": [
                {
                    "id": key_ids.get(k.slot, ""),
                    "slot": k.slot,
                    "created_at": _iso(k.last_rotated),
                    "last_used": _iso(k.last_used),
                    "last_used_region": k.last_used_region,
                    "last_used_service": k.last_used_service,
                }
                for k in item.keys
            ],
            **item.extra,
            "tags": dict(tags),
            "attached_policies": policies,
        }
        return RawRecord(NAME, payload, origin=account.id)

    def _error(
        self, account: Account, reason: str, row: Mapping[str, str] | None = None
    ) -> RawRecord:
        payload: dict[str, Any] = {"source": NAME, "error": reason, "account_id": account.id}
        if row is not None:
            payload["row"] = dict(row)
        return RawRecord(NAME, payload, origin=account.id)


def _key_ids(iam: Any, user_name: str, slots: tuple[KeySlot, ...]) -> dict[int, str]:
    """Slot → key id: the report's `last_rotated` is the key's creation time (to the second)."""
    keys = [
        key
        for page in iam.get_paginator("list_access_keys").paginate(UserName=user_name)
        for key in page["AccessKeyMetadata"]
    ]
    by_created = {
        _aware(k["CreateDate"]).replace(microsecond=0): str(k["AccessKeyId"])  # type: ignore[union-attr]
        for k in keys
    }
    ids: dict[int, str] = {}
    for slot in slots:
        if slot.last_rotated is not None:
            found = by_created.get(slot.last_rotated.replace(microsecond=0))
            if found:
                ids[slot.slot] = found
    return ids


def _tags(pages: Any) -> dict[str, str]:
    return {str(t["Key"]): str(t["Value"]) for page in pages for t in page.get("Tags", ())}


def _policies(pages: Any) -> list[str]:
    return sorted({str(p["PolicyArn"]) for page in pages for p in page.get("AttachedPolicies", ())})


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
