"""JSON Schema (draft 2020-12) of `data/findings.json`, schema_version 4.

Kept as a Python constant rather than a `.json` file so it ships with the package without a
package-data entry; `json.dumps(FINDINGS_SCHEMA)` gives the file form for consumers.
Dates carry a `pattern` as well as a `format`, because validators do not check `format` unless
asked to.
"""

from __future__ import annotations

from typing import Any

from reporter.render.data import SCHEMA_VERSION

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
        "new": {"type": "boolean"},
        "age_days": _nullable({"type": "integer", "minimum": 0}),
        "sla_days": _nullable({"type": "integer", "minimum": 0}),
        "sla_breached": {"type": "boolean"},
        "owner": _nullable({"type": "string"}),
        "owner_rule": {"type": "string"},
        "owner_manager": _nullable({"type": "string"}),
        "owner_notes": {"type": "array", "items": {"type": "string"}},
        "region": _nullable({"type": "string"}),
        "created_at": _nullable(_DATETIME),
        "updated_at": _nullable(_DATETIME),
        "details": _object(
            {
                "access_key_ids": {"type": "array", "items": {"type": "string"}},
                "services": {"type": "array", "items": _SERVICE},
                "attached_policies": {"type": "array", "items": {"type": "string"}},
                "principal_tags": {
                    "type": "array",
                    "items": _object({"key": {"type": "string"}, "value": {"type": "string"}}),
                },
                "policy_documents": {
                    "type": "array",
                    "items": _object(
                        {"policy_id": {"type": "string"}, "document": {"type": "string"}}
                    ),
                },
            }
        ),
        "recommendation": _nullable(
            _object(
                {
                    "status": {"type": "string"},
                    "error": _nullable({"type": "string"}),
                    "steps": {
                        "type": "array",
                        "items": _object(
                            {
                                "action": {"type": "string"},
                                "existing_policy_id": _nullable({"type": "string"}),
                                "recommended_policy": _nullable({"type": "string"}),
                                "policy_updated_at": _nullable(_DATETIME),
                            }
                        ),
                    },
                }
            )
        ),
        "remediation": {
            "type": "array",
            "items": _object(
                {
                    "title": {"type": "string"},
                    "command": {"type": "string"},
                    "console_url": _nullable(_URL),
                    "rollback": _nullable({"type": "string"}),
                    "detail": _nullable({"type": "string"}),
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
            _object(
                {
                    "id": {"type": "string"},
                    "reason": {"type": "string"},
                    "approved_by": {"type": "string"},
                    "expires": _DATE,
                    "expired": {"type": "boolean"},
                    "source": {"enum": ["config", "review"]},
                }
            )
        ),
        "organization_access": _nullable(
            _object(
                {
                    "kind": {
                        "enum": [
                            "organizations_account_access",
                            "control_tower",
                            "stacksets_execution",
                            "reporter",
                            "protected",
                            "trusts_management",
                        ]
                    },
                    "reason": {"type": "string"},
                    "source_doc": _nullable(_URL),
                }
            )
        ),
        "observation_window": _object(
            {
                "days": _nullable({"type": "integer", "minimum": 1}),
                "source": {
                    "enum": ["analyzer_configuration", "service_linked_analyzer", "iam", "unknown"]
                },
                "since": _nullable(_DATE),
            }
        ),
        "review": _nullable(
            _object(
                {
                    "id": {"type": "integer"},
                    "decision": {"enum": ["remove", "keep", "not_mine"]},
                    "by": {"type": "string"},
                    "at": _DATETIME,
                    "until": _nullable(_DATE),
                    "reason": _nullable({"type": "string"}),
                    "state": {
                        "enum": [
                            "pending",
                            "kept",
                            "expired",
                            "promised",
                            "overdue",
                            "triage",
                            "reassigned",
                        ]
                    },
                    "approved_by": _nullable({"type": "string"}),
                }
            )
        ),
    }
)

FINDINGS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": f"urn:unused-access-reporter:findings:{SCHEMA_VERSION}",
    "title": "unused-access-reporter data/findings.json",
    **_object(
        {
            "schema_version": {"const": SCHEMA_VERSION},
            "run_id": {"type": "string", "minLength": 1},
            "generated_at": _DATETIME,
            "findings": {"type": "array", "items": FINDING_SCHEMA},
        }
    ),
}
