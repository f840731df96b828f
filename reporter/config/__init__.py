"""Configuration: YAML → frozen, validated `Settings`, with secret references and redaction.

Every setting is declared once, in `settings`, as a pydantic field: its type is the validation,
its default is the default, and its `description` feeds error hints and the docs
(`describe_fields`); a test keeps `config/example.yaml` in step with the model. Loading is
strict: unknown keys are errors, and every problem in a file is reported at once as one
`ConfigError`.

Secrets are referenced, never written inline: a string may be `${NAME}` (whole or embedded, e.g.
in a database URL) or a mapping `{"$env": "NAME"}`. References resolve from the `environ` argument
into a copy of the data; the loaded `Settings` remembers where they were, so `redacted()`,
`repr()` and error messages show the reference and never the value. Some values are secret
however they were written: every URL-typed setting loses its user info and query string, and
password hashes are shown as `<redacted>` (the `_Shown` marker on their types), in printed
config, in `repr()`, in errors and in `config_digest`, which hashes the redacted config.

The package sits below every stage it configures and imports none of them (tests/test_imports.py).
Its modules, each importing only those before it:

- `masking`: the `_Shown` marker, `REDACTED`, `mask_url_credentials`.
- `passwordhash`: the stored form of a web password hash and its bounds.
- `fields`: field types and their validators; `_Section`, the base of every section.
- `settings`: every section and `Settings`.
- `schema`: the walk over the model that finds secrets and the field at a location.
- `display`: values and settings as shown, secrets hidden; `redacted`, `config_digest`, docs.
- `references`: `${NAME}` / `{"$env": NAME}` resolved from `environ`.
- `hints`: pydantic errors → `ConfigProblem`s with hints.
- `yamlfile`: the YAML reader.
- `exceptions_file`: the rules of `exceptions.file`.
- `load`: `load_file` and `load_data`.
"""

from __future__ import annotations

from .display import FILE_PATH, FieldDoc, config_digest, describe_fields, dump_yaml, redacted
from .load import load_data, load_file
from .masking import REDACTED, mask_url_credentials
from .masking import _Shown as _Shown
from .schema import _MARKED as _MARKED
from .settings import (
    DEFAULT_LADDER,
    DEFAULT_SLA_DAYS,
    PLAIN_ADDRESS,
    AccessAnalyzerSource,
    AwsSettings,
    CollectionSettings,
    EvidenceS3Settings,
    EvidenceSettings,
    EvidenceStoreKind,
    EvidenceWebSettings,
    ExceptionRuleSettings,
    ExceptionsSettings,
    IamMode,
    IamSettings,
    LargeAttachmentSettings,
    MailRetrySettings,
    MailSettings,
    ObjectLockMode,
    OrganizationSettings,
    OwnersSettings,
    ProtectedPrincipalSettings,
    RemediationSettings,
    ReportsSettings,
    RetryMode,
    ReviewsSettings,
    ScheduleSettings,
    SecurityHubSource,
    SecurityHubV2Settings,
    SecurityHubWorkflowSettings,
    ServerSideEncryption,
    SesSettings,
    Settings,
    SmtpSecurity,
    SmtpSettings,
    SourcesSettings,
    StateSettings,
    Step,
    Transport,
    is_allowed,
)

__all__ = [
    "DEFAULT_LADDER",
    "DEFAULT_SLA_DAYS",
    "FILE_PATH",
    "PLAIN_ADDRESS",
    "REDACTED",
    "AccessAnalyzerSource",
    "AwsSettings",
    "CollectionSettings",
    "EvidenceS3Settings",
    "EvidenceSettings",
    "EvidenceStoreKind",
    "EvidenceWebSettings",
    "ExceptionRuleSettings",
    "ExceptionsSettings",
    "FieldDoc",
    "IamMode",
    "IamSettings",
    "LargeAttachmentSettings",
    "MailRetrySettings",
    "MailSettings",
    "ObjectLockMode",
    "OrganizationSettings",
    "OwnersSettings",
    "ProtectedPrincipalSettings",
    "RemediationSettings",
    "ReportsSettings",
    "RetryMode",
    "ReviewsSettings",
    "ScheduleSettings",
    "SecurityHubSource",
    "SecurityHubV2Settings",
    "SecurityHubWorkflowSettings",
    "ServerSideEncryption",
    "SesSettings",
    "Settings",
    "SmtpSecurity",
    "SmtpSettings",
    "SourcesSettings",
    "StateSettings",
    "Step",
    "Transport",
    "config_digest",
    "describe_fields",
    "dump_yaml",
    "is_allowed",
    "load_data",
    "load_file",
    "mask_url_credentials",
    "redacted",
]
