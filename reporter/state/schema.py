"""Every table of the state database, in one MetaData.

The tables are declared here and nowhere else; the migrations in `migrations/versions/` create
and change them (each migration writes out its own frozen copy of what it creates, as Alembic
migrations do, so that a later change here does not rewrite history). `tests/test_state.py`
checks that a database migrated to the head matches this MetaData exactly.

Times are `DateTime(timezone=True)`: PostgreSQL keeps the zone, SQLite drops it, and the stores
convert to UTC on the way in and out, so both backends agree.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    Unicode,
)

metadata = MetaData()

# --- finding history (reporter/state/history.py) ----------------------------------------------

# The history's own version counter from before the migrations were Alembic's (0.1 wrote 2). Kept
# so that a 0.1 binary opened on a migrated database still finds what it expects.
schema_info = Table(
    "schema_info",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("findings", Integer, nullable=False),
    Column("new", Integer, nullable=False),
    Column("resolved", Integer, nullable=False),
    Column("still_open", Integer, nullable=False),
)

finding_history = Table(
    "finding_history",
    metadata,
    Column("key", String(2048), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("last_run_id", String(64), nullable=False),
)

# --- Access Analyzer details cache (reporter/cache.py) ------------------------------------------

finding_cache = Table(
    "aa_finding_cache",
    metadata,
    Column("analyzer_arn", String(512), primary_key=True),
    Column("finding_id", String(2048), primary_key=True),
    Column("updated_at", String(64), nullable=False),
    Column("details", Text, nullable=False),  # JSON: the GetFindingV2 result
    Column("recommendation", Text, nullable=True),  # JSON: GetFindingRecommendation, or NULL
    Column("stored_at", DateTime(timezone=True), nullable=False),
)

# --- delivery ledger and mail queue (reporter/deliver/ledger.py) ----------------------------------

deliveries = Table(
    "deliveries",
    metadata,
    Column("round_id", String(128), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("recipient", String(320), primary_key=True),
    Column("run_id", String(64), nullable=False),
    Column("message_id", String(255), nullable=False),
    Column("transport", String(16), nullable=False),
    # JSON list of {"filename", "sha256"}: what the message carried (or linked to).
    Column("attachments", Text, nullable=False),
    Column("status", String(24), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=False),
    Column("provider_id", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
)

# Each address of a message (To and Cc). Databases from 0.1 have none: their `sent` messages
# count as sent to everyone they were addressed to.
delivery_recipients = Table(
    "delivery_recipients",
    metadata,
    Column("round_id", String(128), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("recipient", String(320), primary_key=True),
    Column("address", String(320), primary_key=True),
    Column("role", String(8), nullable=False),
    Column("status", String(24), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=False),
    Column("provider_id", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
)

# Messages not yet delivered to everyone: their exact bytes, and who holds them until when.
outgoing = Table(
    "outgoing",
    metadata,
    Column("round_id", String(128), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("recipient", String(320), primary_key=True),
    Column("run_id", String(64), nullable=False),
    Column("message_id", String(255), nullable=False),
    Column("sender", String(320), nullable=False),
    Column("transport", String(16), nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("holder", String(255), nullable=False),
    Column("lease_until", DateTime(timezone=True), nullable=False),
    # The retry job gives up here; the next run of the schedule still tries.
    Column("retry_until", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# --- the scheduler (reporter/schedule.py) -------------------------------------------------------

run_locks = Table(
    "run_locks",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("slot", DateTime(timezone=True), nullable=False),
    Column("holder", String(255), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
    Column("lease_until", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    # Why the last run failed, in one line.
    Column("reason", Text, nullable=False, server_default=""),
)

# APScheduler 3's SQLAlchemyJobStore table, declared as that job store declares it
# (apscheduler/jobstores/sqlalchemy.py), so that it is created and migrated with the rest instead of
# by each replica's scheduler at start-up, where replicas starting together raced to create it.
JOBS_TABLE = "apscheduler_jobs"
apscheduler_jobs = Table(
    JOBS_TABLE,
    metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25)),
    Column("job_state", LargeBinary, nullable=False),
    Index("ix_apscheduler_jobs_next_run_time", "next_run_time"),
)
