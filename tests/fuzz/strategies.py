"""Shared strategies and checks of the fuzz package.

Records are generated two ways: by mutating a real sample (drop a field, null it, give it the
wrong type, replace it with hostile text or random JSON, add garbage beside it) and as fully
random JSON. Every test draws a fixed number of examples with a fixed seed (`derandomize`), so
CI runs the same examples every time; `FUZZ_SCALE=10` runs ten times as many, still seeded.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from reporter.enrich import enrich
from reporter.models import Finding, FindingType, RawRecord
from reporter.normalise import _SEVERITY_ORDER, Malformed, Skip, normalise
from reporter.owners import OwnerRules

# Examples run per test, by test name; tests/fuzz/conftest.py prints them after the run.
EXAMPLES: Counter[str] = Counter()
# Outcomes per parser (finding / skip / quarantine), for the same summary.
OUTCOMES: dict[str, Counter[str]] = {}

_SCALE = float(os.environ.get("FUZZ_SCALE", "1"))

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def budget(examples: int) -> settings:
    """The fuzz profile with `examples` examples (times FUZZ_SCALE)."""
    return settings(FUZZ, max_examples=max(1, int(examples * _SCALE)))


def ran(test: str, outcome: str | None = None) -> None:
    EXAMPLES[test] += 1
    if outcome is not None:
        tally(test, outcome)


def tally(what: str, outcome: str) -> None:
    """Count an outcome without counting an example (several records in one example)."""
    OUTCOMES.setdefault(what, Counter())[outcome] += 1


# --- Text an attacker or a broken exporter could put anywhere -------------------------------

HOSTILE_TEXT = (
    "<script>alert(1)</script>",
    "</style><script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    '=HYPERLINK("http://evil.test","x")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)",
    "\t=1+1",
    "\r=1+1",
    "gpj.\u202eexe",
    "\u202e\u2066\u2067\u200f",
    "nul\x00byte",
    "bell\x07esc\x1b[31mred",
    "line\nFAKE LOG LINE",
    "\ud800",  # a lone surrogate: valid in Python text and JSON escapes, not in UTF-8
    "${SMTP_PASSWORD}",
    "%s%s%n",
    "../../etc/passwd",
    "A" * 10_000,
    "\u0661" * 12,  # Arabic-Indic digits: `\d` matches them, an account id must not
    "",
    " ",
)

texts = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    st.text(max_size=40),
    st.text(st.characters(codec="utf-8"), max_size=20),
    st.builds(
        lambda c, n: c * n, st.sampled_from(["x", "=", "\u202e", "\x00"]), st.integers(0, 20_000)
    ),
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
)

json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(texts, st.text(max_size=12)), children, max_size=4),
    ),
    max_leaves=12,
)

# ARNs near the shape the parsers accept: valid ones, and ones off by one detail.
_ACCOUNT_IDS = st.one_of(
    st.from_regex(r"\A[0-9]{12}\Z"),
    st.sampled_from(
        ["\u0661" * 12, "１１１１２２２２３３３３", "11112222333", "1111222233334", ""]
    ),
)
principal_arns = st.builds(
    lambda partition, account, kind, path, name, tail: (
        f"arn:{partition}:iam::{account}:{kind}/{path}{name}{tail}"
    ),
    st.sampled_from(["aws", "aws-cn", "aws-us-gov", "AWS", "aws\u202e"]),
    _ACCOUNT_IDS,
    st.sampled_from(["role", "user", "group", "policy", "role"]),
    st.sampled_from(["", "team/", "aws-service-role/ecs.amazonaws.com/", "<b>/"]),
    st.one_of(st.sampled_from(HOSTILE_TEXT), st.from_regex(r"\A[A-Za-z0-9+=,.@_-]{1,20}\Z")),
    st.sampled_from(["", "", "\n", "\r\n", " "]),
)
timestamps = st.one_of(
    st.datetimes(timezones=st.sampled_from([UTC, None])).map(lambda d: d.isoformat()),
    st.sampled_from(["2026-02-30T00:00:00Z", "yesterday", "0", "", "9999-12-31T23:59:59+14:00"]),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(),
)


# --- Mutation of a real record ------------------------------------------------------------


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _replace(doc: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = new
    return doc


def _delete(doc: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return {}
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    del parent[path[-1]]
    return doc


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


_OPS = ("drop", "null", "random", "hostile", "wrong type", "garbage beside", "arn", "time")


@st.composite
def mutated(draw: st.DrawFn, base: Any, max_ops: int = 4) -> Any:
    """`base` (a real record) with 1..max_ops random mutations at random places."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, max_ops))):
        path = draw(st.sampled_from(_paths(doc)))
        op = draw(st.sampled_from(_OPS))
        if op == "drop":
            doc = _delete(doc, path)
        elif op == "null":
            doc = _replace(doc, path, None)
        elif op == "random":
            doc = _replace(doc, path, draw(json_values))
        elif op == "hostile":
            doc = _replace(doc, path, draw(texts))
        elif op == "arn":
            doc = _replace(doc, path, draw(principal_arns))
        elif op == "time":
            doc = _replace(doc, path, draw(timestamps))
        elif op == "wrong type":
            old = _get(doc, path)
            new = draw(
                st.sampled_from(
                    [[old], {"value": old}, str(old), 0, 1.5, True, json.dumps(old, default=str)]
                )
            )
            doc = _replace(doc, path, new)
        else:  # a sibling key nobody expects
            target = _get(doc, path)
            if isinstance(target, dict):
                target[draw(texts)] = draw(json_values)
            elif isinstance(target, list):
                target.append(draw(json_values))
    return doc


def records(base: Any, max_ops: int = 4) -> st.SearchStrategy[Any]:
    """Mostly mutated samples, sometimes the sample itself, sometimes random JSON."""
    return st.one_of(
        mutated(base, max_ops),
        mutated(base, max_ops),
        mutated(base, max_ops),
        st.just(copy.deepcopy(base)),
        json_values,
    )


# --- The property every parser must keep ---------------------------------------------------

ACCOUNT_ID = re.compile(r"[0-9]{12}")
PRINCIPAL = re.compile(r"arn:aws(?:-[a-z]+)*:iam::([0-9]{12}):(user|role)/[^\n\r]+")
# What `normalise` documents it catches from a parser (its "wider net"); anything else escaping
# a parser would end the run.
CAUGHT = (Malformed, TypeError, ValueError, KeyError, AttributeError)


_NOW = datetime(2026, 3, 1, tzinfo=UTC)
_RULES = OwnerRules(allowed_domains=("example.com",), fallback=("security@example.com",))


def _aware(moment: datetime | None, where: str) -> None:
    assert moment is None or (isinstance(moment, datetime) and moment.utcoffset() is not None), (
        where,
        moment,
    )


def check_finding(finding: Finding) -> None:
    """The invariants every stage after `normalise` relies on."""
    assert isinstance(finding.type, FindingType)
    assert ACCOUNT_ID.fullmatch(finding.account_id), finding.account_id
    match = PRINCIPAL.fullmatch(finding.principal_arn)
    assert match, repr(finding.principal_arn[:200])
    assert match.group(1) == finding.account_id
    assert finding.severity in _SEVERITY_ORDER
    assert isinstance(finding.region, str)
    for name in ("last_accessed", "created_at", "updated_at"):
        _aware(getattr(finding, name), name)
    for service in finding.services:
        assert isinstance(service.namespace, str) and service.namespace
        _aware(service.last_accessed, "service")
        for action in service.actions:
            assert isinstance(action.action, str) and action.action
            _aware(action.last_accessed, "action")
    assert all(isinstance(k, str) for k in finding.access_key_ids)
    assert finding.sources and all(s.id and isinstance(s.id, str) for s in finding.sources)
    if finding.recommendation is not None:
        for step in finding.recommendation.steps:
            _aware(step.policy_updated_at, "recommended step")
    assert finding.key == f"{finding.account_id}/{finding.type.value}/{finding.principal_arn}"
    # A finding the parser accepted goes through the rest of the run: links and commands too.
    (item,) = enrich([finding], {}, _RULES, "us-east-1", _NOW)
    assert item.links.console.startswith("https://"), item.links.console
    assert item.owner.owner is None or item.owner.owner == "owner@example.com"
    assert item.remediation and all(step.command for step in item.remediation)


def check_record(record: RawRecord, parser: Callable[[Mapping[str, Any]], Finding | Skip]) -> str:
    """Parse one record directly and through `normalise`; both must agree, and the record
    must come out as exactly one finding, one skip or one quarantined record with a reason.
    Returns which."""
    try:
        direct: Finding | Skip | Exception = parser(record.payload)
    except CAUGHT as exc:
        direct = exc
    result = normalise([record])
    outcomes = len(result.findings) + result.skipped_total + len(result.quarantined)
    assert outcomes == 1, result
    if isinstance(direct, Finding):
        check_finding(direct)
        assert result.findings == (direct,)
        return "finding"
    if isinstance(direct, Skip):
        assert isinstance(direct.reason, str) and direct.reason.strip()
        assert dict(result.skipped) == {direct.reason: 1}
        return "skip"
    (quarantined,) = result.quarantined
    assert isinstance(quarantined.reason, str) and quarantined.reason.strip(), repr(direct)
    assert quarantined.source == record.source and isinstance(quarantined.record, dict)
    # What the run writes to data/quarantine.json must serialise.
    json.dumps(quarantined.record, default=str)
    # Malformed is the parsers' own reason; another type is a shape they did not foresee.
    return "quarantine" if isinstance(direct, Malformed) else f"quarantine {type(direct).__name__}"
