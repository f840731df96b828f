"""Remediation steps, console links and priority, case by case (pure functions).

Every command and rollback must be valid bash (`bash -n`) and split by the shell into exactly the
arguments meant, whatever characters a name holds. tests/test_remediation_awscli.py runs them.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
import subprocess
from datetime import UTC, datetime

import pytest

from reporter.links import links_for, partition_of
from reporter.models import (
    Finding,
    FindingType,
    Recommendation,
    RecommendedStep,
    RemediationStep,
    SourceRef,
    UnusedAction,
    UnusedService,
)
from reporter.priority import priority
from reporter.remediation import READ_ONLY, STACK_ID_TAG, STACK_NAME_TAG, remediation_for
from tests.conftest import sample

A = "111111111111"
SLR = f"arn:aws:iam::{A}:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS"
SSO = (
    f"arn:aws:iam::{A}:role/aws-reserved/sso.amazonaws.com/eu-west-1/"
    "AWSReservedSSO_Data_Admin_0a1b2c3d4e5f6a7b"
)
PLACEHOLDER = re.compile(r"<[A-Z_]+>")
# IAM accepts the first seven as names ([\w+=,.@-]+); the rest only in paths, or nowhere, and must
# still be one word to the shell.
ODD_NAMES = (
    "a=b+c@d,e.f-g",
    "-cmd",
    "--x",
    "-n",
    "=eq",
    "+plus",
    "@at",
    "x;rm -rf ~",
    "$(id)`id`",
    'it\'s "quoted"',
    "a b",
    "-'$(id)'",
)


def steps(finding: Finding) -> tuple[RemediationStep, ...]:
    return remediation_for(finding, links_for(finding, "us-east-1"))


def bash_ok(script: str) -> bool:
    return subprocess.run(["bash", "-n", "-c", script], capture_output=True).returncode == 0


def args_after(command: str, flag: str) -> list[str]:
    """Every value the shell passes as `flag=value` (the command split as bash would)."""
    words = shlex.split(command, comments=True)
    return [w.removeprefix(f"{flag}=") for w in words if w.startswith(f"{flag}=")]


def assert_valid(result: tuple[RemediationStep, ...]) -> None:
    for step in result:
        assert bash_ok(step.command), step.command
        assert bash_ok(step.rollback), step.rollback
        assert step.rollback, f"no rollback for {step.title}"
        assert step.console_url.startswith("https://"), step.title
        # complete: no placeholder such as <KEY_ID> left for the reader to fill in
        assert not PLACEHOLDER.search(step.command), step.command
        # one line each: the CSV and workbook put one command per line
        assert "\n" not in step.command and "\n" not in step.rollback, step.title


def recommendation_from_sample() -> Recommendation:
    body = sample("aa-get-finding-recommendation-aws-blog.json")
    return Recommendation(
        status=body["status"],
        steps=tuple(
            RecommendedStep(
                action=s["recommendedAction"],
                existing_policy_id=s["existingPolicyId"],
                recommended_policy=s.get("recommendedPolicy", ""),
            )
            for s in (r["unusedPermissionsRecommendedStep"] for r in body["recommendedSteps"])
        ),
    )


# --- every case --------------------------------------------------------------------------------

ALL_CASES = [
    Finding(
        FindingType.UNUSED_ACCESS_KEY, A, f"arn:aws:iam::{A}:user/u", access_key_ids=("AKIA1",)
    ),
    Finding(FindingType.UNUSED_ACCESS_KEY, A, f"arn:aws:iam::{A}:user/u"),
    Finding(FindingType.UNUSED_PASSWORD, A, f"arn:aws:iam::{A}:user/u"),
    Finding(FindingType.UNUSED_ROLE, A, f"arn:aws:iam::{A}:role/r"),
    Finding(FindingType.UNUSED_ROLE, A, SLR),
    Finding(FindingType.UNUSED_ROLE, A, SSO),
    Finding(FindingType.UNUSED_PERMISSION, A, SLR),
    Finding(FindingType.UNUSED_PERMISSION, A, SSO),
    Finding(FindingType.UNUSED_PERMISSION, A, f"arn:aws:iam::{A}:role/r"),
    Finding(
        FindingType.UNUSED_PERMISSION,
        A,
        f"arn:aws:iam::{A}:role/r",
        recommendation=recommendation_from_sample(),
    ),
    Finding(
        FindingType.UNUSED_ROLE,
        A,
        f"arn:aws:iam::{A}:role/r",
        principal_tags={"aws:cloudformation:stack-name": "app"},
    ),
]


@pytest.mark.parametrize("finding", ALL_CASES, ids=lambda f: f"{f.type.value}-{f.principal_name}")
def test_every_case_is_valid_bash_with_rollbacks_and_links(finding: Finding) -> None:
    result = steps(finding)
    assert result
    assert_valid(result)


@pytest.mark.parametrize(
    "finding", [f for f in ALL_CASES if "AWSReservedSSO" not in f.principal_arn]
)
def test_first_step_checks_the_account(finding: Finding) -> None:
    guard = steps(finding)[0]
    assert "aws sts get-caller-identity --query Account --output text" in guard.command
    assert A in guard.title and shlex.split(guard.command)[3] == A
    assert guard.rollback == READ_ONLY


# --- odd names and paths -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ODD_NAMES)
@pytest.mark.parametrize(
    "finding_type",
    [FindingType.UNUSED_ROLE, FindingType.UNUSED_PASSWORD, FindingType.UNUSED_ACCESS_KEY],
)
def test_odd_names_stay_one_argument(name: str, finding_type: FindingType) -> None:
    kind = "role" if finding_type is FindingType.UNUSED_ROLE else "user"
    finding = Finding(finding_type, A, f"arn:aws:iam::{A}:{kind}/{name}", access_key_ids=("AKIA1",))
    result = steps(finding)
    assert_valid(result)
    flag = f"--{kind}-name"
    named = [v for s in result for v in args_after(s.command, flag) + args_after(s.rollback, flag)]
    assert named and set(named) == {name}
    for s in result:
        # never `--role-name VALUE`: the CLI would read a value beginning with `-` as an option
        assert flag not in shlex.split(s.command, comments=True) + shlex.split(
            s.rollback, comments=True
        )
        # the name is never inside double quotes, where $(…) and backticks would still run
        assert f'"{name}' not in s.command and f'"{name}' not in s.rollback


def test_path_with_spaces_and_quotes_is_restored_exactly() -> None:
    path = '/we ird/it\'s "x"/$(id)/'
    finding = Finding(FindingType.UNUSED_ROLE, A, f"arn:aws:iam::{A}:role{path}r")
    delete = steps(finding)[-1]
    assert "delete-role --role-name=r" in delete.command
    assert args_after(delete.rollback, "--path") == [path]
    assert bash_ok(delete.rollback)


def test_backup_folder_is_quoted() -> None:
    finding = Finding(FindingType.UNUSED_ROLE, A, f"arn:aws:iam::{A}:role/a=b+c@d")
    inline = steps(finding)[3]
    assert "d=unused-access-backup/111111111111/role/a=b+c@d;" in inline.command


# --- every option value ------------------------------------------------------------------------
#
# The CLI reads a separate word that begins with `-` as an option, and IAM names may begin with
# `-`: a name, id, ARN, path or document goes to the CLI as one word, `--option=value`. Only
# constants (`--output text`, `--query '…'`) may follow an option as the next word. The scan below
# reads each command as bash would into words (inside every `$(…)` too, where the lookups are)
# and compares the steps of two findings of each shape that share nothing: a value after a space
# must be the same in both and must expand nothing.

Word = tuple[str, bool] | None  # (raw text, expands something); None: an operator between words


def shell_words(text: str) -> list[list[Word]]:
    """The words of a bash command line as raw text: the line's own, then each `$(…)`'s.

    Enough bash for the generated commands: quotes, backslashes, `$(…)` (also in double quotes),
    `${…}`, backticks, operators, subshells and comments.
    """
    lists: list[list[Word]] = []
    _command_list(text, 0, lists, closing=False)
    return lists


def _command_list(text: str, i: int, lists: list[list[Word]], closing: bool) -> int:
    words: list[Word] = []
    lists.append(words)
    depth = 0
    while i < len(text):
        c = text[i]
        if c in " \t":
            i += 1
        elif c == "#":  # a comment runs to the end of the line
            i = len(text)
        elif c == ")" and closing and depth == 0:
            return i + 1
        elif c in ";|&<>()":
            depth += {"(": 1, ")": -1}.get(c, 0)
            words.append(None)
            i += 1
        else:
            start, expands = i, False
            while i < len(text) and text[i] not in " \t;|&<>()":
                i, e = _word_part(text, i, lists)
                expands |= e
            words.append((text[start:i], expands))
    assert not closing, f"unclosed $( in {text!r}"
    return i


def _word_part(text: str, i: int, lists: list[list[Word]]) -> tuple[int, bool]:
    c = text[i]
    if c == "\\":
        return i + 2, False
    if c == "'":
        return text.index("'", i + 1) + 1, False
    if c == "`":
        return text.index("`", i + 1) + 1, True
    if c == '"':
        i, expands = i + 1, False
        while text[i] != '"':
            if text[i] == "\\":
                i += 2
            elif text[i] in "$`":
                i, _ = _word_part(text, i, lists)
                expands = True
            else:
                i += 1
        return i + 1, expands
    if text.startswith("$(", i):
        return _command_list(text, i + 2, lists, closing=True), True
    if text.startswith("${", i):
        return text.index("}", i) + 1, True
    return i + 1, c == "$"


OPTION = re.compile(r"--[a-z][a-z0-9-]*")


def spaced_values(text: str) -> set[tuple[str, str, bool]]:
    """Every `--option value` with the value a separate word: (option, raw value, expands)."""
    found = set()
    for words in shell_words(text):
        for word, following in itertools.pairwise(words):
            if word is None or following is None or not OPTION.fullmatch(word[0]):
                continue
            if not OPTION.fullmatch(following[0]):  # not the next option of a bare flag
                found.add((word[0], *following))
    return found


def test_the_scan_finds_a_value_after_a_space_wherever_it_is() -> None:
    assert spaced_values("aws iam get-user --user-name -cmd --output text") == {
        ("--user-name", "-cmd", False),
        ("--output", "text", False),
    }
    inside = """( set -o pipefail; x=$(aws iam a --role-name "$r" --query 'A[?B==`"c d"`]') )"""
    assert spaced_values(inside) == {
        ("--role-name", '"$r"', True),
        ("--query", "'A[?B==`\"c d\"`]'", False),
    }
    quoted = 'test "$(aws b --job-id "$(cat "$d/f")" --q x)" = 1 && aws c --x=y --flag && z'
    assert spaced_values(quoted) == {("--job-id", '"$(cat "$d/f")"', True), ("--q", "x", False)}
    assert spaced_values("aws c --flag  # add --suffix if needed") == set()


def shapes(account: str, partition: str, name: str, path: str, word: str) -> list[Finding]:
    """A finding of every shape the steps take, built from the given values."""
    arn = f"arn:{partition}:iam::{account}"
    user, role = f"{arn}:user{path}{name}", f"{arn}:role{path}{name}"
    managed = f"{arn}:policy{path}{word}"
    rec = Recommendation(
        "SUCCEEDED",
        (
            RecommendedStep("CREATE_POLICY", managed, '{"Version":"2012-10-17","Statement":[]}'),
            RecommendedStep("DETACH_POLICY", managed),
            RecommendedStep("CREATE_POLICY", word, '{"Version":"2012-10-17","Statement":[]}'),
            RecommendedStep("DETACH_POLICY", word),
            RecommendedStep("CREATE_POLICY", f"{word}-known", "{}"),
        ),
    )
    slr = f"{arn}:role/aws-service-role/{word}.amazonaws.com/{name}"
    sso = f"{arn}:role/aws-reserved/sso.amazonaws.com/{word}/AWSReservedSSO_{name}_0a1b2c3d4e5f6a7b"
    stack = {
        STACK_NAME_TAG: word,
        STACK_ID_TAG: f"arn:{partition}:cloudformation:{word}:{account}:stack/{word}/1",
    }
    day = datetime(2025, 3, 1, tzinfo=UTC)
    K, P, R, U = (
        FindingType.UNUSED_ACCESS_KEY,
        FindingType.UNUSED_PASSWORD,
        FindingType.UNUSED_ROLE,
        FindingType.UNUSED_PERMISSION,
    )
    return [
        Finding(K, account, user, access_key_ids=(f"AKIA{word}", f"AKIA{word}2")),
        Finding(K, account, user),
        Finding(K, account, user, last_accessed=day),
        Finding(K, account, user, created_at=day),
        Finding(P, account, user),
        Finding(R, account, role),
        Finding(R, account, slr),
        Finding(U, account, slr),
        Finding(R, account, sso),
        Finding(U, account, sso),
        Finding(U, account, role),
        Finding(U, account, user, recommendation=Recommendation("FAILED", error=word)),
        Finding(U, account, role, recommendation=rec, policy_documents={f"{word}-known": "{}"}),
        Finding(U, account, user, recommendation=rec),
        *(
            Finding(t, account, user, access_key_ids=("AKIA1",), principal_tags=stack)
            for t in (K, P)
        ),
        *(Finding(t, account, role, principal_tags=stack) for t in (R, U)),
        Finding(R, account, role, principal_tags={STACK_NAME_TAG: word}),
    ]


PLAIN = shapes(A, "aws", "u", "/", "p")
HOSTILE = shapes("222222222222", "aws-cn", "-n", "/-p$(id)'\"`x`*?/", "--x")


@pytest.mark.parametrize(
    ("plain", "hostile"),
    list(zip(PLAIN, HOSTILE, strict=True)),
    ids=[f"{n}-{f.type.value}-{f.principal_type}" for n, f in enumerate(PLAIN)],
)
def test_no_value_of_any_command_is_a_separate_word(plain: Finding, hostile: Finding) -> None:
    """Every command and rollback of every shape: each value is `--option=value`."""
    mine, theirs = steps(hostile), steps(plain)
    assert len(mine) == len(theirs)
    assert_valid(mine)
    for step, twin in zip(mine, theirs, strict=True):
        for text, twin_text in ((step.command, twin.command), (step.rollback, twin.rollback)):
            constants = spaced_values(twin_text)
            for option, value, expands in spaced_values(text):
                assert not expands, f"{option} {value} is read at run time: use _opt\n{text}"
                assert (option, value, expands) in constants, f"{option} {value} varies\n{text}"
            # and the hostile values do reach the commands, each as one `--option=` word
            assert "--x" not in shlex.split(text, comments=True)


def test_values_beginning_with_a_dash_are_one_word_after_the_option() -> None:
    finding = Finding(FindingType.UNUSED_PASSWORD, A, f"arn:aws:iam::{A}:user/-cmd")
    _, delete = steps(finding)
    assert delete.command == "aws iam delete-login-profile --user-name=-cmd"
    words = shlex.split(delete.rollback)
    assert words[words.index("create-login-profile") + 1] == "--user-name=-cmd"


# --- partitions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("partition", "host"),
    [
        ("aws", "console.aws.amazon.com"),
        ("aws-cn", "console.amazonaws.cn"),
        ("aws-us-gov", "console.amazonaws-us-gov.com"),
    ],
)
def test_partition_comes_from_the_principal_arn(partition: str, host: str) -> None:
    finding = Finding(FindingType.UNUSED_ROLE, A, f"arn:{partition}:iam::{A}:role/r")
    result = steps(finding)
    block = result[1]
    assert args_after(block.command, "--policy-arn") == [
        f"arn:{partition}:iam::aws:policy/AWSDenyAll"
    ]
    assert args_after(block.rollback, "--policy-arn") == [
        f"arn:{partition}:iam::aws:policy/AWSDenyAll"
    ]
    every = " ".join(s.command + s.rollback for s in result)
    assert ("arn:aws:" in every) is (partition == "aws")
    links = links_for(finding, "us-east-1")
    assert links.console.startswith(f"https://{host}/iam/home#/roles/details/r")
    assert host in links.access_analyzer


def test_partition_is_only_letters_and_dashes() -> None:
    assert partition_of("arn:aws-us-gov:iam::1:role/r") == "aws-us-gov"
    assert partition_of("arn:$(id):iam::1:role/r") == "aws"
    assert partition_of("not-an-arn") == "aws"


def test_a_region_that_is_no_region_never_becomes_the_link_host() -> None:
    finding = Finding(FindingType.UNUSED_ROLE, A, f"arn:aws:iam::{A}:role/r", region="evil.test/#")
    links = links_for(finding, "eu-central-1")
    assert links.access_analyzer.startswith("https://eu-central-1.console.aws.amazon.com/")


# --- access keys -------------------------------------------------------------------------------


def test_named_key_is_deactivated_then_deleted_and_only_that_key() -> None:
    finding = Finding(
        FindingType.UNUSED_ACCESS_KEY, A, f"arn:aws:iam::{A}:user/u", access_key_ids=("AKIAOLD",)
    )
    _, deactivate, delete = steps(finding)
    assert deactivate.command == (
        "aws iam update-access-key --user-name=u --access-key-id=AKIAOLD --status Inactive"
    )
    assert deactivate.rollback == (
        "aws iam update-access-key --user-name=u --access-key-id=AKIAOLD --status Active"
    )
    assert delete.command == "aws iam delete-access-key --user-name=u --access-key-id=AKIAOLD"
    assert "grace period" in delete.title
    assert "security_credentials" in deactivate.console_url


def test_two_named_keys_each_get_their_command() -> None:
    finding = Finding(
        FindingType.UNUSED_ACCESS_KEY, A, f"arn:aws:iam::{A}:user/u", access_key_ids=("K1", "K2")
    )
    deactivate = steps(finding)[1]
    assert args_after(deactivate.command, "--access-key-id") == ["K1", "K2"]
    assert args_after(deactivate.rollback, "--access-key-id") == ["K1", "K2"]


@pytest.mark.parametrize(
    ("finding_kwargs", "cutoff"),
    [
        ({"last_accessed": datetime(2025, 3, 1, 23, 0, tzinfo=UTC)}, "cutoff=2025-03-02"),
        ({"created_at": datetime(2025, 6, 1, tzinfo=UTC)}, "cutoff=2025-06-01"),
        ({}, "cutoff=$(date -u -d '90 days ago' +%F 2>/dev/null || date -u -v-90d +%F)"),
    ],
)
def test_unknown_key_is_looked_up_by_last_use(
    finding_kwargs: dict[str, datetime], cutoff: str
) -> None:
    """Security Hub names no key: the step lists the user's active keys and picks by date."""
    finding = Finding(
        FindingType.UNUSED_ACCESS_KEY, A, f"arn:aws:iam::{A}:user/u", **finding_kwargs
    )
    _, deactivate, delete = steps(finding)
    assert "aws iam list-access-keys --user-name=u" in deactivate.command
    assert "get-access-key-last-used" in deactivate.command
    assert cutoff in deactivate.command
    assert "--status Inactive" in deactivate.command
    assert '>> "$d/deactivated-access-keys.txt"' in deactivate.command
    assert "--status Active" in deactivate.rollback
    assert '< "$d/deactivated-access-keys.txt"' in deactivate.rollback
    # only the keys the previous step recorded are deleted
    assert 'delete-access-key --user-name=u --access-key-id="$k"' in delete.command
    assert '< "$d/deactivated-access-keys.txt"' in delete.command
    assert "list-access-keys" not in delete.command


def test_password_removal_has_a_rollback_with_a_new_password_to_reset() -> None:
    finding = Finding(FindingType.UNUSED_PASSWORD, A, f"arn:aws:iam::{A}:user/bob@x.org")
    _, delete = steps(finding)
    assert delete.command == "aws iam delete-login-profile --user-name=bob@x.org"
    assert "aws iam create-login-profile --user-name=bob@x.org" in delete.rollback
    assert "--password-reset-required" in delete.rollback
    assert "access keys keep working" in delete.title


# --- roles -------------------------------------------------------------------------------------


def test_plain_role_is_blocked_first_then_deleted_in_order() -> None:
    finding = Finding(FindingType.UNUSED_ROLE, A, f"arn:aws:iam::{A}:role/r")
    _, block, profiles, inline, managed, delete = steps(finding)
    assert block.command == (
        "aws iam attach-role-policy --role-name=r --policy-arn=arn:aws:iam::aws:policy/AWSDenyAll"
    )
    assert block.rollback == block.command.replace("attach-role-policy", "detach-role-policy")
    assert "list-instance-profiles-for-role --role-name=r" in profiles.command
    assert "remove-role-from-instance-profile" in profiles.command
    assert "add-role-to-instance-profile" in profiles.rollback
    assert "list-role-policies --role-name=r --query 'PolicyNames[]'" in inline.command
    assert "get-role-policy" in inline.command and "delete-role-policy" in inline.command
    assert "put-role-policy" in inline.rollback
    assert "list-attached-role-policies --role-name=r" in managed.command
    assert "detach-role-policy" in managed.command and "attach-role-policy" in managed.rollback
    # AWSDenyAll is detached last of all, after every other managed policy
    assert managed.command.index('?!ends_with(PolicyArn, `":iam::aws:policy/AWSDenyAll"`)') < (
        managed.command.rindex("--policy-arn=arn:aws:iam::aws:policy/AWSDenyAll")
    )
    assert delete.command.endswith("aws iam delete-role --role-name=r )")
    assert "trust-policy.json" in delete.command and "create-role" in delete.rollback
    assert all(
        "--output text | tr '\\t' '\\n' | while read -r" in s.command
        for s in (profiles, inline, managed)
    )


def test_service_linked_role_is_deleted_through_its_own_api() -> None:
    finding = Finding(FindingType.UNUSED_ROLE, A, SLR)
    _, delete, status = steps(finding)
    assert "aws iam delete-service-linked-role --role-name=AWSServiceRoleForECS" in delete.command
    assert "get-service-linked-role-deletion-status --deletion-task-id" in status.command
    assert "create-service-linked-role --aws-service-name=ecs.amazonaws.com" in delete.rollback
    every = " ".join(s.command for s in steps(finding))
    assert "attach-role-policy" not in every and "delete-role " not in every


def test_unused_permissions_of_a_service_linked_role_never_delete_it() -> None:
    result = steps(Finding(FindingType.UNUSED_PERMISSION, A, SLR))
    assert not any("delete" in s.command or "detach" in s.command for s in result)
    assert "cannot be reduced" in result[-1].title


def test_identity_center_role_changes_the_permission_set_never_iam() -> None:
    result = steps(Finding(FindingType.UNUSED_ROLE, A, SSO))
    assert all("aws iam" not in s.command and "aws iam" not in s.rollback for s in result)
    record, remove = result
    assert "permission set Data_Admin" in record.title and A in record.title
    assert args_after(record.command, "--account-id") == [A]
    assert "= Data_Admin ]" in record.command
    assert "delete-account-assignment" in remove.command
    assert "create-account-assignment" in remove.rollback
    assert all(s.console_url == "https://console.aws.amazon.com/singlesignon/home" for s in result)
    perms = steps(Finding(FindingType.UNUSED_PERMISSION, A, SSO))
    assert all("aws iam" not in s.command for s in perms)
    assert "permission set Data_Admin" in perms[0].title


def test_cloudformation_principal_changes_the_stack() -> None:
    finding = Finding(
        FindingType.UNUSED_ACCESS_KEY,
        A,
        f"arn:aws:iam::{A}:user/deployer",
        access_key_ids=("AKIA1",),
        principal_tags={
            "aws:cloudformation:stack-name": "ci-users",
            "aws:cloudformation:stack-id": (
                "arn:aws:cloudformation:eu-west-1:111111111111:stack/ci-users/0f1e"
            ),
        },
    )
    _, resources, change = steps(finding)
    assert "stack ci-users" in resources.title and "not the principal" in resources.title
    assert args_after(resources.command, "--stack-name") == ["ci-users"]
    assert args_after(change.command, "--region") == ["eu-west-1"]
    assert "AWS::IAM::AccessKey" in change.title
    every = " ".join(s.command + s.rollback for s in (resources, change))
    assert "aws iam" not in every


# --- unused permissions ------------------------------------------------------------------------

BEFORE_INLINE = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "lambda:*", "Resource": "*"}],
    }
)


def test_recommendation_with_managed_and_inline_steps() -> None:
    rec = recommendation_from_sample()
    finding = Finding(
        FindingType.UNUSED_PERMISSION,
        A,
        f"arn:aws:iam::{A}:role/IAMRole_IA2_Blog_EC2Role",
        recommendation=rec,
        policy_documents={"InlinePolicyListLambda": BEFORE_INLINE},
    )
    result = steps(finding)
    assert_valid(result)
    titles = [s.title.split(" ")[0] for s in result]
    assert titles == ["Check", "Detach", "Save", "Create", "Attach", "Detach", "Add", "Save"]
    _, bedrock, fetch, create, attach, detach_s3, put_inline, delete_inline = result
    role = "--role-name=IAMRole_IA2_Blog_EC2Role"
    bedrock_arn = "arn:aws:iam::aws:policy/AmazonBedrockReadOnly"
    assert bedrock.command == f"aws iam detach-role-policy {role} --policy-arn={bedrock_arn}"
    assert "attach-role-policy" in bedrock.rollback
    assert (
        "/policies/details/arn%3Aaws%3Aiam%3A%3Aaws%3Apolicy%2FAmazonBedrockReadOnly"
        in bedrock.console_url
    )
    # before unknown for the managed policy: a step fetches the live version and diffs it
    assert (
        "aws iam get-policy --policy-arn=arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
        in fetch.command
    )
    assert "get-policy-version" in fetch.command and "diff -u" in fetch.command
    s3_policy = rec.steps[1].recommended_policy
    assert args_after(create.command, "--policy-document") == [s3_policy]
    new_name = "IAMRole_IA2_Blog_EC2Role-AmazonS3ReadOnlyAccess-recommended"
    new_arn = f"arn:aws:iam::{A}:policy/{new_name}"
    assert args_after(create.command, "--policy-name") == [new_name]
    assert create.rollback == f"aws iam delete-policy --policy-arn={new_arn}"
    assert attach.command == f"aws iam attach-role-policy {role} --policy-arn={new_arn}"
    assert attach.rollback == f"aws iam detach-role-policy {role} --policy-arn={new_arn}"
    assert detach_s3.command.endswith("--policy-arn=arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
    # inline: the before is known, so the diff is in the detail and no fetch step is needed
    assert args_after(put_inline.command, "--policy-document") == [rec.steps[3].recommended_policy]
    assert "put-role-policy" in put_inline.command and "delete-role-policy" in put_inline.rollback
    assert '-            "Action": "lambda:*",' in put_inline.detail.splitlines()
    assert '+                "lambda:ListFunctions",' in put_inline.detail.splitlines()
    assert put_inline.detail.startswith("--- before: InlinePolicyListLambda")
    assert (
        "delete-role-policy" in delete_inline.command and "get-role-policy" in delete_inline.command
    )
    assert "put-role-policy" in delete_inline.rollback and "file://" in delete_inline.rollback


def test_fetch_step_diffs_against_the_cli_formatted_recommendation() -> None:
    rec = Recommendation(
        "SUCCEEDED",
        (RecommendedStep("CREATE_POLICY", "Inline", '{"Version":"2012-10-17","Statement":[]}'),),
    )
    finding = Finding(
        FindingType.UNUSED_PERMISSION, A, f"arn:aws:iam::{A}:user/u", recommendation=rec
    )
    fetch = steps(finding)[1]
    assert "aws iam get-user-policy --user-name=u --policy-name=Inline" in fetch.command
    # one printf argument per line, indented as the CLI prints JSON, so the diff is line by line
    assert (
        "printf '%s\\n' '{' '    \"Version\": \"2012-10-17\",' '    \"Statement\": []' '}'"
        in fetch.command
    )
    put = steps(finding)[2]
    assert put.command.startswith(
        "aws iam put-user-policy --user-name=u --policy-name=Inline-recommended"
    )


def test_without_recommendation_the_unused_services_and_actions_are_listed() -> None:
    finding = Finding(
        FindingType.UNUSED_PERMISSION,
        A,
        f"arn:aws:iam::{A}:role/r",
        services=(
            UnusedService(
                "s3",
                datetime(2025, 1, 2, tzinfo=UTC),
                (
                    UnusedAction("s3:DeleteObject"),
                    UnusedAction("s3:PutBucketPolicy", datetime(2024, 5, 6, tzinfo=UTC)),
                ),
            ),
            UnusedService("dynamodb"),
        ),
        recommendation=Recommendation("FAILED", error="UNSUPPORTED_NOT_ACTION"),
    )
    _, review, last_accessed = steps(finding)
    assert "(s3, dynamodb)" in review.title and "FAILED: UNSUPPORTED_NOT_ACTION" in review.title
    assert review.detail.splitlines() == [
        "Unused services and actions (last accessed):",
        "- s3 (2025-01-02)",
        "    s3:DeleteObject (never)",
        "    s3:PutBucketPolicy (2024-05-06)",
        "- dynamodb (never)",
    ]
    assert review.command.startswith("aws iam list-attached-role-policies --role-name=r")
    assert "generate-service-last-accessed-details" in last_accessed.command
    assert review.rollback == last_accessed.rollback == READ_ONLY


def test_guard_links_the_security_hub_finding_when_that_is_the_only_source() -> None:
    finding = Finding(
        FindingType.UNUSED_PASSWORD,
        A,
        f"arn:aws:iam::{A}:user/u",
        sources=(SourceRef("security_hub", "arn:aws:securityhub:us-east-1::x/1"),),
    )
    assert "/securityhub/home" in steps(finding)[0].console_url


# --- priority ----------------------------------------------------------------------------------


def finding_of(kind: FindingType, **kwargs: object) -> Finding:
    path = (
        "user" if kind in (FindingType.UNUSED_ACCESS_KEY, FindingType.UNUSED_PASSWORD) else "role"
    )
    return Finding(kind, A, f"arn:aws:iam::{A}:{path}/p", **kwargs)  # type: ignore[arg-type]


def test_priority_orders_types_and_grows_with_staleness() -> None:
    key, pw, role, perm = (
        finding_of(t)
        for t in (
            FindingType.UNUSED_ACCESS_KEY,
            FindingType.UNUSED_PASSWORD,
            FindingType.UNUSED_ROLE,
            FindingType.UNUSED_PERMISSION,
        )
    )
    assert priority(key, 100) > priority(pw, 100) > priority(role, 100) > priority(perm, 100)
    assert priority(role, 0) == 35 and priority(role, 365) == priority(role, 9999) == 65
    assert priority(role, 30) < priority(role, 200) < priority(role, 365)
    assert priority(role, None) == 55


def test_priority_counts_broad_aws_managed_policies_once() -> None:
    admin = finding_of(
        FindingType.UNUSED_ROLE, attached_policies=("arn:aws:iam::aws:policy/AdministratorAccess",)
    )
    both = finding_of(
        FindingType.UNUSED_ROLE,
        attached_policies=(
            "arn:aws-us-gov:iam::aws:policy/IAMFullAccess",
            "arn:aws:iam::aws:policy/AdministratorAccess",
        ),
    )
    iam_full = finding_of(
        FindingType.UNUSED_PERMISSION,
        recommendation=Recommendation(
            "SUCCEEDED",
            (RecommendedStep("DETACH_POLICY", "arn:aws-cn:iam::aws:policy/IAMFullAccess"),),
        ),
    )
    lookalike = finding_of(
        FindingType.UNUSED_ROLE, attached_policies=(f"arn:aws:iam::{A}:policy/AdministratorAccess",)
    )
    assert priority(admin, 0) == 35 + 25 == priority(both, 0)
    assert priority(iam_full, 0) == 20 + 20
    assert priority(lookalike, 0) == 35
    assert (
        priority(
            finding_of(FindingType.UNUSED_ACCESS_KEY, attached_policies=admin.attached_policies),
            365,
        )
        == 100
    )


def test_excepted_findings_sort_below_every_active_one() -> None:
    top = finding_of(
        FindingType.UNUSED_ACCESS_KEY,
        attached_policies=("arn:aws:iam::aws:policy/AdministratorAccess",),
    )
    lowest_active = min(priority(finding_of(t), 0) for t in FindingType)
    assert priority(top, 9999, excepted=True) == 19 < lowest_active == 20
    assert priority(top, 9999, excepted=False) == 100
    assert 0 <= priority(finding_of(FindingType.UNUSED_PERMISSION), -5, excepted=True) <= 100


def test_enrich_uses_the_documented_priority() -> None:
    from reporter.enrich import priority as enrich_priority

    assert enrich_priority is priority
