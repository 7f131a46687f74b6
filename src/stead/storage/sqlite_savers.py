"""LangGraph's checkpointer and store on SQLite files in the data folder (the embedded default).

The checkpointer is LangGraph's SQLite saver, fenced by the run's attempt (stead.storage.fencing),
with its writes made here rather than by the saver (see `FencedSqliteSaver`). The store is
LangGraph's. Both run their statements on the event loop's thread (stead.storage.sqlite_inline).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.store.base import Op, Result, TTLConfig
from langgraph.store.sqlite.aio import AsyncSqliteStore

from stead.storage import sqlite_inline
from stead.storage.fencing import attempts_writing, current_writer, lease_lost
from stead.storage.sqlite_inline import InlineConnection
from stead.storage.sqlite_wal import WalCheckpoints, use_wal

# The embedded runtime's run table, attached to the checkpoint connection under this name.
_RUNS_SCHEMA = "runs"
_HOLDS_ATTEMPT_SQL = (
    f"SELECT 1 FROM {_RUNS_SCHEMA}.run WHERE run_id = ? AND attempt = ? AND status = 'running'"
)


async def open_savers(
    checkpoints_path: Path,
    store_path: Path,
    runs_database: Path,
    exit_stack: contextlib.AsyncExitStack,
    store_ttl: TTLConfig | None,
) -> tuple[FencedSqliteSaver, SqliteStore]:
    """The checkpointer, fenced by the attempts in `runs_database`'s run table, and the store;
    both closed by `exit_stack`, as is the thread that checkpoints the WAL of the three files."""
    checkpointer = FencedSqliteSaver(
        await _connect(exit_stack, checkpoints_path, _checkpoints_setup(runs_database))
    )
    await checkpointer.setup()
    # The store opens its own transactions, so its connection must be in autocommit mode.
    store = SqliteStore(
        await _connect(exit_stack, store_path, use_wal, autocommit=True), ttl=store_ttl
    )
    await store.setup()
    wal_checkpoints = WalCheckpoints([runs_database, checkpoints_path, store_path])
    wal_checkpoints.start()
    exit_stack.callback(wal_checkpoints.close)
    return checkpointer, store


F = TypeVar("F", bound=Callable[..., Any])


def _signature_kept(method: F) -> F:
    """LangGraph reads the signature of a saver's `aput_writes` at the start of every run
    (whether it takes `task_path`); kept on the function, `inspect` need not rebuild it."""
    method.__signature__ = inspect.signature(method)  # type: ignore[attr-defined]
    return method


# The layout of langgraph-checkpoint-sqlite's tables (pinned), as its own writes fill them.
_CHECKPOINT_COLUMNS = (
    "thread_id",
    "checkpoint_ns",
    "checkpoint_id",
    "parent_checkpoint_id",
    "type",
    "checkpoint",
    "metadata",
)
_WRITE_COLUMNS = (
    "thread_id",
    "checkpoint_ns",
    "checkpoint_id",
    "task_id",
    "task_path",
    "idx",
    "channel",
    "type",
    "value",
)
# A large value is written through SQLite's incremental blob I/O in pieces of this size.
_BLOB_PIECE_BYTES = 1 << 20


class RowInsert:
    """The INSERT of a row into one table, a large value (`LARGE_VALUE_BYTES` or more) of it
    written in pieces.

    Bound to an INSERT, a value is copied by SQLite, then again into the row's record: with the
    serialised value, three copies of it at once (bench/README.md). Here the row is inserted
    with `zeroblob`s of the values' sizes from the first large column on, and the values are
    written into them. A trailing `zeroblob` stays that size in the record, unallocated; one
    followed by data would be filled with zeros in memory, hence every column from the first
    large one is written so. `blobs_from`: the first of the blob columns, which end the row.
    """

    def __init__(
        self, table: str, columns: Sequence[str], on_conflict: str, blobs_from: int
    ) -> None:
        self._table = table
        self._columns = columns
        self._blobs = range(blobs_from, len(columns))
        self._head = f"INSERT OR {on_conflict} INTO {table} ({', '.join(columns)}) VALUES "
        self._sql = self._head + f"({', '.join(['?'] * len(columns))})"

    def insert(self, conn: InlineConnection, row: Sequence[Any]) -> bool:
        """Insert `row`; whether a value of it was large."""
        first = next((i for i in self._blobs if _is_large(row[i])), None)
        if first is None:
            conn.run(self._sql, row)
            return False
        pieces = ["?"] * first + ["zeroblob(?)"] * (len(row) - first)
        sizes = [len(value or b"") for value in row[first:]]
        cursor = conn.run(self._head + f"({', '.join(pieces)})", [*row[:first], *sizes])
        if cursor.rowcount != 1:  # INSERT OR IGNORE kept the row already there
            return True
        sqlite = conn.sqlite_connection()
        for column, value in zip(self._columns[first:], row[first:], strict=True):
            if value:
                _write_in_pieces(sqlite, self._table, column, cursor.lastrowid, value)
        return True


def _is_large(value: Any) -> bool:
    return isinstance(value, bytes) and len(value) >= sqlite_inline.LARGE_VALUE_BYTES


def _write_in_pieces(
    conn: sqlite3.Connection, table: str, column: str, rowid: int | None, value: bytes
) -> None:
    assert rowid is not None
    view = memoryview(value)
    with conn.blobopen(table, column, rowid) as blob:
        for start in range(0, len(view), _BLOB_PIECE_BYTES):
            blob.write(view[start : start + _BLOB_PIECE_BYTES])


_PUT_CHECKPOINT = RowInsert("checkpoints", _CHECKPOINT_COLUMNS, "REPLACE", blobs_from=5)
# A task's writes to the special channels replace those of an earlier try; others are kept.
_PUT_SPECIAL_WRITES = RowInsert("writes", _WRITE_COLUMNS, "REPLACE", blobs_from=8)
_PUT_WRITES = RowInsert("writes", _WRITE_COLUMNS, "IGNORE", blobs_from=8)


class FencedSqliteSaver(AsyncSqliteSaver):
    """Checkpoints are in their own file, so no transaction can span the check and the write:
    the check runs just before each write. A takeover between the two lets one write through,
    which SQLite deployments (one machine, usually one process) accept.

    The check reads Stead's database attached to the checkpoint connection (`_checkpoints_setup`):
    one call on the saver's own connection, rather than a transaction queued behind every other
    statement on the single connection of Stead's tables.

    The writes (`aput`, `aput_writes`, `adelete_thread`) are made here, in the saver's table
    layout, straight on the sqlite3 connection: through aiosqlite's cursors and result wrappers
    they cost a few percent of a run's CPU (bench/README.md). Each returns once its rows are
    committed, in one commit with the writes other runs made in the same turn of the event loop
    (`InlineConnection.commit_turn`); a write that fails leaves none of its rows.
    """

    def __init__(self, conn: InlineConnection) -> None:
        super().__init__(conn)
        self._inline = conn

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        await self.setup()
        configurable = config["configurable"]
        thread_id, namespace = configurable["thread_id"], configurable["checkpoint_ns"]
        type_, value = self.serde.dumps_typed(checkpoint)
        row = (
            str(thread_id),
            namespace,
            checkpoint["id"],
            configurable.get("checkpoint_id"),
            type_,
            value,
            _metadata_json(config, metadata),
        )
        async with self.lock:
            with self._fenced_write():
                large = _PUT_CHECKPOINT.insert(self._inline, row)
        await self._committed(large)
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": namespace,
                "checkpoint_id": checkpoint["id"],
            }
        }

    @_signature_kept
    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self.setup()
        configurable = config["configurable"]
        key = (
            str(configurable["thread_id"]),
            str(configurable["checkpoint_ns"]),
            str(configurable["checkpoint_id"]),
            task_id,
            task_path,
        )
        special = all(channel in WRITES_IDX_MAP for channel, _ in writes)
        table = _PUT_SPECIAL_WRITES if special else _PUT_WRITES
        rows = [
            (*key, WRITES_IDX_MAP.get(channel, index), channel, *self.serde.dumps_typed(value))
            for index, (channel, value) in enumerate(writes)
        ]
        async with self.lock:
            with self._fenced_write():
                large = [table.insert(self._inline, row) for row in rows]
        await self._committed(any(large))

    async def adelete_thread(self, thread_id: str) -> None:
        async with self.lock:
            with self._inline.turn_write():
                self._inline.run("DELETE FROM checkpoints WHERE thread_id = ?", (str(thread_id),))
                self._inline.run("DELETE FROM writes WHERE thread_id = ?", (str(thread_id),))
        await self._committed(large=False)

    @contextlib.contextmanager
    def _fenced_write(self) -> Iterator[None]:
        with self._inline.turn_write():
            writer = current_writer()
            if writer is not None:
                held = self._inline.run(_HOLDS_ATTEMPT_SQL, (writer.run_id, writer.attempt))
                if held.fetchone() is None:
                    raise lease_lost(writer)
            yield

    async def _committed(self, large: bool) -> None:
        """`large`: the write had a large value. None is ever bound (`RowInsert`), so no
        statement keeps one and the connection need not be reopened after it."""
        if attempts_writing() > 1 and not large:
            await self._inline.commit_turn()
        else:
            # Alone, no other run can write in this turn: waiting would only add latency. After a
            # large value, the sooner the transaction ends, the sooner its pages leave SQLite's
            # cache (ten 20 MiB runs at once peaked at 3.5 bodies instead of 2.6).
            self._inline.commit_now()


def _metadata_json(config: RunnableConfig, metadata: CheckpointMetadata) -> bytes:
    """The checkpoint's metadata, merged with the config's, as the saver stores it."""
    merged = get_checkpoint_metadata(config, metadata)
    return json.dumps(merged, ensure_ascii=False).encode("utf-8", "ignore")


class SqliteStore(AsyncSqliteStore):
    """LangGraph's SQLite store, its connection reopened after a batch that bound a large value
    (see stead.storage.sqlite_inline)."""

    def __init__(self, conn: InlineConnection, *, ttl: TTLConfig | None) -> None:
        super().__init__(conn, ttl=ttl)
        self._inline = conn

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        results = await super().abatch(ops)
        await self._inline.reopen_if_large_values_bound(self.lock)
        return results


async def _connect(
    exit_stack: contextlib.AsyncExitStack,
    path: Path,
    setup: Callable[[sqlite3.Connection], None],
    *,
    autocommit: bool = False,
) -> InlineConnection:
    if autocommit:
        conn = await sqlite_inline.connect(path, setup=setup, isolation_level=None)
    else:
        conn = await sqlite_inline.connect(path, setup=setup)
    exit_stack.push_async_callback(conn.close)
    return conn


def _checkpoints_setup(runs_database: Path) -> Callable[[sqlite3.Connection], None]:
    """Set-up of a checkpoint connection: its pragmas, and Stead's database attached (its `run`
    table, which the fence reads)."""

    def setup(conn: sqlite3.Connection) -> None:
        use_wal(conn)
        conn.execute(f"ATTACH DATABASE ? AS {_RUNS_SCHEMA}", (str(runs_database),))

    return setup
