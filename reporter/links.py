"""Console deep links for a finding (reference §5.1; observed formats, not a documented API).

The console host depends on the partition of the principal's ARN (`aws`, `aws-cn`,
`aws-us-gov`); a link to the commercial console would open the wrong sign-in page for China or
GovCloud accounts. Regional subdomains are observed only for the commercial partition, so the
other partitions get their plain host with `?region=`.
"""

from __future__ import annotations

import re
from urllib.parse import quote, quote_plus

from .models import Finding, FindingType, Links

_HOSTS = {
    "aws": "console.aws.amazon.com",
    "aws-cn": "console.amazonaws.cn",
    "aws-us-gov": "console.amazonaws-us-gov.com",
}
# The region becomes part of a host name: anything else (it comes from AWS data or a file
# import) could point the link at another site.
_PARTITION = re.compile(r"aws(-[a-z]+)*")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")


def partition_of(arn: str) -> str:
    """`aws`, `aws-cn`, `aws-us-gov`… from an ARN; `aws` when the ARN does not say.

    Only `[a-z-]` passes: the partition goes into URLs and shell commands.
    """
    parts = arn.split(":", 2)
    if len(parts) == 3 and parts[0] == "arn" and _PARTITION.fullmatch(parts[1]):
        return parts[1]
    return "aws"


def console_host(partition: str) -> str:
    return _HOSTS.get(partition, _HOSTS["aws"])


def _regional(partition: str, region: str) -> str:
    if partition == "aws":
        return f"https://{region}.{_HOSTS['aws']}"
    return f"https://{console_host(partition)}"


def policy_url(policy_arn: str) -> str:
    """The IAM page of a managed policy."""
    host = console_host(partition_of(policy_arn))
    return f"https://{host}/iam/home#/policies/details/{quote(policy_arn, safe='')}"


def identity_center_url(partition: str) -> str:
    """IAM Identity Center, where `AWSReservedSSO_*` roles are managed (never in IAM)."""
    return f"https://{console_host(partition)}/singlesignon/home"


def links_for(finding: Finding, home_region: str) -> Links:
    region = finding.region if _REGION.fullmatch(finding.region) else home_region
    partition = partition_of(finding.principal_arn)
    console_base = f"https://{console_host(partition)}"
    name = quote(finding.principal_name, safe="")
    if finding.principal_type == "role":
        console = f"{console_base}/iam/home#/roles/details/{name}"
    else:
        console = f"{console_base}/iam/home#/users/details/{name}"
        if finding.type in (FindingType.UNUSED_ACCESS_KEY, FindingType.UNUSED_PASSWORD):
            console += "?section=security_credentials"
    regional = _regional(partition, region)
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
