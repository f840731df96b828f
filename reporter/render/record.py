"""The finding record, declared once: what `data/findings.json` holds for each finding.

`FINDING` is a table of fields in record order. Each field gives its JSON Schema, what it means,
how to read it from a `ReportItem`, and the columns it becomes in the flat form (the CSV and the
workbook's Findings sheet). Everything else is derived from it:

- `finding_record(item)`: the JSON record (`FINDING.build`);
- `COLUMNS` / `FLAT_COLUMNS`: the flat form's columns, with their workbook width and cell kind;
  `reporter.render.data.flat_record` flattens a record by them, `reporter.render.xlsx` lays out
  the Findings sheet by them;
- `reporter.render.schema.FINDINGS_SCHEMA`: the JSON Schema, published as
  `schema/findings.schema.json` in the repository and in every evidence pack.

The nested objects (an unused service, a remediation step, an exception...) are declared the
same way, so their schema and their builder cannot drift apart either.

Speed: the writers build 100,000 of these records in a run, so a field says where its value is
(an attribute path and an optional converter) rather than giving a function to call, and each
record type's builder is generated from that (`_builder`): the same code as the hand-written
dict it replaced, and as fast.
"""

from __future__ import annotations

import json
import keyword
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from enum import IntEnum
from operator import attrgetter
from typing import Any, NamedTuple

from reporter import orgaccess
from reporter.models import FindingStatus, FindingType, ReportItem

# 2: exception, recommendation, SLA, new, owner notes, policy documents, step detail.
# 3: organization_access, observation_window.
# 4: review (the owner's decision in force, access reviews), exception.source.
SCHEMA_VERSION = 4

# ---- how values are written -------------------------------------------------------------------

# Whitespace, quotes, angle brackets and backslashes never occur in the console URLs enrich builds.
_UNSAFE_URL = re.compile(r"[\s\"'<>\\]")


def linkable(url: object) -> bool:
    """Whether `url` may become a clickable link: web URLs only, never `javascript:` or `file:`."""
    return (
        isinstance(url, str)
        and url.startswith(("https://", "http://"))
        and not _UNSAFE_URL.search(url)
    )


def iso_datetime(value: datetime | None) -> str | None:
    """`2025-01-31T08:15:00Z`; naive values are taken as UTC (AWS timestamps are)."""
    if value is None:
        return None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


def iso_date(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _or_null(text: str) -> str | None:
    # The models use "" for "not known"; the record says null, as DESIGN.md asks.
    return text or None


def _url_or_null(url: str) -> str | None:
    # Consumers (PDF, workbook, the evidence page) make these clickable; the schema promises
    # they are web URLs, so anything else (javascript:, file:) is dropped here, once.
    return url if linkable(url) else None


def step_detail(step: Any) -> str:
    """The optional long-form part of a step (a policy diff); "" when the step has none."""
    # Read defensively: `detail` is an optional field a step may or may not carry.
    detail = getattr(step, "detail", "")
    return detail if isinstance(detail, str) else ""


# ---- JSON Schema pieces (draft 2020-12) -------------------------------------------------------

STRING: dict[str, Any] = {"type": "string"}
INTEGER: dict[str, Any] = {"type": "integer"}
BOOLEAN: dict[str, Any] = {"type": "boolean"}
COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
# Dates carry a `pattern` as well as a `format`: validators do not check `format` unless asked.
DATE: dict[str, Any] = {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
DATETIME: dict[str, Any] = {
    "type": "string",
    "format": "date-time",
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$",
}
URL: dict[str, Any] = {"type": "string", "pattern": r"^https?://"}


def nullable(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def array(items: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def enum(values: Iterable[str]) -> dict[str, Any]:
    return {"enum": list(values)}


def _cell_kind(schema: Mapping[str, Any]) -> str:
    """The workbook cell kind of a value with this schema: int, bool, date, datetime or text."""
    for option in schema.get("anyOf", (schema,)):
        if option.get("format") == "date":
            return "date"
        if option.get("format") == "date-time":
            return "datetime"
        if option.get("type") == "integer":
            return "int"
        if option.get("type") == "boolean":
            return "bool"
    return "text"


# ---- the declaration's parts ------------------------------------------------------------------


class Place(IntEnum):
    """Where a field's columns go in the flat form. The record's order grew by appending (schema
    versions 2 and 3); the CSV and workbook group the columns by what a reader looks for."""

    # The finding's own values, each a column as it is.
    FIRST = 0
    # Its standing: owner notes, exception, organization access, observation window.
    STANDING = 1
    # What it is and what to do: details, recommendation, remediation, links, sources.
    LAST = 2


@dataclass(frozen=True)
class Column:
    """A column of the flat form (CSV, workbook Findings sheet): one scalar (str, int, bool or
    None) made from one field of the record."""

    name: str
    width: float  # in the workbook, in Excel character units
    # The field's record value -> the cell; None: the value as it is.
    flatten: Callable[[Any], Any] | None = None
    kind: str = "text"  # the workbook cell: text | int | date | datetime | bool | link
    field: str = ""  # the record field it comes from; filled in from its Field


@dataclass(frozen=True)
class Field:
    """One field of a record: its name, JSON Schema and meaning, and how to read its value from
    the model object the record is made of: the attribute at `path` (dotted; "" for the object
    itself), passed through `convert` if given."""

    name: str
    schema: Mapping[str, Any]
    description: str
    path: str
    convert: Callable[[Any], Any] | None = None
    # Finding fields only: one column of the value as it is, this wide...
    width: float | None = None
    # ...or these columns made from it.
    columns: tuple[Column, ...] = ()
    place: Place = Place.FIRST

    def __post_init__(self) -> None:
        if self.path and not all(
            part.isidentifier() and not keyword.iskeyword(part) for part in self.path.split(".")
        ):
            raise ValueError(f"field {self.name}: not an attribute path: {self.path!r}")

    def flat_columns(self) -> tuple[Column, ...]:
        if self.width is not None:
            return (Column(self.name, self.width, kind=_cell_kind(self.schema), field=self.name),)
        return tuple(replace(c, field=self.name) for c in self.columns)


class Shape:
    """A record type: its fields in order, the record made of a model object, its JSON Schema."""

    def __init__(self, *fields: Field) -> None:
        self.fields = fields
        self.build = _builder(fields)
        # Every listed field is always present (null where unknown), and nothing else is.
        self.schema: dict[str, Any] = {
            "type": "object",
            "properties": {f.name: {"description": f.description, **f.schema} for f in fields},
            "required": [f.name for f in fields],
            "additionalProperties": False,
        }

    def build_or_none(self, source: Any) -> dict[str, Any] | None:
        return None if source is None else self.build(source)

    def build_all(self, sources: Iterable[Any]) -> list[dict[str, Any]]:
        return list(map(self.build, sources))

    def members(
        self, prefix: str, widths: Mapping[str, float], kind: str = ""
    ) -> tuple[Column, ...]:
        """A column per field of this shape (`prefix` + its name), for a field holding one of
        these records or null. `widths` names every field: a new one needs its column."""
        return tuple(
            Column(prefix + f.name, widths[f.name], _member(f.name), kind or _cell_kind(f.schema))
            for f in self.fields
        )


def _builder(fields: Iterable[Field]) -> Callable[[Any], dict[str, Any]]:
    """`def build(x): return {"key": x.finding.key, "last_accessed": c11(x.finding...), ...}`

    Generated, as `dataclasses` generates `__init__`, from names, checked attribute paths and
    the converters, which are passed in rather than written out. A getter function per field
    (a comprehension over `attrgetter`s and lambdas) made the data files 9 % slower at 100,000
    findings; this is the dict display the record was written as by hand, and as fast."""
    namespace: dict[str, Any] = {}
    entries = []
    for n, f in enumerate(fields):
        value = f"x.{f.path}" if f.path else "x"
        if f.convert is not None:
            namespace[f"c{n}"] = f.convert
            value = f"c{n}({value})"
        entries.append(f"{f.name!r}: {value}")
    exec("def build(x):\n    return {" + ", ".join(entries) + "}\n", namespace)
    build: Callable[[Any], dict[str, Any]] = namespace["build"]
    return build


def _member(name: str) -> Callable[[Any], Any]:
    def flatten(value: Mapping[str, Any] | None) -> Any:
        return None if value is None else value[name]

    return flatten


# ---- the nested records -----------------------------------------------------------------------

ACTION: Shape = Shape(
    Field("action", STRING, "the unused action, e.g. `s3:DeleteObject`", "action"),
    Field(
        "last_accessed",
        nullable(DATETIME),
        "when it was last used; null: not used in the observation window",
        "last_accessed",
        iso_datetime,
    ),
)

SERVICE: Shape = Shape(
    Field("namespace", STRING, "the service namespace, e.g. `s3`", "namespace"),
    Field(
        "last_accessed",
        nullable(DATETIME),
        "when the service was last used; null: not used in the observation window",
        "last_accessed",
        iso_datetime,
    ),
    Field(
        "actions",
        array(ACTION.schema),
        "the service's unused actions, where the source lists them",
        "actions",
        ACTION.build_all,
    ),
)

TAG: Shape = Shape(
    Field("key", STRING, "tag key", "key"),
    Field("value", STRING, "tag value", "value"),
)

POLICY_DOCUMENT: Shape = Shape(
    Field("policy_id", STRING, "managed policy ARN or inline policy name", "key"),
    Field("document", STRING, "the policy's JSON text", "value"),
)


class _Pair(NamedTuple):
    key: str
    value: str


def _pairs(shape: Shape) -> Callable[[Mapping[str, str]], list[dict[str, Any]]]:
    """A mapping's records of `shape`, sorted so the same finding always gives the same bytes."""

    def build(mapping: Mapping[str, str]) -> list[dict[str, Any]]:
        return shape.build_all(_Pair(k, mapping[k]) for k in sorted(mapping))

    return build


DETAILS: Shape = Shape(
    Field(
        "access_key_ids",
        array(STRING),
        "the unused access key's id (UnusedIAMUserAccessKey)",
        "access_key_ids",
        list,
    ),
    Field(
        "services",
        array(SERVICE.schema),
        "unused services with their actions and last access (UnusedPermission)",
        "services",
        SERVICE.build_all,
    ),
    Field(
        "attached_policies",
        array(STRING),
        "managed policy ARNs attached to the principal, where a source knew them",
        "attached_policies",
        list,
    ),
    Field(
        "principal_tags",
        array(TAG.schema),
        "the principal's IAM tags, sorted by key",
        "principal_tags",
        _pairs(TAG),
    ),
    Field(
        "policy_documents",
        array(POLICY_DOCUMENT.schema),
        "existing policies' JSON text, where fetched: the before side of a recommendation",
        "policy_documents",
        _pairs(POLICY_DOCUMENT),
    ),
)

RECOMMENDED_STEP: Shape = Shape(
    Field("action", STRING, "CREATE_POLICY or DETACH_POLICY", "action"),
    Field(
        "existing_policy_id",
        nullable(STRING),
        "the policy the step replaces: ARN (managed) or name (inline)",
        "existing_policy_id",
        _or_null,
    ),
    Field(
        "recommended_policy",
        nullable(STRING),
        "the recommended policy's JSON text (CREATE_POLICY)",
        "recommended_policy",
        _or_null,
    ),
    Field(
        "policy_updated_at",
        nullable(DATETIME),
        "when the existing policy was last updated",
        "policy_updated_at",
        iso_datetime,
    ),
)

RECOMMENDATION: Shape = Shape(
    Field("status", STRING, "SUCCEEDED, FAILED or IN_PROGRESS", "status"),
    Field("error", nullable(STRING), "why it failed", "error", _or_null),
    Field(
        "steps",
        array(RECOMMENDED_STEP.schema),
        "the recommended policy steps",
        "steps",
        RECOMMENDED_STEP.build_all,
    ),
)


def _detail(step: Any) -> str | None:
    return step_detail(step) or None


STEP: Shape = Shape(
    Field("title", STRING, "what the step does", "title"),
    Field(
        "command",
        STRING,
        "bash with the AWS CLI, run in the owning account; the commands in order remove the access",
        "command",
    ),
    Field(
        "console_url",
        nullable(URL),
        "the console page for the step",
        "console_url",
        _url_or_null,
    ),
    Field(
        "rollback",
        nullable(STRING),
        "undoes this step; never a step of its own",
        "rollback",
        _or_null,
    ),
    Field(
        "detail",
        nullable(STRING),
        "to read before running the step: a recommended policy's diff, the unused services",
        "",
        _detail,
    ),
)


LINKS: Shape = Shape(
    Field("console", nullable(URL), "the principal in the IAM console", "console", _url_or_null),
    Field(
        "access_analyzer",
        nullable(URL),
        "the finding in the Access Analyzer console",
        "access_analyzer",
        _url_or_null,
    ),
    Field(
        "security_hub",
        nullable(URL),
        "the finding in the Security Hub console",
        "security_hub",
        _url_or_null,
    ),
)

SOURCE: Shape = Shape(
    Field(
        "source",
        STRING,
        "access_analyzer, security_hub, security_hub_v2 or iam",
        "source",
    ),
    Field("id", STRING, "the finding's id in that source", "id"),
    Field(
        "product_arn",
        nullable(STRING),
        "the Security Hub product ARN it came under",
        "product_arn",
        _or_null,
    ),
)

EXCEPTION: Shape = Shape(
    Field("id", STRING, "the exception's id (config `exceptions`)", "id"),
    Field("reason", STRING, "why the access is kept", "reason"),
    Field("approved_by", STRING, "who approved it", "approved_by"),
    Field("expires", DATE, "when it stops covering the finding", "expires", iso_date),
    Field(
        "expired",
        BOOLEAN,
        "expired: the finding is active again and flagged",
        "expired",
    ),
    Field(
        "source",
        enum(("config", "review")),
        "config (exceptions.rules, exceptions.file) or review (an owner's Keep decision)",
        "source",
    ),
)

REVIEW: Shape = Shape(
    Field("id", INTEGER, "the decision's id (`decisions list`, `decisions approve ID`)", "id"),
    Field(
        "decision",
        enum(("remove", "keep", "not_mine")),
        "what the owner decided in their returned workbook",
        "decision",
    ),
    Field("by", STRING, "who decided (the workbook's owner)", "by"),
    Field("at", DATETIME, "when the decision was recorded", "at", iso_datetime),
    Field(
        "until",
        nullable(DATE),
        "keep: the last day it is kept; remove: when the removal is due",
        "until",
        iso_date,
    ),
    Field("reason", nullable(STRING), "the owner's reason", "reason", _or_null),
    Field(
        "state",
        enum(("pending", "kept", "expired", "promised", "overdue", "triage", "reassigned")),
        "where it stands (reporter/reviews/decisions.py)",
        "state",
    ),
    Field("approved_by", nullable(STRING), "who approved a Keep", "approved_by"),
)

ORGANIZATION_ACCESS: Shape = Shape(
    Field(
        "kind",
        enum(
            (
                orgaccess.ORGANIZATIONS,
                orgaccess.CONTROL_TOWER,
                orgaccess.STACKSETS,
                orgaccess.REPORTER,
                orgaccess.PROTECTED,
                orgaccess.TRUSTS_MANAGEMENT,
            )
        ),
        "which kind of organization access (`reporter.orgaccess`)",
        "kind",
    ),
    Field("reason", STRING, "why the principal stays", "reason"),
    Field(
        "source_doc",
        nullable(URL),
        "the AWS documentation that names the role; null for the organization's own principals",
        "source_doc",
        _or_null,
    ),
)

WINDOW: Shape = Shape(
    Field(
        "days",
        nullable({"type": "integer", "minimum": 1}),
        "how many days the source looks back for use; null: unknown",
        "days",
    ),
    Field(
        "source",
        enum(
            (
                orgaccess.ANALYZER_CONFIGURATION,
                orgaccess.SERVICE_LINKED_ANALYZER,
                orgaccess.IAM,
                orgaccess.UNKNOWN,
            )
        ),
        "where the number comes from",
        "source",
    ),
    Field(
        "since",
        nullable(DATE),
        "since when the source tracks use (the analyzer's creation); null: unknown",
        "since",
        iso_date,
    ),
)


def _window(window: Any) -> dict[str, Any]:
    # `{"days": null, "source": "unknown", "since": null}` when the run did not learn it.
    return WINDOW.build(window or orgaccess.UNKNOWN_WINDOW)


# ---- the finding record -----------------------------------------------------------------------


def _last_used(value: str | None) -> str:
    # Access Analyzer leaves lastAccessed out when the access was not used in its tracking window.
    return f"last used {value[:10]}" if value else "no recorded use"


def _unused_actions(details: Mapping[str, Any]) -> str:
    return "; ".join(
        f"{a['action']} ({_last_used(a['last_accessed'])})"
        for s in details["services"]
        for a in s["actions"]
    )


def _compact_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _titles(steps: Iterable[Mapping[str, Any]]) -> str:
    return "; ".join(f"{n}. {s['title']}" for n, s in enumerate(steps, 1))


def _rollbacks(steps: Iterable[Mapping[str, Any]]) -> str:
    return "\n".join(f"{n}. {s['rollback']}" for n, s in enumerate(steps, 1) if s["rollback"])


FINDING: Shape = Shape(
    Field(
        "key",
        {"type": "string", "minLength": 1},
        "stable across runs and sources: account, type and principal ARN",
        "finding.key",
        width=40,
    ),
    Field(
        "type",
        enum(t.value for t in FindingType),
        "the Access Analyzer unused-access finding type",
        "finding.type.value",
        width=22,
    ),
    Field(
        "account_id",
        {"type": "string", "pattern": r"^\d{12}$"},
        "the account that owns the principal (never the analyzer's account)",
        "finding.account_id",
        width=14,
    ),
    Field("account_name", STRING, "its name", "account.name", width=22),
    Field(
        "principal_arn",
        {"type": "string", "pattern": r"^arn:aws[a-z-]*:iam::\d{12}:"},
        "the IAM role or user",
        "finding.principal_arn",
        width=48,
    ),
    Field(
        "principal_type",
        enum(("role", "user")),
        "role or user",
        "finding.principal_type",
        width=9,
    ),
    Field(
        "principal_name",
        STRING,
        "the last part of the ARN",
        "finding.principal_name",
        width=28,
    ),
    Field(
        "status",
        enum(s.value for s in FindingStatus),
        "active, excepted (an exception covers it) or resolved",
        "status.value",
        width=10,
    ),
    Field("severity", STRING, "as the source gave it", "finding.severity", width=10),
    Field(
        "priority",
        INTEGER,
        "our score from 0 to 100 (reporter/priority.py); findings are sorted by it, highest first",
        "priority",
        width=9,
    ),
    Field(
        "unused_days",
        nullable(COUNT),
        "whole days since last_accessed at the run; null where that is unknown",
        "unused_days",
        width=12,
    ),
    Field(
        "last_accessed",
        nullable(DATETIME),
        "when the access was last used; null where unknown or never",
        "finding.last_accessed",
        iso_datetime,
        width=17,
    ),
    Field(
        "first_seen",
        nullable(DATE),
        "the date a run first reported it (history); null where unknown",
        "first_seen",
        iso_date,
        width=12,
    ),
    Field("new", BOOLEAN, "first reported by this run", "new", width=7),
    Field(
        "age_days",
        nullable(COUNT),
        "whole days since first_seen",
        "age_days",
        width=10,
    ),
    Field(
        "sla_days",
        nullable(COUNT),
        "the SLA for its type (config); null: none",
        "sla_days",
        width=10,
    ),
    Field(
        "sla_breached",
        BOOLEAN,
        "open for longer than its SLA",
        "sla_breached",
        width=13,
    ),
    Field(
        "owner",
        nullable(STRING),
        "the recipient; null: unowned",
        "owner.owner",
        width=28,
    ),
    Field(
        "owner_rule",
        STRING,
        "the rule of the owner ladder that chose the owner",
        "owner.rule",
        width=22,
    ),
    Field(
        "owner_manager",
        nullable(STRING),
        "escalation address for SLA breaches (config)",
        "owner.manager",
        width=28,
    ),
    Field(
        "owner_notes",
        array(STRING),
        "rules tried before the one that matched, and why each fell through",
        "owner.notes",
        list,
        columns=(Column("owner_notes", 40, "\n".join),),
        place=Place.STANDING,
    ),
    Field(
        "region",
        nullable(STRING),
        "the Region the source reported it in",
        "finding.region",
        _or_null,
        width=12,
    ),
    Field(
        "created_at",
        nullable(DATETIME),
        "when the source created the finding",
        "finding.created_at",
        iso_datetime,
        width=17,
    ),
    Field(
        "updated_at",
        nullable(DATETIME),
        "when the source last updated it",
        "finding.updated_at",
        iso_datetime,
        width=17,
    ),
    Field(
        "details",
        DETAILS.schema,
        "access key id; unused services with their actions and last access; policies; tags",
        "finding",
        DETAILS.build,
        columns=(
            Column("access_key_ids", 24, lambda d: "; ".join(d["access_key_ids"])),
            Column(
                "unused_services",
                30,
                lambda d: "; ".join(
                    f"{s['namespace']} ({_last_used(s['last_accessed'])})" for s in d["services"]
                ),
            ),
            Column("unused_actions", 40, _unused_actions),
            Column("attached_policies", 40, lambda d: "; ".join(d["attached_policies"])),
            Column(
                "principal_tags",
                30,
                lambda d: "; ".join(f"{t['key']}={t['value']}" for t in d["principal_tags"]),
            ),
        ),
        place=Place.LAST,
    ),
    Field(
        "recommendation",
        nullable(RECOMMENDATION.schema),
        "Access Analyzer's recommended policy steps for unused permissions, or null",
        "finding.recommendation",
        RECOMMENDATION.build_or_none,
        # The whole recommendation as compact JSON.
        columns=(Column("recommendation", 20, _compact_json),),
        place=Place.LAST,
    ),
    Field(
        "remediation",
        array(STEP.schema),
        "ordered steps: running the commands in order removes the access",
        "remediation",
        STEP.build_all,
        columns=(
            Column("remediation_steps", 40, _titles),
            # One command per line: pasted into a shell, the cell runs the steps in order.
            Column(
                "remediation_commands", 60, lambda steps: "\n".join(s["command"] for s in steps)
            ),
            Column("remediation_rollback", 40, _rollbacks),
        ),
        place=Place.LAST,
    ),
    Field(
        "links",
        LINKS.schema,
        "console, Access Analyzer and Security Hub URLs",
        "links",
        LINKS.build,
        columns=LINKS.members(
            "link_", {"console": 40, "access_analyzer": 40, "security_hub": 40}, "link"
        ),
        place=Place.LAST,
    ),
    Field(
        "sources",
        array(SOURCE.schema),
        "every source that reported it",
        "finding.sources",
        SOURCE.build_all,
        columns=(
            Column(
                "sources",
                40,
                lambda sources: "; ".join(f"{s['source']}:{s['id']}" for s in sources),
            ),
        ),
        place=Place.LAST,
    ),
    Field(
        "exception",
        nullable(EXCEPTION.schema),
        "the exception that covers it, or null",
        "exception",
        EXCEPTION.build_or_none,
        columns=EXCEPTION.members(
            "exception_",
            {
                "id": 16,
                "reason": 40,
                "approved_by": 24,
                "expires": 16,
                "expired": 16,
                "source": 12,
            },
        ),
        place=Place.STANDING,
    ),
    Field(
        "organization_access",
        nullable(ORGANIZATION_ACCESS.schema),
        "why the principal holds the organization together and must not be removed, or null",
        "organization_access",
        ORGANIZATION_ACCESS.build_or_none,
        columns=ORGANIZATION_ACCESS.members(
            "organization_access_", {"kind": 22, "reason": 50, "source_doc": 40}
        ),
        place=Place.STANDING,
    ),
    Field(
        "observation_window",
        WINDOW.schema,
        "what unused was measured over",
        "window",
        _window,
        columns=WINDOW.members("observation_window_", {"days": 12, "source": 22, "since": 14}),
        place=Place.STANDING,
    ),
    Field(
        "review",
        nullable(REVIEW.schema),
        "the owner's decision in force (access reviews) and where it stands, or null",
        "review",
        REVIEW.build_or_none,
        columns=REVIEW.members(
            "review_",
            {
                "id": 9,
                "decision": 12,
                "by": 26,
                "at": 17,
                "until": 12,
                "reason": 40,
                "state": 12,
                "approved_by": 26,
            },
        ),
        place=Place.STANDING,
    ),
)

# The top of `data/findings.json`; the writers put the records into `findings`.
DOCUMENT: Shape = Shape(
    Field(
        "schema_version",
        {"const": SCHEMA_VERSION},
        "the version of this schema",
        "",
        lambda _: SCHEMA_VERSION,
    ),
    Field("run_id", {"type": "string", "minLength": 1}, "the run", "run_id"),
    Field(
        "generated_at",
        DATETIME,
        "when the run made the reports (UTC)",
        "generated_at",
        iso_datetime,
    ),
    Field(
        "findings",
        array(FINDING.schema),
        "every finding of the run, highest priority first",
        "",
        lambda _: [],
    ),
)

# ---- derived ----------------------------------------------------------------------------------

# The flat form's columns, in order: CSV header, and the workbook's first Findings columns.
COLUMNS: tuple[Column, ...] = tuple(
    c for f in sorted(FINDING.fields, key=attrgetter("place")) for c in f.flat_columns()
)
FLAT_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS)

finding_record: Callable[[ReportItem], dict[str, Any]] = FINDING.build
step_record: Callable[[Any], dict[str, Any]] = STEP.build
exception_record: Callable[[Any], dict[str, Any] | None] = EXCEPTION.build_or_none
