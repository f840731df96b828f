"""The one Jinja environment every report and e-mail template is rendered with.

Templates are looked up in the user's folder first and in the packaged defaults second, so a
deployment can replace one file without copying the rest; `default:NAME` always reaches the
packaged file, so an override can `{% extends "default:owner_report.html.j2" %}` and change a
single block. Everything is autoescaped and undefined names raise: a typo in a template must fail
the render, not mail a report with a blank where the owner's name should be.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    PrefixLoader,
    StrictUndefined,
)
from markupsafe import Markup

from reporter.errors import RenderError
from reporter.models import (
    ExceptionNotice,
    FindingType,
    ObservationWindow,
    OrganizationAccess,
    RemediationStep,
    Review,
)
from reporter.orgaccess import KIND_LABELS, window_text
from reporter.remediation import READ_ONLY
from reporter.render.data import iso_datetime, linkable, step_detail

TEMPLATE_PACKAGE = "reporter.templates"

# Shown wherever a value is unknown (None): "null where unknown" in the data, a dash on paper.
UNKNOWN = "—"

# Bidirectional overrides and invisible format characters let a name read differently from what
# it is (U+202E before "txt.exe" makes it display as "exe.txt"). On paper we show them as visible
# code points instead of obeying them; the data files keep the original text.
_INVISIBLE = re.compile("[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
# C0 controls other than tab/newline are not valid in HTML text; they can only come from hostile or
# corrupted data.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def make_environment(template_dir: Path | None = None) -> Environment:
    """Build the environment: `template_dir` (if given) before the packaged templates.

    Raises RenderError if `template_dir` is given but is not a directory, because a mistyped
    path would otherwise silently fall back to the defaults.
    """
    packaged = PackageLoader(TEMPLATE_PACKAGE, "")
    loaders: list[BaseLoader] = []
    if template_dir is not None:
        if not template_dir.is_dir():
            raise RenderError(f"template folder {template_dir} does not exist or is not a folder")
        loaders.append(FileSystemLoader(template_dir))
    loaders.append(packaged)
    loaders.append(PrefixLoader({"default": packaged}, delimiter=":"))
    env = Environment(
        loader=ChoiceLoader(loaders),
        # True rather than select_autoescape(): our templates end in `.j2`, which
        # select_autoescape would not recognise as HTML, and a plain-text template that escapes
        # `&` is a smaller problem than an HTML one that does not escape `<`.
        autoescape=True,
        undefined=StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        isodate=isodate,
        utc=utc_minutes,
        days=days,
        plural=plural,
        visible=visible,
        iso=iso_datetime,
        step_detail=step_detail,
        type_label=type_label,
        notice_state=notice_state,
        window_text=window_text,
        window_short=window_short,
        access_label=access_label,
        review_text=review_text,
    )
    env.tests["linkable"] = linkable
    env.tests["read_only"] = read_only
    return env


def read_only(step: RemediationStep) -> bool:
    """A step that changes nothing (a check, a lookup): it has nothing to roll back."""
    return step.rollback == READ_ONLY


def review_text(review: Review) -> str:
    """The owner's decision on a finding in a few words, the same in every report."""
    until = isodate(review.until) if review.until else ""
    by, at = review.by, isodate(review.at)
    match review.state:
        case "pending":
            return f"kept by {by} until {until}, pending approval"
        case "kept":
            return f"kept by {by} until {until} (approved by {review.approved_by or by})"
        case "expired":
            return f"kept by {by} until {until}: expired"
        case "promised":
            return f"removal promised by {by} on {at}, due {until}"
        case "overdue":
            return f"removal promised by {by} on {at}: overdue since {until}"
        case "triage":
            return f"not mine, said {by} on {at}: with the security team"
        case _:
            return f"{review.decision} by {by} on {at}: {review.state}"


def notice_state(notice: ExceptionNotice) -> str:
    """What a notice says of its exception, in the same words in the PDFs and both e-mail bodies."""
    expires = isodate(notice.expires)
    if notice.kind == "expiring":
        return f"expires on {expires}"
    if notice.kind == "expired":
        return f"expired on {expires}; the findings it covered are active again"
    return f"matches no finding (expires {expires}); remove it from the configuration"


def window_short(window: ObservationWindow | None) -> str:
    """`90-day window (analyzer)`: the observation window on a one-line finding."""
    if window is None or window.days is None:
        return "window unknown"
    where = {
        "analyzer_configuration": "analyzer",
        "service_linked_analyzer": "Security Hub analyzer",
        "iam": "IAM",
    }.get(window.source, window.source)
    return f"{window.days}-day window ({where})"


def access_label(access: OrganizationAccess) -> str:
    return KIND_LABELS.get(access.kind, access.kind)


def type_label(value: str) -> str:
    """`UnusedIAMRole` -> `Unused role`; an unknown type is shown as it is."""
    try:
        return FindingType(value).label
    except ValueError:
        return value


def _finalize(value: Any) -> Any:
    """Applied to every `{{ expression }}` before escaping."""
    if value is None:
        return UNKNOWN
    # Markup is already-rendered template output (macros, `|safe`): it was finalized when built.
    if isinstance(value, str) and not isinstance(value, Markup):
        return visible(value)
    return value


def visible(text: str) -> str:
    """Replace bidi overrides and invisible characters with a visible `[U+XXXX]` marker."""
    text = _CONTROL.sub("\ufffd", text)
    return _INVISIBLE.sub(lambda m: f"[U+{ord(m.group()):04X}]", text)


def _as_utc(value: datetime) -> datetime:
    # AWS timestamps are UTC; a naive one can only have lost its tzinfo on the way.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def isodate(value: date | datetime | None, default: str = UNKNOWN) -> str:
    """`YYYY-MM-DD`; a datetime is taken in UTC first."""
    if value is None:
        return default
    if isinstance(value, datetime):
        value = _as_utc(value).date()
    return value.isoformat()


def utc_minutes(value: datetime | None, default: str = UNKNOWN) -> str:
    """`YYYY-MM-DD HH:MM UTC`."""
    if value is None:
        return default
    return _as_utc(value).strftime("%Y-%m-%d %H:%M UTC")


def days(value: int | None, default: str = UNKNOWN) -> str:
    """`1 day`, `214 days`, or the default when unknown."""
    if value is None:
        return default
    return plural(value, "day")


def plural(count: int, singular: str, many: str | None = None) -> str:
    """`1 finding`, `3 findings`, with thousands separators."""
    word = singular if count == 1 else (many or f"{singular}s")
    return f"{count:,} {word}"
