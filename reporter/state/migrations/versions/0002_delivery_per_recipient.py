"""Each recipient of a message in the ledger; the queue of undelivered mail; why a run failed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "delivery_recipients",
        sa.Column("round_id", sa.String(128), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("recipient", sa.String(320), primary_key=True),
        sa.Column("address", sa.String(320), primary_key=True),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("provider_id", sa.Text, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
        sa.Column("sent_at", tz, nullable=True),
    )
    op.create_table(
        "outgoing",
        sa.Column("round_id", sa.String(128), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("recipient", sa.String(320), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("sender", sa.String(320), nullable=False),
        sa.Column("transport", sa.String(16), nullable=False),
        sa.Column("raw", sa.LargeBinary, nullable=False),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("lease_until", tz, nullable=False),
        sa.Column("retry_until", tz, nullable=False),
        sa.Column("created_at", tz, nullable=False),
    )
    op.add_column("run_locks", sa.Column("reason", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("run_locks") as batch:
        batch.drop_column("reason")
    op.drop_table("outgoing")
    op.drop_table("delivery_recipients")
