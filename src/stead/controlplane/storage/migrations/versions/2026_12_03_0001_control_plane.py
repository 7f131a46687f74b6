"""The control plane: tenants and their keys, listeners, deployments, revisions, logs, uploads.

Revision ID: cp0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from stead.storage.schema import Json, UTCDateTime

revision = "cp0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "tenant",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String, nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "tenant_api_key",
        sa.Column("key_id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(36), sa.ForeignKey("tenant.id"), nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("revoked_at", UTCDateTime),
    )
    op.create_table(
        "listener",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(36), sa.ForeignKey("tenant.id"), nullable=False),
        sa.Column("compute_type", sa.String, nullable=False),
        sa.Column("compute_id", sa.String, nullable=False),
        sa.Column("compute_config", Json, nullable=False),
        sa.Column("version", sa.String),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("last_heartbeat_at", UTCDateTime),
        sa.Column("heartbeat", Json),
        sa.UniqueConstraint("tenant_id", "compute_id", name="listener_compute_id_key"),
    )
    op.create_table(
        "deployment",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(36), sa.ForeignKey("tenant.id"), nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("source", sa.String, nullable=False),
        sa.Column("source_config", Json, nullable=False),
        sa.Column("secrets", sa.Text, nullable=False),
        sa.Column("secret_references", Json, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("listener_id", sa.String(36), sa.ForeignKey("listener.id")),
        sa.Column("managed_by", sa.String, nullable=False),
        sa.Column("latest_revision_id", sa.String(36)),
        sa.Column("active_revision_id", sa.String(36)),
        sa.Column("image_version", sa.String),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("last_heartbeat_at", UTCDateTime),
        sa.Column("heartbeat", Json),
        sa.UniqueConstraint("tenant_id", "name", name="deployment_name_key"),
    )
    op.create_table(
        "revision",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "deployment_id",
            sa.String(36),
            sa.ForeignKey("deployment.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("source", sa.String, nullable=False),
        sa.Column("source_revision_config", Json, nullable=False),
        sa.Column("resource_spec", Json),
        sa.Column("secrets", sa.Text, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("status_message", sa.String),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "revision_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "revision_id",
            sa.String(36),
            sa.ForeignKey("revision.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("type", sa.String(8), nullable=False),
        sa.Column("timestamp", UTCDateTime, nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
    )
    op.create_index("revision_log_by_revision", "revision_log", ["revision_id", "type", "id"])
    op.create_table(
        "upload",
        sa.Column("object_path", sa.String, primary_key=True),
        sa.Column(
            "deployment_id",
            sa.String(36),
            sa.ForeignKey("deployment.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("received_at", UTCDateTime),
        sa.Column("size", sa.BigInteger),
    )


def downgrade() -> None:
    for table in ("upload", "revision_log", "revision", "deployment", "listener"):
        op.drop_table(table)
    op.drop_table("tenant_api_key")
    op.drop_table("tenant")
