"""The IAM credential report (`parse_credential_report`, `user_findings`) and the records the
IAM source builds from it (`normalise.from_iam`): generated reports with missing, extra and
reordered columns, bad dates and flags, hostile names, broken quoting and bytes that are not
UTF-8."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from reporter.models import Account, FindingType
from reporter.normalise import from_iam
from reporter.sources.iam import (
    ROOT_USER,
    CredentialReportUnavailable,
    IamSource,
    ParsedReport,
    Rule,
    parse_credential_report,
    user_findings,
)
from tests.fuzz.strategies import (
    PRINCIPAL,
    budget,
    check_record,
    principal_arns,
    ran,
    tally,
    texts,
    timestamps,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ACCOUNT = Account(id="111122223333", name="fuzz")
COLUMNS = [
    "user",
    "arn",
    "user_creation_time",
    "password_enabled",
    "password_last_used",
    "password_last_changed",
    "password_next_rotation",
    "mfa_active",
    "access_key_1_active",
    "access_key_1_last_rotated",
    "access_key_1_last_used_date",
    "access_key_1_last_used_region",
    "access_key_1_last_used_service",
    "access_key_2_active",
    "access_key_2_last_rotated",
    "access_key_2_last_used_date",
    "access_key_2_last_used_region",
    "access_key_2_last_used_service",
    "cert_1_active",
    "cert_1_last_rotated",
    "cert_2_active",
    "cert_2_last_rotated",
    "additional_credentials_info",
]

_valid_dates = st.datetimes(
    min_value=datetime(2010, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.isoformat())
# Mostly well-formed cells, so that rows get past the parser to the rule and `from_iam`.
_dates = st.one_of(
    _valid_dates,
    _valid_dates,
    _valid_dates,
    st.sampled_from(["N/A", "no_information", "not_supported", "", "2026-02-30T00:00:00+00:00"]),
    timestamps.map(str),
    texts,
)
_flags = st.one_of(*[st.sampled_from(["true", "false", "TRUE", "FALSE", "N/A", ""])] * 4, texts)
_accounts_arns = st.one_of(
    st.from_regex(r"\A[a-z0-9+=,.@_-]{1,12}\Z").map(
        lambda n: f"arn:aws:iam::111122223333:user/{n}"
    ),
    principal_arns,
    st.just("arn:aws:iam::111122223333:root"),
)


_clean = {
    "user": st.sampled_from(["alice", "bob", "ops/carol"]),
    "arn": _accounts_arns,
    "date": st.one_of(_valid_dates, st.sampled_from(["N/A", "no_information"])),
    "flag": st.sampled_from(["true", "false", "TRUE", "FALSE"]),
    "text": st.one_of(st.sampled_from(["N/A", "us-east-1", "s3"]), texts),
}


def _kind(column: str) -> str:
    if column in ("user", "arn"):
        return column
    if column.endswith(("_time", "_last_used", "_changed", "_rotation", "_rotated", "_date")):
        return "date"
    if column.endswith("_active") or column == "password_enabled":
        return "flag"
    return "text"


def _row(columns: list[str]) -> st.SearchStrategy[dict[str, str]]:
    """Half the rows well-formed (hostile text only where any text goes), half anything."""
    clean = st.fixed_dictionaries({c: _clean[_kind(c)] for c in columns})
    return st.one_of(clean, st.fixed_dictionaries({c: _cell(c) for c in columns}))


def _cell(column: str) -> st.SearchStrategy[str]:
    if column == "user":
        return st.one_of(st.sampled_from(["alice", "bob", ROOT_USER]), texts)
    if column == "arn":
        return st.one_of(_accounts_arns, _accounts_arns, texts)
    if column.endswith(("_time", "_last_used", "_changed", "_rotation", "_rotated", "_date")):
        return _dates
    if column.endswith("_active") or column == "password_enabled":
        return _flags
    return texts


@st.composite
def reports(draw: st.DrawFn) -> tuple[bytes | str, int, int]:
    """(content, data rows written, root rows written); rows are -1 when the quoting is broken."""
    # Each column kept 95 % of the time: the three required ones all kept in ~86 %.
    columns = [c for c in COLUMNS if draw(st.integers(0, 19))]
    if draw(st.booleans()):
        columns = draw(st.permutations(columns))
    columns += draw(st.lists(st.sampled_from(["extra", "x\x00y"]), max_size=2, unique=True))
    rows = draw(st.lists(_row(columns), min_size=1, max_size=5))
    roots = sum(
        1
        for r in rows
        if r.get("user", "").strip() == ROOT_USER or r.get("arn", "").strip().endswith(":root")
    )
    style = draw(st.sampled_from(["csv"] * 6 + ["naive", "bytes", "garbage bytes"]))
    if style == "naive":  # commas and quotes inside values break the columns
        text = "\n".join(
            ",".join(line) for line in [columns, *([r[c] for c in columns] for r in rows)]
        )
        return text, -1, -1
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    writer.writerows([r[c] for c in columns] for r in rows)
    text = buffer.getvalue()
    if style == "bytes":
        return "\ufeff".encode() + text.encode("utf-8", "surrogatepass"), -1, -1
    if style == "garbage bytes":
        return draw(st.binary(max_size=200)) + text.encode("utf-8", "replace"), -1, -1
    return text, len(rows), roots


def _records(report: ParsedReport, tags: dict[str, str], policies: list[str]) -> int:
    source = IamSource(90, NOW)
    rule = Rule(90, NOW)
    seen = 0
    for reason, row in report.problems:
        assert reason and isinstance(row, dict)
        record = source._error(ACCOUNT, reason, row)
        assert check_record(record, from_iam) == "quarantine"
        seen += 1
    for row in report.rows:
        assert row.created.utcoffset() is not None and len(row.keys) == 2
        for flagged in user_findings(row, rule):
            assert flagged.finding_type in (
                FindingType.UNUSED_PASSWORD,
                FindingType.UNUSED_ACCESS_KEY,
            )
            assert flagged.unused_since.utcoffset() is not None
            record = source._record(ACCOUNT, flagged, tags, policies, {})
            outcome = check_record(record, from_iam)
            tally("credential report: records of flagged users", outcome)
            # A flagged user is reported, or quarantined for an ARN that is not this account's
            # user or role; never skipped.
            assert outcome in ("finding", "quarantine"), outcome
            if outcome == "quarantine":
                assert PRINCIPAL.fullmatch(row.arn) is None or ":111122223333:" not in row.arn
        seen += 1
    return seen


@budget(300)
@given(
    reports(),
    st.dictionaries(texts, texts, max_size=3),
    st.lists(texts, max_size=3),
)
def test_credential_report_rows_are_parsed_or_problems(
    content: tuple[bytes | str, int, int], tags: dict[str, Any], policies: list[str]
) -> None:
    text, written, roots = content
    try:
        report = parse_credential_report(text)
    except CredentialReportUnavailable as exc:
        ran("credential report", "unavailable")
        assert str(exc)
        return
    seen = _records(report, tags, policies)
    label = "users" if report.rows else "no users"
    ran("credential report", label + (" and problems" if report.problems else ""))
    if written >= 0:  # every row written is a user, a problem, or the skipped root
        assert seen == written - roots, (seen, written, roots)
