"""Queries on tenants (workspaces) and their API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from stead.controlplane.storage.schema import tenant, tenant_api_key
from stead.storage._query import fetch_all, fetch_one
from stead.storage.connections import Connection


class TenantRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def insert(self, record: dict[str, Any]) -> None:
        await self._conn.execute(sa.insert(tenant).values(**record))

    async def find(self, name_or_id: str) -> dict[str, Any] | None:
        return await fetch_one(
            self._conn,
            sa.select(tenant).where(sa.or_(tenant.c.name == name_or_id, tenant.c.id == name_or_id)),
        )

    async def insert_key(self, record: dict[str, Any]) -> None:
        await self._conn.execute(sa.insert(tenant_api_key).values(**record))

    async def find_active_key(self, key_hash: str) -> dict[str, Any] | None:
        return await fetch_one(
            self._conn,
            sa.select(tenant_api_key).where(
                tenant_api_key.c.key_hash == key_hash, tenant_api_key.c.revoked_at.is_(None)
            ),
        )

    async def list_keys(self) -> list[dict[str, Any]]:
        query = (
            sa.select(tenant_api_key, tenant.c.name.label("tenant_name"))
            .join(tenant, tenant.c.id == tenant_api_key.c.tenant_id)
            .order_by(tenant_api_key.c.created_at)
        )
        return await fetch_all(self._conn, query)

    async def revoke_key(self, key_id: str, now: datetime) -> bool:
        result = await self._conn.execute(
            sa.update(tenant_api_key)
            .where(tenant_api_key.c.key_id == key_id, tenant_api_key.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return bool(result.rowcount)
