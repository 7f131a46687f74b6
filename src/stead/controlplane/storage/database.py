"""The control plane's engine, its transactions and its migrations."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from stead.controlplane.storage.deployments import DeploymentRepository
from stead.controlplane.storage.listeners import ListenerRepository
from stead.controlplane.storage.revisions import RevisionLogRepository, RevisionRepository
from stead.controlplane.storage.tenants import TenantRepository
from stead.controlplane.storage.uploads import UploadRepository
from stead.storage.connections import Connection
from stead.storage.database import create_engine

_MIGRATIONS = Path(__file__).parent / "migrations"
# The advisory lock held while migrating ("steadcp" in ASCII); the server's is another.
_LOCK = 0x73746561646370


class ControlPlaneTransaction:
    def __init__(self, conn: Connection) -> None:
        self.tenants = TenantRepository(conn)
        self.listeners = ListenerRepository(conn)
        self.deployments = DeploymentRepository(conn)
        self.revisions = RevisionRepository(conn)
        self.logs = RevisionLogRepository(conn)
        self.uploads = UploadRepository(conn)


class ControlPlaneDatabase:
    def __init__(self, url: str) -> None:
        self.engine, _ = create_engine(url)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[ControlPlaneTransaction]:
        async with self.engine.begin() as conn:
            yield ControlPlaneTransaction(conn)

    async def migrate(self) -> None:
        """Bring the schema to head; on PostgreSQL replicas starting together take turns."""
        async with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
            await conn.run_sync(_upgrade_to_head)

    async def is_current(self) -> bool:
        async with self.engine.connect() as conn:
            return bool(await conn.run_sync(_at_head))

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()


def _alembic_config(conn: sa.Connection) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def _upgrade_to_head(conn: sa.Connection) -> None:
    command.upgrade(_alembic_config(conn), "head")


def _at_head(conn: sa.Connection) -> bool:
    heads = set(ScriptDirectory.from_config(_alembic_config(conn)).get_heads())
    context = MigrationContext.configure(
        conn, opts={"version_table": "control_plane_alembic_version"}
    )
    return set(context.get_current_heads()) == heads
