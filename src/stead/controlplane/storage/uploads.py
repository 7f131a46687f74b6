"""Queries on source tarball uploads."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from stead.controlplane.storage.schema import upload
from stead.storage._query import fetch_one
from stead.storage.connections import Connection


class UploadRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def insert(self, record: dict[str, Any]) -> None:
        await self._conn.execute(sa.insert(upload).values(**record))

    async def find_by_token(self, token_hash: str) -> dict[str, Any] | None:
        return await fetch_one(
            self._conn, sa.select(upload).where(upload.c.token_hash == token_hash)
        )

    async def get(self, deployment_id: str, object_path: str) -> dict[str, Any] | None:
        return await fetch_one(
            self._conn,
            sa.select(upload).where(
                upload.c.deployment_id == deployment_id, upload.c.object_path == object_path
            ),
        )

    async def mark_received(self, object_path: str, values: dict[str, Any]) -> None:
        await self._conn.execute(
            sa.update(upload).where(upload.c.object_path == object_path).values(**values)
        )
