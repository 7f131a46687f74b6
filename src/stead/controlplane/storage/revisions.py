"""Queries on revisions and their build and deploy log lines."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from stead.controlplane.storage.schema import revision, revision_log
from stead.storage._query import fetch_all, fetch_one
from stead.storage.connections import Connection


class RevisionRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def insert(self, record: dict[str, Any]) -> None:
        await self._conn.execute(sa.insert(revision).values(**record))

    async def get(self, deployment_id: str, revision_id: str) -> dict[str, Any] | None:
        return await fetch_one(
            self._conn,
            sa.select(revision).where(
                revision.c.deployment_id == deployment_id, revision.c.id == revision_id
            ),
        )

    async def find(self, revision_id: str) -> dict[str, Any] | None:
        return await fetch_one(self._conn, sa.select(revision).where(revision.c.id == revision_id))

    async def select(
        self, deployment_id: str, statuses: tuple[str, ...], limit: int, offset: int
    ) -> list[dict[str, Any]]:
        where = [revision.c.deployment_id == deployment_id]
        if statuses:
            where.append(revision.c.status.in_(statuses))
        # Ids are time-ordered (UUIDv7): they break ties between revisions of the same instant.
        return await fetch_all(
            self._conn,
            sa.select(revision)
            .where(*where)
            .order_by(revision.c.created_at.desc(), revision.c.id.desc())
            .limit(limit)
            .offset(offset),
        )

    async def set_status(
        self,
        revision_ids: list[str],
        status: str,
        now: datetime,
        message: str | None = None,
        only_from: tuple[str, ...] = (),
    ) -> int:
        where = [revision.c.id.in_(revision_ids)]
        if only_from:
            where.append(revision.c.status.in_(only_from))
        result = await self._conn.execute(
            sa.update(revision)
            .where(*where)
            .values(status=status, status_message=message, updated_at=now)
        )
        return int(result.rowcount)

    async def ids_in_status(self, deployment_id: str, statuses: tuple[str, ...]) -> list[str]:
        rows = await fetch_all(
            self._conn,
            sa.select(revision.c.id).where(
                revision.c.deployment_id == deployment_id, revision.c.status.in_(statuses)
            ),
        )
        return [row["id"] for row in rows]


class RevisionLogRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def append(self, records: list[dict[str, Any]]) -> None:
        if records:
            await self._conn.execute(sa.insert(revision_log), records)

    async def page(
        self,
        revision_id: str,
        log_type: str,
        *,
        descending: bool,
        after_id: int | None,
        limit: int,
        level: str | None,
        query: str | None,
        start_time: datetime | None,
        end_time: datetime | None,
    ) -> list[dict[str, Any]]:
        where = [revision_log.c.revision_id == revision_id, revision_log.c.type == log_type]
        if after_id is not None:
            where.append(
                revision_log.c.id < after_id if descending else revision_log.c.id > after_id
            )
        if level:
            where.append(revision_log.c.level == level)
        if query:
            where.append(revision_log.c.message.contains(query, autoescape=True))
        if start_time:
            where.append(revision_log.c.timestamp >= start_time)
        if end_time:
            where.append(revision_log.c.timestamp <= end_time)
        order = revision_log.c.id.desc() if descending else revision_log.c.id.asc()
        return await fetch_all(
            self._conn, sa.select(revision_log).where(*where).order_by(order).limit(limit)
        )
