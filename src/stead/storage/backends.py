"""Where checkpoints and the long-term store live: SQLite files in the data folder, or PostgreSQL.

Stead's own tables go through `Database` on either backend; checkpoints and the store use
LangGraph's own savers, which bring their own migrations (`setup()`). PostgreSQL's pieces are in
stead.storage.postgres_savers, imported only when chosen.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import Op, Result, TTLConfig
from langgraph.store.sqlite.aio import AsyncSqliteStore

from stead.config import ConfigError, Settings
from stead.storage import sqlite_inline
from stead.storage.database import Database, database_errors, is_database_unavailable
from stead.storage.fencing import FencedSqliteSaver, attach_runs

if TYPE_CHECKING:
    from langgraph.store.postgres.aio import AsyncPostgresStore

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
        from stead.storage import postgres_savers

        return await postgres_savers.open_savers(settings.postgres_uri, exit_stack, store_ttl)
    setup = _checkpoints_setup(settings.database_path)
    checkpointer = FencedSqliteSaver(await _sqlite(exit_stack, settings.checkpoints_path, setup))
    await checkpointer.setup()
    # The store opens its own transactions, so its connection must be in autocommit mode.
    store = SqliteStore(
        await _sqlite(exit_stack, settings.store_path, _pragmas, autocommit=True), ttl=store_ttl
    )
    await store.setup()
    return checkpointer, store


async def migrate(settings: Settings) -> None:
    """`stead migrate`: Stead's tables (Alembic), then the checkpointer's and the store's."""
    with _unreachable_database_is_config_error():
        await _migrate(settings)


async def _migrate(settings: Settings) -> None:
    if settings.postgres_uri is not None:
        from stead.storage import postgres_savers

        async with _database(settings) as db:
            await postgres_savers.migrate(settings.postgres_uri, db)
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with _database(settings) as db, contextlib.AsyncExitStack() as exit_stack:
        await db.migrate()
        await open_savers(settings, exit_stack, None)


@contextlib.asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[Database]:
    db = Database(settings.database_url)
    try:
        yield db
    finally:
        await db.close()


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
    except database_errors() as exc:
        if not is_database_unavailable(exc):
            raise
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ConfigError(f"cannot reach the database: {reason}") from None


async def schema_is_current(settings: Settings, db: Database) -> bool:
    if not await db.is_current():
        return False
    if settings.postgres_uri is None:
        return True
    from stead.storage import postgres_savers

    return await postgres_savers.savers_are_current(settings.postgres_uri)


class SqliteStore(AsyncSqliteStore):
    """LangGraph's SQLite store, its connection reopened after a batch that bound a large value
    (see stead.storage.sqlite_inline)."""

    def __init__(self, conn: sqlite_inline.InlineConnection, *, ttl: TTLConfig | None) -> None:
        super().__init__(conn, ttl=ttl)
        self._inline = conn

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        results = await super().abatch(ops)
        await self._inline.reopen_if_large_values_bound(self.lock)
        return results


async def _sqlite(
    exit_stack: contextlib.AsyncExitStack,
    path: object,
    setup: Callable[[sqlite3.Connection], None],
    *,
    autocommit: bool = False,
) -> sqlite_inline.InlineConnection:
    if autocommit:
        conn = await sqlite_inline.connect(str(path), setup=setup, isolation_level=None)
    else:
        conn = await sqlite_inline.connect(str(path), setup=setup)
    exit_stack.push_async_callback(conn.close)
    return conn


def _pragmas(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")


def _checkpoints_setup(runs_database: Path) -> Callable[[sqlite3.Connection], None]:
    attach = attach_runs(runs_database)

    def setup(conn: sqlite3.Connection) -> None:
        _pragmas(conn)
        attach(conn)

    return setup
