"""The end of a run's attempt on its thread (stead.services.thread_status.end_attempt): the run's
status recorded and its thread settled together. On PostgreSQL one call of `stead_end_attempt`
(migration 0013) does it; on SQLite a transaction of statements. Both must leave the same rows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from stead.ids import new_time_ordered_id
from stead.services.assistants import now_utc
from stead.services.thread_status import end_attempt
from stead.services.threads import new_thread_record
from stead.services.ttl import ThreadTTL
from stead.storage.database import Database
from tests.conftest import GRAPHS_CONFIG
from tests.support.postgres import database_on, migrated_uri, stead_database
from tests.support.records import assistant_record, run_record
from tests.support.services import Postgres, postgres_server

_ASSISTANT_ID = "5e2c1f3a-0000-4000-8000-000000000013"
_IDLE_STATE = {"values": {"text": "hi"}, "interrupts": {}, "status": "idle"}
_INTERRUPTS = {"task-1": [{"value": "approve?", "id": "i-1"}]}
_INTERRUPTED_STATE = {"values": {"text": "hi"}, "interrupts": _INTERRUPTS, "status": "interrupted"}
_ERROR = {"error": "ValueError", "message": "boom"}


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    with postgres_server(databases=("ends", "races", "calls")) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with database_on(request, GRAPHS_CONFIG, tmp_path, "ends") as database:
        yield database


async def _running_run(
    db: Database, *, attempt: int = 1, ttl: ThreadTTL | None = None
) -> tuple[str, str]:
    """A thread, busy with a running run of `attempt`."""
    thread_id, run_id = new_time_ordered_id(), new_time_ordered_id()
    async with db.transaction() as tx:
        await tx.assistants.insert_unless_present(assistant_record(_ASSISTANT_ID))
        await tx.threads.insert({**new_thread_record(thread_id, {}, ttl), "status": "busy"})
        await tx.runs.insert(
            run_record(run_id, thread_id, _ASSISTANT_ID, status="running", attempt=attempt)
        )
    return thread_id, run_id


async def _pending_run(db: Database, thread_id: str) -> str:
    run_id = new_time_ordered_id()
    async with db.transaction() as tx:
        await tx.runs.insert(run_record(run_id, thread_id, _ASSISTANT_ID))
    return run_id


async def _rows(db: Database, thread_id: str, run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    async with db.autocommit() as tx:
        thread = await tx.threads.get(thread_id)
        run = await tx.runs.get(run_id)
    assert thread is not None and run is not None
    return thread, run


async def _end(
    db: Database,
    ids: tuple[str, str],
    status: str,
    now: datetime,
    *,
    attempt: int = 1,
    error: Any = None,
    state: dict[str, Any] | None = None,
) -> bool | None:
    thread_id, run_id = ids
    return await end_attempt(db, run_id, thread_id, attempt, status, now, error=error, state=state)


@pytest.mark.parametrize(
    ("status", "state", "error", "thread_status"),
    [
        ("success", _IDLE_STATE, None, "idle"),
        ("success", _INTERRUPTED_STATE, None, "interrupted"),
        ("error", _IDLE_STATE, _ERROR, "error"),
        ("timeout", None, _ERROR, "error"),
    ],
)
async def test_an_attempt_ends_with_its_thread_settled(
    db: Database,
    status: str,
    state: dict[str, Any] | None,
    error: Any,
    thread_status: str,
) -> None:
    ids = await _running_run(db)
    before, _ = await _rows(db, *ids)
    now = now_utc() + timedelta(seconds=1)
    assert await _end(db, ids, status, now, error=error, state=state) is False
    thread, run = await _rows(db, *ids)
    assert (run["status"], run["lease_expires_at"], run["updated_at"]) == (status, None, now)
    assert (thread["status"], thread["error"], thread["updated_at"]) == (thread_status, error, now)
    if state is None:
        fields = ("values", "interrupts", "state_updated_at")
        assert {k: thread[k] for k in fields} == {k: before[k] for k in fields}
    else:
        assert (thread["values"], thread["interrupts"]) == (state["values"], state["interrupts"])
        assert thread["state_updated_at"] == now


async def test_a_thread_with_other_active_runs_stays_busy(db: Database) -> None:
    ids = await _running_run(db)
    waiting = await _pending_run(db, ids[0])
    assert await _end(db, ids, "success", now_utc(), state=_IDLE_STATE) is True
    thread, run = await _rows(db, *ids)
    assert (thread["status"], thread["values"], run["status"]) == (
        "busy",
        {"text": "hi"},
        "success",
    )
    async with db.autocommit() as tx:
        queued = await tx.runs.get(waiting)
    assert queued is not None and queued["status"] == "pending"


async def test_the_end_of_an_attempt_is_activity_for_the_thread_ttl(db: Database) -> None:
    ids = await _running_run(db, ttl=ThreadTTL(minutes=90))
    now = now_utc() + timedelta(minutes=5)
    await _end(db, ids, "success", now, state=_IDLE_STATE)
    thread, _ = await _rows(db, *ids)
    assert thread["expires_at"] == now + timedelta(minutes=90)


async def test_an_attempt_that_was_taken_over_changes_nothing(db: Database) -> None:
    ids = await _running_run(db, attempt=2)
    before = await _rows(db, *ids)
    ended = await _end(db, ids, "error", now_utc(), attempt=1, error=_ERROR, state=_IDLE_STATE)
    assert ended is None
    assert await _rows(db, *ids) == before


async def test_a_run_created_while_the_end_waits_keeps_the_thread_busy(pg: Postgres) -> None:
    """Run creation holds the thread's row while it adds a run; the end waits for that row, and
    its check of the thread's other runs must see the run added meanwhile. Checked in a snapshot
    taken before the wait (one statement), it would set the thread idle with a run pending."""
    db = stead_database(migrated_uri(GRAPHS_CONFIG, pg, "races"))
    try:
        ids = await _running_run(db)
        waiting = new_time_ordered_id()
        async with db.transaction() as tx:
            assert await tx.threads.get_for_update(ids[0]) is not None
            ending = asyncio.create_task(_end(db, ids, "success", now_utc(), state=_IDLE_STATE))
            await asyncio.sleep(0.3)
            assert not ending.done()
            await tx.runs.insert(run_record(waiting, ids[0], _ASSISTANT_ID))
        assert await asyncio.wait_for(ending, 5) is True
        thread, run = await _rows(db, *ids)
        assert (thread["status"], run["status"]) == ("busy", "success")
    finally:
        await db.close()


async def test_the_end_is_one_call_on_postgresql(pg: Postgres) -> None:
    uri = migrated_uri(GRAPHS_CONFIG, pg, "calls")
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("ALTER DATABASE calls SET track_functions = 'pl'")
    db = stead_database(uri)
    try:
        ids = await _running_run(db)
        await _end(db, ids, "success", now_utc(), state=_IDLE_STATE)
        # Ended without a state, the status comes from the thread's row: a transaction.
        ids = await _running_run(db)
        await _end(db, ids, "success", now_utc())
    finally:
        await db.close()
    assert await _function_calls(uri, "stead_end_attempt") == 1


async def _function_calls(uri: str, name: str) -> int:
    """The calls of function `name`, once its callers' backends have reported them (they do as
    they exit; the pool's connections are closed by now)."""
    calls = 0
    for _ in range(50):
        with psycopg.connect(uri, autocommit=True) as conn:
            row = conn.execute(
                "SELECT calls FROM pg_stat_user_functions WHERE funcname = %s", (name,)
            ).fetchone()
        calls = row[0] if row is not None else 0
        if calls:
            return int(calls)
        await asyncio.sleep(0.1)
    return calls
