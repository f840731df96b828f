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
    Date,
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
    UniqueConstraint,
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

# --- access reviews (reporter/state/decisions.py) ------------------------------------------------

# Every decision an owner made in a returned workbook, kept for ever: the one in force for a
# finding is its latest (highest id); the earlier ones are its history.
review_decisions = Table(
    "review_decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(2048), nullable=False),
    # Whose finding it was in the workbook's run: the workbook's owner.
    Column("owner", String(320), nullable=False),
    Column("decision", String(16), nullable=False),  # remove | keep | not_mine
    Column("keep_until", Date, nullable=True),
    Column("reason", Text, nullable=False),
    Column("decided_by", String(320), nullable=False),
    Column("imported_by", String(320), nullable=False),
    # Provenance: the workbook (its SHA-256 and name), its run, the Findings sheet's row.
    Column("run_id", String(64), nullable=False),
    Column("source_sha256", String(64), nullable=False),
    Column("source_name", Text, nullable=False),
    Column("sheet_row", Integer, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    # A Keep under `reviews.keep_requires_approval`: who approved it, when.
    Column("approved_by", String(320), nullable=True),
    Column("approved_at", DateTime(timezone=True), nullable=True),
    # A Remove: the first later run that no longer found the finding.
    Column("verified_run_id", String(64), nullable=True),
    Column("verified_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("source_sha256", "sheet_row", name="uq_review_decisions_source_row"),
    Index("ix_review_decisions_key", "key"),
)

# Every returned workbook imported, byte for byte: the next run's evidence pack carries it.
review_imports = Table(
    "review_imports",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("filename", Text, nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("owner", String(320), nullable=False),
    Column("imported_by", String(320), nullable=False),
    Column("imported_at", DateTime(timezone=True), nullable=False),
    Column("recorded", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
    Column("content", LargeBinary, nullable=False),
)
