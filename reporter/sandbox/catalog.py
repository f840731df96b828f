"""Static, realistic vocabulary the generator draws from: OUs, teams, people, IAM names, actions.

Nothing here is random; `data.py` picks from these lists with a seeded RNG. The IAM names
deliberately include IAM's odd-but-legal characters (`+=,.@-`), because console links, CLI
commands and file names built from them are where reporters break.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

# Leaf OUs that hold member accounts, in the order they are used; `ous=4` takes the first four.
LEAF_OUS: tuple[tuple[str, ...], ...] = (
    ("Workloads", "Prod"),
    ("Workloads", "NonProd"),
    ("Sandbox",),
    ("Infrastructure",),
    ("Workloads", "Staging"),
    ("Data", "Analytics"),
    ("Data", "Platform"),
    ("Policy Staging",),
)
SECURITY_OU: tuple[str, ...] = ("Security",)

# The account-name suffix that goes with each leaf OU's last element.
OU_SUFFIX = {
    "Prod": "prod",
    "NonProd": "dev",
    "Staging": "staging",
    "Sandbox": "sandbox",
    "Analytics": "analytics",
    "Platform": "data",
    "Policy Staging": "policy-test",
}
INFRA_ACCOUNTS = ("shared-network", "shared-services", "log-archive", "backup", "dns", "ci-cd")
TEAMS = (
    "payments",
    "checkout",
    "identity",
    "search",
    "ledger",
    "mobile",
    "catalog",
    "pricing",
    "fraud",
    "notifications",
    "billing",
    "growth",
    "media",
    "logistics",
    "support",
    "recs",
)
ENVIRONMENTS = {"prod": "production", "staging": "staging", "dev": "development"}

FIRST_NAMES = (
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "niaj",
    "olivia",
    "peggy",
    "rupert",
    "sybil",
    "trent",
    "victor",
    "walter",
    "yvonne",
)
LAST_NAMES = (
    "nguyen",
    "schmidt",
    "okafor",
    "garcia",
    "kowalski",
    "tanaka",
    "dubois",
    "haddad",
    "silva",
    "larsen",
    "murphy",
    "rossi",
    "kim",
    "novak",
    "patel",
    "cohen",
    "ivanova",
    "mendes",
    "berg",
    "osei",
    "fischer",
    "moreau",
    "sato",
    "walsh",
    "costa",
)
EMAIL_DOMAIN = "example.com"

# IAM users: people with console passwords, and machines with access keys.
HUMAN_USERS = ("j.doe", "m.rossi", "a.kumar", "li.wei", "e.martin", "k.berg")
SERVICE_USERS = (
    "ci-deploy",
    "terraform-runner",
    "svc.backup@ops",
    "legacy+ftp-sync",
    "etl=nightly",
    "github-actions",
    "datadog-integration",
    "s3-uploader",
    "monitoring,readonly",
    "jenkins",
)
APP_ROLES = (
    "app-server",
    "LegacyEtlRole",
    "lambda-image-resize",
    "batch-worker",
    "ReadOnly@analytics",
    "deploy.pipeline+prod",
    "bi=reporting,ro",
    "data-science-notebook",
    "ec2-bastion",
    "vendor-audit-access",
    "glue-crawler",
    "step-functions-orchestrator",
    "admin-breakglass",
)
# (service principal, role name) of service-linked roles, under /aws-service-role/<service>/.
SERVICE_LINKED_ROLES = (
    ("ecs.amazonaws.com", "AWSServiceRoleForECS"),
    ("elasticloadbalancing.amazonaws.com", "AWSServiceRoleForElasticLoadBalancing"),
    ("rds.amazonaws.com", "AWSServiceRoleForRDS"),
    ("autoscaling.amazonaws.com", "AWSServiceRoleForAutoScaling"),
)
SSO_PERMISSION_SETS = ("AdministratorAccess", "ReadOnlyAccess", "PowerUserAccess", "DataEngineer")
CFN_STACKS = (
    ("payments-api", "TaskRole"),
    ("image-pipeline", "ResizeFunctionRole"),
    ("vpc-baseline", "FlowLogsRole"),
    ("orders-service", "ServiceRole"),
)
# Who a role of a given kind trusts; `data.py` picks one for generic app roles.
APP_TRUST = (
    "ec2.amazonaws.com",
    "lambda.amazonaws.com",
    "ecs-tasks.amazonaws.com",
    "glue.amazonaws.com",
)

# AWS managed policies attached to principals. Their real documents come from moto's copy of
# the AWS managed policy list, so the recommended policies trim real grants.
MANAGED_POLICIES = (
    "AmazonS3ReadOnlyAccess",
    "AmazonBedrockReadOnly",
    "AmazonDynamoDBReadOnlyAccess",
    "AmazonEC2ReadOnlyAccess",
    "AmazonSQSFullAccess",
    "SecretsManagerReadWrite",
    "CloudWatchLogsReadOnlyAccess",
    "AWSLambda_ReadOnlyAccess",
    "AmazonRDSReadOnlyAccess",
    "AmazonEC2ContainerRegistryReadOnly",
    "AmazonKinesisReadOnlyAccess",
    "AmazonSNSFullAccess",
)
ADMIN_POLICY = "AdministratorAccess"
# Policies for the reporter's own roles (section 6 of the reference).
REPORTER_MEMBER_POLICIES = ("IAMReadOnlyAccess",)
REPORTER_ADMIN_POLICIES = ("IAMAccessAnalyzerReadOnlyAccess", "AWSSecurityHubReadOnlyAccess")

# Concrete actions per service namespace: the unused actions that findings list are drawn from
# here (a policy's `s3:Get*` becomes the `s3:Get...` actions below).
NAMESPACE_ACTIONS: dict[str, tuple[str, ...]] = {
    "s3": (
        "s3:GetObject",
        "s3:GetObjectAcl",
        "s3:GetObjectTagging",
        "s3:GetObjectVersion",
        "s3:GetBucketPolicy",
        "s3:GetBucketTagging",
        "s3:GetBucketVersioning",
        "s3:ListBucket",
        "s3:ListAllMyBuckets",
        "s3:ListBucketVersions",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:PutBucketPolicy",
    ),
    "s3-object-lambda": ("s3-object-lambda:GetObject", "s3-object-lambda:ListBucket"),
    "ec2": (
        "ec2:DescribeInstances",
        "ec2:DescribeVpcs",
        "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups",
        "ec2:RunInstances",
        "ec2:TerminateInstances",
        "ec2:CreateTags",
    ),
    "dynamodb": (
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:Scan",
        "dynamodb:DescribeTable",
        "dynamodb:ListTables",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
    ),
    "lambda": (
        "lambda:ListFunctions",
        "lambda:ListLayers",
        "lambda:GetFunction",
        "lambda:GetFunctionConfiguration",
        "lambda:InvokeFunction",
        "lambda:UpdateFunctionCode",
    ),
    "sqs": (
        "sqs:SendMessage",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ListQueues",
        "sqs:PurgeQueue",
    ),
    "sns": ("sns:Publish", "sns:ListTopics", "sns:GetTopicAttributes", "sns:Subscribe"),
    "kms": (
        "kms:Decrypt",
        "kms:Encrypt",
        "kms:DescribeKey",
        "kms:ListAliases",
        "kms:GenerateDataKey",
    ),
    "secretsmanager": (
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
        "secretsmanager:ListSecrets",
        "secretsmanager:PutSecretValue",
        "secretsmanager:CreateSecret",
    ),
    "logs": (
        "logs:DescribeLogGroups",
        "logs:GetLogEvents",
        "logs:FilterLogEvents",
        "logs:StartQuery",
        "logs:GetQueryResults",
    ),
    "cloudwatch": (
        "cloudwatch:GetMetricData",
        "cloudwatch:ListMetrics",
        "cloudwatch:DescribeAlarms",
    ),
    "bedrock": (
        "bedrock:ListFoundationModels",
        "bedrock:GetFoundationModel",
        "bedrock:ListCustomModels",
        "bedrock:InvokeModel",
    ),
    "rds": ("rds:DescribeDBInstances", "rds:DescribeDBClusters", "rds:ListTagsForResource"),
    "ecr": (
        "ecr:GetAuthorizationToken",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "ecr:DescribeRepositories",
        "ecr:ListImages",
    ),
    "kinesis": ("kinesis:DescribeStream", "kinesis:GetRecords", "kinesis:ListStreams"),
    "iam": (
        "iam:GetRole",
        "iam:ListRoles",
        "iam:PassRole",
        "iam:CreateRole",
        "iam:AttachRolePolicy",
    ),
    "glue": ("glue:GetTable", "glue:GetDatabase", "glue:StartCrawler", "glue:CreateTable"),
    "athena": ("athena:StartQueryExecution", "athena:GetQueryResults", "athena:ListWorkGroups"),
    "cloudformation": (
        "cloudformation:DescribeStacks",
        "cloudformation:ListStacks",
        "cloudformation:CreateStack",
    ),
    "states": ("states:StartExecution", "states:DescribeExecution", "states:ListStateMachines"),
    "ssm": ("ssm:GetParameter", "ssm:GetParameters", "ssm:PutParameter", "ssm:SendCommand"),
    "elasticloadbalancing": (
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeTargetGroups",
    ),
    "autoscaling": ("autoscaling:DescribeAutoScalingGroups", "autoscaling:UpdateAutoScalingGroup"),
    "route53": ("route53:ListHostedZones", "route53:ChangeResourceRecordSets"),
    "sagemaker": ("sagemaker:ListModels", "sagemaker:DescribeModel"),
    "redshift": ("redshift:DescribeClusters", "redshift:GetClusterCredentials"),
    "xray": ("xray:PutTraceSegments", "xray:GetTraceSummaries"),
    "tag": ("tag:GetResources", "tag:GetTagKeys"),
    "dax": ("dax:DescribeClusters", "dax:GetItem"),
    "application-autoscaling": ("application-autoscaling:DescribeScalableTargets",),
}
# Access Analyzer reports action-level data for about 200 services and only service-level data
# for the rest (reference §1.6), so findings for these namespaces carry no `actions`.
SERVICE_LEVEL_ONLY = frozenset(
    {"sagemaker", "redshift", "xray", "tag", "dax", "application-autoscaling"}
)

AWS_REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2")
# Account outside the organization that external-access findings grant to.
EXTERNAL_ACCOUNT = "444455556666"


@cache
def _managed_policy_text() -> str:
    # Imported lazily: moto's list is 4.7 MB of text and only the sandbox needs it.
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    return str(aws_managed_policies_data)


@cache
def managed_policy(name: str) -> dict[str, Any]:
    """One AWS managed policy as moto ships it (`Document`, `Path`, `UpdateDate`, ...).

    Decodes only the entry asked for: parsing the whole 1,500-policy list costs ~0.8 s, which
    the default build cannot afford. Falls back to the full parse if moto's layout changes.
    """
    text = _managed_policy_text()
    marker = f'\n "{name}":'
    start = text.find(marker)
    if start < 0:
        return dict(_all_managed_policies()[name])
    value, _ = json.JSONDecoder().raw_decode(text, start + len(marker))
    return dict(value)


@cache
def _all_managed_policies() -> dict[str, Any]:
    return dict(json.loads(_managed_policy_text()))


def policy_actions(name: str) -> tuple[str, ...]:
    """The Allow actions of an AWS managed policy, exactly as written (wildcards kept)."""
    actions: list[str] = []
    for statement in managed_policy(name)["Document"]["Statement"]:
        if statement.get("Effect") != "Allow":
            continue
        granted = statement.get("Action", [])
        actions.extend([granted] if isinstance(granted, str) else granted)
    return tuple(actions)
