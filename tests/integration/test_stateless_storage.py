"""How a stateless run is stored, on SQLite and on PostgreSQL.

- Created (RunRepository.insert_with_thread): the run and its new thread, written together or
  not at all, outside a transaction (one statement on PostgreSQL).
- Ended (RunRepository.end_temporary_attempt): its run and its thread are deleted if the
  attempt still holds the run, and nothing is deleted if another worker took the run over. On
  PostgreSQL that is one function call that locks the thread before the run, as every other end
  of a run does, and deletes the thread's checkpoints too (LangGraph's saver shares the
  database)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from stead.ids import new_time_ordered_id
from stead.services.assistants import now_utc
from stead.services.threads import new_thread_record
from stead.storage.database import Database
from tests.conftest import GRAPHS_CONFIG
from tests.support.postgres import database_on, migrated_database
from tests.support.records import assistant_record, run_record
from tests.support.services import Postgres, postgres_server

_ASSISTANT_ID = "5e2c1f3a-0000-4000-8000-000000000010"


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    with postgres_server(databases=("ends", "locks", "checkpoints")) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with database_on(request, GRAPHS_CONFIG, tmp_path, "ends") as database:
        yield database


async def _ensure_assistant(db: Database) -> None:
    async with db.transaction() as tx:
        await tx.assistants.insert_unless_present(assistant_record(_ASSISTANT_ID))


def _records(attempt: int) -> tuple[dict[str, Any], dict[str, Any]]:
    thread_id, run_id = new_time_ordered_id(), new_time_ordered_id()
    thread = {**new_thread_record(thread_id, {"owner": "a"}), "status": "busy"}
    run = run_record(
        run_id,
        thread_id,
        _ASSISTANT_ID,
        status="running" if attempt else "pending",
        metadata={"owner": "a"},
        kwargs={"temporary": True, "input": {"text": "hi"}},
        multitask_strategy="reject",
        attempt=attempt,
    )
    return thread, run


async def _running_run(db: Database, attempt: int) -> tuple[str, str]:
    await _ensure_assistant(db)
    thread, run = _records(attempt)
    async with db.transaction() as tx:
        await tx.threads.insert(thread)
        await tx.runs.insert(run)
    return thread["thread_id"], run["run_id"]


async def _stored(db: Database, thread_id: str, run_id: str) -> tuple[bool, bool]:
    async with db.autocommit() as conn:
        return (
            await conn.threads.get(thread_id) is not None,
            await conn.runs.get(run_id) is not None,
        )


async def test_a_run_and_its_thread_are_stored_together_as_apart(db: Database) -> None:
    await _ensure_assistant(db)
    together, apart = _records(attempt=0), _records(attempt=0)
    async with db.autocommit() as conn:
        await conn.runs.insert_with_thread(*together)
    async with db.transaction() as tx:
        await tx.threads.insert(apart[0])
        await tx.runs.insert(apart[1])
    stored = []
    for thread, run in (together, apart):
        async with db.autocommit() as conn:
            found_thread = await conn.threads.get(thread["thread_id"])
            found_run = await conn.runs.get(run["run_id"])
        assert found_thread is not None and found_run is not None
        assert found_run["kwargs"] == run["kwargs"] and found_thread["metadata"] == {"owner": "a"}
        ids = ("thread_id", "run_id", "created_at", "updated_at", "state_updated_at")
        stored.append(
            (
                {k: v for k, v in found_thread.items() if k not in ids},
                {k: v for k, v in found_run.items() if k not in ids},
            )
        )
    assert stored[0] == stored[1]


async def test_a_run_that_cannot_be_stored_leaves_no_thread(db: Database) -> None:
    _, run_id = await _running_run(db, attempt=1)
    thread, run = _records(attempt=0)
    run["run_id"] = run_id  # taken: the run's INSERT fails after the thread's
    with pytest.raises(sa.exc.IntegrityError):
        async with db.autocommit() as conn:
            await conn.runs.insert_with_thread(thread, run)
    async with db.autocommit() as conn:
        assert await conn.threads.get(thread["thread_id"]) is None


async def test_the_attempt_holding_the_run_deletes_the_run_and_its_thread(db: Database) -> None:
    thread_id, run_id = await _running_run(db, attempt=2)
    other_thread_id, other_run_id = await _running_run(db, attempt=1)
    async with db.autocommit() as conn:
        assert await conn.runs.end_temporary_attempt(run_id, 2) is True
    assert await _stored(db, thread_id, run_id) == (False, False)
    assert await _stored(db, other_thread_id, other_run_id) == (True, True)
    async with db.autocommit() as conn:
        assert await conn.runs.end_temporary_attempt(run_id, 2) is False


async def test_an_attempt_that_was_taken_over_deletes_nothing(db: Database) -> None:
    thread_id, run_id = await _running_run(db, attempt=2)
    async with db.autocommit() as conn:
        assert await conn.runs.end_temporary_attempt(run_id, 1) is False
    assert await _stored(db, thread_id, run_id) == (True, True)
    async with db.transaction() as tx:
        assert await tx.runs.finish_attempt(run_id, 2, "success", now_utc())
    async with db.autocommit() as conn:
        # Ended already: no longer running.
        assert await conn.runs.end_temporary_attempt(run_id, 2) is False
    assert await _stored(db, thread_id, run_id) == (True, True)


async def test_the_end_locks_the_thread_before_the_run_on_postgresql(pg: Postgres) -> None:
    """A transaction that holds the thread, then reads the run for update (as a cancellation
    does), must not deadlock with the end: the end waits for the thread before it touches the
    run. Locking the run first, PostgreSQL would abort one of the two after deadlock_timeout."""
    db = migrated_database(GRAPHS_CONFIG, pg, "locks")
    try:
        thread_id, run_id = await _running_run(db, attempt=1)
        async with db.transaction() as tx:
            assert await tx.threads.get_for_update(thread_id) is not None
            ending = asyncio.create_task(_end_in_own_block(db, run_id))
            await asyncio.sleep(0.3)
            assert not ending.done()
            held = await asyncio.wait_for(tx.runs.get_for_update(run_id), 5)
            assert held is not None and held["attempt"] == 1
        assert await asyncio.wait_for(ending, 5) is True
        assert await _stored(db, thread_id, run_id) == (False, False)
    finally:
        await db.close()


async def _end_in_own_block(db: Database, run_id: str) -> bool:
    async with db.autocommit() as conn:
        return await conn.runs.end_temporary_attempt(run_id, 1)


async def _checkpointed(uri: str, thread_id: str) -> dict[str, int]:
    """Write, with LangGraph's own saver, a checkpoint holding a blob and a task's writes on the
    thread; then count the thread's rows in each of its tables."""
    async with await psycopg.AsyncConnection.connect(uri, autocommit=True) as conn:
        saver = AsyncPostgresSaver(conn)
        config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"messages": [{"text": "hi"}]}
        checkpoint["channel_versions"] = {"messages": "1"}
        stored = await saver.aput(config, checkpoint, {"step": 0}, {"messages": "1"})
        await saver.aput_writes(stored, [("messages", [{"text": "again"}])], "task-1")
    return await _checkpoint_rows(uri, thread_id)


async def _checkpoint_rows(uri: str, thread_id: str) -> dict[str, int]:
    async with await psycopg.AsyncConnection.connect(uri, autocommit=True) as conn:
        counts = {}
        for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
            found = await conn.execute(
                f"SELECT count(*) FROM {table} WHERE thread_id = %s", (thread_id,)
            )
            row = await found.fetchone()
            assert row is not None
            counts[table] = row[0]
        return counts


async def test_the_end_deletes_the_threads_checkpoints_on_postgresql(pg: Postgres) -> None:
    """Only those of the ended attempt's thread, and none while another attempt holds the run."""
    db = migrated_database(GRAPHS_CONFIG, pg, "checkpoints")
    uri = pg.url("checkpoints")
    written = {"checkpoints": 1, "checkpoint_blobs": 1, "checkpoint_writes": 1}
    try:
        thread_id, run_id = await _running_run(db, attempt=2)
        other_thread_id, _ = await _running_run(db, attempt=1)
        assert await _checkpointed(uri, thread_id) == written
        assert await _checkpointed(uri, other_thread_id) == written
        async with db.autocommit() as conn:
            assert await conn.runs.end_temporary_attempt(run_id, 1) is False
        assert await _checkpoint_rows(uri, thread_id) == written
        async with db.autocommit() as conn:
            assert await conn.runs.end_temporary_attempt(run_id, 2) is True
        assert await _checkpoint_rows(uri, thread_id) == dict.fromkeys(written, 0)
        assert await _checkpoint_rows(uri, other_thread_id) == written
    finally:
        await db.close()
