"""Console deep links for a finding (reference §5.1; observed formats, not a documented API)."""

from __future__ import annotations

from urllib.parse import quote, quote_plus

from .models import Finding, FindingType, Links

_CONSOLE = "https://console.aws.amazon.com"


def links_for(finding: Finding, home_region: str) -> Links:
    region = finding.region or home_region
    name = quote(finding.principal_name, safe="")
    if finding.principal_type == "role":
        console = f"{_CONSOLE}/iam/home#/roles/details/{name}"
    else:
        console = f"{_CONSOLE}/iam/home#/users/details/{name}"
        if finding.type in (FindingType.UNUSED_ACCESS_KEY, FindingType.UNUSED_PASSWORD):
            console += "?section=security_credentials"
    regional = f"https://{region}.console.aws.amazon.com"
    analyzer = (
        f"{regional}/access-analyzer/home?region={region}#/unused-access-findings"
        f"?resource={quote(finding.principal_arn, safe='')}"
    )
    hub_id = next((s.id for s in finding.sources if s.source == "security_hub"), "")
    security_hub = (
        f"{regional}/securityhub/home?region={region}#/findings"
        f"?search=Id%3D%255Coperator%255C%253AEQUALS%255C%253A{quote_plus(hub_id)}"
        if hub_id
        else ""
    )
    return Links(console=console, access_analyzer=analyzer, security_hub=security_hub)
