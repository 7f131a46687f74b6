"""Assistants, their versions, threads and runs (the run table is the queue).

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from stead.storage.schema import Json, UTCDateTime

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "assistant",
        sa.Column("assistant_id", sa.String(36), primary_key=True),
        sa.Column("graph_id", sa.String, nullable=False),
        sa.Column("config", Json, nullable=False),
        sa.Column("context", Json, nullable=False),
        sa.Column("metadata", Json, nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("description", sa.String),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("assistant_graph_id", "assistant", ["graph_id"])
    op.create_index("assistant_created_at", "assistant", ["created_at"])
    op.create_table(
        "assistant_version",
        sa.Column(
            "assistant_id",
            sa.String(36),
            sa.ForeignKey("assistant.assistant_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("graph_id", sa.String, nullable=False),
        sa.Column("config", Json, nullable=False),
        sa.Column("context", Json, nullable=False),
        sa.Column("metadata", Json, nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("description", sa.String),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "thread",
        sa.Column("thread_id", sa.String(36), primary_key=True),
        sa.Column("metadata", Json, nullable=False),
        sa.Column("config", Json, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("values", Json),
        sa.Column("interrupts", Json, nullable=False),
        sa.Column("error", Json),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("state_updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("thread_status", "thread", ["status"])
    op.create_index("thread_created_at", "thread", ["created_at"])
    op.create_index("thread_updated_at", "thread", ["updated_at"])
    op.create_table(
        "run",
        sa.Column("run_id", sa.String(36), primary_key=True),
        sa.Column(
            "thread_id",
            sa.String(36),
            sa.ForeignKey("thread.thread_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("assistant_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("metadata", Json, nullable=False),
        sa.Column("kwargs", Json, nullable=False),
        sa.Column("multitask_strategy", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cancel_action", sa.String(16)),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("run_pending_by_age", "run", ["status", "created_at"])
    op.create_index("run_thread_by_age", "run", ["thread_id", "created_at"])
    # At most one run per thread executes at a time, enforced by the database itself.
    op.create_index(
        "run_one_running_per_thread",
        "run",
        ["thread_id"],
        unique=True,
        sqlite_where=sa.text("status = 'running'"),
        postgresql_where=sa.text("status = 'running'"),
    )


def downgrade() -> None:
    op.drop_table("run")
    op.drop_table("thread")
    op.drop_table("assistant_version")
    op.drop_table("assistant")
