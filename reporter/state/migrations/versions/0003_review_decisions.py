"""Access reviews: owners' decisions from returned workbooks, and the workbooks themselves.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "review_decisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(2048), nullable=False),
        sa.Column("owner", sa.String(320), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("keep_until", sa.Date, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("decided_by", sa.String(320), nullable=False),
        sa.Column("imported_by", sa.String(320), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("source_sha256", sa.String(64), nullable=False),
        sa.Column("source_name", sa.Text, nullable=False),
        sa.Column("sheet_row", sa.Integer, nullable=False),
        sa.Column("recorded_at", tz, nullable=False),
        sa.Column("approved_by", sa.String(320), nullable=True),
        sa.Column("approved_at", tz, nullable=True),
        sa.Column("verified_run_id", sa.String(64), nullable=True),
        sa.Column("verified_at", tz, nullable=True),
        sa.UniqueConstraint("source_sha256", "sheet_row", name="uq_review_decisions_source_row"),
    )
    op.create_index("ix_review_decisions_key", "review_decisions", ["key"])
    op.create_table(
        "review_imports",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("filename", sa.Text, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(320), nullable=False),
        sa.Column("imported_by", sa.String(320), nullable=False),
        sa.Column("imported_at", tz, nullable=False),
        sa.Column("recorded", sa.Integer, nullable=False),
        sa.Column("rejected", sa.Integer, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("review_imports")
    op.drop_index("ix_review_decisions_key", table_name="review_decisions")
    op.drop_table("review_decisions")
