"""Queries on assistants and their versions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from stead.storage._query import Page, Sort, count, fetch_all, fetch_one, fetch_page
from stead.storage.access import restricted, visible
from stead.storage.connections import Connection
from stead.storage.dialects import Dialect
from stead.storage.prepared import prepared
from stead.storage.schema import assistant, assistant_version

# Built once, the value as a parameter, and prepared: every run reads its assistant.
_BY_ID = prepared(
    sa.select(assistant).where(assistant.c.assistant_id == sa.bindparam("by_assistant_id"))
)
_VERSIONED = ("graph_id", "config", "context", "metadata", "name", "description")


class AssistantRepository:
    def __init__(
        self,
        conn: Connection,
        dialect: Dialect,
        access_filter: Mapping[str, Any] | None = None,
    ) -> None:
        self._conn = conn
        self._dialect = dialect
        self._visible = visible(dialect, assistant.c.metadata, access_filter)

    async def get(self, assistant_id: str) -> dict[str, Any] | None:
        query = restricted(_BY_ID, self._visible)
        return await fetch_one(self._conn, query, {"by_assistant_id": assistant_id})

    async def exists(self, assistant_id: str) -> bool:
        """Whether any assistant has this id, visible to the request or not (an id conflict)."""
        query = sa.select(assistant.c.assistant_id).where(assistant.c.assistant_id == assistant_id)
        return (await self._conn.execute(query)).first() is not None

    async def insert(self, record: dict[str, Any]) -> None:
        await self._conn.execute(sa.insert(assistant).values(**record))
        await self._insert_version(record)

    async def insert_unless_present(self, record: dict[str, Any]) -> bool:
        """Insert unless an assistant has this id already; whether it did."""
        statement = self._dialect.insert_unless_present(assistant, record)
        inserted = await self._conn.execute(statement.returning(assistant.c.assistant_id))
        if inserted.first() is None:
            return False
        await self._insert_version(record)
        return True

    async def save_version(self, record: dict[str, Any]) -> None:
        """Make `record` (with a new version number) the assistant's current state."""
        await self._conn.execute(
            sa.update(assistant)
            .where(assistant.c.assistant_id == record["assistant_id"], *self._visible)
            .values(**{k: v for k, v in record.items() if k not in ("assistant_id", "created_at")})
        )
        await self._insert_version(record)

    async def _insert_version(self, record: dict[str, Any]) -> None:
        await self._conn.execute(
            sa.insert(assistant_version).values(
                assistant_id=record["assistant_id"],
                version=record["version"],
                created_at=record["updated_at"],
                **{k: record[k] for k in _VERSIONED},
            )
        )

    async def set_current(self, assistant_id: str, version: dict[str, Any], now: Any) -> None:
        await self._conn.execute(
            sa.update(assistant)
            .where(assistant.c.assistant_id == assistant_id, *self._visible)
            .values(
                version=version["version"], updated_at=now, **{k: version[k] for k in _VERSIONED}
            )
        )

    async def max_version(self, assistant_id: str) -> int:
        result = await self._conn.execute(
            sa.select(sa.func.max(assistant_version.c.version)).where(
                assistant_version.c.assistant_id == assistant_id
            )
        )
        return int(result.scalar_one() or 0)

    async def get_version(self, assistant_id: str, version: int) -> dict[str, Any] | None:
        return await fetch_one(
            self._conn,
            sa.select(assistant_version).where(
                assistant_version.c.assistant_id == assistant_id,
                assistant_version.c.version == version,
            ),
        )

    async def delete(self, assistant_id: str) -> bool:
        result = await self._conn.execute(
            sa.delete(assistant).where(assistant.c.assistant_id == assistant_id, *self._visible)
        )
        return bool(result.rowcount)

    async def search(
        self,
        *,
        graph_id: str | None,
        name: str | None,
        metadata: dict[str, Any] | None,
        limit: int,
        offset: int,
        sort_by: str,
        sort_order: str,
    ) -> Page:
        return await fetch_page(
            self._conn,
            assistant,
            self._filters(graph_id, name, metadata),
            sort=Sort(sort_by, sort_order, "assistant_id"),
            limit=limit,
            offset=offset,
        )

    async def count(
        self, *, graph_id: str | None, name: str | None, metadata: dict[str, Any] | None
    ) -> int:
        return await count(self._conn, assistant, self._filters(graph_id, name, metadata))

    async def versions(
        self, assistant_id: str, *, metadata: dict[str, Any] | None, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        where = [assistant_version.c.assistant_id == assistant_id]
        if metadata:
            where.append(self._dialect.json_contains(assistant_version.c.metadata, metadata))
        return await fetch_all(
            self._conn,
            sa.select(assistant_version)
            .where(*where)
            .order_by(assistant_version.c.version.desc())
            .limit(limit)
            .offset(offset),
        )

    def _filters(
        self, graph_id: str | None, name: str | None, metadata: dict[str, Any] | None
    ) -> list[sa.ColumnElement[bool]]:
        where: list[sa.ColumnElement[bool]] = [*self._visible]
        if graph_id is not None:
            where.append(assistant.c.graph_id == graph_id)
        if name is not None:
            where.append(assistant.c.name.contains(name, autoescape=True))
        if metadata:
            where.append(self._dialect.json_contains(assistant.c.metadata, metadata))
        return where
