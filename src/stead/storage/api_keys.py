"""Queries on the built-in API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from stead.storage._query import fetch_all, fetch_one
from stead.storage.connections import Connection
from stead.storage.schema import api_key


class ApiKeyRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def insert(self, record: dict[str, Any]) -> None:
        await self._conn.execute(sa.insert(api_key).values(**record))

    async def find_active(self, key_hash: str) -> dict[str, Any] | None:
        return await fetch_one(
            self._conn,
            sa.select(api_key).where(
                api_key.c.key_hash == key_hash, api_key.c.revoked_at.is_(None)
            ),
        )

    async def list(self) -> list[dict[str, Any]]:
        return await fetch_all(self._conn, sa.select(api_key).order_by(api_key.c.created_at))

    async def revoke(self, key_id: str, now: datetime) -> bool:
        result = await self._conn.execute(
            sa.update(api_key)
            .where(api_key.c.key_id == key_id, api_key.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return bool(result.rowcount)
