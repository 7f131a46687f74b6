"""Small helpers shared by the repositories."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from stead.storage.connections import Connection
from stead.storage.prepared import prepared


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    total: int


@dataclass(frozen=True)
class Sort:
    """A page's order: `by`, then the table's `tie_breaker` column for rows that tie, both
    `order` ("asc" or "desc"). One index on (column, id) then serves either direction."""

    by: str
    order: str
    tie_breaker: str

    def clauses(self, table: sa.Table) -> list[sa.ColumnElement[Any]]:
        columns = [table.c[self.by], table.c[self.tie_breaker]]
        return [column.asc() if self.order == "asc" else column.desc() for column in columns]


async def fetch_one(
    conn: Connection, query: sa.Executable, params: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    row = (await conn.execute(query, params)).mappings().first()
    return dict(row) if row is not None else None


async def fetch_all(
    conn: Connection, query: sa.Executable, params: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    result = await conn.execute(query, params)
    # Zipped with the keys rather than read through `mappings()`: a third of the cost per row,
    # 20 µs of a 10-thread search page.
    keys = list(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result.all()]


async def fetch_page(
    conn: Connection,
    table: sa.Table,
    where: list[sa.ColumnElement[bool]],
    *,
    sort: Sort,
    limit: int,
    offset: int,
    count_all: sa.Select[Any] | None = None,
) -> Page:
    """A page of the rows `where` holds and their exact total. `count_all` tells the total of
    an unfiltered page where the table's size is kept (see `count`)."""
    if where:
        query = sa.select(table).where(*where).order_by(*sort.clauses(table))
        rows = await fetch_all(conn, query.limit(limit).offset(offset))
    else:
        page = {"page_limit": limit, "page_offset": offset}
        rows = await fetch_all(conn, _unfiltered_page(table, sort, count_all), page)
        if count_all is not None and rows:
            return Page(rows, _take_total(rows))
    if len(rows) < limit and (rows or offset == 0):
        # A short page ends the results: its total needs no count.
        return Page(rows, offset + len(rows))
    return Page(rows, await count(conn, table, where, count_all))


async def count(
    conn: Connection,
    table: sa.Table,
    where: list[sa.ColumnElement[bool]],
    count_all: sa.Select[Any] | None = None,
) -> int:
    """The rows `where` holds; with no condition, `count_all` when given (a table whose size is
    kept elsewhere), else a count of the table."""
    if where:
        query = _count_all(table).where(*where)
    else:
        query = count_all if count_all is not None else _count_all(table)
    result = await conn.execute(query)
    return int(result.scalar_one())


# Unfiltered pages and counts are built once per table and order, and prepared: building and
# hashing them was a tenth of a search's CPU. Filtered ones differ by their filters, and are built
# each time.
@functools.lru_cache(maxsize=128)
def _unfiltered_page(
    table: sa.Table, sort: Sort, count_all: sa.Select[Any] | None = None
) -> sa.Select[Any]:
    """A page of all rows, from `page_offset`, at most `page_limit`. With `count_all`, each row
    also carries the total it tells (`page_total`), read in the same statement: one round trip,
    and the page and its total of one snapshot."""
    columns: list[Any] = [table]
    if count_all is not None:
        columns.append(count_all.scalar_subquery().label("page_total"))
    return prepared(
        sa.select(*columns)
        .order_by(*sort.clauses(table))
        .limit(sa.bindparam("page_limit", type_=sa.Integer()))
        .offset(sa.bindparam("page_offset", type_=sa.Integer()))
    )


def _take_total(rows: list[dict[str, Any]]) -> int:
    """The total the rows of a page read with `count_all` carry, taken off them."""
    totals = {row.pop("page_total") for row in rows}
    return int(totals.pop())


@functools.lru_cache(maxsize=32)
def _count_all(table: sa.Table) -> sa.Select[Any]:
    return prepared(sa.select(sa.func.count()).select_from(table))
