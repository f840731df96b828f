"""PDF reports: a Jinja template rendered to HTML, laid out by WeasyPrint, returned as bytes.

Rendering is offline by construction: the HTML has no base URL and the URL fetcher refuses
everything but `data:` URLs, so neither a template nor a value from AWS can make the renderer
reach the network or the file system.

Only WeasyPrint's public API is used (its API reference: `HTML`, `CSS`, `write_pdf`,
`urls.URLFetcher`, `urls.FatalURLFetchingError`, `text.fonts.FontConfiguration`), so that an
upgrade breaks nothing WeasyPrint does not announce. Importing this module imports WeasyPrint:
modules that merely may render (the pipeline) import it where they render, so commands that
never render (`validate-config`, `evidence verify`...) do not load it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, TemplateError
from weasyprint import CSS, HTML
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import FatalURLFetchingError, URLFetcher

from reporter.aggregate import sort_items
from reporter.errors import RenderError
from reporter.models import FindingStatus, OrgSummary, OwnerReport
from reporter.render import views

OWNER_TEMPLATE = "owner_report.html.j2"
SUMMARY_TEMPLATE = "summary_report.html.j2"

# The one-page summary stays one page: the busiest accounts, then a "and N more" line.
SUMMARY_ACCOUNTS = 8
SUMMARY_OLDEST = 5
SUMMARY_SLA = 5
SUMMARY_RESOLVED = 5


@dataclass(frozen=True)
class PdfLimits:
    """How much of each owner's findings the PDF lists (`reports.pdf_*`); the workbook has all.

    Layout time is what limits these: WeasyPrint spends about 2 ms on a one-line finding and
    40-50 ms on a finding with its commands (a third of a page), so a PDF that printed every
    command of 200 findings would take 10 s per owner and run to 100 pages nobody reads. The
    PDF is the manager's: every account lists its `per_account` highest-priority findings, one
    line each with a console link, and "Start here" gives the `detailed` highest-priority
    findings of the whole report with their exact commands and rollbacks.
    """

    per_account: int | None = 10
    detailed: int = 3


DEFAULT_LIMITS = PdfLimits()

# Unowned findings listed in the organization summary; the rest are in its workbook.
SUMMARY_UNOWNED = 200


class OfflineFetcher(URLFetcher):
    """Serves `data:` URLs and refuses everything else (http, file, ftp...)."""

    def __init__(self) -> None:
        # Fatal so a template that points at a remote logo fails loudly instead of rendering
        # without it; html_to_pdf turns the error into a RenderError.
        super().__init__(allowed_protocols=("data",), allow_redirects=False, fail_on_errors=True)

    def fetch(self, url: str, headers: Any = None) -> Any:
        if not url.startswith("data:"):
            raise ValueError(f"reports render offline; refusing to fetch {url[:200]}")
        return super().fetch(url, headers)


def render_template(env: Environment, name: str, values: dict[str, Any]) -> str:
    """Render one template to text; template problems become RenderError naming the template."""
    try:
        return env.get_template(name).render(values)
    except TemplateError as exc:
        raise RenderError(f"template {name}: {type(exc).__name__}: {exc}") from exc


# What every document of a process shares, through WeasyPrint's public arguments: one font
# configuration (the `CSS` objects and the documents they style must share one), one fetcher,
# and the report stylesheet parsed once. Parsing that stylesheet costs WeasyPrint about 40 ms a
# document (a sixth of a short report), so the <style> element of the head is cut out and
# handed to `write_pdf` pre-parsed, as a user stylesheet: the page has no author stylesheet
# left for it to lose to. Keyed by its text, so a template folder that changes the CSS gets its
# own entry.
_HEAD_STYLE = re.compile(r"\A(.*?<head\b.*?)<style>(.*?)</style>(.*?</head>)", re.S | re.I)
_STYLESHEETS: dict[str, CSS] = {}
_FONTS = FontConfiguration()
_FETCHER = OfflineFetcher()


def _stylesheet(text: str) -> CSS:
    found = _STYLESHEETS.get(text)
    if found is None:
        if len(_STYLESHEETS) >= 8:  # template folders are few; never grow without bound
            _STYLESHEETS.clear()
        found = _STYLESHEETS[text] = CSS(string=text, url_fetcher=_FETCHER, font_config=_FONTS)
    return found


def html_to_pdf(html: str) -> bytes:
    """Lay out `html` with WeasyPrint, offline."""
    stylesheets = []
    head = _HEAD_STYLE.match(html)
    if head is not None:
        html = head.group(1) + head.group(3) + html[head.end() :]
        stylesheets.append(_stylesheet(head.group(2)))
    try:
        document = HTML(string=html, base_url=None, url_fetcher=_FETCHER)
        pdf: bytes = document.write_pdf(stylesheets=stylesheets, font_config=_FONTS)
    except FatalURLFetchingError as exc:
        # A BaseException in WeasyPrint; it must not slip past callers' `except Exception`.
        raise RenderError(f"report template refers to an external resource: {exc}") from exc
    return pdf


def owner_values(report: OwnerReport, limits: PdfLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    """What owner_report.html.j2 sees (documented at the top of the template)."""
    items = report.items
    # Organization access is counted and listed apart; everything else is about the rest.
    work = views.actionable(items)
    # Highest priority first, whatever order the report came in: "Start here" takes the top.
    open_items = views.active(sort_items(work))
    accounts = views.by_account(work, report.accounts)
    ages = [i.unused_days for i in work if i.unused_days is not None]
    managers = sorted({i.owner.manager for i in items if i.sla_breached and i.owner.manager})
    resolved = sorted(report.resolved, key=lambda r: (r.account_id, r.principal_arn, r.type))
    exception_ids = {i.exception.id for i in items if i.exception is not None}
    return {
        "report": report,
        "context": report.context,
        "owner": report.owner,
        "totals": {
            "findings": len(work),
            "accounts": len(accounts),
            "accounts_with_findings": sum(1 for a in accounts if a.count),
            "organization_access": len(items) - len(work),
        },
        "status": views.by_status(work),
        "attention": views.attention(work),
        "by_type": views.by_type(work),
        "by_account": accounts[:SUMMARY_ACCOUNTS],
        "more_accounts": max(0, len(accounts) - SUMMARY_ACCOUNTS),
        "oldest": views.oldest(work, SUMMARY_OLDEST),
        "organization_access": views.organization_access(items),
        "windows": views.windows(items),
        "sla_breaches": views.sla_breaches(items, SUMMARY_SLA),
        "manager": ", ".join(managers) or None,
        "resolved": tuple(resolved[:SUMMARY_RESOLVED]),
        "more_resolved": max(0, len(resolved) - SUMMARY_RESOLVED),
        # An owner hears about the exceptions that cover their findings, not everyone's.
        "notices": tuple(n for n in report.exception_notices if n.id in exception_ids)
        if exception_ids
        else tuple(report.exception_notices),
        "longest_unused": max(ages) if ages else None,
        "detailed": open_items[: limits.detailed],
        "sections": views.sections(open_items, report.accounts, limits.per_account),
        "per_account": limits.per_account,
        "excepted": tuple(i for i in items if i.status is FindingStatus.EXCEPTED),
        "coverage": views.coverage(report.coverage),
    }


def summary_values(summary: OrgSummary) -> dict[str, Any]:
    """What summary_report.html.j2 sees (documented at the top of the template)."""
    items = views.all_items(summary)
    work = views.actionable(items)
    access = views.organization_access(items)
    return {
        "summary": summary,
        "context": summary.context,
        "totals": {
            "findings": len(work),
            "owners": len(summary.owners),
            "unowned": len(summary.unowned),
            "resolved": len(summary.resolved),
            "organization_access": len(access),
        },
        "status": views.by_status(work),
        "attention": views.attention(work),
        "by_type": views.by_type(work),
        "organization_access": access[:SUMMARY_UNOWNED],
        "more_organization_access": max(0, len(access) - SUMMARY_UNOWNED),
        "organization_access_notes": summary.organization_access_notes,
        "windows": views.windows(items),
        "owners": views.owner_ranking(summary),
        "unowned": summary.unowned[:SUMMARY_UNOWNED],
        "more_unowned": max(0, len(summary.unowned) - SUMMARY_UNOWNED),
        "trend": summary.trend,
        "trend_bars": views.trend_bars(summary.trend),
        "notices": summary.exception_notices,
        "coverage": views.coverage(summary.coverage),
        "skipped": summary.skipped,
        "quarantined": summary.quarantined,
        "lookalikes": summary.lookalikes,
    }


def render_owner_html(
    report: OwnerReport, env: Environment, limits: PdfLimits = DEFAULT_LIMITS
) -> str:
    return render_template(env, OWNER_TEMPLATE, owner_values(report, limits))


def render_summary_html(summary: OrgSummary, env: Environment) -> str:
    return render_template(env, SUMMARY_TEMPLATE, summary_values(summary))


def render_owner_pdf(
    report: OwnerReport, env: Environment, limits: PdfLimits = DEFAULT_LIMITS
) -> bytes:
    """The PDF one owner receives: cover, one-page summary, the findings to start with and
    their commands, a section per account, excepted findings, coverage."""
    return html_to_pdf(render_owner_html(report, env, limits))


def render_summary_pdf(summary: OrgSummary, env: Environment) -> bytes:
    """The organization summary: totals, owners ranked, unowned findings, coverage."""
    return html_to_pdf(render_summary_html(summary, env))
