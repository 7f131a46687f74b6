"""PostgreSQL through SQLAlchemy's asyncio engine, the prepared statements (stead.storage.prepared)
run on psycopg's own connections: inside a transaction on the connection SQLAlchemy began; in an
autocommit block on a connection of psycopg's pool."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import psycopg
import sqlalchemy as sa
from psycopg import pq
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from stead.storage import postgres_adapters
from stead.storage.connection_checks import CheckedConnectionPool
from stead.storage.prepared import CompiledStatement, PreparedResult, compiled_for

T = TypeVar("T")


class PostgresEngine:
    """SQLAlchemy's engine for transactions and for statements it runs itself, and a pool of
    psycopg's for the prepared statements of autocommit blocks: a block there costs about a
    third of SQLAlchemy's checkout, BEGIN, COMMIT and return (bench/README.md)."""

    def __init__(
        self, engine: AsyncEngine, statement_pool: Callable[[], AsyncConnectionPool[Any]]
    ) -> None:
        self._engine = engine
        self._autocommit_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._new_statement_pool = statement_pool
        self._statement_pool = StatementPool(statement_pool())

    @property
    def dialect(self) -> sa.Dialect:
        return self._engine.dialect

    def connections_in_use(self) -> int:
        pool = self._engine.pool
        in_use = pool.checkedout() if isinstance(pool, sa.pool.QueuePool) else 0
        return int(in_use) + self._statement_pool.in_use

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[PostgresConnection]:
        async with self._engine.begin() as conn:
            yield PostgresConnection(conn)

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[PostgresConnection]:
        async with self._engine.connect() as conn:
            yield PostgresConnection(conn)

    @contextlib.asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AutocommitConnection]:
        conn = AutocommitConnection(self._autocommit_engine, self._statement_pool)
        try:
            yield conn
        finally:
            await conn.close()

    async def dispose(self) -> None:
        """Close every pooled connection; the engine stays usable, with new pools."""
        pool, self._statement_pool = self._statement_pool, StatementPool(self._new_statement_pool())
        await pool.close()
        await self._engine.dispose()


def read_json_in_place(engine: AsyncEngine) -> None:
    """Every connection of `engine`, SQLAlchemy's and the statement pool's, reads json and jsonb
    in place (stead.storage.postgres_adapters): both start from the adapters SQLAlchemy's
    dialect gives psycopg as their `context`."""
    _, options = engine.dialect.create_connect_args(engine.url)
    postgres_adapters.read_json_in_place(options["context"])


def statement_pool(
    engine: AsyncEngine, size: int, connect_args: dict[str, Any]
) -> AsyncConnectionPool[Any]:
    """psycopg connections as SQLAlchemy's dialect makes them (its JSON loads and dumps), in
    autocommit; opened at its first use, in the event loop that uses it."""
    _, options = engine.dialect.create_connect_args(engine.url)
    return CheckedConnectionPool(
        kwargs={**options, **connect_args, "autocommit": True},
        min_size=1,
        max_size=size,
        open=False,
    )


class StatementPool:
    """psycopg's pool, handing out only a connection it has ready, and counting those it lent
    (its own figures count connections still being opened as lent)."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool
        self.in_use = 0

    async def take_ready(self) -> psycopg.AsyncConnection[Any] | None:
        if self._pool.closed:
            await self._pool.open()
        try:
            conn = await self._pool.getconn(_READY_WITHIN_SECONDS)
        except PoolTimeout:
            return None
        self.in_use += 1
        return conn

    async def give_back(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.in_use -= 1
        await self._pool.putconn(conn)

    async def close(self) -> None:
        await self._pool.close()


# How long a block waits for a connection of psycopg's pool before it goes through SQLAlchemy's.
# Not zero: psycopg's pool then refuses even a connection it has ready.
_READY_WITHIN_SECONDS = 0.001


class PostgresConnection:
    """A connection SQLAlchemy began a transaction on."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._driver: psycopg.AsyncConnection[Any] | None = None

    async def execute(
        self, statement: sa.Executable, parameters: Any = None
    ) -> sa.CursorResult[*tuple[Any, ...]] | PreparedResult:
        compiled = compiled_for(statement, self._conn.dialect, parameters)
        if compiled is None:
            return await self._conn.execute(statement, parameters)
        return await run_prepared(self._driver_connection(), compiled, parameters)

    async def run_sync(self, fn: Callable[[sa.Connection], T]) -> T:
        return await self._conn.run_sync(fn)

    async def close(self) -> None:
        await self._conn.close()

    def _driver_connection(self) -> psycopg.AsyncConnection[Any]:
        if self._driver is None:
            # The block began the connection, so reading it needs no await (and no greenlet).
            self._driver = self._conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]
        assert self._driver is not None
        return self._driver


class AutocommitConnection:
    """Statements that stand alone, each committed as it ends. The prepared ones run on a
    connection of psycopg's pool when one is ready; the others, and all of them when none is,
    through SQLAlchemy's pool, which fails at once while the database is unreachable (psycopg's
    would wait for its timeout) and makes a caller wait its turn under load. Each kind of
    connection is taken at the block's first statement that needs it and kept to its end."""

    def __init__(self, engine: AsyncEngine, pool: StatementPool) -> None:
        self._engine = engine
        self._pool = pool
        self._asked_pool = False
        self._driver: psycopg.AsyncConnection[Any] | None = None
        self._sqlalchemy: PostgresConnection | None = None

    async def execute(
        self, statement: sa.Executable, parameters: Any = None
    ) -> sa.CursorResult[*tuple[Any, ...]] | PreparedResult:
        compiled = compiled_for(statement, self._engine.dialect, parameters)
        if compiled is not None and (driver := await self._pooled_driver()) is not None:
            return await run_prepared(driver, compiled, parameters)
        return await (await self._sqlalchemy_connection()).execute(statement, parameters)

    async def run_sync(self, fn: Callable[[sa.Connection], T]) -> T:
        return await (await self._sqlalchemy_connection()).run_sync(fn)

    async def close(self) -> None:
        try:
            if self._sqlalchemy is not None:
                await self._sqlalchemy.close()
        finally:
            if self._driver is not None:
                await self._pool.give_back(self._driver)

    async def _sqlalchemy_connection(self) -> PostgresConnection:
        if self._sqlalchemy is None:
            self._sqlalchemy = PostgresConnection(await self._engine.connect())
        return self._sqlalchemy

    async def _pooled_driver(self) -> psycopg.AsyncConnection[Any] | None:
        if not self._asked_pool:
            self._asked_pool = True
            self._driver = await self._pool.take_ready()
        return self._driver


_RETURNS_ROWS = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.SINGLE_TUPLE, pq.ExecStatus.TUPLES_CHUNK)


def _column_type_codes(result: pq.abc.PGresult | None) -> tuple[int, ...] | None:
    """The type OIDs of a result's columns; None if it returned no rows, as psycopg's
    `description` tells. Read off the result: `description` makes a Column object per column at
    each read, 3% of a search's CPU."""
    if result is None or not (result.nfields or result.status in _RETURNS_ROWS):
        return None
    return tuple(result.ftype(index) for index in range(result.nfields))


async def run_prepared(
    driver: psycopg.AsyncConnection[Any], compiled: CompiledStatement, given: Any
) -> PreparedResult:
    parameters = compiled.parameters(given)
    try:
        async with driver.cursor() as cursor:
            await cursor.execute(compiled.sql, parameters)
            type_codes = _column_type_codes(cursor.pgresult)
            if type_codes is None:
                return compiled.result([], cursor.rowcount, ())
            return compiled.result(await cursor.fetchall(), cursor.rowcount, type_codes)
    except psycopg.Error as exc:
        # A lost connection is dropped from its pool when it is returned, as after a statement
        # of SQLAlchemy's own.
        raise compiled.driver_error(exc, parameters) from exc
