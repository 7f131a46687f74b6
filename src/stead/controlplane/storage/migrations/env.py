"""Alembic environment of the control plane's database: always handed an open connection."""

from alembic import context

from stead.controlplane.storage.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    # Its own version table, so that it can share a PostgreSQL database with a server.
    version_table="control_plane_alembic_version",
)
with context.begin_transaction():
    context.run_migrations()
