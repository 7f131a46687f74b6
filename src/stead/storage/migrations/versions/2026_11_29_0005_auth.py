"""Authentication: hashed API keys, and the identity a cron's runs execute with.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from stead.storage.schema import Json, UTCDateTime

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "api_key",
        sa.Column("key_id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("revoked_at", UTCDateTime),
    )
    with op.batch_alter_table("cron") as batch:
        batch.add_column(sa.Column("auth_user", Json))


def downgrade() -> None:
    with op.batch_alter_table("cron") as batch:
        batch.drop_column("auth_user")
    op.drop_table("api_key")
