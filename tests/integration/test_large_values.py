"""A large value leaves no copy behind once written: SQLite connections that bound one are
reopened (Python's sqlite3 never clears a cached statement's bindings, see
stead.storage.sqlite_inline), checkpoints are written in pieces rather than bound, a run's sent
event batches are not kept, and a run's route lets go of its request body before storing the run
(stead.api.request_bodies). End to end, the embedded server peaks at four times a large input and
is back to its size once large runs have ended. PostgreSQL's buffers are
test_connection_buffers.py's; the brokers' outbox is test_broker_contract.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sqlite3
import weakref
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from langgraph.checkpoint.base import empty_checkpoint

from stead.config import load_settings
from stead.storage import Database
from stead.storage.backends import open_savers
from stead.storage.fencing import LeaseLost, writing_as
from stead.storage.schema import thread
from stead.storage.sqlite_inline import LARGE_VALUE_BYTES, connect
from stead.storage.sqlite_savers import FencedSqliteSaver
from stead.worker.batching import BatchWriter
from tests.conftest import GRAPHS_CONFIG
from tests.support.load import resident_growth
from tests.support.runs import (
    LARGE_INPUT_MIB,
    mib_held_while_a_large_run_sleeps,
    mib_kept_after_large_runs,
    peak_mib_of_a_large_run,
)
from tests.support.servers import stead_server

LARGE = "x" * (LARGE_VALUE_BYTES + 1)
SMALL = "x" * 1000


async def _driver_connection(db: Database) -> sqlite3.Connection:
    async with db.engine.connect() as conn:
        found = await conn.run_sync(lambda c: c.connection.driver_connection)
    assert isinstance(found, sqlite3.Connection)
    return found


async def test_a_transaction_that_bound_a_large_value_reopens_the_connection(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'stead.sqlite'}")
    await db.migrate()
    first = await _driver_connection(db)
    await _insert_thread(db, "small", SMALL)
    assert await _driver_connection(db) is first
    await _insert_thread(db, "large", LARGE)
    reopened = await _driver_connection(db)
    assert reopened is not first
    # Set up as the first was, and the value is there.
    assert reopened.execute("PRAGMA foreign_keys").fetchone() == (1,)
    assert reopened.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    async with db.engine.connect() as conn:
        query = sa.select(thread.c.metadata).where(thread.c.thread_id == "large")
        assert (await conn.execute(query)).scalar_one() == {"text": LARGE}
    await db.close()


async def _insert_thread(db: Database, thread_id: str, text: str) -> None:
    async with db.engine.begin() as conn:
        now = datetime.now(UTC)
        await conn.execute(
            sa.insert(thread).values(
                thread_id=thread_id,
                metadata={"text": text},
                config={},
                status="idle",
                interrupts={},
                created_at=now,
                updated_at=now,
                state_updated_at=now,
            )
        )


@contextlib.asynccontextmanager
async def _embedded_savers(data_dir: Path) -> AsyncIterator[tuple[Any, Any]]:
    """The embedded default's checkpointer and store, on its migrated tables."""
    settings = load_settings(GRAPHS_CONFIG, data_dir=data_dir)
    db = Database(settings.database_url)
    await db.migrate()
    async with contextlib.AsyncExitStack() as stack:
        yield await open_savers(settings, stack, None)
    await db.close()


async def test_a_large_checkpoint_value_is_written_in_pieces(tmp_path: Path) -> None:
    """A large checkpoint, or a task's large write, goes into SQLite through its incremental blob
    I/O, not bound to the INSERT: SQLite would copy a bound value, then copy it again into the
    row's record, and its statement would keep it until it ran again (the connection was
    reopened after each). A write took 3 bodies above the process's size; now the serialised
    value alone. What is written reads back, and a task's write is still kept, not replaced,
    by a second try."""
    text = "y" * 20 * 2**20
    async with _embedded_savers(tmp_path) as (saver, _store):
        assert isinstance(saver, FencedSqliteSaver)
        first = saver.conn._conn
        await _put(saver, "small", SMALL)
        peaks = [await _peak_bodies(_put(saver, "large", text), len(text))]
        peaks.append(await _peak_bodies(_write(saver, "writes", text), len(text)))
        assert saver.conn._conn is first, "nothing large was bound: no reason to reopen"
        found = await saver.aget_tuple(_config("large"))
        assert found is not None and found.checkpoint["channel_values"] == {"text": text}
        written = await saver.aget_tuple(_config("writes"))
        assert written is not None
        await saver.aput_writes(written.config, [("text", LARGE)], "task")
        again = await saver.aget_tuple(_config("writes"))
        assert again is not None and again.pending_writes == [("task", "text", text)]
        with pytest.raises(LeaseLost), writing_as("no-such-run", 1):
            await _put(saver, "fenced", LARGE)
        assert await saver.aget_tuple(_config("fenced")) is None
    assert max(peaks) < 2, f"a 20 MiB write took {max(peaks):.1f} times its size"


async def _peak_bodies(write: Awaitable[None], size: int) -> float:
    """The most this process grew (sampled every millisecond) while `write` ran, in `size`s."""
    with resident_growth(os.getpid()) as growth:
        await write
    return growth.bytes / size


def _config(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


async def _put(saver: FencedSqliteSaver, thread_id: str, text: str) -> None:
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"text": text}
    await saver.aput(_config(thread_id), checkpoint, {}, {})


async def _write(saver: FencedSqliteSaver, thread_id: str, text: str) -> None:
    config = await saver.aput(_config(thread_id), empty_checkpoint(), {}, {})
    await saver.aput_writes(config, [("text", text)], "task")


async def test_a_store_batch_that_bound_a_large_value_reopens_the_connection(
    tmp_path: Path,
) -> None:
    async with _embedded_savers(tmp_path) as (_saver, store):
        first = store.conn._conn
        await store.aput(("docs",), "small", {"text": SMALL})
        assert store.conn._conn is first
        await store.aput(("docs",), "large", {"text": LARGE})
        assert store.conn._conn is not first
        found = await store.aget(("docs",), "large")
        assert found is not None and found.value == {"text": LARGE}


async def test_a_connection_is_not_reopened_inside_a_transaction(tmp_path: Path) -> None:
    """Closing it would roll back what the transaction wrote; it waits until that ended."""
    conn = await connect(tmp_path / "t.sqlite")
    lock = asyncio.Lock()
    await conn.execute("CREATE TABLE t (v TEXT)")
    await conn.commit()
    await conn.execute("INSERT INTO t VALUES (?)", (LARGE,))
    first = conn._conn
    await conn.reopen_if_large_values_bound(lock)
    assert conn._conn is first
    await conn.commit()
    await conn.reopen_if_large_values_bound(lock)
    assert conn._conn is not first
    assert await conn.execute_fetchall("SELECT length(v) FROM t") == [(len(LARGE),)]
    await conn.close()


class _Event:
    """A stand-in for an event that a weak reference can follow."""


async def test_a_sent_batch_is_not_kept() -> None:
    sent: list[int] = []

    async def send(batch: list[_Event]) -> None:
        sent.append(len(batch))

    writer: BatchWriter[_Event] = BatchWriter(send)
    event = _Event()
    followed = weakref.ref(event)
    writer.add(event)
    del event
    await writer.drain()
    await asyncio.sleep(0)
    gc.collect()
    assert sent == [1]
    assert followed() is None, "the sender still holds the last batch it sent"
    await writer.close()


def test_the_embedded_server_is_back_to_its_size_once_large_runs_ended(tmp_path: Path) -> None:
    """One 20 MiB run kept 60 MiB: its input bound to the run's insert, and the checkpoint and
    writes bound to the saver's statements."""
    with stead_server(GRAPHS_CONFIG, tmp_path / "data") as server:
        grown = mib_kept_after_large_runs(server.url, server.process.pid)
    assert grown < 10, f"the server kept {grown:.0f} MiB after three 20 MiB runs"


def test_a_large_run_peaks_at_four_times_its_input_on_the_embedded_server(tmp_path: Path) -> None:
    """At most, a run with a 20 MiB input has in memory at once: the input, parsed; the JSON of
    its kwargs; SQLite's copy of that JSON as bound, and the row's record SQLite builds of it
    (issue 16's aim: 4 times the body). The request's body goes before the run is stored
    (FastAPI kept it until the route returned: 5 times), and checkpoints are written in pieces
    (3 copies at once when bound)."""
    with stead_server(GRAPHS_CONFIG, tmp_path / "data") as server:
        peak = peak_mib_of_a_large_run(server.url, server.process.pid)
    assert peak < 4.5 * LARGE_INPUT_MIB, f"the server grew by {peak:.0f} MiB on a 20 MiB run"


def test_a_waited_run_does_not_keep_its_request_body(tmp_path: Path) -> None:
    """While a waited run executes, the process holds its input once: nothing keeps the
    request's body until the response ends (Starlette's request once did, for `runs/wait` until
    the run ended: a second copy)."""
    with stead_server(GRAPHS_CONFIG, tmp_path / "data") as server:
        grown = mib_held_while_a_large_run_sleeps(server.url, server.process.pid)
    assert grown < 30, f"{grown:.0f} MiB held while a run with a 20 MiB input sleeps"
