"""Trust policies of the roles that have findings, read through the member role (`iam:GetRole`).

`reporter.orgaccess` recognises a role the management account or a security-tooling account may
assume from its trust policy. Access Analyzer and Security Hub do not carry trust policies, so
for their findings the policy is read here: one AssumeRole per account with such roles (the
member role the IAM source uses, with its read-only policy) and one GetRole per role. An account
whose member role cannot be assumed, or a role that cannot be read, is recorded with the reason:
its roles are recognised by name only, and the reports say so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..session import SessionFactory


@dataclass(frozen=True)
class TrustPolicies:
    """Role ARN -> trust policy (JSON text); account id -> why its roles were not read."""

    documents: Mapping[str, str] = field(default_factory=dict)
    failures: Mapping[str, str] = field(default_factory=dict)


def read_trust_policies(
    sessions: SessionFactory,
    member_role_name: str,
    roles: Mapping[str, Sequence[tuple[str, str]]],
    workers: int = 8,
) -> TrustPolicies:
    """`roles`: account id -> (role ARN, role name) pairs. Read-only; see the module docstring."""
    documents: dict[str, str] = {}
    failures: dict[str, str] = {}

    def one_account(account_id: str) -> tuple[dict[str, str], str]:
        try:
            session = sessions.assume(sessions.member_role_arn(account_id, member_role_name))
            iam = sessions.client("iam", session)
            found: dict[str, str] = {}
            for arn, name in roles[account_id]:
                try:
                    role = iam.get_role(RoleName=name)["Role"]
                except ClientError as exc:
                    if _code(exc) == "NoSuchEntity":  # deleted since the finding
                        continue
                    raise
                document = role.get("AssumeRolePolicyDocument")
                if isinstance(document, Mapping):
                    found[arn] = json.dumps(document, sort_keys=True, ensure_ascii=False)
            return found, ""
        except ClientError as exc:
            return {}, f"{_code(exc) or 'Error'} reading trust policies with the member role"
        except BotoCoreError as exc:
            return {}, f"{type(exc).__name__} reading trust policies with the member role"

    accounts = sorted(roles)
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="trust") as pool:
        for account_id, (found, error) in zip(
            accounts, pool.map(one_account, accounts), strict=True
        ):
            documents.update(found)
            if error:
                failures[account_id] = error
    return TrustPolicies(documents, failures)


def _code(exc: ClientError) -> str:
    error: Any = exc.response.get("Error", {})
    return str(error.get("Code", ""))
