"""A deterministic, realistic AWS organization in process, on moto: demo, tests, benchmarks.

    with Sandbox(SandboxSpec(seed=7)) as sandbox:
        session = sandbox.session()  # the management account; ordinary boto3 from here on
        ...                          # product code, configured with sandbox.configure_session
        assert reported == set(sandbox.reportable)

What gets built (`data.py` generates it, one plan feeds every source):

- Organizations: management account (moto's default, 123456789012), a `security-tooling`
  account that is delegated administrator for Access Analyzer and Security Hub, and
  `member_accounts` members in `ous` leaf OUs (nested: Workloads/Prod, Workloads/NonProd,
  Sandbox, Infrastructure, ...). Tags `owner` (a few owners own several accounts),
  `cost-center`, `environment`; one ACTIVE member has no owner, one is SUSPENDED.
- IAM per account: the reporter's `UnusedAccessReporterReadOnly` role everywhere (and
  `UnusedAccessReporterFindingsReader` in the security account), users with console passwords
  and access keys, service-linked, IAM Identity Center and CloudFormation-tagged roles, names
  with `+=,.@-`, AWS managed policies (AdministratorAccess included), last-used ages 30-400 days.
- Security Hub CSPM (security account, home Region): one ASFF record per finding, AWS's
  sample shape, plus three external-access decoys.
- Access Analyzer (`access_analyzer.py`): an org unused-access analyzer and an org external-access
  analyzer with the same finding ids as Security Hub, served to the real boto3 client.

Measured on a 2-core container (moto 5.2.5, botocore 1.44): the default build (12 members,
83 findings) takes 0.8 s in a fresh process and 0.5 s after that; 200 x 20 takes 2.6 s;
2,000 accounts x 50 findings (100,000 findings) takes 11.4 s with a peak RSS of 248 MB for
the whole process (85 MB of which is Python, boto3 and moto with four clients loaded). Reading
all 100,003 records back through GetFindings then takes ~30 s and listing the findings through
ListFindingsV2 ~25 s, mostly botocore parsing responses (dateutil timestamps) - what the product
would spend against AWS too, minus the network and the 3 requests/s quota.
"""

from .sandbox import Sandbox
from .spec import ExpectedFinding, SandboxSpec

__all__ = ["ExpectedFinding", "Sandbox", "SandboxSpec"]
