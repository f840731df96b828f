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
from reporter.models import FindingStatus, OrgSummary, OwnerReport
from reporter.render import views

OWNER_TEMPLATE = "owner_report.html.j2"
SUMMARY_TEMPLATE = "summary_report.html.j2"

# The one-page summary stays one page: the busiest accounts, then a "and N more" line.
SUMMARY_ACCOUNTS = 8
SUMMARY_OLDEST = 5
SUMMARY_SLA = 5
SUMMARY_RESOLVED = 5
# Findings listed in full per account (highest priority first). Layout time is linear in the
# findings listed, and a manager does not read 300 cards; the workbook lists every finding with
# its commands, and the PDF says so where it stops. None lists everything.
PER_ACCOUNT = 25
# Unowned findings listed in the organization summary; the rest are in its workbook.
SUMMARY_UNOWNED = 200


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


def owner_values(report: OwnerReport, per_account: int | None = PER_ACCOUNT) -> dict[str, Any]:
    """What owner_report.html.j2 sees (documented at the top of the template)."""
    items = report.items
    accounts = views.by_account(items, report.accounts)
    ages = [i.unused_days for i in items if i.unused_days is not None]
    managers = sorted({i.owner.manager for i in items if i.sla_breached and i.owner.manager})
    resolved = sorted(report.resolved, key=lambda r: (r.account_id, r.principal_arn, r.type))
    exception_ids = {i.exception.id for i in items if i.exception is not None}
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
        "attention": views.attention(items),
        "by_type": views.by_type(items),
        "by_account": accounts[:SUMMARY_ACCOUNTS],
        "more_accounts": max(0, len(accounts) - SUMMARY_ACCOUNTS),
        "oldest": views.oldest(items, SUMMARY_OLDEST),
        "sla_breaches": views.sla_breaches(items, SUMMARY_SLA),
        "manager": ", ".join(managers) or None,
        "resolved": tuple(resolved[:SUMMARY_RESOLVED]),
        "more_resolved": max(0, len(resolved) - SUMMARY_RESOLVED),
        # An owner hears about the exceptions that cover their findings, not everyone's.
        "notices": tuple(n for n in report.exception_notices if n.id in exception_ids)
        if exception_ids
        else tuple(report.exception_notices),
        "longest_unused": max(ages) if ages else None,
        "sections": views.sections(views.active(items), report.accounts, per_account),
        "per_account": per_account,
        "excepted": tuple(i for i in items if i.status is FindingStatus.EXCEPTED),
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
            "resolved": len(summary.resolved),
        },
        "status": views.by_status(items),
        "attention": views.attention(items),
        "by_type": views.by_type(items),
        "owners": views.owner_ranking(summary),
        "unowned": summary.unowned[:SUMMARY_UNOWNED],
        "more_unowned": max(0, len(summary.unowned) - SUMMARY_UNOWNED),
        "trend": summary.trend,
        "trend_bars": views.trend_bars(summary.trend),
        "notices": summary.exception_notices,
        "coverage": views.coverage(summary.coverage),
        "skipped": summary.skipped,
        "quarantined": summary.quarantined,
    }


def render_owner_html(
    report: OwnerReport, env: Environment, per_account: int | None = PER_ACCOUNT
) -> str:
    return render_template(env, OWNER_TEMPLATE, owner_values(report, per_account))


def render_summary_html(summary: OrgSummary, env: Environment) -> str:
    return render_template(env, SUMMARY_TEMPLATE, summary_values(summary))


def render_owner_pdf(
    report: OwnerReport, env: Environment, per_account: int | None = PER_ACCOUNT
) -> bytes:
    """The PDF one owner receives: cover, one-page summary, a section per account, excepted
    findings, coverage. `per_account` caps the findings listed per account (None: all)."""
    return html_to_pdf(render_owner_html(report, env, per_account))


def render_summary_pdf(summary: OrgSummary, env: Environment) -> bytes:
    """The organization summary: totals, owners ranked, unowned findings, coverage."""
    return html_to_pdf(render_summary_html(summary, env))
