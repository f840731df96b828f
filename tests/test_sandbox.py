"""The sandbox organization: determinism, shape, and the behaviour of each stand-in source.

Every AWS call here goes through ordinary boto3 clients, as product code would make them.
The full 2,000-account build runs only with SANDBOX_SLOW=1 (about a minute).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ParamValidationError

from reporter.models import FindingType
from reporter.sandbox import Sandbox, SandboxSpec, records
from reporter.sandbox.access_analyzer import DETAILS_PAGE

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SPEC = SandboxSpec(seed=7, now=NOW)
UNUSED_TYPES = {t.value for t in FindingType}
ASFF_PREFIX = "Software and Configuration Checks/AWS Security Best Practices/"
# Top-level keys of AWS's published unused-access ASFF record (asff-unused-permission sample),
# plus FirstObservedAt.
ASFF_UNUSED_KEYS = {
    "SchemaVersion", "Id", "ProductArn", "ProductName", "CompanyName", "Region", "GeneratorId",
    "AwsAccountId", "Types", "CreatedAt", "UpdatedAt", "Severity", "Title", "Description",
    "Remediation", "SourceUrl", "ProductFields", "Resources", "WorkflowState", "Workflow",
    "RecordState", "FindingProviderFields", "FirstObservedAt",
}  # fmt: skip
# Top-level keys of AWS's external-access sample (asff-external-access-s3).
ASFF_EXTERNAL_KEYS = {
    "SchemaVersion", "Id", "ProductArn", "GeneratorId", "AwsAccountId", "Types", "CreatedAt",
    "UpdatedAt", "Severity", "Title", "Description", "Remediation", "SourceUrl", "Resources",
    "WorkflowState", "Workflow", "RecordState",
}  # fmt: skip


def _all_asff(session: boto3.Session, page_size: int = 100) -> list[dict[str, Any]]:
    pages = session.client("securityhub").get_paginator("get_findings")
    return [
        r for p in pages.paginate(PaginationConfig={"PageSize": page_size}) for r in p["Findings"]
    ]


def _owner_account(record: dict[str, Any]) -> str | None:
    fields = {k.lower(): v for k, v in record.get("ProductFields", {}).items()}
    return fields.get("resourceowneraccount")


def _list_findings(client: Any, analyzer_arn: str, **kwargs: Any) -> list[dict[str, Any]]:
    pages = client.get_paginator("list_findings_v2").paginate(analyzerArn=analyzer_arn, **kwargs)
    return [f for page in pages for f in page["findings"]]


@pytest.fixture(scope="class")
def sandbox() -> Iterator[Sandbox]:
    """One default build (12 members, seed 7), shared by the read-only checks of a class."""
    with Sandbox(SPEC) as sandbox:
        yield sandbox


@pytest.fixture(scope="class")
def security(sandbox: Sandbox) -> boto3.Session:
    return sandbox.assumed_session(sandbox.delegated_admin_role_arn)


@pytest.fixture(scope="class")
def asff(security: boto3.Session) -> list[dict[str, Any]]:
    return _all_asff(security, page_size=25)


class TestDefaultOrganization:
    # Organizations -----------------------------------------------------------------------

    def test_accounts_ous_and_state(self, sandbox: Sandbox) -> None:
        org = sandbox.session().client("organizations")
        listed = [
            a
            for page in org.get_paginator("list_accounts").paginate(
                PaginationConfig={"PageSize": 5}
            )
            for a in page["Accounts"]
        ]
        assert len(listed) == 14 == len(sandbox.accounts)
        assert {a["Id"] for a in listed} == {a.id for a in sandbox.accounts}
        assert all(re.fullmatch(r"\d{12}", a["Id"]) for a in listed)
        by_id = {a["Id"]: a for a in listed}
        assert sandbox.management_account_id == "123456789012"
        assert by_id[sandbox.security_account_id]["Name"] == "security-tooling"
        suspended = [a for a in listed if a["State"] == "SUSPENDED"]
        assert len(suspended) == 1
        assert sandbox.account(suspended[0]["Id"]).state == "SUSPENDED"
        for account in sandbox.accounts:
            assert by_id[account.id]["Name"] == account.name
            assert by_id[account.id]["State"] == account.state
            assert _ou_path(org, account.id) == account.ou_path
        # Nested OUs: Workloads holds Prod and NonProd.
        root = org.list_roots()["Roots"][0]["Id"]
        top = {
            ou["Name"]: ou["Id"]
            for ou in org.list_organizational_units_for_parent(ParentId=root)["OrganizationalUnits"]
        }
        assert {"Workloads", "Sandbox", "Infrastructure", "Security"} <= set(top)
        nested = org.list_organizational_units_for_parent(ParentId=top["Workloads"])
        assert {ou["Name"] for ou in nested["OrganizationalUnits"]} == {"Prod", "NonProd"}

    def test_account_tags(self, sandbox: Sandbox) -> None:
        org = sandbox.session().client("organizations")
        tags = {
            a.id: {
                t["Key"]: t["Value"] for t in org.list_tags_for_resource(ResourceId=a.id)["Tags"]
            }
            for a in sandbox.accounts
        }
        assert all(dict(a.tags) == tags[a.id] for a in sandbox.accounts)
        assert all("cost-center" in t for t in tags.values())
        unowned = [a for a in sandbox.accounts if "owner" not in tags[a.id]]
        assert len(unowned) == 1 and unowned[0].state == "ACTIVE"
        assert unowned[0].id not in {sandbox.management_account_id, sandbox.security_account_id}
        owners = Counter(t["owner"] for t in tags.values() if "owner" in t)
        assert all(re.fullmatch(r"[a-z.-]+@example\.com", o) for o in owners)
        assert sum(1 for n in owners.values() if n >= 2) >= 2  # some own several accounts

    def test_delegated_administrator(self, sandbox: Sandbox) -> None:
        org = sandbox.session().client("organizations")
        enabled = org.list_aws_service_access_for_organization()["EnabledServicePrincipals"]
        principals = ("access-analyzer.amazonaws.com", "securityhub.amazonaws.com")
        assert set(principals) <= {s["ServicePrincipal"] for s in enabled}
        for principal in principals:
            admins = org.list_delegated_administrators(ServicePrincipal=principal)
            assert [a["Id"] for a in admins["DelegatedAdministrators"]] == [
                sandbox.security_account_id
            ]

    # IAM ---------------------------------------------------------------------------------

    def test_assume_role_acts_in_member_account(self, sandbox: Sandbox) -> None:
        member = next(a for a in sandbox.accounts if a.ou_path == ("Workloads", "Prod"))
        session = sandbox.assumed_session(sandbox.member_role_arn(member.id))
        identity = session.client("sts").get_caller_identity()
        assert identity["Account"] == member.id
        assert ":assumed-role/UnusedAccessReporterReadOnly/" in identity["Arn"]
        roles = session.client("iam").list_roles()["Roles"]
        assert all(r["Arn"].startswith(f"arn:aws:iam::{member.id}:") for r in roles)
        assert "UnusedAccessReporterReadOnly" in {r["RoleName"] for r in roles}

    def test_iam_principals_are_realistic(self, sandbox: Sandbox) -> None:
        seen: Counter[str] = Counter()
        for account in sandbox.accounts[2:]:
            iam = sandbox.assumed_session(sandbox.member_role_arn(account.id)).client("iam")
            for role in iam.list_roles()["Roles"]:
                name, path = role["RoleName"], role["Path"]
                if path.startswith("/aws-service-role/"):
                    seen["service-linked"] += name.startswith("AWSServiceRoleFor")
                if path.startswith("/aws-reserved/sso.amazonaws.com/"):
                    seen["sso"] += bool(re.fullmatch(r"AWSReservedSSO_\w+_[0-9a-f]{16}", name))
                tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=name)["Tags"]}
                seen["cloudformation"] += "aws:cloudformation:stack-name" in tags
                attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
                seen["admin"] += any(p["PolicyName"] == "AdministratorAccess" for p in attached)
                seen["odd-name"] += bool(re.search(r"[+=,.@]", name))
                last = iam.get_role(RoleName=name)["Role"].get("RoleLastUsed", {})
                # moto stamps the role this test assumed with the wall clock, as AWS would.
                if last.get("LastUsedDate") and name != sandbox.member_role_name:
                    assert NOW - timedelta(days=401) <= last["LastUsedDate"] <= NOW
            for user in iam.list_users()["Users"]:
                name = user["UserName"]
                seen["odd-name"] += bool(re.search(r"[+=,.@]", name))
                try:
                    iam.get_login_profile(UserName=name)
                    seen["console"] += 1
                except iam.exceptions.NoSuchEntityException:
                    pass
                seen["keys"] += len(iam.list_access_keys(UserName=name)["AccessKeyMetadata"])
        for kind in (
            "service-linked",
            "sso",
            "cloudformation",
            "admin",
            "odd-name",
            "console",
            "keys",
        ):
            assert seen[kind] >= 2, kind

    def test_iam_agrees_with_findings(self, sandbox: Sandbox, security: boto3.Session) -> None:
        analyzer = security.client("accessanalyzer")
        checked = Counter[str]()
        clients: dict[str, Any] = {}
        for finding in sandbox.reportable:
            if finding.finding_type not in {"UnusedIAMUserAccessKey", "UnusedIAMRole"}:
                continue
            if finding.account_id not in clients:
                role = sandbox.member_role_arn(finding.account_id)
                clients[finding.account_id] = sandbox.assumed_session(role).client("iam")
            iam = clients[finding.account_id]
            name = finding.principal_arn.rsplit("/", 1)[1]
            details = analyzer.get_finding_v2(
                analyzerArn=sandbox.analyzer_arn, id=finding.finding_id
            )
            if finding.finding_type == "UnusedIAMUserAccessKey":
                keys = {
                    k["AccessKeyId"]
                    for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
                }
                assert set(finding.access_key_ids) <= keys
                for item in details["findingDetails"]:
                    key = item["unusedIamUserAccessKeyDetails"]
                    used = iam.get_access_key_last_used(AccessKeyId=key["accessKeyId"])
                    assert used["AccessKeyLastUsed"].get("LastUsedDate") == key.get("lastAccessed")
            else:
                role = iam.get_role(RoleName=name)["Role"]
                expected = details["findingDetails"][0]["unusedIamRoleDetails"].get("lastAccessed")
                assert role.get("RoleLastUsed", {}).get("LastUsedDate") == expected
                if expected is not None:
                    assert expected <= NOW - timedelta(days=30)
            checked[finding.finding_type] += 1
        assert checked["UnusedIAMUserAccessKey"] >= 2 and checked["UnusedIAMRole"] >= 2

    # Security Hub ------------------------------------------------------------------------

    def test_security_hub_records_shape_and_attribution(
        self, sandbox: Sandbox, asff: list[dict[str, Any]]
    ) -> None:
        unused = [r for r in asff if r.get("ProductFields", {}).get("findingType") in UNUSED_TYPES]
        external = [r for r in asff if r not in unused]
        assert len(unused) == len(sandbox.expected)
        assert len(external) == len(sandbox.external_finding_ids) == 3
        expected = {e.finding_id: e for e in sandbox.expected}
        region, security = sandbox.home_region, sandbox.security_account_id
        spellings = Counter[str]()
        for record in unused:
            assert set(record) == ASFF_UNUSED_KEYS
            fields = record["ProductFields"]
            truth = expected[fields["findingId"]]
            spellings.update(k for k in fields if k.lower() == "resourceowneraccount")
            assert record["AwsAccountId"] == security != truth.account_id
            assert _owner_account(record) == truth.account_id
            assert record["Resources"][0]["Id"] == truth.principal_arn
            assert record["Resources"][0]["Type"] == (
                "AwsIamUser" if ":user/" in truth.principal_arn else "AwsIamRole"
            )
            assert fields["findingType"] == truth.finding_type
            assert record["Id"].startswith(f"{sandbox.analyzer_arn}/{truth.principal_arn}/")
            assert (
                record["ProductArn"] == f"arn:aws:securityhub:{region}::product/aws/access-analyzer"
            )
            assert record["GeneratorId"] == "aws/access-analyzer"
            assert record["Types"][0].startswith(ASFF_PREFIX + "Unused ")
            assert record["Types"] == record["FindingProviderFields"]["Types"]
            kind = record["Resources"][0]["Type"]
            assert re.fullmatch(
                rf"{kind}/{re.escape(truth.principal_arn)}/ contains unused .+", record["Title"]
            )
            assert record["RecordState"] == ("ACTIVE" if truth.active else "ARCHIVED")
            assert record["SourceUrl"].startswith(f"https://{region}.console.aws.amazon.com/")
            assert record["Severity"]["Label"] in {"LOW", "MEDIUM"}
            assert record["FirstObservedAt"] == record["CreatedAt"] <= record["UpdatedAt"]
        assert spellings["resourceOwnerAccount"] > spellings["ResourceOwnerAccount"] > 0
        types = Counter(r["ProductFields"]["findingType"] for r in unused)
        assert set(types) == UNUSED_TYPES
        assert Counter(r["RecordState"] for r in unused)["ARCHIVED"] >= 2
        for record in external:
            assert set(record) == ASFF_EXTERNAL_KEYS
            assert "External Access Granted" in record["Types"][0]
            assert "ProductFields" not in record
            assert record["Resources"][0]["Details"]["Other"]["External Principal Type"] == "AWS"
        assert any(r["Resources"][0]["Type"] == "AwsIamRole" for r in external)  # a decoy role

    def test_security_hub_round_trip_and_moto_facts(
        self, sandbox: Sandbox, security: boto3.Session, asff: list[dict[str, Any]]
    ) -> None:
        hub = security.client("securityhub")
        # Filters are ignored: a filter no record matches still returns everything.
        filtered = hub.get_findings(
            Filters={"AwsAccountId": [{"Value": "000000000000", "Comparison": "EQUALS"}]},
            MaxResults=100,
        )
        assert len(filtered["Findings"]) == min(100, len(asff))
        # Records come back exactly as imported, in import order, float for `double` members.
        unused = sandbox.plan.findings
        assert [r["Id"] for r in asff[: len(unused)]] == [
            r["Id"] for r in (_rendered(sandbox, f) for f in unused)
        ]
        assert asff[0] == _rendered(sandbox, unused[0])
        assert isinstance(asff[0]["Severity"]["Product"], float)
        with pytest.raises(ClientError) as error:
            hub.get_findings(MaxResults=101)
        assert error.value.response["Error"]["Code"] == "InvalidInputException"
        last = hub.get_findings(
            MaxResults=100, NextToken=hub.get_findings(MaxResults=50)["NextToken"]
        )
        assert "NextToken" not in last and len(last["Findings"]) == len(asff) - 50

    # Access Analyzer ---------------------------------------------------------------------

    def test_list_and_get_analyzers(self, sandbox: Sandbox, security: boto3.Session) -> None:
        analyzers = security.client("accessanalyzer").list_analyzers()["analyzers"]
        by_type = {a["type"]: a for a in analyzers}
        assert by_type["ORGANIZATION_UNUSED_ACCESS"]["arn"] == sandbox.analyzer_arn
        assert by_type["ORGANIZATION"]["arn"] == sandbox.external_analyzer_arn
        assert "configuration" not in by_type["ORGANIZATION_UNUSED_ACCESS"]
        only_unused = security.client("accessanalyzer").list_analyzers(
            type="ORGANIZATION_UNUSED_ACCESS"
        )["analyzers"]
        assert [a["arn"] for a in only_unused] == [sandbox.analyzer_arn]
        detail = security.client("accessanalyzer").get_analyzer(analyzerName="org-unused-access")
        assert detail["analyzer"]["configuration"]["unusedAccess"]["unusedAccessAge"] == 30
        # The analyzer lives in the delegated administrator, home Region only.
        assert sandbox.session().client("accessanalyzer").list_analyzers()["analyzers"] == []
        other_region = security.client("accessanalyzer", region_name="eu-west-1")
        assert other_region.list_analyzers()["analyzers"] == []

    def test_list_findings_v2_paginator_and_filters(
        self, sandbox: Sandbox, security: boto3.Session
    ) -> None:
        client = security.client("accessanalyzer")
        everything = _list_findings(client, sandbox.analyzer_arn, PaginationConfig={"PageSize": 7})
        assert sorted(f["id"] for f in everything) == sorted(e.finding_id for e in sandbox.expected)
        account = Counter(e.account_id for e in sandbox.expected).most_common(1)[0][0]
        selected = _list_findings(
            client,
            sandbox.analyzer_arn,
            filter={"resourceOwnerAccount": {"eq": [account]}, "status": {"eq": ["ACTIVE"]}},
            PaginationConfig={"PageSize": 2},
        )
        assert {f["id"] for f in selected} == {
            e.finding_id for e in sandbox.expected if e.account_id == account and e.active
        }
        assert len(selected) >= 3  # more than one page
        not_permission = _list_findings(
            client,
            sandbox.analyzer_arn,
            filter={
                "findingType": {"neq": ["UnusedPermission"]},
                "resourceType": {"eq": ["AWS::IAM::User"]},
            },
        )
        assert not_permission and all(
            f["findingType"] != "UnusedPermission" and f["resourceType"] == "AWS::IAM::User"
            for f in not_permission
        )
        summary = everything[0]
        assert set(summary) == {
            "analyzedAt", "createdAt", "id", "resource", "resourceType",
            "resourceOwnerAccount", "status", "updatedAt", "findingType",
        }  # fmt: skip
        assert summary["createdAt"].tzinfo is not None
        with pytest.raises(ClientError) as error:
            client.list_findings_v2(
                analyzerArn=sandbox.analyzer_arn, filter={"isPublic": {"eq": ["true"]}}
            )
        assert error.value.response["Error"]["Code"] == "ValidationException"

    def test_get_finding_v2_details_across_pages(
        self, sandbox: Sandbox, security: boto3.Session
    ) -> None:
        client = security.client("accessanalyzer")
        broad = max(
            (e for e in sandbox.expected if e.finding_type == "UnusedPermission"),
            key=lambda e: len(e.service_namespaces),
        )
        assert len(broad.service_namespaces) > DETAILS_PAGE
        first = client.get_finding_v2(analyzerArn=sandbox.analyzer_arn, id=broad.finding_id)
        assert len(first["findingDetails"]) == DETAILS_PAGE and "nextToken" in first
        full = (
            client.get_paginator("get_finding_v2")
            .paginate(
                analyzerArn=sandbox.analyzer_arn,
                id=broad.finding_id,
                PaginationConfig={"PageSize": 4},
            )
            .build_full_result()
        )
        services = [d["unusedPermissionDetails"] for d in full["findingDetails"]]
        assert tuple(s["serviceNamespace"] for s in services) == broad.service_namespaces
        assert full["resourceOwnerAccount"] == broad.account_id
        assert full["resource"] == broad.principal_arn
        # Across all permission findings: service-level-only namespaces and undated items exist.
        items = [
            d["unusedPermissionDetails"]
            for e in sandbox.expected
            if e.finding_type == "UnusedPermission"
            for d in client.get_paginator("get_finding_v2")
            .paginate(analyzerArn=sandbox.analyzer_arn, id=e.finding_id)
            .build_full_result()["findingDetails"]
        ]
        assert any("actions" not in i for i in items)
        assert any("lastAccessed" not in i for i in items)
        actions = [a for i in items for a in i.get("actions", [])]
        assert any("lastAccessed" not in a for a in actions)
        assert any("lastAccessed" in a for a in actions)
        keys = next(e for e in sandbox.expected if e.access_key_ids)
        detail = client.get_finding_v2(analyzerArn=sandbox.analyzer_arn, id=keys.finding_id)
        assert [
            d["unusedIamUserAccessKeyDetails"]["accessKeyId"] for d in detail["findingDetails"]
        ] == list(keys.access_key_ids)

    def test_recommendation_flow(self, sandbox: Sandbox, security: boto3.Session) -> None:
        client = security.client("accessanalyzer")
        arn = sandbox.analyzer_arn
        finding = next(
            e
            for e in sandbox.expected
            if e.finding_type == "UnusedPermission"
            and "AWSReservedSSO" not in e.principal_arn
            and any(p.inline_policies for p in sandbox.plan.principals if p.arn == e.principal_arn)
        )
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.get_finding_recommendation(analyzerArn=arn, id=finding.finding_id)
        generated = client.generate_finding_recommendation(analyzerArn=arn, id=finding.finding_id)
        assert generated["ResponseMetadata"]["HTTPStatusCode"] == 200
        first = client.get_finding_recommendation(analyzerArn=arn, id=finding.finding_id)
        assert first["status"] == "IN_PROGRESS" and "recommendedSteps" not in first
        result = (
            client.get_paginator("get_finding_recommendation")
            .paginate(analyzerArn=arn, id=finding.finding_id, PaginationConfig={"PageSize": 1})
            .build_full_result()
        )
        assert result["status"] == "SUCCEEDED"
        assert result["recommendationType"] == "UNUSED_PERMISSION_RECOMMENDATION"
        assert result["resourceArn"] == finding.principal_arn
        steps = [s["unusedPermissionsRecommendedStep"] for s in result["recommendedSteps"]]
        assert len(steps) >= 2
        for step in steps:
            assert step["recommendedAction"] in {"CREATE_POLICY", "DETACH_POLICY"}
            managed = step["existingPolicyId"].startswith("arn:aws:iam::aws:policy/")
            assert ("policyUpdatedAt" in step) == managed
            if step["recommendedAction"] == "CREATE_POLICY":
                document = json.loads(step["recommendedPolicy"])
                assert document["Statement"][0]["Effect"] == "Allow"
        # Each CREATE_POLICY is followed by the DETACH_POLICY of the same policy.
        for index, step in enumerate(steps):
            if step["recommendedAction"] == "CREATE_POLICY":
                follow = steps[index + 1]
                assert follow["recommendedAction"] == "DETACH_POLICY"
                assert follow["existingPolicyId"] == step["existingPolicyId"]
        assert any(not s["existingPolicyId"].startswith("arn:") for s in steps)  # an inline policy
        role_finding = next(e for e in sandbox.expected if e.finding_type == "UnusedIAMRole")
        with pytest.raises(ClientError) as error:
            client.generate_finding_recommendation(analyzerArn=arn, id=role_finding.finding_id)
        assert error.value.response["Error"]["Code"] == "ValidationException"

    def test_errors_are_aws_shaped(self, sandbox: Sandbox, security: boto3.Session) -> None:
        client = security.client("accessanalyzer")
        with pytest.raises(ParamValidationError):
            client.get_finding_v2(analyzerArn=sandbox.analyzer_arn)  # no id
        with pytest.raises(ParamValidationError):
            client.get_finding_recommendation(
                analyzerArn=sandbox.analyzer_arn, id="x", maxResults=0
            )
        with pytest.raises(client.exceptions.ResourceNotFoundException) as missing:
            client.get_finding_v2(analyzerArn=sandbox.analyzer_arn, id="no-such-finding")
        assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        with pytest.raises(ClientError) as unknown:
            client.update_findings(analyzerArn=sandbox.analyzer_arn, status="ARCHIVED", ids=["x"])
        assert unknown.value.response["Error"]["Code"] == "UnknownOperationException"
        assert unknown.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        # The management account may not read the delegated administrator's analyzer.
        management = sandbox.session().client("accessanalyzer")
        with pytest.raises(management.exceptions.AccessDeniedException):
            management.list_findings_v2(analyzerArn=sandbox.analyzer_arn)
        with pytest.raises(ClientError) as token:
            client.list_findings_v2(analyzerArn=sandbox.analyzer_arn, nextToken="garbage")
        assert token.value.response["Error"]["Code"] == "ValidationException"

    def test_sources_agree(
        self, sandbox: Sandbox, security: boto3.Session, asff: list[dict[str, Any]]
    ) -> None:
        client = security.client("accessanalyzer")
        listed = {f["id"]: f for f in _list_findings(client, sandbox.analyzer_arn)}
        hub = {r["ProductFields"]["findingId"]: r for r in asff if "ProductFields" in r}
        assert set(listed) == set(hub) == {e.finding_id for e in sandbox.expected}
        for finding in sandbox.expected:
            summary, record = listed[finding.finding_id], hub[finding.finding_id]
            assert summary["status"] == finding.status
            assert summary["resource"] == record["Resources"][0]["Id"] == finding.principal_arn
            assert summary["resourceOwnerAccount"] == _owner_account(record) == finding.account_id
        external = _list_findings(client, sandbox.external_analyzer_arn)
        assert {f["id"] for f in external} == set(sandbox.external_finding_ids)
        assert {f["findingType"] for f in external} == {"ExternalAccess"}

    def test_expected_and_reportable(self, sandbox: Sandbox) -> None:
        assert {e.finding_type for e in sandbox.expected} == UNUSED_TYPES
        statuses = Counter(e.status for e in sandbox.expected)
        assert statuses["ARCHIVED"] >= 1 and statuses["RESOLVED"] >= 1
        assert all(e.active == (e.status == "ACTIVE") for e in sandbox.expected)
        suspended = next(a.id for a in sandbox.accounts if a.state == "SUSPENDED")
        assert any(e.account_id == suspended for e in sandbox.expected)
        reportable = set(sandbox.reportable)
        assert reportable == {e for e in sandbox.expected if e.active and e.account_id != suspended}
        owners = {a.id: a.tags.get("owner") for a in sandbox.accounts}
        assert all(e.owner == owners[e.account_id] for e in sandbox.expected)
        assert any(e.owner is None for e in reportable)
        assert len({e.owner for e in reportable}) >= 4


def _ou_path(org: Any, child_id: str) -> tuple[str, ...]:
    path: list[str] = []
    while True:
        parent = org.list_parents(ChildId=child_id)["Parents"][0]
        if parent["Type"] == "ROOT":
            return tuple(reversed(path))
        unit = org.describe_organizational_unit(OrganizationalUnitId=parent["Id"])
        path.append(unit["OrganizationalUnit"]["Name"])
        child_id = parent["Id"]


def _rendered(sandbox: Sandbox, finding: Any) -> dict[str, Any]:
    ref = records.AnalyzerRef(
        sandbox.analyzer_arn, "org-unused-access", sandbox.security_account_id, sandbox.home_region
    )
    return records.asff_record(finding, ref, sandbox.now)


def _snapshot(spec: SandboxSpec) -> dict[str, Any]:
    with Sandbox(spec) as sandbox:
        security = sandbox.assumed_session(sandbox.delegated_admin_role_arn)
        client = security.client("accessanalyzer")
        details = [
            client.get_finding_v2(
                analyzerArn=sandbox.analyzer_arn, id=e.finding_id, maxResults=100
            )["findingDetails"]
            for e in sandbox.expected[:10]
        ]
        member = sandbox.accounts[3].id
        iam = sandbox.assumed_session(sandbox.member_role_arn(member)).client("iam")
        roles = sorted((r["RoleName"], r["RoleId"]) for r in iam.list_roles()["Roles"])
        org = sandbox.session().client("organizations")
        return {
            "accounts": sandbox.accounts,
            "expected": sandbox.expected,
            "asff": _all_asff(security),
            "details": details,
            "roles": roles,
            "root": org.list_roots()["Roots"][0]["Id"],
        }


def test_same_seed_same_organization_other_seed_differs() -> None:
    first, second = _snapshot(SPEC), _snapshot(SPEC)
    assert first == second
    other = _snapshot(SandboxSpec(seed=8, now=NOW))
    assert {a.id for a in other["accounts"]} & {a.id for a in first["accounts"]} == {"123456789012"}
    assert other["expected"] != first["expected"]
    assert other["asff"] != first["asff"]


def test_bulk_store_serves_what_the_api_import_stores() -> None:
    spec = SandboxSpec(seed=3, member_accounts=4, ous=2, findings_per_account=6, now=NOW)
    results = []
    for via_api in (True, False):
        with Sandbox(replace(spec, security_hub_via_api=via_api)) as sandbox:
            security = sandbox.assumed_session(sandbox.delegated_admin_role_arn)
            results.append(_all_asff(security, page_size=7))
            hub = security.client("securityhub")
            with pytest.raises(ClientError) as error:
                hub.get_findings(MaxResults=101)
            assert error.value.response["Error"]["Code"] == "InvalidInputException"
    assert results[0] == results[1]
    assert len(results[0]) == 4 * 6 + 3


def test_small_scale_build_pages_through_everything() -> None:
    started = time.perf_counter()
    with Sandbox(SandboxSpec(member_accounts=200, findings_per_account=20, now=NOW)) as sandbox:
        built = time.perf_counter() - started
        assert built < 30
        assert len(sandbox.expected) == 200 * 20
        security = sandbox.assumed_session(sandbox.delegated_admin_role_arn)
        records = _all_asff(security)
        assert len(records) == 200 * 20 + 3
        assert len({r["Id"] for r in records}) == len(records)
        accounts = [
            a
            for page in sandbox.session()
            .client("organizations")
            .get_paginator("list_accounts")
            .paginate()
            for a in page["Accounts"]
        ]
        assert len(accounts) == 202 and len({a["Id"] for a in accounts}) == 202
        owners = {a.tags.get("owner") for a in sandbox.accounts}
        assert len(owners) >= 50


def test_session_after_close_and_nested_sandbox_refuse() -> None:
    with Sandbox(SPEC) as sandbox:
        session = sandbox.session()
        client = session.client("accessanalyzer")
        with pytest.raises(RuntimeError, match="another Sandbox"), Sandbox(SPEC):
            pass
    with pytest.raises(RuntimeError, match="closed"):
        client.list_analyzers()


@pytest.mark.skipif(not os.environ.get("SANDBOX_SLOW"), reason="set SANDBOX_SLOW=1 (~1 min)")
def test_full_scale_build() -> None:
    started = time.perf_counter()
    with Sandbox(SandboxSpec(member_accounts=2000, findings_per_account=50)) as sandbox:
        assert time.perf_counter() - started < 120
        assert len(sandbox.accounts) == 2002
        assert len(sandbox.expected) == 100_000
        security = sandbox.assumed_session(sandbox.delegated_admin_role_arn)
        hub = security.client("securityhub")
        pages = hub.get_paginator("get_findings").paginate()
        assert sum(len(p["Findings"]) for p in pages) == 100_003
        owners = {e.owner for e in sandbox.expected}
        assert len(owners) >= 500
