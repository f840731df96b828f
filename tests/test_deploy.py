"""The deployment in deploy/: every template lints clean, the ECS task role is exactly the shipped
runtime policies, the task definition hands the deployed config exactly what it references, and
deploy/README.md's commands name real AWS CLI operations, options and template parameters.

Nothing here deploys anything: the templates are evaluated by a small resolver below, enough for
the intrinsic functions they use (Ref, Fn::Sub, Fn::GetAtt, Fn::If, Fn::Join and the condition
functions), with parameters and resource attributes replaced by known values.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.api import lint_file

from reporter.config import load_data, load_file

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
IAM_DIR = DEPLOY / "iam"
SERVICE = DEPLOY / "service.yaml"
CONFIG = DEPLOY / "config.example.yaml"
README = DEPLOY / "README.md"

PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "333333333333",
    "AWS::StackName": "unused-access-reporter",
    "AWS::URLSuffix": "amazonaws.com",
}
BUCKET = "unused-access-reporter-evidencebucket-1a2b3c4d5e6f"
# What Ref / Fn::GetAtt of each resource stand for in the evaluation.
RESOURCE_REFS = {
    "EvidenceBucket": BUCKET,
    "LogGroup": "/unused-access-reporter/unused-access-reporter",
    "Cluster": "unused-access-reporter-Cluster-AbC",
    "TaskDefinition": "arn:aws:ecs:us-east-1:333333333333:task-definition/unused-access-reporter:1",
}
RESOURCE_ATTRS = {
    ("EvidenceBucket", "Arn"): f"arn:aws:s3:::{BUCKET}",
    ("TaskRole", "Arn"): "arn:aws:iam::333333333333:role/unused-access-reporter-TaskRole-AbC",
    ("ExecutionRole", "Arn"): "arn:aws:iam::333333333333:role/unused-access-reporter-Exec-AbC",
    ("SchedulerRole", "Arn"): "arn:aws:iam::333333333333:role/unused-access-reporter-Sched-AbC",
    ("Cluster", "Arn"): "arn:aws:ecs:us-east-1:333333333333:cluster/unused-access-reporter-AbC",
}
REQUIRED = {
    "ImageUri": "333333333333.dkr.ecr.us-east-1.amazonaws.com/unused-access-reporter@sha256:"
    + "0" * 64,
    "ImageRepositoryArn": "arn:aws:ecr:us-east-1:333333333333:repository/unused-access-reporter",
    "Subnets": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "SecurityGroups": ["sg-0123456789abcdef0"],
    "DatabaseUrlSecretArn": "arn:aws:secretsmanager:us-east-1:333333333333:secret:db-AbCdEf",
    "SmtpPasswordSecretArn": "arn:aws:secretsmanager:us-east-1:333333333333:secret:smtp-AbCdEf",
    "SecurityAccountId": "222222222222",
    "ManagementAccountId": "111111111111",
}
KMS_KEY = "arn:aws:kms:us-east-1:333333333333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SES = {"MailTransport": "ses", "SmtpPasswordSecretArn": "", "SesIdentity": "example.com"}
EVERYTHING = {
    **SES,
    "SesConfigurationSet": "reports",
    "EvidenceKmsKeyArn": KMS_KEY,
    "ObjectLockMode": "COMPLIANCE",
    "SecretsKmsKeyArn": KMS_KEY,
}
# The container's own plumbing, not configuration: caches and temporary files on task storage.
PLUMBING = {"HOME", "TMPDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"}


# --------------------------------------------------------------------------------------------
# Evaluating a template
# --------------------------------------------------------------------------------------------

_NO_VALUE = object()


class Stack:
    """A template with its parameters set: conditions decided, intrinsic functions resolved."""

    def __init__(self, template: Mapping[str, Any], overrides: Mapping[str, Any]) -> None:
        self.template = template
        declared = template.get("Parameters", {})
        unknown = set(overrides) - set(declared)
        assert not unknown, f"not parameters of the template: {unknown}"
        self.parameters: dict[str, Any] = {
            name: overrides.get(name, spec.get("Default")) for name, spec in declared.items()
        }
        missing = [name for name, value in self.parameters.items() if value is None]
        assert not missing, f"parameters without a value: {missing}"
        self.conditions: dict[str, bool] = {}
        for name, body in template.get("Conditions", {}).items():
            self.conditions[name] = bool(self.resolve(body))

    def resources(self) -> dict[str, dict[str, Any]]:
        """The resources this stack creates, their properties resolved."""
        created = {}
        for name, resource in self.template["Resources"].items():
            if "Condition" in resource and not self.conditions[resource["Condition"]]:
                continue
            created[name] = {**resource, "Properties": self.resolve(resource["Properties"])}
        return created

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            items = [self.resolve(item) for item in node]
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref" or key.startswith(("Fn::", "Condition")):
                return self._function(key, arg)
        resolved = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not _NO_VALUE}

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.parameters:
            return self.parameters[name]
        return RESOURCE_REFS[name]

    def _sub(self, text: str, extra: Mapping[str, Any]) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in extra:
                return str(extra[name])
            if "." in name and name not in PSEUDO:
                resource, attribute = name.split(".", 1)
                return RESOURCE_ATTRS[(resource, attribute)]
            return str(self._ref(name))

        return re.sub(r"\$\{([^}!]+)\}", value, text)

    def _function(self, key: str, arg: Any) -> Any:
        match key:
            case "Ref":
                return self._ref(arg)
            case "Condition":
                return self.conditions[arg]
            case "Fn::If":
                name, then, otherwise = arg
                return self.resolve(then if self.conditions[name] else otherwise)
            case "Fn::Equals":
                left, right = (self.resolve(item) for item in arg)
                return left == right
            case "Fn::Not":
                return not self.resolve(arg[0])
            case "Fn::And":
                return all(self.resolve(item) for item in arg)
            case "Fn::Or":
                return any(self.resolve(item) for item in arg)
            case "Fn::GetAtt":
                resource, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return RESOURCE_ATTRS[(resource, attribute)]
            case "Fn::Join":
                separator, items = arg
                return separator.join(str(item) for item in self.resolve(items))
            case "Fn::Sub":
                if isinstance(arg, str):
                    return self._sub(arg, {})
                text, variables = arg
                return self._sub(text, self.resolve(variables))
        raise AssertionError(f"the test's resolver does not know {key}")


def template(path: Path = SERVICE) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def stack(**overrides: Any) -> Stack:
    return Stack(template(), {**REQUIRED, **overrides})


def container(created: Mapping[str, Any]) -> dict[str, Any]:
    (definition,) = created["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    result: dict[str, Any] = definition
    return result


def statements(created: Mapping[str, Any], role: str) -> list[dict[str, Any]]:
    (inline,) = created[role]["Properties"]["Policies"]
    result: list[dict[str, Any]] = inline["PolicyDocument"]["Statement"]
    return result


def shipped(name: str, values: Mapping[str, str]) -> list[dict[str, Any]]:
    """The statements of a deploy/iam/ policy file, placeholders replaced by `values`."""
    text = (IAM_DIR / name).read_text(encoding="utf-8")
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    document = json.loads(text)
    assert document["Version"] == "2012-10-17"
    result: list[dict[str, Any]] = document["Statement"]
    return result


def placeholders(parameters: Mapping[str, Any]) -> dict[str, str]:
    """deploy/iam/README.md's placeholders, as this stack fills them in."""
    key = str(parameters["EvidenceKmsKeyArn"]) or "arn:aws:kms:REGION:ACCOUNT:key/NONE"
    key_region, key_account = key.split(":")[3:5]
    return {
        "SECURITY_ACCOUNT_ID": parameters["SecurityAccountId"],
        "MANAGEMENT_ACCOUNT_ID": parameters["ManagementAccountId"],
        "REPORTER_ACCOUNT_ID": PSEUDO["AWS::AccountId"],
        "SES_REGION": PSEUDO["AWS::Region"],
        "SES_IDENTITY": parameters["SesIdentity"],
        "SES_CONFIGURATION_SET": parameters["SesConfigurationSet"],
        "EVIDENCE_BUCKET": BUCKET,
        "EVIDENCE_PREFIX": parameters["EvidencePrefix"],
        "EVIDENCE_REGION": key_region,
        "EVIDENCE_KEY_ACCOUNT_ID": key_account,
        "EVIDENCE_KEY_ID": key.rsplit("/", 1)[1],
        "LINKS_BUCKET": BUCKET,
        "LINKS_PREFIX": parameters["LinksPrefix"],
    }


def config_references(node: Any) -> set[str]:
    """The ${NAME} / {$env: NAME} references in a loaded YAML document."""
    if isinstance(node, dict):
        if set(node) == {"$env"}:
            return {node["$env"]}
        return set().union(*(config_references(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(config_references(v) for v in node))
    if isinstance(node, str):
        return set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)\}", node))
    return set()


def handed_to_the_container(created: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(environment name → value, secret name → ARN) of the reporter container."""
    definition = container(created)
    environment = {item["Name"]: item["Value"] for item in definition["Environment"]}
    secrets = {item["Name"]: item["ValueFrom"] for item in definition["Secrets"]}
    assert not set(environment) & set(secrets)
    return environment, secrets


def fake_environ(created: Mapping[str, Any]) -> dict[str, str]:
    """The container's environment as ECS would set it, secrets given plausible values."""
    environment, secrets = handed_to_the_container(created)
    values = {
        "STATE_DATABASE_URL": "postgresql://reporter:pw%2Fx@db.internal:5432/reporter",
        "SMTP_PASSWORD": "not-the-real-one",
    }
    assert set(secrets) <= set(values), f"a secret this test does not know: {set(secrets)}"
    return {**environment, **{name: values[name] for name in secrets}}


# --------------------------------------------------------------------------------------------
# cfn-lint
# --------------------------------------------------------------------------------------------

TEMPLATES = sorted(
    path
    for path in DEPLOY.rglob("*.yaml")
    if "AWSTemplateFormatVersion" in path.read_text(encoding="utf-8")
)


def test_the_templates_are_found() -> None:
    assert {p.relative_to(DEPLOY).as_posix() for p in TEMPLATES} == {
        "service.yaml",
        "iam/member-role-stackset.yaml",
    }


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_cfn_lint_reports_nothing(path: Path) -> None:
    """No error, warning or informational finding from cfn-lint's default rules."""
    matches = lint_file(path)
    assert [str(m) for m in matches] == []


# --------------------------------------------------------------------------------------------
# The task role is the shipped runtime policies, no more and no less
# --------------------------------------------------------------------------------------------


def expected_runtime(parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
    values = placeholders(parameters)
    evidence = shipped("runtime-optional-evidence-s3.json", values)
    if parameters["ObjectLockMode"] == "NONE":
        # deploy/iam/README.md: drop s3:PutObjectRetention without Object Lock.
        evidence = [s for s in evidence if "s3:PutObjectRetention" not in s["Action"]]
    expected = [
        *shipped("runtime-base.json", values),
        *evidence,
        *shipped("runtime-optional-large-attachments.json", values),
    ]
    if parameters["EvidenceKmsKeyArn"]:
        expected += shipped("runtime-optional-evidence-kms.json", values)
    if parameters["MailTransport"] == "ses":
        ses = shipped("runtime-optional-ses.json", values)
        if not parameters["SesConfigurationSet"]:
            # …and the configuration-set resource without a configuration set.
            for statement in ses:
                statement["Resource"] = [r for r in statement["Resource"] if ":identity/" in r]
        expected += ses
    return expected


@pytest.mark.parametrize(
    "overrides",
    [{}, SES, {**SES, "SesConfigurationSet": "reports"}, {"ObjectLockMode": "GOVERNANCE"},
     {"EvidenceKmsKeyArn": KMS_KEY}, EVERYTHING],
    ids=["smtp", "ses", "ses-configuration-set", "object-lock", "kms", "everything"],
)  # fmt: skip
def test_the_task_role_is_exactly_the_shipped_runtime_policies(overrides: dict[str, Any]) -> None:
    deployed = stack(**overrides)
    actual = statements(deployed.resources(), "TaskRole")
    assert actual == expected_runtime(deployed.parameters)


def test_every_shipped_runtime_statement_is_in_the_task_role_with_everything_on() -> None:
    deployed = stack(**EVERYTHING)
    sids = {s["Sid"] for s in statements(deployed.resources(), "TaskRole")}
    for path in sorted(IAM_DIR.glob("runtime-*.json")):
        for statement in shipped(path.name, {}):
            assert statement["Sid"] in sids, f"{path.name}: {statement['Sid']} not in TaskRole"


def test_the_task_role_names_the_roles_the_config_assumes() -> None:
    deployed = stack()
    settings = load_file(CONFIG, fake_environ(deployed.resources()))
    (assume,) = [s for s in statements(deployed.resources(), "TaskRole") if "sts:AssumeRole" in
                 s["Action"]]  # fmt: skip
    org = settings.organization
    assert org.delegated_admin_role_arn in assume["Resource"]
    assert org.management_role_arn in assume["Resource"]
    assert f"arn:aws:iam::*:role/{org.member_role_name}" in assume["Resource"]


@pytest.mark.parametrize("overrides", [{}, EVERYTHING], ids=["smtp", "everything"])
def test_the_execution_role_reads_exactly_the_secrets_the_container_gets(
    overrides: dict[str, Any],
) -> None:
    created = stack(**overrides).resources()
    _, secrets = handed_to_the_container(created)
    policy = statements(created, "ExecutionRole")
    reads = [s for s in policy if "secretsmanager:GetSecretValue" in s["Action"]]
    assert [s["Action"] for s in reads] == [["secretsmanager:GetSecretValue"]]
    assert sorted(reads[0]["Resource"]) == sorted(secrets.values())
    actions = {a for s in policy for a in s["Action"]}
    allowed = {
        "ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchGetImage",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "secretsmanager:GetSecretValue",
        "kms:Decrypt",
    }
    assert actions <= allowed
    assert ("kms:Decrypt" in actions) == bool(overrides.get("SecretsKmsKeyArn"))


def test_the_task_role_writes_nothing_but_evidence_and_mail() -> None:
    """Read-only, as the README says: the only writes are the evidence bucket and SES."""
    created = stack(**EVERYTHING).resources()
    writes = set()
    for statement in statements(created, "TaskRole"):
        for action in statement["Action"]:
            verb = action.partition(":")[2]
            if not verb.startswith(("Get", "List", "Describe", "AssumeRole")):
                writes.add(action)
    assert writes == {
        "s3:PutObject",
        "s3:PutObjectRetention",
        "ses:SendEmail",
        "ses:SendRawEmail",
        "kms:GenerateDataKey",
        "kms:Decrypt",
    }


# --------------------------------------------------------------------------------------------
# The task definition and the deployed config
# --------------------------------------------------------------------------------------------


def test_the_container_gets_exactly_what_the_deployed_config_references() -> None:
    created = stack().resources()
    environment, secrets = handed_to_the_container(created)
    referenced = config_references(yaml.safe_load(CONFIG.read_text(encoding="utf-8")))
    assert referenced == set(secrets) | (set(environment) - PLUMBING)
    assert set(secrets) == {"STATE_DATABASE_URL", "SMTP_PASSWORD"}


def test_the_deployed_config_validates_with_what_the_container_gets() -> None:
    deployed = stack()
    created = deployed.resources()
    settings = load_file(CONFIG, fake_environ(created))
    assert settings.state.database_url.startswith("postgresql://")
    assert settings.mail.transport == "smtp"
    assert str(settings.evidence.store) == "s3"
    assert settings.evidence.s3.bucket == BUCKET
    assert settings.evidence.s3.prefix == deployed.parameters["EvidencePrefix"]
    # Large attachments go to the evidence bucket, under the prefix the task role may write.
    assert settings.mail.large_attachments.bucket is None
    assert settings.mail.large_attachments.prefix == deployed.parameters["LinksPrefix"]
    assert settings.organization.member_role_name == deployed.parameters["MemberRoleName"]
    assert settings.organization.home_region == PSEUDO["AWS::Region"]
    assert settings.evidence.web.enabled is False, "the stack puts no load balancer in front"


def test_the_ses_variant_validates_without_an_smtp_password() -> None:
    created = stack(**SES).resources()
    environment, secrets = handed_to_the_container(created)
    assert set(secrets) == {"STATE_DATABASE_URL"}
    data = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    data["mail"]["transport"] = "ses"
    del data["mail"]["smtp"]
    assert config_references(data) == set(secrets) | (set(environment) - PLUMBING)
    settings = load_data(data, fake_environ(created))
    assert settings.mail.transport == "ses"


def dockerfile() -> list[tuple[str, str]]:
    from tests.test_packaging import dockerfile_instructions

    return dockerfile_instructions()


@pytest.mark.parametrize(("mode", "command"), [("Service", "serve"), ("ScheduledTask", "run")])
def test_each_mode_runs_its_command_on_the_config_baked_into_the_image(
    mode: str, command: str
) -> None:
    created = stack(Mode=mode).resources()
    assert ("Service" in created) == (mode == "Service")
    assert ("Schedule" in created) == (mode == "ScheduledTask")
    definition = container(created)
    default_cmd = json.loads(dict(dockerfile())["CMD"])
    assert default_cmd[0] == "serve"
    assert definition["Command"] == [command, *default_cmd[1:]]
    # The Dockerfile copies config/ to /app/config/: config/reporter.yaml lands where -c points.
    copies = [shlex.split(rest) for op, rest in dockerfile() if op == "COPY"]
    assert ["config", "./config"] in copies
    workdirs = [rest for op, rest in dockerfile() if op == "WORKDIR"]
    assert default_cmd[-1] == f"{workdirs[workdirs.index('/app')]}/config/reporter.yaml"


def test_the_container_writes_only_to_the_image_volumes() -> None:
    """A read-only root; task storage mounted where the image declares VOLUMEs (so Fargate
    gives them the image's owner, uid 10001), and every cache and temporary file under one."""
    created = stack().resources()
    definition = container(created)
    assert definition["ReadonlyRootFilesystem"] is True
    (volumes,) = [json.loads(rest) for op, rest in dockerfile() if op == "VOLUME"]
    mounted = {m["ContainerPath"] for m in definition["MountPoints"]}
    assert mounted == set(volumes)
    environment, _ = handed_to_the_container(created)
    for name in PLUMBING:
        assert any(environment[name].startswith(path) for path in mounted), name
    workdir = [rest for op, rest in dockerfile() if op == "WORKDIR"][-1]
    settings = load_file(CONFIG, fake_environ(created))
    assert f"{workdir}/{settings.reports.output_dir}" in mounted


def test_the_schedule_runs_the_task_definition_on_the_cron_parameter() -> None:
    deployed = stack(
        Mode="ScheduledTask", CronExpression="30 6 ? * MON-FRI *", Timezone="Europe/Berlin"
    )
    created = deployed.resources()
    schedule = created["Schedule"]["Properties"]
    assert schedule["ScheduleExpression"] == "cron(30 6 ? * MON-FRI *)"
    assert schedule["ScheduleExpressionTimezone"] == "Europe/Berlin"
    assert (
        schedule["Target"]["EcsParameters"]["TaskDefinitionArn"] == RESOURCE_REFS["TaskDefinition"]
    )
    role = statements(created, "SchedulerRole")
    assert {a for s in role for a in s["Action"]} == {"ecs:RunTask", "iam:PassRole"}


def test_the_evidence_bucket_is_private_versioned_encrypted_and_tls_only() -> None:
    for overrides, lock in (({}, None), ({"ObjectLockMode": "COMPLIANCE"}, "COMPLIANCE")):
        created = stack(**overrides).resources()
        bucket = created["EvidenceBucket"]
        assert bucket["DeletionPolicy"] == "Retain"
        properties = bucket["Properties"]
        assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
        assert all(properties["PublicAccessBlockConfiguration"].values())
        assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        if lock:
            rule = properties["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
            assert properties["ObjectLockEnabled"] is True
            assert rule == {"Mode": lock, "Days": 400}
        else:
            assert "ObjectLockEnabled" not in properties
        (deny,) = created["EvidenceBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        assert deny["Effect"] == "Deny" and deny["Action"] == "s3:*"
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert sorted(deny["Resource"]) == [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]


# --------------------------------------------------------------------------------------------
# deploy/README.md: its commands are real
# --------------------------------------------------------------------------------------------


def readme_commands() -> list[str]:
    """Every shell command in the README's ```sh blocks, continuation lines joined."""
    text = README.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


AWS_CALL = re.compile(r"(?:^|[\s($|;&])aws ([a-z0-9-]+) ([a-z0-9-]+)(.*?)(?=\)|\||;|&&|$)")


def aws_calls() -> list[tuple[str, str, list[str]]]:
    """(service, operation, [--options]) of every `aws` call, including those inside $(...)."""
    calls = []
    for command in readme_commands():
        for match in AWS_CALL.finditer(command):
            options = re.findall(r"(?<!\S)--([a-z0-9-]+)", match.group(3))
            calls.append((match.group(1), match.group(2), options))
    return calls


GLOBAL_OPTIONS = {"region", "profile", "query", "output", "no-cli-pager", "cli-input-json"}
# Commands the AWS CLI adds on top of the service models (same in v1 and v2), with their options.
CUSTOM = {
    ("cloudformation", "deploy"): {
        "template-file", "stack-name", "parameter-overrides", "capabilities",
        "no-fail-on-empty-changeset", "tags", "role-arn", "no-execute-changeset",
    },
    ("ecr", "get-login-password"): set(),
    ("s3", "ls"): {"recursive"},
    ("s3", "cp"): {"recursive"},
}  # fmt: skip


def test_the_readme_calls_real_aws_cli_operations_with_real_options() -> None:
    import botocore.session
    from botocore import xform_name

    session = botocore.session.get_session()
    calls = aws_calls()
    assert len(calls) >= 20, calls
    for service, operation, options in calls:
        where = f"aws {service} {operation}"
        if (service, operation) in CUSTOM:
            assert set(options) - GLOBAL_OPTIONS <= CUSTOM[(service, operation)], where
            continue
        if operation == "wait":
            continue  # `aws ecs wait tasks-stopped`: checked below
        model = session.get_service_model(service)
        names = {xform_name(name, "-"): name for name in model.operation_names}
        assert operation in names, f"{where}: no such operation"
        shape = model.operation_model(names[operation]).input_shape
        members = {xform_name(m, "-").lower() for m in (shape.members if shape else {})}
        for option in set(options) - GLOBAL_OPTIONS:
            plain = option.removeprefix("no-")
            assert plain.replace("-", "") in {m.replace("-", "") for m in members}, (
                f"{where} --{option}: not an option"
            )
    waits = [
        w for c in readme_commands() for w in re.findall(r"aws ([a-z0-9-]+) wait ([a-z-]+)", c)
    ]
    assert waits
    for service, name in waits:
        waiters = session.get_waiter_model(service).waiter_names
        assert name in {xform_name(w, "-") for w in waiters}, f"aws {service} wait {name}"


def test_the_readme_deploys_with_every_required_parameter_and_only_real_ones() -> None:
    """Every `cloudformation deploy` names an existing template and only its parameters; the first
    one of each template gives all those without a default (later ones keep previous values)."""
    deploys = [c for c in readme_commands() if c.startswith("aws cloudformation deploy")]
    first: dict[Path, set[str]] = {}
    for command in deploys:
        words = shlex.split(command)
        path = ROOT / words[words.index("--template-file") + 1]
        declared = template(path)["Parameters"]
        start = words.index("--parameter-overrides") + 1
        given = set()
        for word in words[start:]:
            if word.startswith("--"):
                break
            given.add(word.split("=", 1)[0])
        assert given <= set(declared), given - set(declared)
        first.setdefault(path, given)
    assert set(first) == set(TEMPLATES)
    for path, given in first.items():
        declared = template(path)["Parameters"]
        required = {name for name, spec in declared.items() if "Default" not in spec}
        assert required <= given, f"{path.name}: {required - given}"


def test_the_readme_overrides_are_valid_json_for_the_container() -> None:
    overrides = re.findall(r"--overrides '([^']*)'", README.read_text(encoding="utf-8"))
    assert overrides
    name = container(stack().resources())["Name"]
    for text in overrides:
        (override,) = json.loads(text)["containerOverrides"]
        assert override["name"] == name
        assert override["command"][-2:] == ["-c", "/app/config/reporter.yaml"]
