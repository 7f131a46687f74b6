"""Queries on threads."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from stead.storage._query import Page, Sort, count, fetch_all, fetch_one, fetch_page
from stead.storage.access import restricted, visible
from stead.storage.connections import Connection
from stead.storage.dialects import Dialect
from stead.storage.prepared import prepared
from stead.storage.runs import is_active
from stead.storage.schema import run, thread

# Built once, the values as parameters: the ones a run sends are prepared (stead.storage.prepared).
_INSERT = prepared(sa.insert(thread))
_BY_ID = thread.c.thread_id == sa.bindparam("by_thread_id")
_DELETE = prepared(sa.delete(thread).where(_BY_ID))
_GET = prepared(sa.select(thread).where(_BY_ID))
_GET_FOR_UPDATE = {"postgresql": prepared(_GET.with_for_update()), "sqlite": _GET}
_OTHERS_ACTIVE = sa.exists().where(
    run.c.thread_id == sa.bindparam("by_thread_id"),
    is_active(run.c.status),
    run.c.run_id != sa.bindparam("ended_run_id"),
)
# On PostgreSQL the number of threads is kept in `thread_tally` as it changes (migration 0008):
# an unfiltered total is a sum of a few rows, not a count of every thread.
_TALLY = sa.table("thread_tally", sa.column("delta", sa.BigInteger()))
_COUNT_ALL: dict[str, sa.Select[Any] | None] = {
    "postgresql": prepared(
        sa.select(sa.cast(sa.func.coalesce(sa.func.sum(_TALLY.c.delta), 0), sa.BigInteger()))
    ),
    "sqlite": None,
}
_SETTLED_STATUS = sa.case(
    (_OTHERS_ACTIVE, "busy"), else_=sa.bindparam("status_when_free", type_=thread.c.status.type)
)


@functools.lru_cache(maxsize=64)
def _update_statement(columns: tuple[str, ...], settling: bool) -> sa.Update:
    """An update of `columns` (parameters `set_<column>`) of the thread `by_thread_id`;
    `settling` sets its status by its other runs (see `settle`). One per set of columns that
    the callers change, built once."""
    values: dict[str, Any] = {
        name: sa.bindparam(f"set_{name}", type_=thread.c[name].type) for name in columns
    }
    if settling:
        values["status"] = _SETTLED_STATUS
    return prepared(
        sa.update(thread)
        .where(_BY_ID)
        .values(values)
        .returning(thread.c.ttl_minutes, thread.c.status)
    )


class ThreadRepository:
    def __init__(
        self,
        conn: Connection,
        dialect: Dialect,
        access_filter: Mapping[str, Any] | None = None,
    ) -> None:
        self._conn = conn
        self._dialect = dialect
        self._visible = visible(dialect, thread.c.metadata, access_filter)

    async def get(self, thread_id: str) -> dict[str, Any] | None:
        query = restricted(_GET, self._visible)
        return await fetch_one(self._conn, query, {"by_thread_id": thread_id})

    async def exists(self, thread_id: str) -> bool:
        """Whether any thread has this id, visible to the request or not (an id conflict)."""
        query = sa.select(thread.c.thread_id).where(thread.c.thread_id == thread_id)
        return (await self._conn.execute(query)).first() is not None

    async def get_for_update(self, thread_id: str) -> dict[str, Any] | None:
        """Read a thread and hold its row until the transaction ends (serialises run creation)."""
        query = restricted(_GET_FOR_UPDATE[self._dialect.name], self._visible)
        return await fetch_one(self._conn, query, {"by_thread_id": thread_id})

    async def insert(self, record: dict[str, Any]) -> None:
        await self._conn.execute(_INSERT, record)

    async def update(self, thread_id: str, **fields: Any) -> str | None:
        """Change a thread; its status afterwards, or None when no visible thread has this id.
        Setting `updated_at` is activity: a thread with a TTL then expires `ttl_minutes` after
        it, unless the same change sets `expires_at` itself."""
        return await self._update(thread_id, fields, {})

    async def _update(
        self, thread_id: str, fields: dict[str, Any], settling: dict[str, Any]
    ) -> str | None:
        query = restricted(_update_statement(tuple(sorted(fields)), bool(settling)), self._visible)
        params = {f"set_{name}": value for name, value in fields.items()}
        params.update(settling, by_thread_id=thread_id)
        changed = (await self._conn.execute(query, params)).first()
        if changed is None:
            return None
        ttl_minutes = changed.ttl_minutes
        if "updated_at" in fields and "expires_at" not in fields and ttl_minutes is not None:
            expires_at = fields["updated_at"] + timedelta(minutes=ttl_minutes)
            await self._conn.execute(
                sa.update(thread)
                .where(thread.c.thread_id == thread_id)
                .values(expires_at=expires_at)
            )
        return str(changed.status)

    async def settle(
        self, thread_id: str, ended_run_id: str, status_when_free: str, **fields: Any
    ) -> bool:
        """Change a thread after one of its runs ended: its status stays `busy` while other
        runs are pending or running on it, else becomes `status_when_free`. One statement: the
        check of the other runs is part of the update. Whether other runs were active.

        On PostgreSQL the caller holds the thread's row already (RunRepository locks it before
        ending a run), so the check sees every run created before: creation holds that row."""
        settling = {"ended_run_id": ended_run_id, "status_when_free": status_when_free}
        return await self._update(thread_id, fields, settling) == "busy"

    async def expired(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Threads past their expiry with no pending or running run, longest expired first."""
        active = sa.exists().where(run.c.thread_id == thread.c.thread_id, is_active(run.c.status))
        query = (
            sa.select(thread)
            .where(thread.c.expires_at <= now, ~active)
            .order_by(thread.c.expires_at)
            .limit(limit)
        )
        return await fetch_all(self._conn, query)

    async def clear_expiry(self, thread_id: str, now: datetime) -> None:
        """Stop a thread that has expired from being swept again, until its next activity."""
        await self._conn.execute(
            sa.update(thread)
            .where(thread.c.thread_id == thread_id, thread.c.expires_at <= now)
            .values(expires_at=None)
        )

    async def delete(self, thread_id: str) -> bool:
        query = restricted(_DELETE, self._visible)
        result = await self._conn.execute(query, {"by_thread_id": thread_id})
        return bool(result.rowcount)

    async def search(
        self,
        *,
        ids: list[str] | None,
        metadata: dict[str, Any] | None,
        values: dict[str, Any] | None,
        status: str | None,
        limit: int,
        offset: int,
        sort_by: str,
        sort_order: str,
    ) -> Page:
        return await fetch_page(
            self._conn,
            thread,
            self._filters(ids, metadata, values, status),
            sort=Sort(sort_by, sort_order, "thread_id"),
            limit=limit,
            offset=offset,
            count_all=_COUNT_ALL[self._dialect.name],
        )

    async def count(
        self,
        *,
        metadata: dict[str, Any] | None,
        values: dict[str, Any] | None,
        status: str | None,
    ) -> int:
        where = self._filters(None, metadata, values, status)
        return await count(self._conn, thread, where, _COUNT_ALL[self._dialect.name])

    def _filters(
        self,
        ids: list[str] | None,
        metadata: dict[str, Any] | None,
        values: dict[str, Any] | None,
        status: str | None,
    ) -> list[sa.ColumnElement[bool]]:
        where: list[sa.ColumnElement[bool]] = [*self._visible]
        if ids is not None:
            where.append(thread.c.thread_id.in_(ids))
        if metadata:
            where.append(self._dialect.json_contains(thread.c.metadata, metadata))
        if values:
            where.append(thread.c["values"].is_not(None))
            where.append(self._dialect.json_contains(thread.c["values"], values))
        if status is not None:
            where.append(thread.c.status == status)
        return where
