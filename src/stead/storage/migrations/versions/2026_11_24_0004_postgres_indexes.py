"""PostgreSQL: GIN indexes for metadata containment (`@>`) searches. Nothing to do on SQLite.

Threads are found by id through their primary key. Checkpoints live in LangGraph's own tables,
whose setup already indexes them by thread, and whose time-ordered checkpoint ids (the primary
key after thread and namespace) order them by creation time; nothing is missing there.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"

_INDEXES = {
    "thread_metadata_gin": "thread",
    "assistant_metadata_gin": "assistant",
    "cron_metadata_gin": "cron",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, table in _INDEXES.items():
        op.create_index(
            name,
            table,
            ["metadata"],
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, table in _INDEXES.items():
        op.drop_index(name, table)
