"""LangGraph's checkpointer and store on PostgreSQL: the fenced saver, the pool they share, and
their migrations. Imported only when DATABASE_URI names PostgreSQL: the embedded default does
without psycopg (9 MiB resident)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.store.base import TTLConfig
from langgraph.store.postgres.aio import AsyncPostgresStore
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from stead.storage import postgres_fenced_writes as fenced_writes
from stead.storage import postgres_large_writes as large_writes
from stead.storage.connection_checks import CheckedConnectionPool
from stead.storage.database import CONNECT_TIMEOUT_SECONDS, Database
from stead.storage.fencing import (
    CheckpointsUnavailable,
    RunAttempt,
    current_writer,
    holds_no_checkpoints,
    lease_lost,
    note_checkpoint_write,
)
from stead.storage.postgres_adapters import savers_adapters

# Share-locks the run's row, or raises ATTEMPT_TAKEN_OVER (migration 0007).
_HOLD_ATTEMPT_SQL = "SELECT stead_hold_attempt(%s::text, %s::integer)"
# A thread's checkpoints, their blobs and pending writes, in one statement.
_DELETE_THREAD_SQL = """
    WITH blobs AS (DELETE FROM checkpoint_blobs WHERE thread_id = %(thread_id)s),
         writes AS (DELETE FROM checkpoint_writes WHERE thread_id = %(thread_id)s)
    DELETE FROM checkpoints WHERE thread_id = %(thread_id)s
"""
ATTEMPT_TAKEN_OVER = "SL001"
# The PostgreSQL advisory lock held while migrating (any constant: "stead" in ASCII).
_MIGRATION_LOCK_KEY = 0x7374656164
_MIGRATION_LOCK_POLL_SECONDS = 0.2
# What LangGraph's PostgreSQL savers require of their connections.
_PSYCOPG_OPTIONS: dict[str, Any] = {
    "autocommit": True,
    "prepare_threshold": 0,
    "row_factory": dict_row,
    "context": savers_adapters(),
}
SAVERS_POOL_SIZE = 10
_SAVERS_POOL_TIMEOUT_SECONDS = 10.0


def _writing_to(config: RunnableConfig) -> tuple[str, str, RunAttempt | None]:
    """The thread and namespace a checkpoint write goes to, and the run attempt writing it, if
    any; the write is noted first so that a new thread's later reads go to the database."""
    configurable = config["configurable"]
    thread_id = str(configurable["thread_id"])
    note_checkpoint_write(thread_id)
    return thread_id, configurable["checkpoint_ns"], current_writer()


class FencedPostgresSaver(AsyncPostgresSaver):
    """Inside a run, every write is fenced: a check that share-locks the run's row if it still
    holds the attempt goes with the write, and a failed check fails it whole. A checkpoint and
    a task's writes are one statement each, the check in it (stead.storage.postgres_fenced_writes),
    or, when large, a transaction that begins with the check and sends the rows by COPY
    (stead.storage.postgres_large_writes); LangGraph's other writes go through
    `_cursor(pipeline=True)`, which sends the check first in their pipeline.

    Each caller takes a connection of its own from the pool: the base class's lock, there for a
    single shared connection, would make all of a worker's runs write one at a time."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        super().__init__(pool)
        self._pool = pool
        # LangGraph writes a step's checkpoint and its tasks' writes at once: large ones go one
        # at a time, each with its serialised values and the pieces of them on their way. One that
        # must wait serialises its values again when its turn comes, rather than hold them (a
        # run with a 20 MiB input took its worker 9 bodies above its size, 5 to 6 this way).
        self._large_writes = asyncio.Lock()
        # The threads with a large write in flight, each with the event its end sets: the
        # thread's next write waits for it before serialising its own values, so that a step's
        # checkpoint and its tasks' writes are not held serialised at once.
        self._large_write_ends: dict[str, asyncio.Event] = {}

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        # A stateless run's thread holds nothing until the run writes to it: LangGraph's read
        # of it as the run starts would be a round trip for nothing.
        if holds_no_checkpoints(str(config["configurable"]["thread_id"])):
            return None
        return await super().aget_tuple(config)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        thread_id, checkpoint_ns, writer = _writing_to(config)
        if writer is None:
            return await super().aput(config, checkpoint, metadata, new_versions)
        configurable = config["configurable"]
        await self._after_large_writes_of(thread_id)
        split = fenced_writes.split_checkpoint(checkpoint)
        blob_versions = {k: v for k, v in new_versions.items() if k in split.blob_values}

        def dump_blobs() -> list[tuple[str, str, str, str, str, bytes | None]]:
            return self._dump_blobs(thread_id, checkpoint_ns, split.blob_values, blob_versions)

        blobs = dump_blobs()
        saved_metadata = get_serializable_checkpoint_metadata(config, metadata)
        if fenced_writes.is_large(split, blobs):
            if self._large_writes.locked():
                blobs = []  # not held while waiting: serialised again
            async with self._large_write(thread_id), self._fenced_transaction(writer) as cur:
                await large_writes.insert_rows(
                    cur,
                    "checkpoint_blobs",
                    large_writes.BLOB_COLUMNS,
                    blobs or dump_blobs(),
                    large_writes.BLOBS_KEPT,
                )
                row = (
                    thread_id,
                    checkpoint_ns,
                    checkpoint["id"],
                    configurable.get("checkpoint_id"),
                    large_writes.JsonbValue.of(split.inline),
                    large_writes.JsonbValue.of(saved_metadata),
                )
                await large_writes.insert_rows(
                    cur,
                    "checkpoints",
                    large_writes.CHECKPOINT_COLUMNS,
                    [row],
                    large_writes.CHECKPOINT_REPLACED,
                )
        else:
            parameters = {
                "thread_id": thread_id,
                "checkpoint_ns": checkpoint_ns,
                "checkpoint_id": checkpoint["id"],
                "parent_checkpoint_id": configurable.get("checkpoint_id"),
                "checkpoint": Jsonb(split.inline),
                "metadata": Jsonb(saved_metadata),
                **fenced_writes.blob_parameters(blobs),
            }
            await self._fenced_statement(writer, fenced_writes.PUT_CHECKPOINT_SQL, parameters)
        return {
            "configurable": {
                "thread_id": configurable["thread_id"],
                "checkpoint_ns": checkpoint_ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        thread_id, checkpoint_ns, writer = _writing_to(config)
        if writer is None:
            await super().aput_writes(config, writes, task_id, task_path)
            return
        replacing = fenced_writes.replaces_writes(writes)
        checkpoint_id = config["configurable"]["checkpoint_id"]
        ids = (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path)
        await self._after_large_writes_of(thread_id)
        rows = self._dump_writes(*ids, writes)
        if fenced_writes.are_large(rows):
            if self._large_writes.locked():
                rows = []  # not held while waiting: serialised again
            async with self._large_write(thread_id), self._fenced_transaction(writer) as cur:
                await large_writes.insert_rows(
                    cur,
                    "checkpoint_writes",
                    large_writes.WRITE_COLUMNS,
                    fenced_writes.kept_writes(rows or self._dump_writes(*ids, writes), replacing),
                    large_writes.WRITES_REPLACED if replacing else large_writes.WRITES_KEPT,
                )
            return
        await self._fenced_statement(
            writer,
            fenced_writes.PUT_WRITES_REPLACING_SQL
            if replacing
            else fenced_writes.PUT_WRITES_KEEPING_SQL,
            {
                "thread_id": thread_id,
                "checkpoint_ns": checkpoint_ns,
                "checkpoint_id": checkpoint_id,
                "task_id": task_id,
                "task_path": task_path,
                **fenced_writes.write_parameters(rows, replacing),
            },
        )

    @contextlib.asynccontextmanager
    async def _large_write(self, thread_id: str) -> AsyncIterator[None]:
        """A large write's turn: one at a time in the process; meanwhile the thread's next
        writes wait before they serialise (`_after_large_writes_of`)."""
        ended = self._large_write_ends.setdefault(thread_id, asyncio.Event())
        try:
            async with self._large_writes:
                yield
        finally:
            if self._large_write_ends.get(thread_id) is ended:
                del self._large_write_ends[thread_id]
            ended.set()

    async def _after_large_writes_of(self, thread_id: str) -> None:
        while (ended := self._large_write_ends.get(thread_id)) is not None:
            await ended.wait()

    async def _fenced_statement(
        self, writer: RunAttempt, sql: str, parameters: dict[str, Any]
    ) -> None:
        """One statement of stead.storage.postgres_fenced_writes, committed as it ends."""
        with _unreachable_is_unavailable(), _taken_over_is_lease_lost(writer):
            async with self._pool.connection() as conn:
                await conn.execute(
                    sql, {**parameters, **fenced_writes.attempt_parameters(writer)}, binary=True
                )

    @contextlib.asynccontextmanager
    async def _fenced_transaction(self, writer: RunAttempt) -> AsyncIterator[AsyncCursor[Any]]:
        """A transaction that begins with the fencing check: a failed check writes nothing."""
        with _unreachable_is_unavailable(), _taken_over_is_lease_lost(writer):
            async with (
                self._pool.connection() as conn,
                conn.transaction(),
                conn.cursor() as cur,
            ):
                await cur.execute(_HOLD_ATTEMPT_SQL, (writer.run_id, writer.attempt))
                yield cur

    async def adelete_thread(self, thread_id: str) -> None:
        """As LangGraph's, in one statement instead of a pipeline of three: every stateless run
        ends with it. Fenced inside a run, where the pipeline carries the fence."""
        async with self._cursor(pipeline=current_writer() is not None) as cur:
            await cur.execute(_DELETE_THREAD_SQL, {"thread_id": str(thread_id)})

    @contextlib.asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        writer = current_writer()
        if writer is None:
            async with self._plain_cursor(pipeline=pipeline) as cur:
                yield cur
            return
        with _unreachable_is_unavailable(), _taken_over_is_lease_lost(writer):
            opened = self._fenced_cursor(writer) if pipeline else self._plain_cursor(pipeline=False)
            async with opened as cur:
                yield cur

    @contextlib.asynccontextmanager
    async def _fenced_cursor(self, writer: RunAttempt) -> AsyncIterator[AsyncCursor[DictRow]]:
        """No BEGIN and COMMIT: PostgreSQL runs the statements between two syncs of a pipeline
        as one implicit transaction, committed at the sync if none failed. So the row's share
        lock lasts until the writes commit, and a failed check rolls back all of them
        (bench/README.md: each statement of a pipeline costs a wait on the event loop). A block
        cut short by something other than a failed statement (a cancellation) still commits what
        it sent, as LangGraph's own saver does: writes of this attempt, let through by the check."""
        async with self._pool.connection() as conn:
            failed: psycopg.Error | None = None
            try:
                async with conn.pipeline(), conn.cursor(binary=True, row_factory=dict_row) as cur:
                    await cur.execute(_HOLD_ATTEMPT_SQL, (writer.run_id, writer.attempt))
                    try:
                        yield cur
                    except psycopg.Error as exc:
                        # Raised once the pipeline is closed: closing it fails too after a
                        # failed statement, which psycopg logs as a warning while an error is
                        # under way (a refused stale write read its refusal inside the block).
                        failed = exc
            except psycopg.Error:
                if failed is None:
                    raise
            if failed is not None:
                raise failed

    @contextlib.asynccontextmanager
    async def _plain_cursor(self, *, pipeline: bool) -> AsyncIterator[AsyncCursor[DictRow]]:
        async with self._pool.connection() as conn:
            if not pipeline:
                async with conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
                return
            async with conn.pipeline(), conn.cursor(binary=True, row_factory=dict_row) as cur:
                yield cur


@contextlib.contextmanager
def _taken_over_is_lease_lost(writer: RunAttempt) -> Iterator[None]:
    # In a pipeline the check's error surfaces at whichever later call reads its result.
    try:
        yield
    except psycopg.Error as exc:
        if exc.sqlstate != ATTEMPT_TAKEN_OVER:
            raise
        raise lease_lost(writer) from exc


@contextlib.contextmanager
def _unreachable_is_unavailable() -> Iterator[None]:
    # Only the run's own checkpoint traffic: an OperationalError from a node stays the node's.
    try:
        yield
    except psycopg.OperationalError as exc:  # PoolTimeout included
        raise CheckpointsUnavailable(str(exc)) from exc


async def open_savers(
    uri: str, exit_stack: contextlib.AsyncExitStack, store_ttl: TTLConfig | None
) -> tuple[FencedPostgresSaver, AsyncPostgresStore]:
    pool = await open_savers_pool(uri)
    exit_stack.push_async_callback(pool.close)
    return FencedPostgresSaver(pool), AsyncPostgresStore(pool, ttl=store_ttl)


async def open_savers_pool(uri: str) -> AsyncConnectionPool[Any]:
    # Checked on checkout as the engine's (stead.storage.connection_checks).
    pool: AsyncConnectionPool[Any] = CheckedConnectionPool(
        uri,
        min_size=1,
        max_size=SAVERS_POOL_SIZE,
        # Long enough for a run's checkpoint writes to ride out a database restart; a run that
        # waits longer goes back to the queue and continues from its last checkpoint.
        timeout=_SAVERS_POOL_TIMEOUT_SECONDS,
        kwargs={**_PSYCOPG_OPTIONS, "connect_timeout": CONNECT_TIMEOUT_SECONDS},
        open=False,
    )
    await pool.open(wait=True)
    return pool


async def migrate(uri: str, db: Database) -> None:
    """Stead's tables, then the checkpointer's and the store's, under the migration lock."""
    async with await AsyncConnection.connect(uri, **_PSYCOPG_OPTIONS) as conn:
        await _wait_for_migration_lock(conn)
        await db.migrate()
        await AsyncPostgresSaver(conn).setup()
        await AsyncPostgresStore(conn).setup()


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


async def savers_are_current(uri: str) -> bool:
    async with await AsyncConnection.connect(uri, **_PSYCOPG_OPTIONS) as conn:
        return await _at_version(
            conn, "checkpoint_migrations", len(AsyncPostgresSaver.MIGRATIONS)
        ) and await _at_version(conn, "store_migrations", len(AsyncPostgresStore.MIGRATIONS))


async def _at_version(conn: AsyncConnection[Any], table: str, migrations: int) -> bool:
    exists = await (await conn.execute("SELECT to_regclass(%s) AS name", (table,))).fetchone()
    if exists is None or exists["name"] is None:
        return False
    row = await (await conn.execute(f"SELECT max(v) AS v FROM {table}")).fetchone()
    return row is not None and row["v"] is not None and row["v"] >= migrations - 1
