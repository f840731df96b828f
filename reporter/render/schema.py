"""JSON Schema (draft 2020-12) of `data/findings.json`, derived from `reporter.render.record`.

Published as a file: `schema/findings.schema.json` at the root of the repository and in every
run's evidence pack, so a consumer validates a run's data against the schema the run was
written to. The repository's copy is checked against this module by a test; regenerate it with

    .venv/bin/python -m reporter.render.schema > schema/findings.schema.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

from reporter.render.record import DOCUMENT, FINDING, SCHEMA_VERSION

# Where the schema file sits, in the repository and in a run's evidence pack.
SCHEMA_PATH = "schema/findings.schema.json"

FINDING_SCHEMA: dict[str, Any] = FINDING.schema

FINDINGS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": f"urn:unused-access-reporter:findings:{SCHEMA_VERSION}",
    "title": "unused-access-reporter data/findings.json",
    "description": (
        "Every finding of one run. data/findings.csv and the workbooks' Findings sheets are "
        "flattenings of the same records."
    ),
    **DOCUMENT.schema,
}


def schema_json() -> bytes:
    """The schema file's bytes: indented, keys in declaration order, one final newline."""
    return (json.dumps(FINDINGS_SCHEMA, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


if __name__ == "__main__":
    sys.stdout.buffer.write(schema_json())
