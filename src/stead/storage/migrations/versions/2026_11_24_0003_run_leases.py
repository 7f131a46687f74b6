"""Run leases: a running run belongs to its worker until the lease expires.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from stead.storage.schema import UTCDateTime

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("lease_expires_at", UTCDateTime))
    op.create_index("run_lease_by_status", "run", ["status", "lease_expires_at"])


def downgrade() -> None:
    op.drop_index("run_lease_by_status", "run")
    with op.batch_alter_table("run") as batch:
        batch.drop_column("lease_expires_at")
