"""Small helpers shared by the repositories."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from stead.storage.connections import Connection


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    total: int


def order_by(
    table: sa.Table, sort_by: str, sort_order: str, tie_breaker: sa.Column[Any]
) -> list[sa.ColumnElement[Any]]:
    """`sort_by`, then the id for rows that tie, both in `sort_order`: one index on
    (column, id) then serves either direction, scanned forward or backward."""
    columns = [table.c[sort_by], tie_breaker]
    return [column.asc() if sort_order == "asc" else column.desc() for column in columns]


async def fetch_one(
    conn: Connection, query: sa.Executable, params: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    row = (await conn.execute(query, params)).mappings().first()
    return dict(row) if row is not None else None


async def fetch_all(
    conn: Connection, query: sa.Executable, params: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    return [dict(row) for row in (await conn.execute(query, params)).mappings()]


async def fetch_page(
    conn: Connection,
    table: sa.Table,
    where: list[sa.ColumnElement[bool]],
    *,
    order: list[sa.ColumnElement[Any]],
    limit: int,
    offset: int,
) -> Page:
    rows = await fetch_all(
        conn, sa.select(table).where(*where).order_by(*order).limit(limit).offset(offset)
    )
    total = await count(conn, table, where)
    return Page(rows, total)


async def count(conn: Connection, table: sa.Table, where: list[sa.ColumnElement[bool]]) -> int:
    result = await conn.execute(sa.select(sa.func.count()).select_from(table).where(*where))
    return int(result.scalar_one())
