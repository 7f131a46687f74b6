"""libpq keeps a connection's buffers at the size of the largest message it carried: a pooled
connection that moved a large value is closed as it is returned, so that a process's memory goes
back down after a large run (stead.storage.connection_checks). Each of Stead's PostgreSQL pools
is checked: SQLAlchemy's (transactions), psycopg's for autocommit statements, and the savers'.
A json value is decoded where libpq's result holds it, and the savers' bytea parameters go to
libpq as they are, with no copy of Python's on the way.
End to end, a worker is back to its size once large runs have ended. Starts its own PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from stead.storage.database import Database
from stead.storage.postgres_savers import open_savers_pool
from stead.storage.prepared import prepared
from stead.storage.transferred_bytes import TRANSFERRED_BYTES_LIMIT, bytes_transferred
from tests.conftest import GRAPHS_CONFIG
from tests.support.postgres import stead_migrate
from tests.support.runs import LARGE_INPUT_MIB, mib_kept_after_large_runs, peak_mib_of_a_large_run
from tests.support.servers import stead_server
from tests.support.services import Postgres, postgres_server, redis_server
from tests.support.worker import stead_worker_process

LARGE = TRANSFERRED_BYTES_LIMIT + 2**20
SMALL = 1000

# A block reads the backend's pid and a value of the given size, the way Stead's statements run.
Block = Callable[[int], Awaitable[int]]


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    with postgres_server() as server:
        yield server


def _backend_pid_and(size: int) -> sa.Select[Any]:
    return sa.select(
        sa.func.pg_backend_pid().label("pid"), sa.func.repeat("x", size).label("value")
    )


@contextlib.asynccontextmanager
async def _database_blocks(pg: Postgres, autocommit: bool) -> AsyncIterator[Block]:
    """Blocks of Stead's engine: transactions (SQLAlchemy's pool), or autocommit blocks running a
    prepared statement (psycopg's pool, once it has opened)."""
    db = Database(pg.sqlalchemy_url("postgres"))
    statements = {size: prepared(_backend_pid_and(size)) for size in (SMALL, LARGE)}

    async def block(size: int) -> int:
        begin = db.engine.autocommit if autocommit else db.engine.begin
        async with begin() as conn:
            row = (await conn.execute(statements[size])).mappings().one()
        assert len(row["value"]) == size
        return int(row["pid"])

    try:
        yield block
    finally:
        await db.close()


@contextlib.asynccontextmanager
async def _savers_blocks(pg: Postgres) -> AsyncIterator[Block]:
    pool = await open_savers_pool(pg.url("postgres"))

    async def block(size: int) -> int:
        async with pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT pg_backend_pid() AS pid, repeat('x', %s) AS value", (size,)
            )
            row = await cursor.fetchone()
        assert row is not None and len(row["value"]) == size
        return int(row["pid"])

    try:
        yield block
    finally:
        await pool.close()


@pytest.mark.parametrize("pool", ["transactions", "autocommit", "savers"])
def test_a_connection_that_carried_a_large_value_is_replaced(
    pg: Postgres, pool: str, caplog: pytest.LogCaptureFixture
) -> None:
    pools: dict[str, Callable[[Postgres], AbstractAsyncContextManager[Block]]] = {
        "transactions": partial(_database_blocks, autocommit=False),
        "autocommit": partial(_database_blocks, autocommit=True),
        "savers": _savers_blocks,
    }
    blocks = pools[pool]

    async def scenario() -> list[int]:
        pids = []
        async with blocks(pg) as block:
            # psycopg's pool opens at the first block, which SQLAlchemy's pool serves meanwhile.
            for size in (SMALL, SMALL):
                await block(size)
                await asyncio.sleep(0.1)
            for size in (*[SMALL] * 4, LARGE, *[SMALL] * 4):
                pids.append(await block(size))
                await asyncio.sleep(0.1)
        return pids

    with caplog.at_level(logging.INFO):
        pids = asyncio.run(scenario())
    before, large, after = pids[:4], pids[4], pids[5:]
    assert large in before, "the large value was read on a connection the pool had lent before"
    assert large not in after, "the connection that carried a large value was kept"
    assert set(before) - {large} <= set(after), "a connection that carried small values was not"
    # Replacing a connection on purpose is not a warning of psycopg's pool.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize("type_name", ["json", "jsonb"])
@pytest.mark.parametrize("autocommit", [False, True], ids=["transactions", "autocommit"])
def test_a_large_json_value_is_decoded_where_the_result_holds_it(
    pg: Postgres, autocommit: bool, type_name: str
) -> None:
    """psycopg's own loader copied each json and jsonb value into bytes before decoding it: a
    worker claiming a run with a 20 MiB input held 20 MiB more. Python's allocations while a
    large value is read are now what decoding it allocates (orjson reserves several times its
    input while it works), give or take the row's own."""
    size = 8 * 2**20
    build = getattr(sa.func, f"{type_name}_build_object")
    statements = {
        n: prepared(sa.select(build("text", sa.func.repeat("x", n)))) for n in (SMALL, size)
    }

    async def read(db: Database, n: int) -> Any:
        begin = db.engine.autocommit if autocommit else db.engine.begin
        async with begin() as conn:
            return (await conn.execute(statements[n])).scalar_one()

    async def scenario() -> tuple[Any, int]:
        db = Database(pg.sqlalchemy_url("postgres"))
        try:
            # psycopg's pool opens at the first block, which SQLAlchemy's pool serves meanwhile.
            for _ in range(3):
                assert await read(db, SMALL) == {"text": "x" * SMALL}
                await asyncio.sleep(0.1)
            with _traced_peak() as peak:
                value = await read(db, size)
            return value, peak[0]
        finally:
            await db.close()

    value, reading = asyncio.run(scenario())
    assert value == {"text": "x" * size}
    encoded = orjson.dumps(value)
    with _traced_peak() as peak:
        orjson.loads(memoryview(encoded))
    decoding = peak[0]
    assert reading - decoding < size / 2, (
        f"reading allocated {(reading - decoding) / size:.1f} values more than decoding"
    )


def test_a_large_bytea_parameter_of_the_savers_is_sent_as_it_is(pg: Postgres) -> None:
    """psycopg's compiled bytea dumper copied each bytes parameter before libpq copied it again:
    a checkpoint's 20 MiB blob held one body more while it was sent. The savers' connections
    give libpq the bytes as they are: Python allocates nothing of the value's size meanwhile."""
    size = 8 * 2**20
    value = b"x" * size

    async def scenario() -> tuple[int, int]:
        pool = await open_savers_pool(pg.url("postgres"))
        try:
            async with pool.connection() as conn:
                await conn.execute("SELECT length(%s)", (b"x" * SMALL,))
                with _traced_peak() as peak:
                    cursor = await conn.execute("SELECT length(%s)", (value,))
                    row = await cursor.fetchone()
        finally:
            await pool.close()
        assert row is not None
        return int(row["length"]), peak[0]

    length, sending = asyncio.run(scenario())
    assert length == size
    assert sending < size / 2, f"sending allocated {sending / size:.1f} times the value"


@contextlib.contextmanager
def _traced_peak() -> Iterator[list[int]]:
    """The most Python's allocations (tracemalloc) held at once inside the block, in bytes: in
    the list yielded, once the block ended."""
    found: list[int] = []
    tracemalloc.start()
    try:
        yield found
        found.append(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()


def test_a_connection_counts_what_it_sent_and_received(pg: Postgres) -> None:
    """Both directions grow libpq's buffers: a large parameter as much as a large result."""

    async def scenario() -> tuple[int, int, int]:
        pool = await open_savers_pool(pg.url("postgres"))
        try:
            async with pool.connection() as conn:
                before = bytes_transferred(conn.pgconn.socket)
                await conn.execute("SELECT length(%s)", ("x" * SMALL * 1000,))
                after_sending = bytes_transferred(conn.pgconn.socket)
                await conn.execute("SELECT repeat('x', %s)", (SMALL * 1000,))
                after_receiving = bytes_transferred(conn.pgconn.socket)
        finally:
            await pool.close()
        assert None not in (before, after_sending, after_receiving)
        return before or 0, after_sending or 0, after_receiving or 0

    before, after_sending, after_receiving = asyncio.run(scenario())
    assert after_sending - before >= SMALL * 1000
    assert after_receiving - after_sending >= SMALL * 1000


def test_a_unix_socket_counts_nothing_and_stays_open() -> None:
    """A connection over a Unix socket is kept whatever it moved: the kernel does not count. The
    check borrows the descriptor and must leave it open, whatever the socket."""
    left, right = socket.socketpair()
    with left, right:
        left.sendall(b"x" * SMALL)
        assert bytes_transferred(left.fileno()) is None
        left.sendall(b"still open")
        assert len(right.recv(2 * SMALL)) > 0


@contextlib.contextmanager
def _api_and_worker(pg: Postgres) -> Iterator[tuple[str, int]]:
    """An API-only process and a worker on `pg` and a Redis: the API's URL, the worker's pid."""
    migrated = stead_migrate(GRAPHS_CONFIG, pg.url("postgres"))
    assert migrated.returncode == 0, migrated.stderr
    with redis_server() as redis:
        env = {"DATABASE_URI": pg.url("postgres"), "REDIS_URI": redis.url}
        with (
            stead_server(GRAPHS_CONFIG, env={**env, "N_JOBS_PER_WORKER": "0"}) as api,
            stead_worker_process(GRAPHS_CONFIG, env) as worker,
        ):
            yield api.url, worker.process.pid


def test_a_worker_is_back_to_its_size_once_large_runs_ended(pg: Postgres) -> None:
    """Each run with a 20 MiB input grew the worker by 20 MiB: kept in its connections' buffers,
    and, the last run's, by the loop that claimed it."""
    with _api_and_worker(pg) as (url, worker_pid):
        grown = mib_kept_after_large_runs(url, worker_pid)
    assert grown < 10, f"the worker kept {grown:.0f} MiB after three 20 MiB runs"


def test_a_workers_large_checkpoint_writes_go_one_at_a_time(pg: Postgres) -> None:
    """LangGraph writes a step's checkpoint and its tasks' writes at once: three large writes in
    flight, each with its serialised value, psycopg's parameters and libpq's buffer, took a
    worker 9 bodies above its size on a run with a 20 MiB input; one at a time, about 5; with a
    thread's next write serialised only once its large write has ended, 4: the input, one
    serialised write and libpq's copy of it, and the values event on its way to Redis. Sent by
    COPY in pieces, a write holds 2 with the input; the claim, reading the input, now sets the
    peak at about 4 (test_postgres.py checks the waiting writes and the pieces themselves)."""
    with _api_and_worker(pg) as (url, worker_pid):
        peak = peak_mib_of_a_large_run(url, worker_pid)
    assert peak < 4.5 * LARGE_INPUT_MIB, f"the worker grew by {peak:.0f} MiB on a 20 MiB run"
