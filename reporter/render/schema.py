"""JSON Schema (draft 2020-12) of `data/findings.json`, schema_version 1.

Kept as a Python constant rather than a `.json` file so it ships with the package without a
package-data entry; `json.dumps(FINDINGS_SCHEMA)` gives the file form for consumers.
Dates carry a `pattern` as well as a `format`, because validators do not check `format` unless
asked to.
"""

from __future__ import annotations

from typing import Any

_DATE = {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
_DATETIME = {
    "type": "string",
    "format": "date-time",
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$",
}
_URL = {"type": "string", "pattern": r"^https?://"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    # Every listed field is always present (null where unknown), and nothing else is.
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


_ACTION = _object({"action": {"type": "string"}, "last_accessed": _nullable(_DATETIME)})

_SERVICE = _object(
    {
        "namespace": {"type": "string"},
        "last_accessed": _nullable(_DATETIME),
        "actions": {"type": "array", "items": _ACTION},
    }
)

FINDING_SCHEMA: dict[str, Any] = _object(
    {
        "key": {"type": "string", "minLength": 1},
        "type": {
            "enum": [
                "UnusedIAMRole",
                "UnusedIAMUserAccessKey",
                "UnusedIAMUserPassword",
                "UnusedPermission",
            ]
        },
        "account_id": {"type": "string", "pattern": r"^\d{12}$"},
        "account_name": {"type": "string"},
        "principal_arn": {"type": "string", "pattern": r"^arn:aws[a-z-]*:iam::\d{12}:"},
        "principal_type": {"enum": ["role", "user"]},
        "principal_name": {"type": "string"},
        "status": {"enum": ["active", "excepted", "resolved"]},
        "severity": {"type": "string"},
        "priority": {"type": "integer"},
        "unused_days": _nullable({"type": "integer", "minimum": 0}),
        "last_accessed": _nullable(_DATETIME),
        "first_seen": _nullable(_DATE),
        "owner": _nullable({"type": "string"}),
        "owner_rule": {"type": "string"},
        "region": _nullable({"type": "string"}),
        "created_at": _nullable(_DATETIME),
        "updated_at": _nullable(_DATETIME),
        "details": _object(
            {
                "access_key_ids": {"type": "array", "items": {"type": "string"}},
                "services": {"type": "array", "items": _SERVICE},
            }
        ),
        # Shape to be fixed when enrich produces recommendations.
        "recommendation": _nullable({"type": "object"}),
        "remediation": {
            "type": "array",
            "items": _object(
                {
                    "title": {"type": "string"},
                    "command": {"type": "string"},
                    "console_url": _nullable(_URL),
                    "rollback": _nullable({"type": "string"}),
                }
            ),
        },
        "links": _object(
            {
                "console": _nullable(_URL),
                "access_analyzer": _nullable(_URL),
                "security_hub": _nullable(_URL),
            }
        ),
        "sources": {
            "type": "array",
            "items": _object(
                {
                    "source": {"type": "string"},
                    "id": {"type": "string"},
                    "product_arn": _nullable({"type": "string"}),
                }
            ),
        },
        "exception": _nullable(
            {
                "type": "object",
                "properties": {
                    "reason": {"type": "string"},
                    "approved_by": {"type": "string"},
                    "expires": _nullable(_DATE),
                },
                "required": ["reason", "approved_by", "expires"],
            }
        ),
    }
)

FINDINGS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:unused-access-reporter:findings:1",
    "title": "unused-access-reporter data/findings.json",
    **_object(
        {
            "schema_version": {"const": 1},
            "run_id": {"type": "string", "minLength": 1},
            "generated_at": _DATETIME,
            "findings": {"type": "array", "items": FINDING_SCHEMA},
        }
    ),
}
