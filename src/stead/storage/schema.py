"""The tables: one schema for SQLite and PostgreSQL. Migrations create them; this names them, with
the indexes the migrations made, so that a new SQLite database can be made from it at once
(Database.migrate). tests/integration/test_footprint.py holds the two equal."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

metadata = sa.MetaData()

Json = sa.JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps in UTC, timezone-aware on the way out whatever the backend keeps."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        if value is not None and dialect.name == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


assistant = sa.Table(
    "assistant",
    metadata,
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
    sa.Index("assistant_graph_id", "graph_id"),
    sa.Index("assistant_created_at", "created_at"),
)

assistant_version = sa.Table(
    "assistant_version",
    metadata,
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

thread = sa.Table(
    "thread",
    metadata,
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
    sa.Column("ttl_minutes", sa.Float),
    sa.Column("ttl_strategy", sa.String(16)),
    sa.Column("expires_at", UTCDateTime),
    sa.Index("thread_status_id", "status", "thread_id"),
    sa.Index("thread_created_at_id", "created_at", "thread_id"),
    sa.Index("thread_updated_at_id", "updated_at", "thread_id"),
    sa.Index("thread_expires_at", "expires_at"),
)

# A run waiting or executing. The queries that look for such runs state it the same way
# (stead.storage.runs.is_active), so that SQLite's planner sees they may use the partial index.
ACTIVE_STATUSES = ("pending", "running")
RUN_IS_ACTIVE = " OR ".join(f"status = '{status}'" for status in ACTIVE_STATUSES)

# The run table is the queue: a worker claims the oldest due pending run whose thread is free.
run = sa.Table(
    "run",
    metadata,
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
    # Until then the run belongs to the worker that claimed it (attempt = its fencing token).
    sa.Column("lease_expires_at", UTCDateTime),
    sa.Index("run_pending_by_age", "status", "created_at"),
    sa.Index("run_thread_by_age", "thread_id", "created_at"),
    sa.Index("run_lease_by_status", "status", "lease_expires_at"),
    # A thread's pending and running runs, however many it has finished: each run on a thread
    # looks for them, as it is created and as it ends (migration 0011).
    sa.Index(
        "run_active_by_thread",
        "thread_id",
        "created_at",
        sqlite_where=sa.text(RUN_IS_ACTIVE),
        postgresql_where=sa.text(RUN_IS_ACTIVE),
    ),
    # At most one run per thread executes at a time, enforced by the database itself.
    sa.Index(
        "run_one_running_per_thread",
        "thread_id",
        unique=True,
        sqlite_where=sa.text("status = 'running'"),
        postgresql_where=sa.text("status = 'running'"),
    ),
)

cron = sa.Table(
    "cron",
    metadata,
    sa.Column("cron_id", sa.String(36), primary_key=True),
    sa.Column("assistant_id", sa.String(36), nullable=False),
    sa.Column("thread_id", sa.String(36), sa.ForeignKey("thread.thread_id", ondelete="CASCADE")),
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
    # The authenticated user who created the cron: its runs execute as them.
    sa.Column("auth_user", Json),
    sa.Index("cron_due", "enabled", "next_run_date"),
    # Deleting a thread deletes its crons (the foreign key's cascade): without this index each
    # deletion, a stateless run's included, read the whole table.
    sa.Index("cron_thread_id", "thread_id"),
)

# Built-in API keys; only a SHA-256 of each key is kept.
api_key = sa.Table(
    "api_key",
    metadata,
    sa.Column("key_id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime),
)
