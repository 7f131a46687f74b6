"""An index on `cron.thread_id`: deleting a thread cascades to its crons, and without it each
deletion (every stateless run deletes its thread) read the whole cron table. With 20,000 crons on
SQLite a thread's insertion and deletion took 2.9 ms of CPU instead of 0.2 (bench/README.md).

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.create_index("cron_thread_id", "cron", ["thread_id"])


def downgrade() -> None:
    op.drop_index("cron_thread_id", "cron")
