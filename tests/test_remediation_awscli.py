"""The generated remediation commands, run by the real AWS CLI in bash against a moto server.

Each step's command runs in its own `bash -c`, as a reader pasting them one by one would, in a
working directory of its own (the steps keep their backups there). boto3 then checks what IAM
holds. moto has no `AWSDenyAll` (real AWS does): the test adds a stand-in to moto's AWS managed
policies; the product's commands are the ones real AWS gets.

The names and paths are hostile but ones IAM accepts (botocore's IAM model): names match
`[\\w+=,.@-]+`, so they may begin with `-`, `=`, `+` or `@` (the CLI would read a separate word
beginning with `-` as an option); user and role paths may hold any printable ASCII but a space
(quotes, `$(…)`, backticks, globs); policy paths only `[A-Za-z0-9.,+@=_-]`. Values IAM rejects
(spaces) must be one word to the shell too: tests/test_remediation.py checks them with `shlex`
and `bash -n`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from reporter.links import links_for
from reporter.models import Finding, FindingType, Recommendation, RecommendedStep, RemediationStep
from reporter.remediation import READ_ONLY, remediation_for

pytest.importorskip(
    "awscli", reason="awscli (a dev dependency) is not installed: pip install -e '.[dev]'"
)
pytest.importorskip(
    "flask_cors", reason="moto's server needs flask and flask-cors (dev dependencies)"
)

from moto.iam.models import AccessKeyLastUsed, AWSManagedPolicy, iam_backends
from moto.server import ThreadedMotoServer

ACCOUNT = "123456789012"  # moto's account for any unknown access key
AWS_BIN = Path(sys.executable).parent
DENY_ALL_DOC = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}],
}
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def iam(endpoint: str) -> Any:
    return boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def shell(endpoint: str, tmp_path: Path) -> Any:
    """Runs one command as the reader would: bash, the real CLI, the moto endpoint."""
    env = {
        "PATH": f"{AWS_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(tmp_path),
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_PAGER": "",
    }
    assert (AWS_BIN / "aws").exists(), "the venv's aws entry point (awscli) is missing"

    def run(command: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["bash", "-c", command], env=env, cwd=tmp_path, capture_output=True, text=True
        )
        if ok:
            assert done.returncode == 0, (
                f"{command}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
            )
        return done

    return run


def steps_for(finding: Finding) -> tuple[RemediationStep, ...]:
    return remediation_for(finding, links_for(finding, "us-east-1"))


def add_deny_all_stand_in() -> None:
    """moto ships no AWSDenyAll; real AWS has it at the same ARN."""
    backend = iam_backends[ACCOUNT]["aws"]
    policy = AWSManagedPolicy(
        "AWSDenyAll",
        account_id=ACCOUNT,
        region="us-east-1",
        default_version_id="v1",
        path="/",
        document=json.dumps(DENY_ALL_DOC),
    )
    backend.managed_policies.setdefault(policy.arn, policy)


def key_status(iam: Any, user: str) -> Mapping[str, str]:
    keys = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    return {k["AccessKeyId"]: k["Status"] for k in keys}


def test_the_guard_stops_in_another_account(shell: Any) -> None:
    finding = Finding(
        FindingType.UNUSED_PASSWORD, "999999999999", "arn:aws:iam::999999999999:user/u"
    )
    guard = steps_for(finding)[0]
    done = shell(guard.command, ok=False)
    assert done.returncode != 0
    assert "not for account 999999999999" in done.stderr
    right = Finding(FindingType.UNUSED_PASSWORD, ACCOUNT, f"arn:aws:iam::{ACCOUNT}:user/u")
    assert shell(steps_for(right)[0].command).returncode == 0


def test_access_key_named_by_the_source_is_deactivated_then_deleted(iam: Any, shell: Any) -> None:
    user, path = "-ci=deploy+bot@team-a", "/-odd'$(id)\"`x`*?/"
    iam.create_user(UserName=user, Path=path)
    unused = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    other = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    finding = Finding(
        FindingType.UNUSED_ACCESS_KEY,
        ACCOUNT,
        f"arn:aws:iam::{ACCOUNT}:user{path}{user}",
        access_key_ids=(unused,),
    )
    guard, deactivate, delete = steps_for(finding)
    shell(guard.command)
    shell(deactivate.command)
    assert key_status(iam, user) == {unused: "Inactive", other: "Active"}
    shell(deactivate.rollback)
    assert key_status(iam, user) == {unused: "Active", other: "Active"}
    shell(deactivate.command)
    shell(delete.command)
    assert key_status(iam, user) == {other: "Active"}


def test_access_key_looked_up_when_the_source_names_none(iam: Any, shell: Any) -> None:
    """Security Hub carries no key id: the step picks keys by last use and records them."""
    user = "=asff+user"
    iam.create_user(UserName=user)
    stale = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    fresh = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]  # IAM allows two
    now = datetime.now(UTC)
    keys = {k.access_key_id: k for k in iam_backends[ACCOUNT]["aws"].users[user].access_keys}
    keys[stale].last_used = AccessKeyLastUsed(now - timedelta(days=200), "s3", "us-east-1")
    keys[fresh].last_used = AccessKeyLastUsed(now - timedelta(days=1), "s3", "us-east-1")
    finding = Finding(
        FindingType.UNUSED_ACCESS_KEY,
        ACCOUNT,
        f"arn:aws:iam::{ACCOUNT}:user/{user}",
        last_accessed=now - timedelta(days=200),
    )
    _, deactivate, delete = steps_for(finding)
    out = shell(deactivate.command).stdout
    assert f"deactivated {stale}" in out
    assert key_status(iam, user) == {stale: "Inactive", fresh: "Active"}
    shell(deactivate.rollback)
    assert key_status(iam, user) == {stale: "Active", fresh: "Active"}
    # After a rollback the delete step has nothing to act on: it fails rather than guess.
    assert shell(delete.command, ok=False).returncode != 0
    assert len(key_status(iam, user)) == 2
    shell(deactivate.command)
    shell(delete.command)
    assert key_status(iam, user) == {fresh: "Active"}
    # A key created today and never used (one being rotated in) is newer than the cut-off.
    never = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    assert "deactivated" not in shell(deactivate.command).stdout
    assert key_status(iam, user) == {fresh: "Active", never: "Active"}


@pytest.mark.parametrize("user", ["alice@example.com", "-cmd", "--x", "-n", "+plus", "@at", "=eq"])
def test_console_password_is_removed_and_rollback_restores_sign_in(
    iam: Any, shell: Any, user: str
) -> None:
    iam.create_user(UserName=user)
    iam.create_login_profile(UserName=user, Password="Initial-Passw0rd!")
    finding = Finding(FindingType.UNUSED_PASSWORD, ACCOUNT, f"arn:aws:iam::{ACCOUNT}:user/{user}")
    guard, delete = steps_for(finding)
    shell(guard.command)
    shell(delete.command)
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_login_profile(UserName=user)
    out = shell(delete.rollback).stdout
    assert "New temporary password" in out
    # Sign-in is back. (moto's CreateLoginProfile drops PasswordResetRequired; the flag is in
    # the command: test_remediation.py checks it.)
    assert iam.get_login_profile(UserName=user)["LoginProfile"]["UserName"] == user
    shell(delete.command)
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_login_profile(UserName=user)


def role_state(iam: Any, role: str, profile: str) -> dict[str, Any]:
    return {
        "path": iam.get_role(RoleName=role)["Role"]["Path"],
        "managed": sorted(
            p["PolicyArn"]
            for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
        ),
        "inline": {
            n: iam.get_role_policy(RoleName=role, PolicyName=n)["PolicyDocument"]
            for n in iam.list_role_policies(RoleName=role)["PolicyNames"]
        },
        "profile": [
            r["RoleName"]
            for r in iam.get_instance_profile(InstanceProfileName=profile)["InstanceProfile"][
                "Roles"
            ]
        ],
    }


def test_plain_role_is_blocked_then_deleted_and_rollbacks_restore_it(iam: Any, shell: Any) -> None:
    add_deny_all_stand_in()
    # A profile named `-n`: recorded with `echo`, it would print nothing and never come back.
    role, path, profile = "-app=web+svc@x-y", "/-team$(id)`x`'q'\"*/", "-n"
    iam.create_role(RoleName=role, Path=path, AssumeRolePolicyDocument=json.dumps(TRUST))
    policy_arn = iam.create_policy(
        PolicyName="-read+only",
        Path="/-p=+@/",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}],
            }
        ),
    )["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=role, PolicyArn=policy_arn)
    inline = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}],
    }
    iam.put_role_policy(RoleName=role, PolicyName="-queue=all", PolicyDocument=json.dumps(inline))
    iam.create_instance_profile(InstanceProfileName=profile)
    iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=role)
    before = role_state(iam, role, profile)
    assert before["managed"] == [policy_arn] and before["profile"] == [role]

    finding = Finding(FindingType.UNUSED_ROLE, ACCOUNT, f"arn:aws:iam::{ACCOUNT}:role{path}{role}")
    steps = steps_for(finding)
    guard, block, *deletion = steps
    shell(guard.command)
    shell(block.command)
    deny_all = "arn:aws:iam::aws:policy/AWSDenyAll"
    assert deny_all in role_state(iam, role, profile)["managed"]
    shell(block.rollback)
    assert role_state(iam, role, profile) == before
    shell(block.command)
    for step in deletion:
        shell(step.command)
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_role(RoleName=role)
    assert iam.get_instance_profile(InstanceProfileName=profile)["InstanceProfile"]["Roles"] == []
    assert iam.get_policy(PolicyArn=policy_arn)["Policy"]["AttachmentCount"] == 0

    # Undo everything, last step first: the role is back as it was before the block.
    for step in reversed(steps[1:]):
        shell(step.rollback)
    assert role_state(iam, role, profile) == before


def policies_of(iam: Any, role: str) -> dict[str, Any]:
    return {
        "managed": sorted(
            p["PolicyArn"]
            for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
        ),
        "inline": {
            n: iam.get_role_policy(RoleName=role, PolicyName=n)["PolicyDocument"]
            for n in iam.list_role_policies(RoleName=role)["PolicyNames"]
        },
    }


def test_recommended_policies_replace_the_unused_permissions_and_rollbacks_restore_them(
    iam: Any, shell: Any
) -> None:
    """Unused permissions of role `@svc`: a managed policy `-wide` and an inline `-inline`."""
    role, path = "@svc", "/-ops'$(id)/"
    iam.create_role(RoleName=role, Path=path, AssumeRolePolicyDocument=json.dumps(TRUST))
    wide = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
    narrow = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
    }
    managed = iam.create_policy(PolicyName="-wide", Path="/-p=+@/", PolicyDocument=json.dumps(wide))
    managed_arn = managed["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=role, PolicyArn=managed_arn)
    iam.put_role_policy(RoleName=role, PolicyName="-inline", PolicyDocument=json.dumps(wide))
    before = policies_of(iam, role)
    rec = Recommendation(
        "SUCCEEDED",
        (
            RecommendedStep("CREATE_POLICY", managed_arn, json.dumps(narrow)),
            RecommendedStep("DETACH_POLICY", managed_arn),
            RecommendedStep("CREATE_POLICY", "-inline", json.dumps(narrow)),
            RecommendedStep("DETACH_POLICY", "-inline"),
        ),
    )
    finding = Finding(
        FindingType.UNUSED_PERMISSION,
        ACCOUNT,
        f"arn:aws:iam::{ACCOUNT}:role{path}{role}",
        recommendation=rec,
    )
    steps = steps_for(finding)
    for step in steps:
        shell(step.command)
    new_arn = f"arn:aws:iam::{ACCOUNT}:policy/@svc--wide-recommended"
    assert policies_of(iam, role) == {
        "managed": [new_arn],
        "inline": {"-inline-recommended": narrow},
    }
    for step in reversed(steps):
        if step.rollback != READ_ONLY:
            shell(step.rollback)
    assert policies_of(iam, role) == before
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_policy(PolicyArn=new_arn)
