"""PostgreSQL through SQLAlchemy's asyncio engine, the prepared statements (stead.storage.prepared)
run on each connection's psycopg connection, in the transaction SQLAlchemy began."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import psycopg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from stead.storage.prepared import CompiledStatement, PreparedResult, compiled_for

T = TypeVar("T")


class PostgresEngine:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @property
    def dialect(self) -> sa.Dialect:
        return self._engine.dialect

    @property
    def pool(self) -> sa.Pool:
        return self._engine.pool

    def execution_options(self, **options: Any) -> PostgresEngine:
        return PostgresEngine(self._engine.execution_options(**options))

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[PostgresConnection]:
        async with self._engine.begin() as conn:
            yield PostgresConnection(conn)

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[PostgresConnection]:
        async with self._engine.connect() as conn:
            yield PostgresConnection(conn)

    async def dispose(self) -> None:
        await self._engine.dispose()


class PostgresConnection:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._driver: psycopg.AsyncConnection[Any] | None = None

    async def execute(
        self, statement: sa.Executable, parameters: Any = None
    ) -> sa.CursorResult[*tuple[Any, ...]] | PreparedResult:
        compiled = compiled_for(statement, self._conn.dialect, parameters)
        if compiled is None:
            return await self._conn.execute(statement, parameters)
        return await self._execute_prepared(compiled, parameters)

    async def run_sync(self, fn: Callable[[sa.Connection], T]) -> T:
        return await self._conn.run_sync(fn)

    async def _execute_prepared(self, compiled: CompiledStatement, given: Any) -> PreparedResult:
        driver = self._driver_connection()
        parameters = compiled.parameters(given)
        try:
            async with driver.cursor() as cursor:
                await cursor.execute(compiled.sql, parameters)
                # psycopg builds the description anew at each read.
                description = cursor.description
                if description is None:
                    return compiled.result([], cursor.rowcount, ())
                type_codes = tuple(column.type_code for column in description)
                return compiled.result(await cursor.fetchall(), cursor.rowcount, type_codes)
        except psycopg.Error as exc:
            # A lost connection is dropped from the pool when the block's rollback fails on it,
            # as after a statement of SQLAlchemy's own.
            raise compiled.driver_error(exc, parameters) from exc

    def _driver_connection(self) -> psycopg.AsyncConnection[Any]:
        if self._driver is None:
            # The block began the connection, so reading it needs no await (and no greenlet).
            self._driver = self._conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]
        assert self._driver is not None
        return self._driver
