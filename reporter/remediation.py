"""Safe, ordered CLI steps that remove a finding's unused access (DESIGN.md §Remediation guidance).

Pure: a Finding and its Links in, steps out. The contract every step keeps:

- `command` is complete bash for AWS CLI v1 and v2. Running the commands of a finding in order
  removes the access; no placeholder needs filling in. Where the tool cannot know a name (key ids
  Security Hub does not carry, attached and inline policies, instance profiles) the command looks
  it up itself with `--query … --output text`.
- Every name, id, ARN, path and document goes to a command as one word `--option=value` (`_opt`),
  never `--option value`: IAM names may begin with `-` (`[\\w+=,.@-]+`), and the CLI reads a
  separate word that begins with `-` as an option (`--user-name -cmd` fails). Literal values are
  shell-quoted (`shlex.quote`), because paths may hold any printable character but a space; a
  quoted value is never placed inside double quotes, where `$(…)` would still run. Values the
  shell reads at run time (`"$k"`) are double-quoted variables, and are written to files with
  `printf '%s\\n'`, never `echo`, which takes a value such as `-n` or `-e` for its own option.
  Only constants (`--output text`, `--query '…'`) keep the `--option value` form.
- Commands that act in the principal's account come after a first guard step that fails unless the
  credentials are for that account (`aws sts get-caller-identity`). IAM Identity Center steps run
  in the Identity Center administration account instead; their titles say so.
- `rollback` undoes its own step only and is a command too. Steps that remove things whose names
  the tool does not know record them first under `unused-access-backup/<account>/<kind>/<name>/`
  in the working directory, and the rollback reads them back from there. To undo several steps,
  run their rollbacks in reverse order from the same directory.
- `detail` carries what to read before running: a recommended policy's before/after diff, or the
  unused services and actions.

Loops read lookups line by line (`tr '\\t' '\\n' | while read -r`) rather than `for x in $(…)`,
so that nothing a lookup prints is split on spaces or expanded as a glob (role and user paths may
contain `*` and `?`). A loop runs in a
`( set -o pipefail; … )` subshell so that a failed lookup fails the step and `exit 1` inside the
loop never closes the reader's shell.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from shlex import quote
from typing import overload

from .links import identity_center_url, partition_of, policy_url
from .models import (
    Finding,
    FindingType,
    Links,
    OrganizationAccess,
    Recommendation,
    RecommendedStep,
    RemediationStep,
)
from .orgaccess import KIND_LABELS, suggested_exception

READ_ONLY = "Read-only: nothing to undo"
STACK_NAME_TAG = "aws:cloudformation:stack-name"
STACK_ID_TAG = "aws:cloudformation:stack-id"
# When neither the key ids nor any date are known, keys unused for the analyzer's default
# tracking period (90 days) are the unused ones.
DEFAULT_UNUSED_DAYS = 90
_NAME_MAX = 128  # IAM policy names


# JMESPath over list-attached-role-policies: AWSDenyAll in any partition, and every other policy.
# A customer policy's ARN cannot end so (`:` is not allowed in its path or name). Single-quoted,
# so the `!` meets no interactive shell's history expansion.
_DENY_ALL = "'AttachedPolicies[?ends_with(PolicyArn, `\":iam::aws:policy/AWSDenyAll\"`)].PolicyArn'"
_OTHER_POLICIES = (
    "'AttachedPolicies[?!ends_with(PolicyArn, `\":iam::aws:policy/AWSDenyAll\"`)].PolicyArn'"
)


def deny_all_arn(partition: str) -> str:
    """The AWS managed deny-everything policy in the principal's partition."""
    return f"arn:{partition}:iam::aws:policy/AWSDenyAll"


class _DerivedSteps(Sequence[RemediationStep]):
    """Steps computed by `steps()` each time they are read, behaving as their tuple."""

    __slots__ = ()

    def steps(self) -> tuple[RemediationStep, ...]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[RemediationStep]:
        return iter(self.steps())

    def __len__(self) -> int:
        return len(self.steps())

    @overload
    def __getitem__(self, index: int) -> RemediationStep: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[RemediationStep, ...]: ...
    def __getitem__(self, index: int | slice) -> RemediationStep | tuple[RemediationStep, ...]:
        return self.steps()[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return self.steps() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.steps())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.steps()!r})"


class Remediation(_DerivedSteps):
    """A finding's steps, derived each time they are read instead of stored with the finding.

    Steps are pure functions of the finding and its links, and long: at 100,000 findings they
    were 260 MB of a run's 560 MB, while each is read only a few times (the data files, the
    workbooks, a PDF card). Building one finding's steps takes about 30 µs. Equal to, and
    interchangeable with, the tuple `remediation_for` returns.
    """

    __slots__ = ("finding", "links")

    def __init__(self, finding: Finding, links: Links) -> None:
        self.finding = finding
        self.links = links

    def steps(self) -> tuple[RemediationStep, ...]:
        return remediation_for(self.finding, self.links)

    def __reduce__(self) -> tuple[type[Remediation], tuple[Finding, Links]]:
        return Remediation, (self.finding, self.links)


def remediation_for(finding: Finding, links: Links) -> tuple[RemediationStep, ...]:
    p = _Principal.of(finding, links)
    # Service-linked and Identity Center roles belong to a service; IAM commands that change them
    # fail or are undone by the service, so they come before every other rule.
    if finding.principal_type == "role" and finding.principal_path.startswith("/aws-service-role/"):
        return _service_linked(p)
    if finding.principal_type == "role" and finding.principal_name.startswith("AWSReservedSSO_"):
        return _identity_center(p)
    if finding.principal_tags.get(STACK_NAME_TAG):
        return _cloudformation(p)
    match finding.type:
        case FindingType.UNUSED_ACCESS_KEY:
            return _access_key(p)
        case FindingType.UNUSED_PASSWORD:
            return _password(p)
        case FindingType.UNUSED_ROLE:
            return _role(p)
        case FindingType.UNUSED_PERMISSION:
            return _permissions(p)


@dataclass(frozen=True)
class _Principal:
    """The finding's principal with everything the commands need, quoted once."""

    f: Finding
    links: Links
    kind: str  # role | user
    partition: str
    # `d=<quoted backup dir>`: the prefix of every command that records or restores state.
    d: str

    @classmethod
    def of(cls, f: Finding, links: Links) -> _Principal:
        backup = f"unused-access-backup/{f.account_id}/{f.principal_type}/{f.principal_name}"
        return cls(
            f=f,
            links=links,
            kind=f.principal_type,
            partition=partition_of(f.principal_arn),
            d=f"d={quote(backup)}",
        )

    @property
    def name(self) -> str:
        return self.f.principal_name

    @property
    def who(self) -> str:
        return f"{self.kind} {self.name}"

    @property
    def flag(self) -> str:
        return _opt(f"{self.kind}-name", self.name)

    def iam(self, verb: str, noun: str = "policy") -> str:
        """`aws iam attach-role-policy --role-name=x` and its user twin."""
        return f"aws iam {verb}-{self.kind}-{noun} {self.flag}"


@dataclass(frozen=True)
class _Sh:
    """Bash that the shell expands into exactly one word when the step runs: `"$k"`,
    `"$(cat "$d/x")"`. `_opt` places it as it is; every other value is quoted."""

    text: str


def _var(name: str) -> _Sh:
    return _Sh(f'"${name}"')


def _opt(name: str, value: str | _Sh) -> str:
    """`--name=value`, one shell word whatever the value holds or begins with.

    Every value that is not a constant of this module goes through here. After a space the
    CLI's argument parser takes a value beginning with `-` for an option; after `=` it is always
    the value (one exception, argparse's: a value of exactly `--` reads as empty).
    """
    return f"--{name}={value.text if isinstance(value, _Sh) else quote(value)}"


def _subshell(*parts: str) -> str:
    return "( set -o pipefail; " + "; ".join(parts) + " )"


def _each(var: str, lookup: str, body: str) -> str:
    """Run `body` for each value a `--output text` lookup prints; fail on the first error."""
    return (
        f"{lookup} --output text | tr '\\t' '\\n' | while read -r {var}; do "
        f'[ -n "${var}" ] || continue; {{ {body}; }} || exit 1; done'
    )


def _guard(p: _Principal) -> RemediationStep:
    account = quote(p.f.account_id)
    return RemediationStep(
        title=f"Check that the AWS CLI credentials are for account {p.f.account_id}, the "
        f"account of {p.who}; run every following step there",
        command='test "$(aws sts get-caller-identity --query Account --output text)" = '
        f"{account} || {{ echo 'Stop: these credentials are not for account' {account} >&2; "
        "false; }",
        console_url=p.links.security_hub
        if p.links.security_hub and not _has_source(p.f, "access_analyzer")
        else p.links.access_analyzer,
        rollback=READ_ONLY,
    )


def _has_source(f: Finding, source: str) -> bool:
    return any(s.source == source for s in f.sources)


# --- access keys -------------------------------------------------------------------------------


def _access_key(p: _Principal) -> tuple[RemediationStep, ...]:
    if p.f.access_key_ids:
        return (_guard(p), *_named_keys(p))
    return (_guard(p), *_looked_up_keys(p))


def _named_keys(p: _Principal) -> tuple[RemediationStep, ...]:
    keys = p.f.access_key_ids

    def each(command: str, tail: str = "") -> str:
        return " && ".join(f"{command} {_opt('access-key-id', k)}{tail}" for k in keys)

    update = f"aws iam update-access-key {p.flag}"
    listed = ", ".join(keys)
    return (
        RemediationStep(
            title=f"Deactivate the unused access key {listed} of user {p.name} (reversible)",
            command=each(update, " --status Inactive"),
            console_url=p.links.console,
            rollback=each(update, " --status Active"),
        ),
        RemediationStep(
            title=f"After a grace period with no complaints, delete the access key {listed}",
            command=each(f"aws iam delete-access-key {p.flag}"),
            console_url=p.links.console,
            rollback=f"aws iam create-access-key {p.flag}  # a deleted key cannot come back: "
            "this makes a new one, to be handed to its user",
        ),
    )


def _cutoff(f: Finding) -> tuple[str, str]:
    """A bash assignment of `cutoff` (YYYY-MM-DD) and its description for the title.

    A key is the unused one when its last use (or, never used, its creation) is before the
    cut-off: the day after the finding's last access, else the day the finding was created (the
    key was already unused then), else the analyzer's default period before today.
    """
    if f.last_accessed is not None:
        day = (f.last_accessed + timedelta(days=1)).date().isoformat()
        return f"cutoff={day}", f"not used since {f.last_accessed.date().isoformat()}"
    if f.created_at is not None:
        day = f.created_at.date().isoformat()
        return f"cutoff={day}", f"last used before {day}"
    # GNU date, then BSD/macOS date: the reader may run either.
    days = DEFAULT_UNUSED_DAYS
    return (
        f"cutoff=$(date -u -d '{days} days ago' +%F 2>/dev/null || date -u -v-{days}d +%F)",
        f"not used for {days} days",
    )


def _looked_up_keys(p: _Principal) -> tuple[RemediationStep, ...]:
    cutoff, described = _cutoff(p.f)
    record = '"$d/deactivated-access-keys.txt"'
    # Moved aside, so that the delete step can never act on keys a rollback brought back.
    rolled_back = '"$d/deactivated-access-keys.rolled-back.txt"'
    key = _opt("access-key-id", _var("k"))
    active = (
        f"aws iam list-access-keys {p.flag} --query "
        "'AccessKeyMetadata[?Status==`Active`].[AccessKeyId,CreateDate]' --output text"
    )
    deactivate = (
        f"{active} | while read -r k created; do "
        f"used=$(aws iam get-access-key-last-used {key} --query "
        "AccessKeyLastUsed.LastUsedDate --output text) || exit 1; "
        '[ "$used" != None ] || used=$created; '
        'if [[ "${used:0:10}" < "$cutoff" ]]; then '
        f"aws iam update-access-key {p.flag} {key} --status Inactive || exit 1; "
        f"printf '%s\\n' \"$k\" >> {record}; "
        'echo "deactivated $k (last used ${used:0:10})"; fi; done'
    )
    reactivate = (
        f"while read -r k; do aws iam update-access-key {p.flag} {key} "
        f"--status Active || exit 1; done < {record} && mv {record} {rolled_back}"
    )
    delete = (
        f"while read -r k; do aws iam delete-access-key {p.flag} {key} "
        f'|| exit 1; echo "deleted $k"; done < {record}'
    )
    return (
        RemediationStep(
            title=f"Deactivate every active access key of user {p.name} {described} (the "
            "source did not name the key; the step looks the keys up and records the ids in "
            "the backup folder)",
            command=_subshell(p.d, f'mkdir -p "$d" && touch {record} && {cutoff} && {deactivate}'),
            console_url=p.links.console,
            rollback=_subshell(p.d, reactivate),
        ),
        RemediationStep(
            title="After a grace period with no complaints, delete the keys the previous step "
            "deactivated",
            command=_subshell(p.d, delete),
            console_url=p.links.console,
            rollback=f"aws iam create-access-key {p.flag}  # a deleted key cannot come back: "
            "this makes a new one, to be handed to its user",
        ),
    )


# --- console password --------------------------------------------------------------------------


def _password(p: _Principal) -> tuple[RemediationStep, ...]:
    return (
        _guard(p),
        RemediationStep(
            title=f"Remove the console password of user {p.name} (access keys keep working)",
            command=f"aws iam delete-login-profile {p.flag}",
            console_url=p.links.console,
            # The old password cannot be restored: a new one, changed at the first sign-in.
            rollback='pw="$(openssl rand -base64 18)-Aa1" && '
            f"aws iam create-login-profile {p.flag} {_opt('password', _var('pw'))} "
            "--password-reset-required "
            "&& echo 'New temporary password, to hand to the user privately:' \"$pw\"",
        ),
    )


# --- roles -------------------------------------------------------------------------------------


def _role(p: _Principal) -> tuple[RemediationStep, ...]:
    deny_all = _opt("policy-arn", deny_all_arn(p.partition))
    profiles = '"$d/instance-profiles.txt"'
    managed = '"$d/managed-policies.txt"'
    return (
        _guard(p),
        RemediationStep(
            title=f"Block role {p.name} with the AWS managed policy AWSDenyAll (reversible; "
            "also stops sessions already issued)",
            command=f"aws iam attach-role-policy {p.flag} {deny_all}",
            console_url=p.links.console,
            rollback=f"aws iam detach-role-policy {p.flag} {deny_all}",
        ),
        RemediationStep(
            title="After a grace period with no complaints, remove the role from every instance "
            "profile",
            command=_subshell(
                p.d,
                f'mkdir -p "$d" && touch {profiles} && '
                + _each(
                    "n",
                    f"aws iam list-instance-profiles-for-role {p.flag} "
                    "--query 'InstanceProfiles[].InstanceProfileName'",
                    "aws iam remove-role-from-instance-profile "
                    f"{_opt('instance-profile-name', _var('n'))} {p.flag} && "
                    f"printf '%s\\n' \"$n\" >> {profiles}",
                ),
            ),
            console_url=p.links.console,
            rollback=_subshell(
                p.d,
                "while read -r n; do aws iam add-role-to-instance-profile "
                f"{_opt('instance-profile-name', _var('n'))} {p.flag} || exit 1; "
                f"done < {profiles} && rm {profiles}",
            ),
        ),
        _delete_inline_policies(p),
        RemediationStep(
            # Inline policies went first and AWSDenyAll goes last, so the deny stays attached
            # while anything else still grants access.
            title="Detach every managed policy, AWSDenyAll last",
            command=_subshell(
                p.d,
                f'mkdir -p "$d" && touch {managed} && '
                + _each(
                    "a",
                    f"aws iam list-attached-role-policies {p.flag} --query {_OTHER_POLICIES}",
                    f"aws iam detach-role-policy {p.flag} {_opt('policy-arn', _var('a'))} && "
                    f"printf '%s\\n' \"$a\" >> {managed}",
                )
                + f" && if aws iam list-attached-role-policies {p.flag} --query {_DENY_ALL} "
                "--output text | grep -q .; "
                f"then aws iam detach-role-policy {p.flag} {deny_all} && "
                f"printf '%s\\n' {quote(deny_all_arn(p.partition))} >> {managed}; fi",
            ),
            console_url=p.links.console,
            rollback=_subshell(
                p.d,
                f"while read -r a; do aws iam attach-role-policy {p.flag} "
                f"{_opt('policy-arn', _var('a'))} || exit 1; done < {managed} && rm {managed}",
            ),
        ),
        RemediationStep(
            title=f"Delete role {p.name} (its trust policy is saved first)",
            command=_subshell(
                p.d,
                f'mkdir -p "$d" && aws iam get-role {p.flag} --output json > "$d/role.json" && '
                f"aws iam get-role {p.flag} --query Role.AssumeRolePolicyDocument --output json "
                f'> "$d/trust-policy.json" && aws iam delete-role {p.flag}',
            ),
            console_url=p.links.console,
            rollback=_subshell(
                p.d,
                f"aws iam create-role {p.flag} {_opt('path', p.f.principal_path)} "
                + _opt("assume-role-policy-document", _Sh('"file://$d/trust-policy.json"')),
            )
            + "  # a new role with the same name and trust policy (new role id; tags, "
            'description and boundary are in "$d/role.json"); then run the earlier rollbacks',
        ),
    )


def _delete_inline_policies(p: _Principal) -> RemediationStep:
    name = _opt("policy-name", _var("n"))
    saved_name = _opt("policy-name", _Sh('"$(basename "$f" .json)"'))
    saved_document = _opt("policy-document", _Sh('"file://$f"'))
    return RemediationStep(
        title="Save and delete every inline policy",
        command=_subshell(
            p.d,
            'mkdir -p "$d/inline" && '
            + _each(
                "n",
                f"aws iam list-{p.kind}-policies {p.flag} --query 'PolicyNames[]'",
                f"{p.iam('get')} {name} --query PolicyDocument --output json "
                f'> "$d/inline/$n.json" && {p.iam("delete")} {name}',
            ),
        ),
        console_url=p.links.console,
        rollback=_subshell(
            p.d,
            'for f in "$d"/inline/*.json; do [ -e "$f" ] || continue; '
            f"{p.iam('put')} {saved_name} {saved_document} "
            '&& rm "$f" || exit 1; done',
        ),
    )


def _service_linked(p: _Principal) -> tuple[RemediationStep, ...]:
    service = p.f.principal_path.removeprefix("/aws-service-role/").strip("/")
    if p.f.type is not FindingType.UNUSED_ROLE:
        # The service owns this role's policy; it cannot be narrowed, only the role deleted.
        return (
            _guard(p),
            RemediationStep(
                title=f"Review service-linked role {p.name}: {service} manages its permissions, "
                "so they cannot be reduced. If the feature that uses it is no longer needed, "
                "turn the feature off in the service",
                command=f"aws iam list-attached-role-policies {p.flag} --output table",
                console_url=p.links.console,
                rollback=READ_ONLY,
                detail=_unused_listing(p.f),
            ),
        )
    task = '"$d/deletion-task-id.txt"'
    return (
        _guard(p),
        RemediationStep(
            title=f"Delete service-linked role {p.name} through IAM (fails if {service} still "
            "uses it; the deletion task id is saved)",
            command=_subshell(
                p.d,
                f'mkdir -p "$d" && aws iam delete-service-linked-role {p.flag} '
                f"--query DeletionTaskId --output text > {task} && cat {task}",
            ),
            console_url=p.links.console,
            rollback=f"aws iam create-service-linked-role {_opt('aws-service-name', service)}"
            "  # add --custom-suffix if the role name had one",
        ),
        RemediationStep(
            title="Check that the deletion succeeded (SUCCEEDED; FAILED lists what still uses "
            "the role)",
            command=_subshell(
                p.d,
                "aws iam get-service-linked-role-deletion-status "
                + _opt("deletion-task-id", _Sh(f'"$(cat {task})"')),
            ),
            console_url=p.links.console,
            rollback=READ_ONLY,
        ),
    )


def _permission_set_name(role_name: str) -> str:
    """`AWSReservedSSO_<permission set>_<16 hex>`; the set's own name may contain `_`."""
    return role_name.removeprefix("AWSReservedSSO_").rpartition("_")[0]


# The Identity Center instance and permission set `_find_permission_set` looks up.
_INSTANCE = _opt("instance-arn", _var("inst"))
_PERMISSION_SET = _opt("permission-set-arn", _var("ps"))


def _find_permission_set(name: str) -> str:
    """Bash that sets `inst` and `ps` (the permission set's ARN) or fails saying why."""
    return (
        "inst=$(aws sso-admin list-instances --query 'Instances[0].InstanceArn' --output text) "
        f"&& ps=$(for p in $(aws sso-admin list-permission-sets {_INSTANCE} "
        "--query 'PermissionSets[]' --output text); do if [ \"$(aws sso-admin "
        f"describe-permission-set {_INSTANCE} {_opt('permission-set-arn', _var('p'))} --query "
        f'PermissionSet.Name --output text)" = {quote(name)} ]; then printf \'%s\\n\' "$p"; '
        "fi; done) && "
        f"{{ [ -n \"$ps\" ] || {{ echo 'No permission set named' {quote(name)} >&2; false; }}; }}"
    )


def _identity_center(p: _Principal) -> tuple[RemediationStep, ...]:
    name = _permission_set_name(p.name)
    account = p.f.account_id
    where = (
        "with credentials for the IAM Identity Center administration account (the "
        "management account or its delegated administrator), in Identity Center's Region"
    )
    console = identity_center_url(p.partition)
    if p.f.type is not FindingType.UNUSED_ROLE:
        return (
            RemediationStep(
                title=f"Remove the unused permissions from permission set {name} in IAM Identity "
                f"Center, not from role {p.name} (IAM changes to it are undone; the change "
                f"applies to every account the set is assigned to). Run {where}",
                command=_find_permission_set(name)
                + " && aws sso-admin list-managed-policies-in-permission-set "
                f"{_INSTANCE} {_PERMISSION_SET} --output table && aws sso-admin "
                f"get-inline-policy-for-permission-set {_INSTANCE} {_PERMISSION_SET} "
                "--query InlinePolicy --output text",
                console_url=console,
                rollback=READ_ONLY,
                detail=_unused_listing(p.f),
            ),
        )
    assignments = '"$d/sso-assignments.txt"'

    def each_assignment(verb: str) -> str:
        return (
            f'while read -r t i; do [ -n "$i" ] || continue; aws sso-admin {verb}-account-'
            f"assignment {_INSTANCE} {_opt('target-id', account)} --target-type AWS_ACCOUNT "
            f"{_PERMISSION_SET} {_opt('principal-type', _var('t'))} "
            f"{_opt('principal-id', _var('i'))} --output text || exit 1; done < {assignments}"
        )

    return (
        RemediationStep(
            title=f"Role {p.name} in account {p.f.account_id} belongs to IAM Identity Center "
            f"permission set {name}: never change it with IAM. Record who is assigned the set in "
            f"that account. Run this and the next step {where}",
            command=_subshell(
                p.d,
                f'mkdir -p "$d" && {_find_permission_set(name)} && aws sso-admin '
                f"list-account-assignments {_INSTANCE} {_opt('account-id', account)} "
                f"{_PERMISSION_SET} --query 'AccountAssignments[].[PrincipalType,"
                f"PrincipalId]' --output text > {assignments} && cat {assignments}",
            ),
            console_url=console,
            rollback=READ_ONLY,
        ),
        RemediationStep(
            title=f"Remove those assignments of permission set {name} from account "
            f"{p.f.account_id}; Identity Center then removes the role from the account",
            command=_subshell(p.d, f"{_find_permission_set(name)} && {each_assignment('delete')}"),
            console_url=console,
            rollback=_subshell(p.d, f"{_find_permission_set(name)} && {each_assignment('create')}"),
        ),
    )


# --- CloudFormation ----------------------------------------------------------------------------


def _cloudformation(p: _Principal) -> tuple[RemediationStep, ...]:
    stack = p.f.principal_tags[STACK_NAME_TAG]
    # The stack id tag is the stack's ARN, which names its Region; IAM itself is global.
    stack_id = p.f.principal_tags.get(STACK_ID_TAG, "")
    region = stack_id.split(":")[3] if stack_id.count(":") >= 5 else ""
    cfn = "aws cloudformation" + (f" {_opt('region', region)}" if region else "")
    change = {
        FindingType.UNUSED_ACCESS_KEY: f"remove the AWS::IAM::AccessKey of user {p.name}",
        FindingType.UNUSED_PASSWORD: f"remove the LoginProfile of user {p.name}",
        FindingType.UNUSED_ROLE: f"remove role {p.name} and what refers to it",
        FindingType.UNUSED_PERMISSION: f"remove the unused permissions from {p.who}'s policies",
    }[p.f.type]
    return (
        _guard(p),
        RemediationStep(
            title=f"{p.who.capitalize()} is managed by CloudFormation stack {stack}: change the "
            "stack, not the principal (a direct change drifts and the next stack update undoes "
            "it). List the stack's IAM resources",
            command=f"{cfn} describe-stack-resources {_opt('stack-name', stack)} --query "
            "\"StackResources[?starts_with(ResourceType, 'AWS::IAM::')]."
            '[LogicalResourceId,ResourceType,PhysicalResourceId]" --output table',
            console_url=p.links.console,
            rollback=READ_ONLY,
        ),
        RemediationStep(
            title=f"In the source of stack {stack}, {change}; deploy it (template.yaml: the "
            "edited template; previous parameter values are kept)",
            command=f"{cfn} deploy {_opt('stack-name', stack)} --template-file template.yaml "
            "--capabilities CAPABILITY_IAM CAPABILITY_NAMED_IAM",
            console_url=p.links.console,
            rollback=f"{cfn} deploy {_opt('stack-name', stack)} --template-file "
            "previous-template.yaml --capabilities CAPABILITY_IAM CAPABILITY_NAMED_IAM"
            "  # the template as it was before the change",
            detail=_permissions_detail(p.f) if p.f.type is FindingType.UNUSED_PERMISSION else "",
        ),
    )


# --- unused permissions ------------------------------------------------------------------------


def _usable(f: Finding) -> Recommendation | None:
    rec = f.recommendation
    return rec if rec is not None and rec.status == "SUCCEEDED" and rec.steps else None


def _permissions(p: _Principal) -> tuple[RemediationStep, ...]:
    rec = _usable(p.f)
    if rec is None:
        return (_guard(p), *_review(p))
    steps = [_guard(p)]
    for rs in rec.steps:
        if rs.action == "CREATE_POLICY":
            steps += _create(p, rs)
        elif rs.action == "DETACH_POLICY":
            steps.append(_detach(p, rs))
    return tuple(steps)


def _review(p: _Principal) -> tuple[RemediationStep, ...]:
    rec = p.f.recommendation
    why = ""
    if rec is not None and rec.status != "SUCCEEDED":
        why = f" (the Access Analyzer recommendation is {rec.status}" + (
            f": {rec.error})" if rec.error else ")"
        )
    services = ", ".join(s.namespace for s in p.f.services) or "see the Access Analyzer finding"
    job = _opt("job-id", _var("job"))
    return (
        RemediationStep(
            title=f"Review the unused permissions of {p.who} ({services}) and remove them from "
            f"the policies below{why}",
            command=f"aws iam list-attached-{p.kind}-policies {p.flag} --output table && "
            f"aws iam list-{p.kind}-policies {p.flag} --output table",
            console_url=p.links.access_analyzer,
            rollback=READ_ONLY,
            detail=_unused_listing(p.f),
        ),
        RemediationStep(
            title=f"See when {p.who} last used each service (IAM last-accessed data)",
            command="job=$(aws iam generate-service-last-accessed-details "
            f"{_opt('arn', p.f.principal_arn)} --granularity ACTION_LEVEL --query JobId "
            f'--output text) && while [ "$(aws iam get-service-last-accessed-details {job} '
            '--query JobStatus --output text)" = IN_PROGRESS ]; do sleep 2; done && '
            f"aws iam get-service-last-accessed-details {job} --query "
            "'ServicesLastAccessed[].[ServiceNamespace,LastAuthenticated]' --output table",
            console_url=p.links.console,
            rollback=READ_ONLY,
        ),
    )


def _unused_listing(f: Finding) -> str:
    if not f.services:
        return "Unused services and actions: see the Access Analyzer finding."
    lines = ["Unused services and actions (last accessed):"]
    for s in f.services:
        lines.append(f"- {s.namespace} ({_when(s.last_accessed)})")
        lines += [f"    {a.action} ({_when(a.last_accessed)})" for a in s.actions]
    return "\n".join(lines)


def _when(moment: datetime | None) -> str:
    return "never" if moment is None else moment.date().isoformat()


def _permissions_detail(f: Finding) -> str:
    rec = _usable(f)
    if rec is None:
        return _unused_listing(f)
    parts = []
    for rs in rec.steps:
        if rs.action == "CREATE_POLICY":
            before = f.policy_documents.get(rs.existing_policy_id)
            parts.append(
                _diff(before, rs.recommended_policy, rs.existing_policy_id)
                if before is not None
                else f"Recommended to replace {rs.existing_policy_id}:\n"
                + _pretty(rs.recommended_policy)
            )
        elif rs.action == "DETACH_POLICY":
            parts.append(f"Recommended: remove {rs.existing_policy_id}")
    return "\n\n".join(parts)


def _pretty(text: str) -> str:
    """Indented as the AWS CLI prints JSON, so a diff against its output is line by line."""
    try:
        return json.dumps(json.loads(text), indent=4, ensure_ascii=False)
    except ValueError:
        return text


def _diff(before: str, after: str, label: str) -> str:
    lines = difflib.unified_diff(
        _pretty(before).splitlines(),
        _pretty(after).splitlines(),
        f"before: {label}",
        "after: recommended",
        lineterm="",
    )
    return "\n".join(lines)


def _managed(policy_id: str) -> bool:
    """`existingPolicyId` is an ARN for managed policies and a bare name for inline ones."""
    return policy_id.startswith("arn:")


def _policy_name(policy_id: str) -> str:
    return policy_id.rsplit("/", 1)[-1]


def _bounded(name: str) -> str:
    """An IAM policy name of at most 128 characters that stays unique when shortened."""
    if len(name) <= _NAME_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: _NAME_MAX - 9]}-{digest}"


def _recommended_name(p: _Principal, policy_id: str) -> str:
    if _managed(policy_id):
        # Managed policies are account-wide: the principal's name keeps two roles' trimmed
        # copies of the same AWS policy apart.
        return _bounded(f"{p.name}-{_policy_name(policy_id)}-recommended")
    return _bounded(f"{policy_id}-recommended")


def _fetch_current(p: _Principal, rs: RecommendedStep) -> RemediationStep:
    """Save the live policy and print its diff against the recommendation (before unknown)."""
    pid = rs.existing_policy_id
    if _managed(pid):
        arn = _opt("policy-arn", pid)
        fetch = (
            f"v=$(aws iam get-policy {arn} --query Policy.DefaultVersionId --output text) && "
            f"aws iam get-policy-version {arn} {_opt('version-id', _var('v'))} "
            '--query PolicyVersion.Document --output json > "$b"'
        )
        url = policy_url(pid)
    else:
        fetch = (
            f'{p.iam("get")} {_opt("policy-name", pid)} --query PolicyDocument --output json > "$b"'
        )
        url = p.links.console
    slug = hashlib.sha256(rs.existing_policy_id.encode()).hexdigest()[:12]
    # One printf argument per line keeps the command on one line.
    after = " ".join(quote(line) for line in _pretty(rs.recommended_policy).splitlines())
    return RemediationStep(
        title=f"Save the current policy {_policy_name(rs.existing_policy_id)} and compare it "
        "with the recommended one",
        command=_subshell(
            p.d,
            f'b="$d/before-{slug}.json"',
            f'mkdir -p "$d" && {fetch} && printf \'%s\\n\' {after} > "$d/after-{slug}.json" && '
            f'{{ diff -u "$b" "$d/after-{slug}.json" || true; }}',
        ),
        console_url=url,
        rollback=READ_ONLY,
        detail=f"Recommended policy:\n{_pretty(rs.recommended_policy)}",
    )


def _create(p: _Principal, rs: RecommendedStep) -> list[RemediationStep]:
    before = p.f.policy_documents.get(rs.existing_policy_id)
    steps = [] if before is not None else [_fetch_current(p, rs)]
    detail = (
        _diff(before, rs.recommended_policy, rs.existing_policy_id)
        if before is not None
        else f"Recommended policy:\n{_pretty(rs.recommended_policy)}"
    )
    name = _recommended_name(p, rs.existing_policy_id)
    document = _opt("policy-document", rs.recommended_policy)
    original = _policy_name(rs.existing_policy_id)
    if not _managed(rs.existing_policy_id):
        # An inline policy is replaced by an inline one (reference §5.2): it lives and dies with
        # the principal, as the original did.
        steps.append(
            RemediationStep(
                title=f"Add the recommended inline policy {name} to {p.who}, replacing "
                f"{original} (see the diff)",
                command=f"{p.iam('put')} {_opt('policy-name', name)} {document}",
                console_url=p.links.console,
                rollback=f"{p.iam('delete')} {_opt('policy-name', name)}",
                detail=detail,
            )
        )
        return steps
    new_arn = _opt("policy-arn", f"arn:{p.partition}:iam::{p.f.account_id}:policy/{name}")
    steps += [
        RemediationStep(
            title=f"Create the recommended managed policy {name}, replacing {original} "
            f"for {p.who} (see the diff)",
            command=f"aws iam create-policy {_opt('policy-name', name)} {document} "
            "--query Policy.Arn --output text",
            console_url=p.links.console,
            rollback=f"aws iam delete-policy {new_arn}",
            detail=detail,
        ),
        RemediationStep(
            title=f"Attach {name} to {p.who}",
            command=f"{p.iam('attach')} {new_arn}",
            console_url=p.links.console,
            rollback=f"{p.iam('detach')} {new_arn}",
        ),
    ]
    return steps


def _detach(p: _Principal, rs: RecommendedStep) -> RemediationStep:
    pid = rs.existing_policy_id
    if _managed(pid):
        return RemediationStep(
            title=f"Detach {_policy_name(pid)} from {p.who}",
            command=f"{p.iam('detach')} {_opt('policy-arn', pid)}",
            console_url=policy_url(pid),
            rollback=f"{p.iam('attach')} {_opt('policy-arn', pid)}",
        )
    saved = '"$d/inline/$n.json"'
    name = _opt("policy-name", _var("n"))
    return RemediationStep(
        title=f"Save and delete the inline policy {pid} of {p.who}",
        command=_subshell(
            p.d,
            f"n={quote(pid)}",
            f'mkdir -p "$d/inline" && {p.iam("get")} {name} --query PolicyDocument '
            f"--output json > {saved} && {p.iam('delete')} {name}",
        ),
        console_url=p.links.console,
        rollback=_subshell(
            p.d,
            f"n={quote(pid)}",
            f"{p.iam('put')} {name} " + _opt("policy-document", _Sh('"file://$d/inline/$n.json"')),
        ),
    )


# --- organization access -----------------------------------------------------------------------
#
# Principals that hold the organization together (`reporter.orgaccess`): never deleted, never
# trimmed by following the report. Their steps are read-only: what the principal is, its trust
# policy and permissions, and its recent use in CloudTrail; the detail says how to keep it on the
# record (an exception) or tighten it with the security team. Tightening (trust conditions, a
# permissions boundary, alerting) needs decisions the report cannot make - which principal may
# assume it, what it must still be able to do, where alerts go - so it is described, not scripted.


class OrganizationAccessRemediation(_DerivedSteps):
    """`Remediation`'s counterpart for an organization access principal (same interface)."""

    __slots__ = ("access", "approver", "expires", "finding", "links")

    def __init__(
        self,
        finding: Finding,
        links: Links,
        access: OrganizationAccess,
        approver: str = "",
        expires: date | None = None,
    ) -> None:
        self.finding = finding
        self.links = links
        self.access = access
        self.approver = approver
        self.expires = expires

    def steps(self) -> tuple[RemediationStep, ...]:
        return organization_access_steps(
            self.finding, self.links, self.access, self.approver, self.expires
        )

    def __reduce__(
        self,
    ) -> tuple[
        type[OrganizationAccessRemediation],
        tuple[Finding, Links, OrganizationAccess, str, date | None],
    ]:
        return OrganizationAccessRemediation, (
            self.finding,
            self.links,
            self.access,
            self.approver,
            self.expires,
        )


def organization_access_steps(
    finding: Finding,
    links: Links,
    access: OrganizationAccess,
    approver: str = "",
    expires: date | None = None,
) -> tuple[RemediationStep, ...]:
    """Read-only review steps and the keep-or-tighten guidance; no command changes anything."""
    p = _Principal.of(finding, links)
    label = KIND_LABELS.get(access.kind, access.kind)
    if p.kind == "role":
        inspect = (
            f"aws iam get-role {p.flag} --query 'Role.{{Trust:AssumeRolePolicyDocument,"
            "LastUsed:RoleLastUsed,Boundary:PermissionsBoundary}' --output json && "
            f"aws iam list-attached-role-policies {p.flag} --output table"
        )
    else:
        inspect = (
            f"aws iam get-user {p.flag} --output json && aws iam list-access-keys {p.flag} "
            f"--output table && aws iam list-mfa-devices {p.flag} --output table"
        )
    arn = quote(finding.principal_arn)
    return (
        _guard(p),
        RemediationStep(
            title=f"{p.who.capitalize()} is organization access ({label}): keep it; do not "
            "remove it or its permissions. Review its trust, permissions and last use with the "
            "security team",
            command=inspect,
            console_url=links.console,
            rollback=READ_ONLY,
            detail=_organization_access_detail(p, access, approver, expires),
        ),
        RemediationStep(
            title=f"See who used {p.who} recently (CloudTrail event history, the last 90 days, "
            "in this Region; us-east-1 also holds global-endpoint sign-ins and AssumeRole calls)",
            command="aws cloudtrail lookup-events --lookup-attributes "
            f"AttributeKey=ResourceName,AttributeValue={arn} --max-results 50 --query "
            "'Events[].[EventTime,EventName,Username]' --output table",
            console_url=links.console,
            rollback=READ_ONLY,
        ),
    )


def _organization_access_detail(
    p: _Principal, access: OrganizationAccess, approver: str, expires: date | None
) -> str:
    lines = [f"What it is for: {access.reason}"]
    if access.source_doc:
        lines.append(f"AWS documentation: {access.source_doc}")
    lines += ["", "Keep it on the record: add this exception (owner: the security team"]
    lines[-1] += f", {approver})" if approver else ")"
    lines.append(
        suggested_exception(
            p.f,
            access,
            approver or "security-team@example.com",
            expires or date.today() + timedelta(days=180),
        )
    )
    lines += ["", "Or tighten it, with the security team (each needs a decision, so no command):"]
    if p.kind == "role":
        lines += [
            "- trust policy: allow only the named administrator role, not the whole trusted "
            "account (an aws:PrincipalArn condition), and require MFA where people assume it;",
            "- a permissions boundary that keeps what the role is for and nothing more;",
            "- an alert on every use: an EventBridge rule on CloudTrail AssumeRole events for "
            f"{p.f.principal_arn}, to the security team.",
        ]
    else:
        lines += [
            "- MFA on the user, no access keys, and a password kept in the break-glass safe;",
            "- an alert on every use: an EventBridge rule on CloudTrail ConsoleLogin events for "
            f"{p.f.principal_arn}, to the security team.",
        ]
    return "\n".join(lines)
