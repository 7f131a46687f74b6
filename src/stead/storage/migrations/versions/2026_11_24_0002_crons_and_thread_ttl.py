"""Crons, and a time-to-live on threads.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from stead.storage.schema import Json, UTCDateTime

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "cron",
        sa.Column("cron_id", sa.String(36), primary_key=True),
        sa.Column("assistant_id", sa.String(36), nullable=False),
        sa.Column(
            "thread_id",
            sa.String(36),
            sa.ForeignKey("thread.thread_id", ondelete="CASCADE"),
        ),
        sa.Column("user_id", sa.String),
        sa.Column("schedule", sa.String, nullable=False),
        sa.Column("timezone", sa.String),
        sa.Column("payload", Json, nullable=False),
        sa.Column("metadata", Json, nullable=False),
        sa.Column("end_time", UTCDateTime),
        sa.Column("next_run_date", UTCDateTime),
        sa.Column("on_run_completed", sa.String(16)),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("cron_due", "cron", ["enabled", "next_run_date"])
    with op.batch_alter_table("thread") as batch:
        batch.add_column(sa.Column("ttl_minutes", sa.Float))
        batch.add_column(sa.Column("ttl_strategy", sa.String(16)))
        batch.add_column(sa.Column("expires_at", UTCDateTime))
    op.create_index("thread_expires_at", "thread", ["expires_at"])


def downgrade() -> None:
    op.drop_index("thread_expires_at", "thread")
    with op.batch_alter_table("thread") as batch:
        batch.drop_column("expires_at")
        batch.drop_column("ttl_strategy")
        batch.drop_column("ttl_minutes")
    op.drop_table("cron")
