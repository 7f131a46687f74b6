"""Thread searches sort by a column and then by thread_id: indexes on those pairs let a page of
a million threads come from an index instead of sorting the table (the single-column indexes
they replace could not serve the tie-breaker).

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"

_REPLACED = {
    "thread_created_at": ("thread_created_at_id", "created_at"),
    "thread_updated_at": ("thread_updated_at_id", "updated_at"),
    "thread_status": ("thread_status_id", "status"),
}


def upgrade() -> None:
    for old, (new, column) in _REPLACED.items():
        op.create_index(new, "thread", [column, "thread_id"])
        op.drop_index(old, "thread")


def downgrade() -> None:
    for old, (new, column) in _REPLACED.items():
        op.create_index(old, "thread", [column])
        op.drop_index(new, "thread")
