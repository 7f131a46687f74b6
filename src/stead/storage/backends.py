"""Where checkpoints and the long-term store live: SQLite files in the data folder, or PostgreSQL.

Stead's own tables go through `Database` on either backend; checkpoints and the store use
LangGraph's own savers, which bring their own migrations (`setup()`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiosqlite
import psycopg
import sqlalchemy as sa
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.store.base import TTLConfig
from langgraph.store.postgres.aio import AsyncPostgresStore
from langgraph.store.sqlite.aio import AsyncSqliteStore
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from stead.config import ConfigError, Settings
from stead.storage import sqlite_inline
from stead.storage.database import CONNECT_TIMEOUT_SECONDS, Database
from stead.storage.fencing import FencedPostgresSaver, FencedSqliteSaver
from stead.storage.idle_checks import IdleConnectionCheck

# The PostgreSQL advisory lock held while migrating (any constant: "stead" in ASCII).
_MIGRATION_LOCK_KEY = 0x7374656164
_MIGRATION_LOCK_POLL_SECONDS = 0.2
# What LangGraph's PostgreSQL savers require of their connections.
_PSYCOPG_OPTIONS: dict[str, Any] = {
    "autocommit": True,
    "prepare_threshold": 0,
    "row_factory": dict_row,
}
SAVERS_POOL_SIZE = 10
_SAVERS_POOL_TIMEOUT_SECONDS = 10.0

# Both stores sweep expired items on demand, which `BaseStore` does not promise.
Store = AsyncSqliteStore | AsyncPostgresStore


async def prepare_schema(settings: Settings, db: Database) -> None:
    """Embedded: migrate on start. PostgreSQL: `stead migrate` did it; refuse a schema behind."""
    if settings.postgres_uri is None:
        await db.migrate()
    elif not await schema_is_current(settings, db):
        raise ConfigError("the database schema is not up to date; run 'stead migrate'")


async def open_savers(
    settings: Settings,
    exit_stack: contextlib.AsyncExitStack,
    store_ttl: TTLConfig | None,
) -> tuple[BaseCheckpointSaver, Store]:
    """The checkpointer (fenced by the attempts in Stead's run table) and the store, closed by
    `exit_stack`. On SQLite, Stead's tables must exist first (they are migrated before)."""
    if settings.postgres_uri is not None:
        pool = await open_savers_pool(settings.postgres_uri)
        exit_stack.push_async_callback(pool.close)
        return FencedPostgresSaver(pool), AsyncPostgresStore(pool, ttl=store_ttl)
    checkpointer = FencedSqliteSaver(await _sqlite(exit_stack, settings.checkpoints_path))
    await checkpointer.attach_runs(settings.database_path)
    await checkpointer.setup()
    # The store opens its own transactions, so its connection must be in autocommit mode.
    store = AsyncSqliteStore(
        await _sqlite(exit_stack, settings.store_path, autocommit=True), ttl=store_ttl
    )
    await store.setup()
    return checkpointer, store


async def migrate(settings: Settings) -> None:
    """`stead migrate`: Stead's tables (Alembic), then the checkpointer's and the store's."""
    with _unreachable_database_is_config_error():
        await _migrate(settings)


async def _migrate(settings: Settings) -> None:
    if settings.postgres_uri is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        async with _database(settings) as db, contextlib.AsyncExitStack() as exit_stack:
            await db.migrate()
            await open_savers(settings, exit_stack, None)
        return
    async with await AsyncConnection.connect(settings.postgres_uri, **_PSYCOPG_OPTIONS) as conn:
        await _wait_for_migration_lock(conn)
        async with _database(settings) as db:
            await db.migrate()
        await AsyncPostgresSaver(conn).setup()
        await AsyncPostgresStore(conn).setup()


@contextlib.asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[Database]:
    db = Database(settings.database_url)
    try:
        yield db
    finally:
        await db.close()


async def _wait_for_migration_lock(conn: AsyncConnection[Any]) -> None:
    """Replicas starting together: the first migrates, the others wait, then find nothing to do.

    The lock is held by the session until `conn` closes. Waiters poll rather than block in
    `pg_advisory_lock`: a blocked waiter is an open transaction, which the savers'
    `CREATE INDEX CONCURRENTLY` would wait for, a deadlock.
    """
    while True:
        cursor = await conn.execute(
            "SELECT pg_try_advisory_lock(%s) AS taken", (_MIGRATION_LOCK_KEY,)
        )
        row = await cursor.fetchone()
        if row is not None and row["taken"]:
            return
        await asyncio.sleep(_MIGRATION_LOCK_POLL_SECONDS)


async def check_schema(settings: Settings) -> None:
    """Raise the one-line `stead migrate` hint when the schema is behind."""
    db = Database(settings.database_url)
    try:
        with _unreachable_database_is_config_error():
            await prepare_schema(settings, db)
    finally:
        await db.close()


@contextlib.contextmanager
def _unreachable_database_is_config_error() -> Iterator[None]:
    try:
        yield
    except (sa.exc.OperationalError, psycopg.OperationalError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ConfigError(f"cannot reach the database: {reason}") from None


async def schema_is_current(settings: Settings, db: Database) -> bool:
    if not await db.is_current():
        return False
    if settings.postgres_uri is None:
        return True
    async with await AsyncConnection.connect(settings.postgres_uri, **_PSYCOPG_OPTIONS) as conn:
        return await _at_version(
            conn, "checkpoint_migrations", len(AsyncPostgresSaver.MIGRATIONS)
        ) and await _at_version(conn, "store_migrations", len(AsyncPostgresStore.MIGRATIONS))


async def _at_version(conn: AsyncConnection[Any], table: str, migrations: int) -> bool:
    exists = await (await conn.execute("SELECT to_regclass(%s) AS name", (table,))).fetchone()
    if exists is None or exists["name"] is None:
        return False
    row = await (await conn.execute(f"SELECT max(v) AS v FROM {table}")).fetchone()
    return row is not None and row["v"] is not None and row["v"] >= migrations - 1


async def open_savers_pool(uri: str) -> AsyncConnectionPool[Any]:
    # Checked on checkout after sitting idle, as the engine's: a restarted PostgreSQL leaves dead
    # connections.
    idle_check = IdleConnectionCheck()
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        uri,
        min_size=1,
        max_size=SAVERS_POOL_SIZE,
        # Long enough for a run's checkpoint writes to ride out a database restart; a run that
        # waits longer goes back to the queue and continues from its last checkpoint.
        timeout=_SAVERS_POOL_TIMEOUT_SECONDS,
        kwargs={**_PSYCOPG_OPTIONS, "connect_timeout": CONNECT_TIMEOUT_SECONDS},
        configure=idle_check.mark_returned,
        reset=idle_check.mark_returned,
        check=idle_check.check,
        open=False,
    )
    await pool.open(wait=True)
    return pool


async def _sqlite(
    exit_stack: contextlib.AsyncExitStack, path: object, *, autocommit: bool = False
) -> aiosqlite.Connection:
    if autocommit:
        conn = await sqlite_inline.connect(str(path), isolation_level=None)
    else:
        conn = await sqlite_inline.connect(str(path))
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA synchronous=NORMAL")
    exit_stack.push_async_callback(conn.close)
    return conn
