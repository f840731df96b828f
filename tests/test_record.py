"""The finding record is declared once (`reporter.render.record`); the JSON record, the flat
columns (CSV and workbook) and the published JSON Schema are derived from it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from reporter.render import record, xlsx
from reporter.render.schema import FINDINGS_SCHEMA, SCHEMA_PATH, schema_json
from tests import factories as fx

REPOSITORY = Path(__file__).resolve().parent.parent
REGENERATE = f".venv/bin/python -m reporter.render.schema > {SCHEMA_PATH}"


def test_the_published_schema_file_is_the_one_the_code_generates() -> None:
    published = REPOSITORY / SCHEMA_PATH
    assert published.is_file(), f"{SCHEMA_PATH} is missing; write it with `{REGENERATE}`"
    assert published.read_bytes() == schema_json(), (
        f"{SCHEMA_PATH} differs from the record's declaration (reporter/render/record.py); "
        f"regenerate it with `{REGENERATE}` and commit it"
    )


def test_the_schema_is_a_valid_draft_2020_12_schema_with_every_field_described() -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads(schema_json()))

    def described(schema: object, where: str) -> None:
        if isinstance(schema, dict):
            for name, prop in schema.get("properties", {}).items():
                assert prop.get("description"), f"{where}.{name} has no description"
            for key, value in schema.items():
                described(value, f"{where}.{key}" if key != "properties" else where)
        elif isinstance(schema, list):
            for value in schema:
                described(value, where)

    described(FINDINGS_SCHEMA, "findings.json")


def test_every_field_of_the_finding_reaches_the_flat_form() -> None:
    # A field added without columns would be in findings.json but silently not in the CSV.
    for field in record.FINDING.fields:
        assert field.flat_columns(), f"{field.name} has no column in the CSV and workbook"
    assert len(set(record.FLAT_COLUMNS)) == len(record.FLAT_COLUMNS)
    assert {c.field for c in record.COLUMNS} == {f.name for f in record.FINDING.fields}


def test_the_flat_form_groups_the_finding_its_standing_then_its_details() -> None:
    places = [
        next(f.place for f in record.FINDING.fields if f.name == c.field) for c in record.COLUMNS
    ]
    assert places == sorted(places)
    assert record.FLAT_COLUMNS[:3] == ("key", "type", "account_id")
    assert record.FLAT_COLUMNS[-1] == "sources"


def test_workbook_cell_kinds_follow_the_schema() -> None:
    kinds = {c.field: c.kind for c in xlsx.FINDING_COLUMNS}
    assert kinds["priority"] == kinds["unused_days"] == kinds["observation_window_days"] == "int"
    assert kinds["first_seen"] == kinds["exception_expires"] == "date"
    assert kinds["last_accessed"] == kinds["created_at"] == "datetime"
    assert kinds["new"] == kinds["exception_expired"] == "bool"
    assert kinds["link_console"] == "link"
    assert kinds["organization_access_source_doc"] == kinds["principal_arn"] == "text"
    # The Findings sheet leads with what an owner decides by; every flat column is there once.
    assert sorted(c.field for c in xlsx.FINDING_COLUMNS) == sorted(record.FLAT_COLUMNS)
    assert kinds["review_at"] == "datetime" and kinds["review_until"] == "date"


def test_the_remediation_sheet_shows_every_field_of_a_step() -> None:
    assert tuple(f.name for f in record.STEP.fields) == xlsx._STEP_FIELDS


def test_each_nested_record_matches_its_own_schema() -> None:
    for item in fx.sample_items():
        finding = record.finding_record(item)
        jsonschema.validate(finding, record.FINDING.schema)
        for step in finding["remediation"]:
            jsonschema.validate(step, record.STEP.schema)
        jsonschema.validate(finding["details"], record.DETAILS.schema)


@pytest.mark.parametrize("path", ["finding.key()", "finding..key", "1st", "finding.class", " x"])
def test_a_field_reads_attributes_only(path: str) -> None:
    with pytest.raises(ValueError, match="not an attribute path"):
        record.Field("x", record.STRING, "x", path)
