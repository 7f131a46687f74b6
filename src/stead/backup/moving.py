"""Moving the embedded default's data into PostgreSQL: a team that started with `make run` takes
a backup and restores it into the production database.

Everything is written on one connection in one transaction, so a move that fails leaves the
target as it was. Stead's tables and the store are copied row by row with their timestamps;
checkpoints go through LangGraph's own savers (read by the SQLite saver, written by the
PostgreSQL one), so that the target holds them in its native format."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb

from stead.backup.manifest import BackupError
from stead.backup.progress import progress_bar
from stead.storage.database import Database
from stead.storage.schema import metadata

Say = Callable[[str], None]
_BATCH = 1000
_PROGRESS_EVERY = 1000
_STORE_COLUMNS = ("prefix", "key", "value", "created_at", "updated_at", "expires_at", "ttl_minutes")


async def move_into_postgres(files: dict[str, Path], uri: str, say: Say) -> None:
    """Copy the embedded files (restored into a scratch folder) into the migrated, empty
    database at `uri`."""
    await _bring_to_head(files["stead.sqlite"])
    try:
        async with (
            await AsyncConnection.connect(uri, autocommit=True) as conn,
            conn.transaction(),
        ):
            # An empty target may hold the graphs' own assistants from a first start; the
            # backup's replace them.
            await conn.execute("DELETE FROM assistant")
            await _copy_tables(files["stead.sqlite"], conn, say)
            await _copy_store(files["store.sqlite"], conn, say)
            await _copy_checkpoints(files["checkpoints.sqlite"], conn, say)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0]
        raise BackupError(
            f"the move into PostgreSQL failed and left it as it was: {reason}"
        ) from None


async def _bring_to_head(stead_sqlite: Path) -> None:
    """An older backup's tables are migrated in the scratch copy first: both sides then have
    this Stead's columns."""
    db = Database(f"sqlite+aiosqlite:///{stead_sqlite}")
    try:
        await db.migrate()
    finally:
        await db.close()


async def _copy_tables(stead_sqlite: Path, conn: AsyncConnection[Any], say: Say) -> None:
    source = Database(f"sqlite+aiosqlite:///{stead_sqlite}")
    try:
        for table in metadata.sorted_tables:
            copied = 0
            async for rows in _rows(source, table):
                await _insert(conn, table, rows)
                copied += len(rows)
            say(f"copied {copied} row(s) of {table.name}")
    finally:
        await source.close()


async def _rows(db: Database, table: sa.Table) -> AsyncIterator[list[dict[str, Any]]]:
    async with db.engine.connect() as source:
        # SQLite's cursor reads the rows as each partition is taken, not all at once.
        result = await source.execute(sa.select(table))
        for partition in result.mappings().partitions(_BATCH):
            yield [dict(row) for row in partition]


async def _insert(conn: AsyncConnection[Any], table: sa.Table, rows: list[dict[str, Any]]) -> None:
    columns = [column.name for column in table.columns]
    json_columns = {column.name for column in table.columns if isinstance(column.type, sa.JSON)}
    statement = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(table.name),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)),
    )
    values = [
        [Jsonb(row[name]) if name in json_columns and row[name] is not None else row[name]
         for name in columns]
        for row in rows
    ]  # fmt: skip
    async with conn.cursor() as cursor:
        await cursor.executemany(statement, values)


async def _copy_store(store_sqlite: Path, conn: AsyncConnection[Any], say: Say) -> None:
    with closing(sqlite3.connect(store_sqlite)) as source:
        found = source.execute(f"SELECT {', '.join(_STORE_COLUMNS)} FROM store").fetchall()
    # The SQLite store keeps values as JSON bytes.
    rows = [(prefix, key, _text(value), *rest) for prefix, key, value, *rest in found]
    # SQLite keeps the store's times as UTC text and its TTL as a real number of minutes.
    statement = (
        f"INSERT INTO store ({', '.join(_STORE_COLUMNS)}) VALUES (%s, %s, %s::jsonb, "
        "%s::timestamp AT TIME ZONE 'UTC', %s::timestamp AT TIME ZONE 'UTC', "
        "%s::timestamp AT TIME ZONE 'UTC', round(%s::numeric)::int)"
    )
    async with conn.cursor() as cursor:
        await cursor.executemany(statement, rows)
    say(f"copied {len(rows)} store item(s)")


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def _copy_checkpoints(checkpoints_sqlite: Path, conn: AsyncConnection[Any], say: Say) -> None:
    target = AsyncPostgresSaver(conn)
    copied = 0
    async with AsyncSqliteSaver.from_conn_string(str(checkpoints_sqlite)) as source:
        await source.setup()
        threads = _threads(checkpoints_sqlite)
        with progress_bar("checkpoints", len(threads), unit="thread") as advance:
            for done, (thread_id, namespace) in enumerate(threads, start=1):
                if done % _PROGRESS_EVERY == 0:
                    share = f"{done / len(threads):.0%}"
                    say(f"checkpoints: {done:,} of {len(threads):,} threads ({share})")
                copied += await _copy_thread_checkpoints(source, target, thread_id, namespace)
                advance(1)
    say(f"copied {copied} checkpoint(s)")


async def _copy_thread_checkpoints(
    source: AsyncSqliteSaver, target: AsyncPostgresSaver, thread_id: str, namespace: str
) -> int:
    scope: RunnableConfig = {"configurable": {"thread_id": thread_id, "checkpoint_ns": namespace}}
    found = [found async for found in source.alist(scope)]
    # Oldest first: each checkpoint names its parent, already copied.
    for checkpoint in reversed(found):
        await _put(target, checkpoint)
    return len(found)


def _threads(checkpoints_sqlite: Path) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(checkpoints_sqlite)) as source:
        query = "SELECT DISTINCT thread_id, checkpoint_ns FROM checkpoints"
        return [(str(thread), str(namespace)) for thread, namespace in source.execute(query)]


async def _put(target: AsyncPostgresSaver, found: CheckpointTuple) -> None:
    configurable = found.config["configurable"]
    parent = {
        "thread_id": configurable["thread_id"],
        "checkpoint_ns": configurable.get("checkpoint_ns", ""),
    }
    if found.parent_config is not None:
        parent["checkpoint_id"] = found.parent_config["configurable"]["checkpoint_id"]
    checkpoint = found.checkpoint
    # Every channel's blob is written again: the target has no earlier checkpoint to share it.
    written = await target.aput(
        {"configurable": parent}, checkpoint, found.metadata, checkpoint["channel_versions"]
    )
    by_task: dict[str, list[tuple[str, Any]]] = {}
    for task_id, channel, value in found.pending_writes or []:
        by_task.setdefault(task_id, []).append((channel, value))
    for task_id, writes in by_task.items():
        await target.aput_writes(written, writes, task_id)
