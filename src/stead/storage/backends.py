"""Where checkpoints and the long-term store live: SQLite files in the data folder, or PostgreSQL.

Stead's own tables go through `Database` on either backend; checkpoints and the store use
LangGraph's own savers, which bring their own migrations (`setup()`): SQLite's are in
stead.storage.sqlite_savers, PostgreSQL's in stead.storage.postgres_savers, imported only when
chosen.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import TTLConfig

from stead.config import ConfigError, Settings
from stead.storage import sqlite_savers
from stead.storage.database import Database, database_errors, is_database_unavailable

if TYPE_CHECKING:
    from langgraph.store.postgres.aio import AsyncPostgresStore
    from langgraph.store.sqlite.aio import AsyncSqliteStore

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
    return await sqlite_savers.open_savers(
        settings.checkpoints_path,
        settings.store_path,
        settings.database_path,
        exit_stack,
        store_ttl,
    )


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
