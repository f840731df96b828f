"""Safe, ordered CLI steps that remove a finding's unused access (DESIGN.md §Remediation).

Pure: a Finding in, steps out. Every value from AWS is shell-quoted, because IAM allows
`=`, `+`, `@`, `,` in names and almost any printable character in paths. Commands run in bash
with AWS CLI v1 or v2, in the account that owns the principal; each step names that account.
"""

from __future__ import annotations

from shlex import quote

from .models import Finding, FindingType, Links, RemediationStep

DENY_ALL = "arn:aws:iam::aws:policy/AWSDenyAll"


def remediation_for(finding: Finding, links: Links) -> tuple[RemediationStep, ...]:
    # Deleting a service-linked or Identity Center role is right only when the role itself is
    # unused; for unused permissions it would remove far more than the finding says.
    if finding.principal_type == "role" and finding.type is FindingType.UNUSED_ROLE:
        special = _special_role(finding, links)
        if special is not None:
            return special
    if finding.principal_tags.get("aws:cloudformation:stack-name"):
        return _cloudformation(finding, links)
    match finding.type:
        case FindingType.UNUSED_ACCESS_KEY:
            return _access_key(finding, links)
        case FindingType.UNUSED_PASSWORD:
            return _password(finding, links)
        case FindingType.UNUSED_ROLE:
            return _role(finding, links)
        case FindingType.UNUSED_PERMISSION:
            return _permissions(finding, links)


def _where(finding: Finding) -> str:
    return f"in account {finding.account_id}"


def _access_key(f: Finding, links: Links) -> tuple[RemediationStep, ...]:
    user = quote(f.principal_name)
    if not f.access_key_ids:
        # The source did not say which key is unused. Guessing (e.g. "not used for 90 days")
        # could switch off a key being rotated in, so the user picks it from the listing.
        return (
            RemediationStep(
                title=f"Find the unused access key of {f.principal_name} {_where(f)} "
                "(the source did not name it)",
                command=f"for k in $(aws iam list-access-keys --user-name {user} --query "
                "'AccessKeyMetadata[].AccessKeyId' --output text); do "
                'aws iam get-access-key-last-used --access-key-id "$k" --query '
                "'[AccessKeyLastUsed.LastUsedDate, UserName]' --output text; echo \"$k\"; done",
                console_url=links.console,
                rollback="Read-only: nothing to undo",
            ),
            RemediationStep(
                title="Deactivate that key (replace <KEY_ID>)",
                command=f"aws iam update-access-key --user-name {user} --access-key-id "
                "'<KEY_ID>' --status Inactive",
                console_url=links.console,
                rollback=f"aws iam update-access-key --user-name {user} --access-key-id "
                "'<KEY_ID>' --status Active",
            ),
        )
    keys = " ".join(quote(k) for k in f.access_key_ids)
    return (
        RemediationStep(
            title=f"Deactivate the unused access key(s) of {f.principal_name} {_where(f)}",
            command=f"for key in {keys}; do aws iam update-access-key --user-name {user} "
            '--access-key-id "$key" --status Inactive; done',
            console_url=links.console,
            rollback=f"for key in {keys}; do aws iam update-access-key --user-name {user} "
            '--access-key-id "$key" --status Active; done',
        ),
        RemediationStep(
            title="After a grace period with no complaints, delete those key(s)",
            command=f"for key in {keys}; do aws iam delete-access-key --user-name {user} "
            '--access-key-id "$key"; done',
            console_url=links.console,
            rollback="Deletion cannot be undone: create a new key with "
            f"aws iam create-access-key --user-name {user}",
        ),
    )


def _password(f: Finding, links: Links) -> tuple[RemediationStep, ...]:
    user = quote(f.principal_name)
    return (
        RemediationStep(
            title=f"Remove the console password of {f.principal_name} {_where(f)}",
            command=f"aws iam delete-login-profile --user-name {user}",
            console_url=links.console,
            rollback=f"aws iam create-login-profile --user-name {user} "
            "--password '<TEMPORARY_PASSWORD>' --password-reset-required "
            "(access keys are not affected by removing the password)",
        ),
    )


def _role(f: Finding, links: Links) -> tuple[RemediationStep, ...]:
    role = quote(f.principal_name)
    return (
        RemediationStep(
            title=f"Block the role {f.principal_name} {_where(f)} (reversible)",
            command=f"aws iam attach-role-policy --role-name {role} --policy-arn {DENY_ALL}",
            console_url=links.console,
            rollback=f"aws iam detach-role-policy --role-name {role} --policy-arn {DENY_ALL}",
        ),
        RemediationStep(
            title="Remove the role from its instance profiles",
            command=f"for p in $(aws iam list-instance-profiles-for-role --role-name {role} "
            "--query 'InstanceProfiles[].InstanceProfileName' --output text); do "
            f'aws iam remove-role-from-instance-profile --instance-profile-name "$p" '
            f"--role-name {role}; done",
            console_url=links.console,
            rollback="aws iam add-role-to-instance-profile --instance-profile-name <PROFILE> "
            f"--role-name {role}",
        ),
        RemediationStep(
            title="Detach its managed policies",
            command=f"for a in $(aws iam list-attached-role-policies --role-name {role} "
            "--query 'AttachedPolicies[].PolicyArn' --output text); do "
            f'aws iam detach-role-policy --role-name {role} --policy-arn "$a"; done',
            console_url=links.console,
            rollback=f"aws iam attach-role-policy --role-name {role} --policy-arn <POLICY_ARN>",
        ),
        RemediationStep(
            title="Delete its inline policies",
            command=f"for n in $(aws iam list-role-policies --role-name {role} "
            "--query 'PolicyNames[]' --output text); do "
            f'aws iam delete-role-policy --role-name {role} --policy-name "$n"; done',
            console_url=links.console,
            rollback="Save each policy first with aws iam get-role-policy; restore it with "
            f"aws iam put-role-policy --role-name {role} --policy-name <NAME> "
            "--policy-document file://policy.json",
        ),
        RemediationStep(
            title="Delete the role",
            command=f"aws iam delete-role --role-name {role}",
            console_url=links.console,
            rollback="Deletion cannot be undone: re-create the role from its definition "
            "(infrastructure code or aws iam get-role output saved beforehand)",
        ),
    )


def _permissions(f: Finding, links: Links) -> tuple[RemediationStep, ...]:
    services = ", ".join(s.namespace for s in f.services) or "see the Access Analyzer finding"
    return (
        RemediationStep(
            title=f"Review the unused services of {f.principal_name} {_where(f)}: {services}",
            command=f"aws iam list-attached-{f.principal_type}-policies "
            f"--{f.principal_type}-name {quote(f.principal_name)}",
            console_url=links.access_analyzer,
            rollback="Read-only: nothing to undo",
        ),
    )


def _special_role(f: Finding, links: Links) -> tuple[RemediationStep, ...] | None:
    path = f.principal_path
    if path.startswith("/aws-service-role/"):
        role = quote(f.principal_name)
        return (
            RemediationStep(
                title=f"Delete the service-linked role {f.principal_name} {_where(f)} "
                "(the owning service must no longer use it)",
                command=f"aws iam delete-service-linked-role --role-name {role} "
                "--query DeletionTaskId --output text",
                console_url=links.console,
                rollback="Re-enable the feature of the service that created it; AWS "
                "re-creates the role",
            ),
            RemediationStep(
                title="Check that the deletion succeeded",
                command="aws iam get-service-linked-role-deletion-status --deletion-task-id "
                "<DELETION_TASK_ID>",
                console_url=links.console,
                rollback="Read-only: nothing to undo",
            ),
        )
    if f.principal_name.startswith("AWSReservedSSO_"):
        return (
            RemediationStep(
                title=f"Remove the IAM Identity Center permission set assignment behind "
                f"{f.principal_name} {_where(f)}; never edit this role with IAM commands",
                command="# In IAM Identity Center: AWS accounts > "
                f"{f.account_id} > remove the assignment of permission set "
                f"{quote(f.principal_name.removeprefix('AWSReservedSSO_').rpartition('_')[0])}",
                console_url="https://console.aws.amazon.com/singlesignon/home",
                rollback="Assign the permission set to the account again",
            ),
        )
    return None


def _cloudformation(f: Finding, links: Links) -> tuple[RemediationStep, ...]:
    stack = f.principal_tags.get("aws:cloudformation:stack-name", "")
    return (
        RemediationStep(
            title=f"{f.principal_name} is managed by CloudFormation stack {stack} "
            f"{_where(f)}: change the stack's template, not the principal",
            command=f"aws cloudformation describe-stack-resources --stack-name {quote(stack)}",
            console_url=links.console,
            rollback="Read-only: nothing to undo",
        ),
    )
