"""The schema of 0.1: finding history, details cache, delivery ledger, run lock, job store.

Revision ID: 0001
Revises:
Create Date: 2026-12-02

A database written by 0.1 has these tables but no Alembic version: every table is created only
if it is missing, and the history's one migration of 0.1 (`runs.still_open`, its schema version
2) is applied where it was not, so a 0.1 database and a new one both end here alike.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _tables() -> list[tuple[str, list[sa.schema.SchemaItem]]]:
    tz = sa.DateTime(timezone=True)
    return [
        ("schema_info", [
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("version", sa.Integer, nullable=False),
        ]),
        ("runs", [
            sa.Column("run_id", sa.String(64), primary_key=True),
            sa.Column("started_at", tz, nullable=False),
            sa.Column("findings", sa.Integer, nullable=False),
            sa.Column("new", sa.Integer, nullable=False),
            sa.Column("resolved", sa.Integer, nullable=False),
            sa.Column("still_open", sa.Integer, nullable=False),
        ]),
        ("finding_history", [
            sa.Column("key", sa.String(2048), primary_key=True),
            sa.Column("account_id", sa.String(12), nullable=False),
            sa.Column("first_seen", tz, nullable=False),
            sa.Column("last_seen", tz, nullable=False),
            sa.Column("resolved_at", tz, nullable=True),
            sa.Column("last_run_id", sa.String(64), nullable=False),
        ]),
        ("aa_finding_cache", [
            sa.Column("analyzer_arn", sa.String(512), primary_key=True),
            sa.Column("finding_id", sa.String(2048), primary_key=True),
            sa.Column("updated_at", sa.String(64), nullable=False),
            sa.Column("details", sa.Text, nullable=False),
            sa.Column("recommendation", sa.Text, nullable=True),
            sa.Column("stored_at", tz, nullable=False),
        ]),
        ("deliveries", [
            sa.Column("round_id", sa.String(128), primary_key=True),
            sa.Column("kind", sa.String(16), primary_key=True),
            sa.Column("recipient", sa.String(320), primary_key=True),
            sa.Column("run_id", sa.String(64), nullable=False),
            sa.Column("message_id", sa.String(255), nullable=False),
            sa.Column("transport", sa.String(16), nullable=False),
            sa.Column("attachments", sa.Text, nullable=False),
            sa.Column("status", sa.String(24), nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("last_error", sa.Text, nullable=False),
            sa.Column("provider_id", sa.Text, nullable=False),
            sa.Column("created_at", tz, nullable=False),
            sa.Column("updated_at", tz, nullable=False),
            sa.Column("sent_at", tz, nullable=True),
        ]),
        ("run_locks", [
            sa.Column("name", sa.String(128), primary_key=True),
            sa.Column("slot", tz, nullable=False),
            sa.Column("holder", sa.String(255), nullable=False),
            sa.Column("run_id", sa.String(64), nullable=False),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("acquired_at", tz, nullable=False),
            sa.Column("lease_until", tz, nullable=False),
            sa.Column("finished_at", tz, nullable=True),
        ]),
        ("apscheduler_jobs", [
            sa.Column("id", sa.Unicode(191), primary_key=True),
            sa.Column("next_run_time", sa.Float(25)),
            sa.Column("job_state", sa.LargeBinary, nullable=False),
        ]),
    ]  # fmt: skip


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for name, columns in _tables():
        if name not in existing:
            op.create_table(name, *columns)
            if name == "apscheduler_jobs":
                op.create_index(
                    "ix_apscheduler_jobs_next_run_time", name, ["next_run_time"], unique=False
                )
    runs = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("runs")}
    if "still_open" not in runs:  # a history of 0.1's first schema version
        op.add_column(
            "runs", sa.Column("still_open", sa.Integer, nullable=False, server_default="0")
        )
    info = sa.table("schema_info", sa.column("id", sa.Integer), sa.column("version", sa.Integer))
    bind = op.get_bind()
    if bind.execute(sa.select(info.c.id)).first() is None:
        bind.execute(info.insert().values(id=1, version=2))
    else:
        bind.execute(info.update().values(version=2))


def downgrade() -> None:
    for name, _ in reversed(_tables()):
        op.drop_table(name)
