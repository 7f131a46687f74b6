"""On PostgreSQL an unfiltered thread total (a search's `X-Pagination-Total`, `threads/count`)
is the sum of `thread_tally`, which triggers keep as threads are added and removed (migration
0008). It must stay exactly the number of threads however they come and go, and the table must
stay a few dozen rows long. Starts its own PostgreSQL.

Reference: src/stead/storage/threads.py; issue 16.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from stead.ids import new_time_ordered_id
from stead.services.threads import new_thread_record
from stead.storage.database import Database
from stead.storage.schema import thread
from tests.support.schema import migrate_to
from tests.support.services import Postgres, postgres_server

_DATABASES = ("existing", "changes", "concurrent", "long")
# Every 64th change folds the tally into one row.
_FOLD_EVERY = 64
# One statement per thread, as Stead's own inserts.
_INSERT_THREAD = (
    "INSERT INTO thread (thread_id, metadata, config, status, interrupts, "
    "created_at, updated_at, state_updated_at) "
    "VALUES (%s, '{}', '{}', 'idle', '{}', now(), now(), now())"
)


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    with postgres_server(databases=_DATABASES) as server:
        yield server


def _tally(uri: str) -> tuple[int, int]:
    """The tally's total and its number of rows."""
    with psycopg.connect(uri) as conn:
        row = conn.execute("SELECT coalesce(sum(delta), 0), count(*) FROM thread_tally").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _thread_count(uri: str) -> int:
    with psycopg.connect(uri) as conn:
        row = conn.execute("SELECT count(*) FROM thread").fetchone()
    assert row is not None
    return int(row[0])


def _records(count: int) -> list[dict[str, Any]]:
    return [new_thread_record(new_time_ordered_id(), {}) for _ in range(count)]


async def _page(db: Database, limit: int, offset: int) -> tuple[int, int]:
    """An unfiltered search page: its rows and its total."""
    async with db.autocommit() as tx:
        page = await tx.threads.search(
            ids=None,
            metadata=None,
            values=None,
            status=None,
            limit=limit,
            offset=offset,
            sort_by="created_at",
            sort_order="desc",
        )
    return len(page.rows), page.total


async def _totals(db: Database) -> tuple[int, int]:
    """What a user is told: a full page's total, and threads/count's."""
    _, total = await _page(db, limit=1, offset=0)
    async with db.autocommit() as tx:
        counted = await tx.threads.count(metadata=None, values=None, status=None)
    return total, counted


def test_the_migration_counts_the_threads_already_there(pg: Postgres) -> None:
    url = pg.sqlalchemy_url("existing")
    migrate_to(url, "0007")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.insert(thread), _records(5))
    migrate_to(url, "head")
    assert _tally(pg.url("existing")) == (5, 1)

    migrate_to(url, "0007", "downgrade")
    with engine.begin() as conn:
        conn.execute(sa.insert(thread), _records(2))
        assert conn.execute(sa.text("SELECT to_regclass('thread_tally')")).scalar() is None
    migrate_to(url, "head")
    engine.dispose()
    assert _tally(pg.url("existing")) == (7, 1)


async def test_the_total_follows_every_way_threads_come_and_go(pg: Postgres) -> None:
    url = pg.sqlalchemy_url("changes")
    migrate_to(url, "head")
    uri = pg.url("changes")
    db = Database(url)
    try:
        async with db.transaction() as tx:
            for record in _records(3):
                await tx.threads.insert(record)
            await tx.connection.execute(sa.insert(thread), _records(4))
        assert await _totals(db) == (7, 7)

        taken = (await _thread_ids(db))[0]
        async with db.transaction() as tx:
            await tx.connection.execute(
                db.dialect.insert_unless_present(thread, new_thread_record(taken, {}))
            )
        assert await _totals(db) == (7, 7)

        with pytest.raises(RuntimeError):
            async with db.transaction() as tx:
                await tx.connection.execute(sa.insert(thread), _records(2))
                raise RuntimeError("rolled back")
        assert await _totals(db) == (7, 7)

        ids = await _thread_ids(db)
        async with db.autocommit() as tx:
            assert await tx.threads.delete(ids[0])
            await tx.connection.execute(sa.delete(thread).where(thread.c.thread_id.in_(ids[1:3])))
        assert await _totals(db) == (4, 4)
        assert _thread_count(uri) == 4
        # Pages that end the results, or start past it, tell the same total.
        for limit, offset, rows in ((4, 0, 4), (3, 2, 2), (2, 4, 0), (2, 9, 0)):
            assert await _page(db, limit, offset) == (rows, 4), (limit, offset)

        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute("TRUNCATE run, thread CASCADE")
        assert await _totals(db) == (0, 0)
        async with db.transaction() as tx:
            await tx.threads.insert(_records(1)[0])
        assert await _totals(db) == (1, 1)
    finally:
        await db.close()


async def _thread_ids(db: Database) -> list[str]:
    async with db.autocommit() as tx:
        rows = (await tx.connection.execute(sa.select(thread.c.thread_id))).all()
    return [row.thread_id for row in rows]


async def test_concurrent_writers_keep_it_exact_and_short(pg: Postgres) -> None:
    url = pg.sqlalchemy_url("concurrent")
    migrate_to(url, "head")
    uri = pg.url("concurrent")

    async def write(records: list[dict[str, Any]]) -> None:
        async with await psycopg.AsyncConnection.connect(uri, autocommit=True) as conn:
            for n, record in enumerate(records):
                await conn.execute(_INSERT_THREAD, [record["thread_id"]])
                if n % 3 == 0:
                    await conn.execute(
                        "DELETE FROM thread WHERE thread_id = %s", [record["thread_id"]]
                    )

    await asyncio.gather(*(write(_records(150)) for _ in range(8)))
    total, _ = _tally(uri)
    assert total == _thread_count(uri) == 8 * 100

    # Any 64 changes in a row include a fold; made one at a time, nothing holds its lock.
    await write(_records(_FOLD_EVERY))
    total, rows = _tally(uri)
    assert total == _thread_count(uri)
    assert rows <= _FOLD_EVERY


def test_a_transaction_adding_thousands_of_threads_one_by_one(pg: Postgres) -> None:
    """As the move into PostgreSQL does: one statement per thread, in one transaction."""
    uri = pg.url("long")
    migrate_to(pg.sqlalchemy_url("long"), "head")
    with psycopg.connect(uri) as conn, conn.pipeline():
        for record in _records(5_000):
            conn.execute(_INSERT_THREAD, [record["thread_id"]])
    assert _tally(uri)[0] == _thread_count(uri) == 5_000
    with psycopg.connect(uri, autocommit=True) as conn:
        for _ in range(_FOLD_EVERY):
            conn.execute("DELETE FROM thread WHERE thread_id = (SELECT min(thread_id) FROM thread)")
    total, rows = _tally(uri)
    assert total == _thread_count(uri) == 5_000 - _FOLD_EVERY
    assert rows <= _FOLD_EVERY
