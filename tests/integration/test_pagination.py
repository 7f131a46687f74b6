"""A search page's `X-Pagination-Total`: exact, and counted only when the page cannot tell it.

A page shorter than its limit ends the results, so its total is its offset plus its rows: most
searches of a few matches need one statement, not a page and a count.

Reference: src/stead/storage/_query.py; issue 16.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from stead.ids import new_time_ordered_id
from stead.services.threads import new_thread_record
from stead.storage import Database
from stead.storage._query import Sort, fetch_page
from stead.storage.schema import thread


class _CountingConnection:
    """A real connection that counts the statements sent through it."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.statements = 0

    async def execute(self, statement: sa.Executable, parameters: Any = None) -> Any:
        self.statements += 1
        return await self._conn.execute(statement, parameters)

    async def run_sync(self, fn: Any) -> Any:
        return await self._conn.run_sync(fn)


@pytest.mark.parametrize(
    ("limit", "offset", "rows", "statements"),
    [
        (10, 0, 3, 1),  # everything fits: the page is the total
        (2, 2, 1, 1),  # the last, short page
        (2, 0, 2, 2),  # a full page: more may follow, so they are counted
        (3, 0, 3, 2),  # full, and exactly the end: only a count can tell
        (2, 5, 0, 2),  # past the end: the page says nothing
    ],
)
async def test_the_total_is_exact_and_counted_only_when_the_page_cannot_tell(
    tmp_path: Path, limit: int, offset: int, rows: int, statements: int
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'stead.sqlite'}")
    await db.migrate()
    try:
        async with db.transaction() as tx:
            for _ in range(3):
                await tx.threads.insert(new_thread_record(new_time_ordered_id(), {}))
        async with db.autocommit() as tx:
            counting = _CountingConnection(tx.connection)
            page = await fetch_page(
                counting,
                thread,
                [],
                sort=Sort("created_at", "desc", "thread_id"),
                limit=limit,
                offset=offset,
            )
        assert (len(page.rows), page.total, counting.statements) == (rows, 3, statements)
    finally:
        await db.close()
