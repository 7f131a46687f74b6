"""Queries on crons. The scheduler claims a due cron by moving its next_run_date forward."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from stead.storage._query import Page, Sort, count, fetch_all, fetch_one, fetch_page
from stead.storage.access import visible
from stead.storage.connections import Connection
from stead.storage.dialects import Dialect
from stead.storage.schema import cron


class CronRepository:
    def __init__(
        self,
        conn: Connection,
        dialect: Dialect,
        access_filter: Mapping[str, Any] | None = None,
    ) -> None:
        self._conn = conn
        self._dialect = dialect
        self._visible = visible(dialect, cron.c.metadata, access_filter)

    async def insert(self, record: dict[str, Any]) -> None:
        await self._conn.execute(sa.insert(cron).values(**record))

    async def get(self, cron_id: str) -> dict[str, Any] | None:
        return await fetch_one(
            self._conn, sa.select(cron).where(cron.c.cron_id == cron_id, *self._visible)
        )

    async def update(self, cron_id: str, **fields: Any) -> None:
        await self._conn.execute(
            sa.update(cron).where(cron.c.cron_id == cron_id, *self._visible).values(**fields)
        )

    async def delete(self, cron_id: str) -> bool:
        result = await self._conn.execute(
            sa.delete(cron).where(cron.c.cron_id == cron_id, *self._visible)
        )
        return bool(result.rowcount)

    async def search(
        self,
        *,
        assistant_id: str | None,
        thread_id: str | None,
        enabled: bool | None,
        metadata: dict[str, Any] | None,
        limit: int,
        offset: int,
        sort_by: str,
        sort_order: str,
    ) -> Page:
        return await fetch_page(
            self._conn,
            cron,
            self._filters(assistant_id, thread_id, enabled, metadata),
            sort=Sort(sort_by, sort_order, "cron_id"),
            limit=limit,
            offset=offset,
        )

    async def count(
        self,
        *,
        assistant_id: str | None,
        thread_id: str | None,
        enabled: bool | None,
        metadata: dict[str, Any] | None,
    ) -> int:
        return await count(
            self._conn, cron, self._filters(assistant_id, thread_id, enabled, metadata)
        )

    async def due(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Enabled crons whose next run is due and whose end time has not passed."""
        return await fetch_all(
            self._conn,
            sa.select(cron)
            .where(
                cron.c.enabled == sa.true(),
                cron.c.next_run_date <= now,
                sa.or_(cron.c.end_time.is_(None), cron.c.end_time >= now),
            )
            .order_by(cron.c.next_run_date)
            .limit(limit),
        )

    async def advance(self, cron_id: str, due: datetime, next_run_date: datetime) -> bool:
        """Move a cron past `due`, unless someone else already did: the winner fires it."""
        result = await self._conn.execute(
            sa.update(cron)
            .where(cron.c.cron_id == cron_id, cron.c.next_run_date == due)
            .values(next_run_date=next_run_date)
        )
        return bool(result.rowcount)

    def _filters(
        self,
        assistant_id: str | None,
        thread_id: str | None,
        enabled: bool | None,
        metadata: dict[str, Any] | None,
    ) -> list[sa.ColumnElement[bool]]:
        where: list[sa.ColumnElement[bool]] = [*self._visible]
        if assistant_id is not None:
            where.append(cron.c.assistant_id == assistant_id)
        if thread_id is not None:
            where.append(cron.c.thread_id == thread_id)
        if enabled is not None:
            where.append(cron.c.enabled == enabled)
        if metadata:
            where.append(self._dialect.json_contains(cron.c.metadata, metadata))
        return where
