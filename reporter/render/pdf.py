"""PDF reports: a Jinja template rendered to HTML, laid out by WeasyPrint, returned as bytes.

Rendering is offline by construction: the HTML has no base URL and the URL fetcher refuses
everything but `data:` URLs, so neither a template nor a value from AWS can make the renderer
reach the network or the file system.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, TemplateError
from weasyprint import HTML
from weasyprint.urls import FatalURLFetchingError, URLFetcher

from reporter.errors import RenderError
from reporter.models import OrgSummary, OwnerReport
from reporter.render import views

OWNER_TEMPLATE = "owner_report.html.j2"
SUMMARY_TEMPLATE = "summary_report.html.j2"

# The one-page summary stays one page: the busiest accounts, then a "and N more" line.
SUMMARY_ACCOUNTS = 12
SUMMARY_OLDEST = 8


class OfflineFetcher(URLFetcher):
    """Serves `data:` URLs and refuses everything else (http, file, ftp...)."""

    def __init__(self) -> None:
        # Fatal so a template that points at a remote logo fails loudly instead of rendering
        # without it; render_html_pdf turns the error into a RenderError.
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


def html_to_pdf(html: str) -> bytes:
    """Lay out `html` with WeasyPrint, offline."""
    try:
        pdf: bytes = HTML(string=html, base_url=None, url_fetcher=OfflineFetcher()).write_pdf()
    except FatalURLFetchingError as exc:
        # A BaseException in WeasyPrint; it must not slip past callers' `except Exception`.
        raise RenderError(f"report template refers to an external resource: {exc}") from exc
    return pdf


def owner_values(report: OwnerReport) -> dict[str, Any]:
    """What owner_report.html.j2 sees (documented at the top of the template)."""
    items = report.items
    accounts = views.by_account(items, report.accounts)
    ages = [i.unused_days for i in items if i.unused_days is not None]
    return {
        "report": report,
        "context": report.context,
        "owner": report.owner,
        "totals": {
            "findings": len(items),
            "accounts": len(accounts),
            "accounts_with_findings": sum(1 for a in accounts if a.count),
        },
        "status": views.by_status(items),
        "by_type": views.by_type(items),
        "by_account": accounts[:SUMMARY_ACCOUNTS],
        "more_accounts": max(0, len(accounts) - SUMMARY_ACCOUNTS),
        "oldest": views.oldest(items, SUMMARY_OLDEST),
        "longest_unused": max(ages) if ages else None,
        "sections": views.sections(items, report.accounts),
        "coverage": views.coverage(report.coverage),
    }


def summary_values(summary: OrgSummary) -> dict[str, Any]:
    """What summary_report.html.j2 sees (documented at the top of the template)."""
    items = views.all_items(summary)
    return {
        "summary": summary,
        "context": summary.context,
        "totals": {
            "findings": len(items),
            "owners": len(summary.owners),
            "unowned": len(summary.unowned),
        },
        "status": views.by_status(items),
        "by_type": views.by_type(items),
        "owners": views.owner_ranking(summary),
        "unowned": summary.unowned,
        "coverage": views.coverage(summary.coverage),
        "skipped": summary.skipped,
        "quarantined": summary.quarantined,
    }


def render_owner_html(report: OwnerReport, env: Environment) -> str:
    return render_template(env, OWNER_TEMPLATE, owner_values(report))


def render_summary_html(summary: OrgSummary, env: Environment) -> str:
    return render_template(env, SUMMARY_TEMPLATE, summary_values(summary))


def render_owner_pdf(report: OwnerReport, env: Environment) -> bytes:
    """The PDF one owner receives: cover, one-page summary, a section per account, coverage."""
    return html_to_pdf(render_owner_html(report, env))


def render_summary_pdf(summary: OrgSummary, env: Environment) -> bytes:
    """The organization summary: totals, owners ranked, unowned findings, coverage."""
    return html_to_pdf(render_summary_html(summary, env))
