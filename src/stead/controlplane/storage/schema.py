"""The control plane's tables, in a database of its own (SQLite or PostgreSQL)."""

from __future__ import annotations

import sqlalchemy as sa

from stead.storage.schema import Json, UTCDateTime

metadata = sa.MetaData()

# A workspace: what an API key, a listener and a deployment belong to.
tenant = sa.Table(
    "tenant",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String, nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

tenant_api_key = sa.Table(
    "tenant_api_key",
    metadata,
    sa.Column("key_id", sa.String(36), primary_key=True),
    sa.Column("tenant_id", sa.String(36), sa.ForeignKey("tenant.id"), nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime),
)

listener = sa.Table(
    "listener",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("tenant_id", sa.String(36), sa.ForeignKey("tenant.id"), nullable=False),
    sa.Column("compute_type", sa.String, nullable=False),
    sa.Column("compute_id", sa.String, nullable=False),
    sa.Column("compute_config", Json, nullable=False),
    sa.Column("version", sa.String),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("last_heartbeat_at", UTCDateTime),
    # What the listener said in its last heartbeat: backend, version, the deployments it runs.
    sa.Column("heartbeat", Json),
    sa.UniqueConstraint("tenant_id", "compute_id", name="listener_compute_id_key"),
)

deployment = sa.Table(
    "deployment",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("tenant_id", sa.String(36), sa.ForeignKey("tenant.id"), nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("source", sa.String, nullable=False),
    sa.Column("source_config", Json, nullable=False),
    # The latest secrets, encrypted (see SecretBox): a JSON list of {name, value}.
    sa.Column("secrets", sa.Text, nullable=False),
    sa.Column("secret_references", Json, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("listener_id", sa.String(36), sa.ForeignKey("listener.id")),
    # "listener" when a listener reconciles it, "self" for a server that reports on its own.
    sa.Column("managed_by", sa.String, nullable=False),
    sa.Column("latest_revision_id", sa.String(36)),
    sa.Column("active_revision_id", sa.String(36)),
    sa.Column("image_version", sa.String),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("last_heartbeat_at", UTCDateTime),
    # A self-reporting server's last report: version, health, queue figures.
    sa.Column("heartbeat", Json),
    sa.UniqueConstraint("tenant_id", "name", name="deployment_name_key"),
)

revision = sa.Table(
    "revision",
    metadata,
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
    # The secrets this revision runs with, encrypted: a rollback brings back its own.
    sa.Column("secrets", sa.Text, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("status_message", sa.String),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

revision_log = sa.Table(
    "revision_log",
    metadata,
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
    sa.Index("revision_log_by_revision", "revision_id", "type", "id"),
)

# A source tarball PUT to the URL `upload-url` handed out; the file is in the data folder.
upload = sa.Table(
    "upload",
    metadata,
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
