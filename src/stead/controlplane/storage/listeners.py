"""Queries on listeners, always within one tenant."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from stead.controlplane.storage.schema import listener
from stead.storage._query import fetch_all, fetch_one
from stead.storage.connections import Connection


class ListenerRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def insert(self, record: dict[str, Any]) -> None:
        await self._conn.execute(sa.insert(listener).values(**record))

    async def get(self, tenant_id: str, listener_id: str) -> dict[str, Any] | None:
        return await fetch_one(
            self._conn,
            sa.select(listener).where(
                listener.c.tenant_id == tenant_id, listener.c.id == listener_id
            ),
        )

    async def get_any_tenant(self, listener_id: str) -> dict[str, Any] | None:
        """For a listener's own calls, which its enrollment key authenticates."""
        return await fetch_one(self._conn, sa.select(listener).where(listener.c.id == listener_id))

    async def find_by_compute_id(self, tenant_id: str, compute_id: str) -> dict[str, Any] | None:
        return await fetch_one(
            self._conn,
            sa.select(listener).where(
                listener.c.tenant_id == tenant_id, listener.c.compute_id == compute_id
            ),
        )

    async def select(self, tenant_id: str, limit: int, offset: int) -> list[dict[str, Any]]:
        return await fetch_all(
            self._conn,
            sa.select(listener)
            .where(listener.c.tenant_id == tenant_id)
            .order_by(listener.c.created_at, listener.c.id)
            .limit(limit)
            .offset(offset),
        )

    async def update(self, listener_id: str, values: dict[str, Any]) -> None:
        await self._conn.execute(
            sa.update(listener).where(listener.c.id == listener_id).values(**values)
        )

    async def delete(self, listener_id: str) -> None:
        await self._conn.execute(sa.delete(listener).where(listener.c.id == listener_id))
