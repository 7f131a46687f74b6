"""Stead on PostgreSQL: `stead migrate`, the refusal to serve a schema that is behind, runs that
survive a restart, and the queue-depth query autoscalers use. Starts its own PostgreSQL 15."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import gc
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from langgraph.checkpoint.base import ERROR, INTERRUPT, empty_checkpoint
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from stead.ids import new_time_ordered_id
from stead.services.assistants import now_utc
from stead.services.thread_status import settle_thread
from stead.services.threads import new_thread_record
from stead.storage import connection_checks
from stead.storage.database import Database, database_errors
from stead.storage.fencing import LeaseLost, writing_as
from stead.storage.postgres_fenced_writes import LARGE_VALUE_BYTES
from stead.storage.postgres_savers import FencedPostgresSaver, open_savers_pool
from tests.conftest import GRAPHS_CONFIG
from tests.support.load import peak_growth
from tests.support.postgres import migrate_env, migrated_uri, stead_database, stead_migrate
from tests.support.records import assistant_record, run_record
from tests.support.servers import HOST, REPO_ROOT, free_port, stead_server
from tests.support.services import Postgres, postgres_server

_DATABASES = (
    "served",
    "raced",
    "unmigrated",
    "queued",
    "crowd",
    "settled",
    "idle",
    "fenced",
    "parallel",
    "atomic",
    "reads",
    "refused",
    "deleted",
    "new",
    "reference",
    "ours",
    "refused_rows",
    "large_writes",
    "thread_writes",
    "pieces",
    "cancelled",
)


# Large values go by COPY, in pieces (postgres_large_writes).
_LARGE = "x" * LARGE_VALUE_BYTES


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    with postgres_server(databases=_DATABASES) as server:
        yield server


def test_concurrent_migrations_both_succeed(pg: Postgres) -> None:
    uri = pg.url("raced")
    command = [sys.executable, "-m", "stead", "migrate", "--config", str(GRAPHS_CONFIG)]
    migrations = [
        subprocess.Popen(command, env=migrate_env(uri), stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outcomes = [(m.wait(timeout=120), m.stderr.read() if m.stderr else "") for m in migrations]
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    with psycopg.connect(uri) as conn:
        version = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        checkpoint_versions = conn.execute("SELECT count(*) FROM checkpoint_migrations").fetchone()
    assert len(version) == 1
    assert checkpoint_versions is not None and checkpoint_versions[0] > 0
    # A third run, on a schema at head, has nothing to do and says so.
    again = stead_migrate(GRAPHS_CONFIG, uri)
    assert again.returncode == 0 and "up to date" in again.stderr


def test_replicas_starting_together_on_a_fresh_database_all_serve(
    pg: Postgres, tmp_path: Path
) -> None:
    """They race to create the graphs' system assistants; every one must come up."""
    env = {**migrate_env(migrated_uri(GRAPHS_CONFIG, pg, "crowd"))}
    ports = [free_port() for _ in range(4)]
    replicas = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "stead", "run", "--config", str(GRAPHS_CONFIG)),
                *("--host", HOST, "--port", str(port), "--data-dir", str(tmp_path / str(port))),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for port in ports
    ]
    try:
        for port, replica in zip(ports, replicas, strict=True):
            deadline = time.monotonic() + 60
            while not _answers_ok(port):
                assert replica.poll() is None, replica.stderr.read() if replica.stderr else ""
                assert time.monotonic() < deadline, f"replica on {port} never answered /ok"
                time.sleep(0.2)
        with psycopg.connect(pg.url("crowd")) as conn:
            rows = conn.execute(
                "SELECT graph_id, count(*) FROM assistant GROUP BY graph_id"
            ).fetchall()
        assert rows and all(found == 1 for _, found in rows)
    finally:
        for replica in replicas:
            replica.terminate()
            replica.wait(30)


def test_a_system_assistant_created_meanwhile_by_another_replica_is_kept(pg: Postgres) -> None:
    """The second of two replicas creating the same assistant waits for the first to commit,
    then finds it there: no unique violation that would stop its start-up."""
    uri = migrated_uri(GRAPHS_CONFIG, pg, "crowd")
    record = _assistant_record(
        "5e2c1f3a-0000-4000-8000-000000000001", name="first", metadata={"created_by": "system"}
    )

    async def race() -> list[bool]:
        db = stead_database(uri)
        try:
            async with db.transaction() as first:
                assert await first.assistants.insert_unless_present(record)
                second = asyncio.create_task(
                    _insert_in_own_transaction(db, {**record, "name": "2"})
                )
                await asyncio.sleep(0.5)
                assert not second.done()  # waiting on the first one's uncommitted row
            return [await second]
        finally:
            await db.close()

    assert asyncio.run(race()) == [False]
    with psycopg.connect(pg.url("crowd")) as conn:
        names = conn.execute(
            "SELECT name FROM assistant WHERE assistant_id = %s", (record["assistant_id"],)
        ).fetchall()
    assert names == [("first",)]


async def _insert_in_own_transaction(db: Database, record: dict[str, object]) -> bool:
    async with db.transaction() as tx:
        return await tx.assistants.insert_unless_present(record)


def test_a_run_created_while_the_threads_last_run_ends_keeps_the_thread_busy(
    pg: Postgres,
) -> None:
    """Creating a run holds its thread's row; ending the thread's running run waits for it and
    must then see the new run: the thread stays busy and workers are told a run waits
    (otherwise the new run would sit until the queue's idle recheck)."""
    uri = migrated_uri(GRAPHS_CONFIG, pg, "settled")
    thread_id, ending_id = new_time_ordered_id(), new_time_ordered_id()

    async def race() -> bool:
        db = stead_database(uri)
        try:
            async with db.transaction() as tx:
                await tx.assistants.insert(_assistant_record())
                await tx.threads.insert({**new_thread_record(thread_id, {}), "status": "busy"})
                await tx.runs.insert(_run_record(ending_id, thread_id, "running"))
            async with db.transaction() as creating:
                assert await creating.threads.get_for_update(thread_id) is not None
                await creating.runs.insert(_run_record(new_time_ordered_id(), thread_id))
                ending = asyncio.create_task(_end_in_own_transaction(db, thread_id, ending_id))
                await asyncio.sleep(0.5)
                assert not ending.done()  # waiting for the creation's row lock
            return await ending
        finally:
            await db.close()

    assert asyncio.run(race()) is True
    with psycopg.connect(pg.url("settled")) as conn:
        status = conn.execute("SELECT status FROM thread WHERE thread_id = %s", (thread_id,))
        assert status.fetchall() == [("busy",)]


async def _end_in_own_transaction(db: Database, thread_id: str, run_id: str) -> bool:
    """What the executor does when a run ends: record the attempt's end, settle the thread."""
    async with db.transaction() as tx:
        assert await tx.runs.finish_attempt(run_id, 1, "success", now_utc())
        return await settle_thread(tx, thread_id, run_id, now_utc())


_ASSISTANT_ID = "5e2c1f3a-0000-4000-8000-000000000002"


def _assistant_record(assistant_id: str = _ASSISTANT_ID, **fields: object) -> dict[str, object]:
    return assistant_record(assistant_id, **fields)


def _run_record(run_id: str, thread_id: str, status: str = "pending") -> dict[str, object]:
    attempt = 1 if status == "running" else 0
    return run_record(run_id, thread_id, _ASSISTANT_ID, status=status, attempt=attempt)


async def _write_checkpoint(
    saver: FencedPostgresSaver, thread_id: str, run_id: str, attempt: int, step: int
) -> None:
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"text": f"step {step}"}
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    with writing_as(run_id, attempt):
        await saver.aput(config, checkpoint, {"step": step}, {"text": 1})


async def _insert_running_run(db: Database, thread_id: str, run_id: str, attempt: int) -> None:
    async with db.transaction() as tx:
        if await tx.assistants.get(_ASSISTANT_ID) is None:
            await tx.assistants.insert(_assistant_record())
        await tx.threads.insert(new_thread_record(thread_id, {}))
        await tx.runs.insert({**_run_record(run_id, thread_id, "running"), "attempt": attempt})


def test_a_checkpoint_write_of_an_attempt_that_was_taken_over_is_refused(
    pg: Postgres, caplog: pytest.LogCaptureFixture
) -> None:
    """The fence rides in the write's pipeline: the write of a stale attempt fails as a whole,
    and its connection goes back to the pool rolled back, ready for the next write."""
    url = migrated_uri(GRAPHS_CONFIG, pg, "fenced")
    thread_id, run_id = new_time_ordered_id(), new_time_ordered_id()
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}

    async def scenario() -> tuple[list[Any], int]:
        db = stead_database(url)
        pool = await open_savers_pool(url)
        try:
            await _insert_running_run(db, thread_id, run_id, attempt=2)
            saver = FencedPostgresSaver(pool)
            await _write_checkpoint(saver, thread_id, run_id, attempt=2, step=1)
            with pytest.raises(LeaseLost):
                await _write_checkpoint(saver, thread_id, run_id, attempt=1, step=2)
            await _write_checkpoint(saver, thread_id, run_id, attempt=2, step=3)
            steps = [found.metadata["step"] async for found in saver.alist(config)]
            return steps, pool.get_stats().get("connections_lost", 0)
        finally:
            await pool.close()
            await db.close()

    with caplog.at_level(logging.WARNING, logger="psycopg.pool"):
        steps, lost = asyncio.run(scenario())
    assert steps == [3, 1]
    assert lost == 0
    assert not [r for r in caplog.records if r.name.startswith("psycopg")], caplog.text


@pytest.mark.parametrize("value", ["small", _LARGE], ids=["small", "large"])
def test_a_refused_checkpoint_writes_none_of_its_blobs_and_refused_writes_none(
    pg: Postgres, value: str
) -> None:
    url = migrated_uri(GRAPHS_CONFIG, pg, "refused_rows")
    thread_id, run_id = new_time_ordered_id(), new_time_ordered_id()

    async def scenario() -> dict[str, list[Any]]:
        db = stead_database(url)
        pool = await open_savers_pool(url)
        try:
            await _insert_running_run(db, thread_id, run_id, attempt=2)
            saver = FencedPostgresSaver(pool)
            config: Any = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
            checkpoint = empty_checkpoint()
            checkpoint["channel_values"] = {"items": [1, value], "text": value}
            with writing_as(run_id, 1):
                with pytest.raises(LeaseLost):
                    await saver.aput(config, checkpoint, {"step": 0}, {"items": "1"})
                written = {"configurable": {**config["configurable"], "checkpoint_id": "c"}}
                with pytest.raises(LeaseLost):
                    await saver.aput_writes(written, [("items", [value])], "task")
            return await _saver_rows(pool, thread_id)
        finally:
            await pool.close()
            await db.close()

    assert asyncio.run(scenario()) == {
        "checkpoints": [],
        "checkpoint_blobs": [],
        "checkpoint_writes": [],
    }


def test_a_refused_write_that_reads_its_refusal_midway_logs_nothing_of_psycopg(
    pg: Postgres, caplog: pytest.LogCaptureFixture
) -> None:
    """Whether a stale attempt's refusal reaches the saver inside the pipeline or at its close
    depends on how fast PostgreSQL answers (a loaded machine: inside, most times). Inside, the
    write still ends as LeaseLost, and psycopg logs no warning of the pipeline it closes."""
    url = migrated_uri(GRAPHS_CONFIG, pg, "refused")
    thread_id, run_id = new_time_ordered_id(), new_time_ordered_id()

    async def scenario() -> None:
        db = stead_database(url)
        pool = await open_savers_pool(url)
        try:
            await _insert_running_run(db, thread_id, run_id, attempt=2)
            saver = FencedPostgresSaver(pool)
            with writing_as(run_id, 1), pytest.raises(LeaseLost):
                async with saver._cursor(pipeline=True) as cur:
                    await cur.execute("SELECT 1")
                    # The refusal arrives meanwhile; the next statement reads it, here.
                    await asyncio.sleep(0.2)
                    await cur.execute("SELECT 2")
        finally:
            await pool.close()
            await db.close()

    with caplog.at_level(logging.WARNING, logger="psycopg"):
        asyncio.run(scenario())
    assert not [r for r in caplog.records if r.name.startswith("psycopg")], caplog.text


def test_a_fenced_checkpoint_write_is_all_or_nothing(pg: Postgres) -> None:
    """The check and the writes of one pipeline are one transaction: a statement failing after
    a write has gone out takes that write back with it."""
    url = migrated_uri(GRAPHS_CONFIG, pg, "atomic")
    thread_id, run_id = new_time_ordered_id(), new_time_ordered_id()

    async def scenario() -> tuple[Any, list[Any]]:
        db = stead_database(url)
        pool = await open_savers_pool(url)
        try:
            await _insert_running_run(db, thread_id, run_id, attempt=1)
            saver = FencedPostgresSaver(pool)
            with writing_as(run_id, 1), pytest.raises(psycopg.Error) as failed:
                async with saver._cursor(pipeline=True) as cur:
                    await cur.execute(
                        "INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id,"
                        " task_id, idx, channel, type, blob) VALUES (%s, '', 'c', 't', 0,"
                        " 'text', 'json', '\\x00')",
                        (thread_id,),
                    )
                    await cur.execute("SELECT 1 / 0")
            async with pool.connection() as conn:
                found = await conn.execute(
                    "SELECT * FROM checkpoint_writes WHERE thread_id = %s", (thread_id,)
                )
                return failed.value, await found.fetchall()
        finally:
            await pool.close()
            await db.close()

    error, rows = asyncio.run(scenario())
    assert isinstance(error, psycopg.errors.DivisionByZero)
    assert rows == []


def _history_steps(large: bool) -> list[Any]:
    first, second = empty_checkpoint(), empty_checkpoint()
    first["channel_values"] = {"text": _LARGE if large else "hi", "n": 1, "none": None}
    items = [1, {"a": _LARGE if large else "b"}]
    second["channel_values"] = {"text": "hï", "items": items, "raw": b"\x00\x01"}
    second["channel_versions"] = {"text": "2", "items": "2", "raw": "2"}
    return [first, second]


async def _write_history(
    saver: AsyncPostgresSaver, thread_id: str, steps: list[Any], large: bool
) -> None:
    """Checkpoints with inline and blob values, a parent, and writes of both kinds, each
    written twice (a task's special writes replace those of an earlier try, the others stay as
    first written), one call writing the same special channel twice."""
    config: Any = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    first, second = steps
    saved = await saver.aput(config, first, {"source": "input", "step": -1, "who": "ü"}, {})
    await saver.aput_writes(saved, [("text", "a"), ("other", {"n": 1})], "task-1", "path")
    await saver.aput_writes(saved, [("text", "changed"), ("other", {"n": 2})], "task-1", "path")
    await saver.aput_writes(saved, [(ERROR, _LARGE if large else "first")], "task-2")
    await saver.aput_writes(saved, [(ERROR, "second error"), (ERROR, "third")], "task-2")
    await saver.aput_writes(saved, [(INTERRUPT, {"value": "?"})], "task-3")
    await saver.aput(saved, second, {"source": "loop", "step": 0}, second["channel_versions"])
    nested: Any = {"configurable": {"thread_id": thread_id, "checkpoint_ns": "child:1"}}
    await saver.aput(nested, first, {"source": "input", "step": -1}, {"n": "1"})


async def _saver_rows(pool: Any, thread_id: str) -> dict[str, list[Any]]:
    rows = {}
    async with pool.connection() as conn:
        for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
            cursor = await conn.execute(f"SELECT * FROM {table} WHERE thread_id = %s", (thread_id,))
            rows[table] = sorted((await cursor.fetchall()), key=repr)
    return rows


@pytest.mark.parametrize("large", [False, True], ids=["small", "large"])
def test_a_runs_checkpoint_writes_are_the_rows_langgraphs_own_saver_writes(
    pg: Postgres, large: bool
) -> None:
    """Inside a run the saver writes each checkpoint in one statement of its own
    (stead.storage.postgres_fenced_writes): its rows must be LangGraph's, so that LangGraph reads
    them back, and a later release's change of layout fails here."""
    reference_url = migrated_uri(GRAPHS_CONFIG, pg, "reference")
    url = migrated_uri(GRAPHS_CONFIG, pg, "ours")
    thread_id, run_id = new_time_ordered_id(), new_time_ordered_id()
    steps = _history_steps(large)

    async def scenario() -> tuple[Any, Any, Any, Any]:
        db = stead_database(url)
        reference_pool, pool = await open_savers_pool(reference_url), await open_savers_pool(url)
        try:
            await _write_history(AsyncPostgresSaver(reference_pool), thread_id, steps, large)
            await _insert_running_run(db, thread_id, run_id, attempt=1)
            saver = FencedPostgresSaver(pool)
            with writing_as(run_id, 1):
                await _write_history(saver, thread_id, steps, large)
            config: Any = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
            read_back = await saver.aget_tuple(config)
            reference_read = await AsyncPostgresSaver(reference_pool).aget_tuple(config)
            return (
                await _saver_rows(reference_pool, thread_id),
                await _saver_rows(pool, thread_id),
                reference_read,
                read_back,
            )
        finally:
            await reference_pool.close()
            await pool.close()
            await db.close()

    reference, ours, reference_read, read_back = asyncio.run(scenario())
    assert ours == reference
    assert [len(rows) for rows in ours.values()] == [3, 2, 4]
    assert read_back is not None and reference_read is not None
    assert read_back.checkpoint == reference_read.checkpoint
    assert read_back.pending_writes == reference_read.pending_writes
    assert read_back.checkpoint["channel_values"]["raw"] == b"\x00\x01"


def test_a_new_threads_checkpoints_are_read_only_once_the_run_wrote_one(pg: Postgres) -> None:
    """A stateless run's first attempt names its thread new: LangGraph's read as the run starts
    is answered without the database, until the run's first write."""
    url = migrated_uri(GRAPHS_CONFIG, pg, "new")
    thread_id, run_id = new_time_ordered_id(), new_time_ordered_id()
    config: Any = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}

    async def scenario() -> list[Any]:
        db = stead_database(url)
        pool = await open_savers_pool(url)
        try:
            await _insert_running_run(db, thread_id, run_id, attempt=1)
            saver = FencedPostgresSaver(pool)
            # Stored beforehand, so that a read that went to the database would find it.
            await _write_checkpoint(saver, thread_id, run_id, attempt=1, step=0)
            seen = [await saver.aget_tuple(config)]
            with writing_as(run_id, 1, new_thread_id=thread_id):
                seen.append(await saver.aget_tuple(config))
                checkpoint = empty_checkpoint()
                await saver.aput(config, checkpoint, {"step": 1}, {})
                seen.append(await saver.aget_tuple(config))
            with writing_as(run_id, 1):
                seen.append(await saver.aget_tuple(config))
            return seen
        finally:
            await pool.close()
            await db.close()

    before, new, written, stateful = asyncio.run(scenario())
    assert before is not None and before.metadata["step"] == 0
    assert new is None
    assert written is not None and written.metadata["step"] == 1
    assert stateful is not None and stateful.metadata["step"] == 1


def test_deleting_a_thread_removes_its_checkpoints_blobs_and_writes_only(pg: Postgres) -> None:
    url = migrated_uri(GRAPHS_CONFIG, pg, "deleted")
    deleted, kept = new_time_ordered_id(), new_time_ordered_id()
    tables = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")

    async def rows_of(pool: Any, thread_id: str) -> list[int]:
        async with pool.connection() as conn:
            counts = []
            for table in tables:
                found = await conn.execute(
                    f"SELECT count(*) AS n FROM {table} WHERE thread_id = %s", (thread_id,)
                )
                counts.append((await found.fetchone())["n"])
            return counts

    async def scenario() -> tuple[list[int], list[int], list[int]]:
        pool = await open_savers_pool(url)
        try:
            saver = FencedPostgresSaver(pool)
            for thread_id in (deleted, kept):
                config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
                checkpoint = empty_checkpoint()
                checkpoint["channel_values"] = {"messages": ["a", "b"]}
                stored = await saver.aput(config, checkpoint, {"step": 0}, {"messages": 1})
                await saver.aput_writes(stored, [("messages", ["c"])], "task")
            before = await rows_of(pool, deleted)
            await saver.adelete_thread(deleted)
            return before, await rows_of(pool, deleted), await rows_of(pool, kept)
        finally:
            await pool.close()

    before, after, other = asyncio.run(scenario())
    assert before == other == [1, 1, 1]
    assert after == [0, 0, 0]


@contextlib.asynccontextmanager
async def _saver_of_running_runs(
    url: str, count: int
) -> AsyncIterator[tuple[FencedPostgresSaver, list[tuple[str, str]]]]:
    """A fenced saver on `url`, and `count` running runs it may write for (thread, run ids)."""
    runs = [(new_time_ordered_id(), new_time_ordered_id()) for _ in range(count)]
    db = stead_database(url)
    pool = await open_savers_pool(url)
    try:
        for thread_id, run_id in runs:
            await _insert_running_run(db, thread_id, run_id, attempt=1)
        yield FencedPostgresSaver(pool), runs
    finally:
        await pool.close()
        await db.close()


@contextlib.asynccontextmanager
async def _row_locked(url: str, run_id: str) -> AsyncIterator[None]:
    """The run's row locked: the fence of a write for it, and so the write, waits meanwhile."""
    async with await psycopg.AsyncConnection.connect(url) as locker:
        await locker.execute("SELECT 1 FROM run WHERE run_id = %s FOR UPDATE", (run_id,))
        yield
        await locker.rollback()


def test_checkpoint_writes_of_different_runs_do_not_wait_for_each_other(pg: Postgres) -> None:
    """One run's write held up (here by a lock on its row) must not hold up another run's: each
    write takes its own pooled connection."""
    url = migrated_uri(GRAPHS_CONFIG, pg, "parallel")

    async def scenario() -> bool:
        async with _saver_of_running_runs(url, 2) as (saver, runs):
            (held_thread, held_run), (free_thread, free_run) = runs
            async with _row_locked(url, held_run):
                held = asyncio.create_task(
                    _write_checkpoint(saver, held_thread, held_run, attempt=1, step=1)
                )
                await asyncio.sleep(0.3)
                await asyncio.wait_for(
                    _write_checkpoint(saver, free_thread, free_run, attempt=1, step=1), 5
                )
                held_waited = not held.done()
            await asyncio.wait_for(held, 5)
            return held_waited

    assert asyncio.run(scenario()) is True


def _bytes_alive(at_least: int) -> int:
    """How many bytes objects of `at_least` bytes or more a container holds."""
    found = {
        id(held)
        for container in gc.get_objects()
        for held in gc.get_referents(container)
        if isinstance(held, bytes) and len(held) >= at_least
    }
    return len(found)


async def _write_text(
    saver: FencedPostgresSaver, thread_id: str, run_id: str, value: str, task: str = "task"
) -> None:
    """A task's write of `value` to the channel `text`, by attempt 1 of the run."""
    config: Any = {
        "configurable": {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": "c"}
    }
    with writing_as(run_id, 1):
        await saver.aput_writes(config, [("text", value)], task)


def test_large_checkpoint_writes_go_one_at_a_time_and_a_waiting_one_holds_no_copy(
    pg: Postgres,
) -> None:
    """A worker's large writes go one at a time, and one that waits lets go of its serialised
    values meanwhile (a 20 MiB run took its worker 9 bodies above its size, then 5 to 6). It
    serialises them again once its turn comes, and writes what it was given."""
    url = migrated_uri(GRAPHS_CONFIG, pg, "large_writes")
    first_value, second_value = "a" * LARGE_VALUE_BYTES, "b" * 3 * LARGE_VALUE_BYTES

    async def scenario() -> tuple[bool, int, dict[str, Any], list[tuple[str, str]]]:
        async with _saver_of_running_runs(url, 2) as (saver, runs):
            (held_thread, held_run), (other_thread, other_run) = runs
            async with _row_locked(url, held_run):
                held = asyncio.create_task(_write_text(saver, held_thread, held_run, first_value))
                await asyncio.sleep(0.3)
                other = asyncio.create_task(
                    _write_text(saver, other_thread, other_run, second_value)
                )
                await asyncio.sleep(0.3)
                other_waited = not other.done()
                copies_while_waiting = _bytes_alive(len(second_value))
            await asyncio.wait_for(asyncio.gather(held, other), 10)
            async with saver.conn.connection() as conn:
                cursor = await conn.execute("SELECT thread_id, type, blob FROM checkpoint_writes")
                rows = await cursor.fetchall()
            stored = {
                row["thread_id"]: saver.serde.loads_typed((row["type"], row["blob"]))
                for row in rows
            }
            return other_waited, copies_while_waiting, stored, runs

    other_waited, copies_while_waiting, stored, runs = asyncio.run(scenario())
    assert other_waited, "a second large write went while the first was held"
    assert copies_while_waiting == 0, "the waiting write held its serialised value"
    assert stored == {runs[0][0]: first_value, runs[1][0]: second_value}


def test_a_threads_next_write_waits_for_its_large_write_before_serialising(
    pg: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LangGraph writes a step's checkpoint and its tasks' writes at once. While a large write
    of a thread is in flight, the thread's next write waits before it serialises its values, so
    that the two are never held serialised together (a worker's 20 MiB run peaked at 5 bodies,
    now 4); it then writes what it was given."""
    url = migrated_uri(GRAPHS_CONFIG, pg, "thread_writes")
    large, small = "a" * LARGE_VALUE_BYTES, "b"

    async def scenario() -> tuple[list[str], list[str], dict[str, Any]]:
        async with _saver_of_running_runs(url, 1) as (saver, runs):
            [(thread_id, run_id)] = runs
            serialised: list[str] = []
            dumps_typed = saver.serde.dumps_typed

            def noting_dumps(value: Any) -> tuple[str, bytes]:
                serialised.append(str(value)[:1])
                return dumps_typed(value)

            # The serialiser is LangGraph's one instance for every saver: undone after the test.
            monkeypatch.setattr(saver.serde, "dumps_typed", noting_dumps)
            async with _row_locked(url, run_id):
                held = asyncio.create_task(_write_text(saver, thread_id, run_id, large, "first"))
                await asyncio.sleep(0.3)
                following = asyncio.create_task(
                    _write_text(saver, thread_id, run_id, small, "next")
                )
                await asyncio.sleep(0.3)
                while_held = list(serialised)
            await asyncio.wait_for(asyncio.gather(held, following), 10)
            async with saver.conn.connection() as conn:
                cursor = await conn.execute("SELECT task_id, type, blob FROM checkpoint_writes")
                rows = await cursor.fetchall()
            stored = {
                row["task_id"]: saver.serde.loads_typed((row["type"], row["blob"])) for row in rows
            }
            return while_held, serialised, stored

    while_held, serialised, stored = asyncio.run(scenario())
    assert while_held == ["a"], "the next write serialised while the large one was in flight"
    assert serialised == ["a", "b"]
    assert stored == {"first": large, "next": small}


def test_a_large_checkpoint_and_write_go_in_pieces_without_a_whole_copy(pg: Postgres) -> None:
    """Sent as a statement's parameter, a large value went whole into libpq's output buffer (32
    MiB for a 20 MiB value) on top of its serialised form, for as long as the write lasted. Sent
    by COPY in pieces, a checkpoint with an 8 MiB text and a task's 8 MiB write each take the
    process no more than their serialised value and a few pieces; both are stored as given."""
    url = migrated_uri(GRAPHS_CONFIG, pg, "pieces")
    size = 8 * 2**20
    text, blob = "t" * size, b"b" * size

    async def scenario() -> tuple[int, int, Any, Any]:
        async with _saver_of_running_runs(url, 1) as (saver, runs):
            [(thread_id, run_id)] = runs
            config: Any = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
            checkpoint = empty_checkpoint()
            checkpoint["channel_values"] = {"text": text}
            with writing_as(run_id, 1):
                gc.collect()
                with peak_growth(_allocated_bytes, 0.0005) as checkpoint_peak:
                    saved = await saver.aput(config, checkpoint, {"step": 0}, {})
                gc.collect()
                with peak_growth(_allocated_bytes, 0.0005) as write_peak:
                    await saver.aput_writes(saved, [("blob", blob)], "task")
            found = await saver.aget_tuple(config)
            assert found is not None and found.pending_writes is not None
            return checkpoint_peak.bytes, write_peak.bytes, found.checkpoint, found.pending_writes

    checkpoint_peak, write_peak, stored, pending = asyncio.run(scenario())
    assert stored["channel_values"] == {"text": text}
    assert [(channel, value) for _, channel, value in pending] == [("blob", blob)]
    assert checkpoint_peak < 1.5 * size, f"the checkpoint took {checkpoint_peak / size:.1f} texts"
    assert write_peak < 1.5 * size, f"the write took {write_peak / size:.1f} values"


def test_a_large_write_cancelled_midway_leaves_nothing_and_its_connection_serves_on(
    pg: Postgres, caplog: pytest.LogCaptureFixture
) -> None:
    """A large write is one transaction: cancelled while it waits inside it (its fencing check
    held up by a lock on the run's row), it leaves no row, psycopg logs nothing, and the saver's
    next large write of the run goes through."""
    url = migrated_uri(GRAPHS_CONFIG, pg, "cancelled")
    value = "c" * LARGE_VALUE_BYTES

    async def scenario() -> tuple[list[Any], list[Any]]:
        async with _saver_of_running_runs(url, 1) as (saver, runs):
            [(thread_id, run_id)] = runs
            async with _row_locked(url, run_id):
                write = asyncio.create_task(_write_text(saver, thread_id, run_id, value, "first"))
                await asyncio.sleep(0.3)
                write.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await write
            left = (await _saver_rows(saver.conn, thread_id))["checkpoint_writes"]
            await _write_text(saver, thread_id, run_id, value, "second")
            written = (await _saver_rows(saver.conn, thread_id))["checkpoint_writes"]
            return left, [row["task_id"] for row in written]

    with caplog.at_level(logging.WARNING, logger="psycopg"):
        left, written = asyncio.run(scenario())
    assert left == []
    assert written == ["second"]
    assert not [r for r in caplog.records if r.name.startswith("psycopg")], caplog.text


# glibc's `struct mallinfo2`, every field a size_t.
_MALLINFO2_FIELDS = (
    "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
    "keepcost",
)  # fmt: skip


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _MALLINFO2_FIELDS]


def _allocated_bytes() -> int:
    """What the process has allocated, Python's and libpq's alike (glibc's `mallinfo2`): unlike
    resident memory, a block freed and reused counts only while in use."""
    info = _libc().mallinfo2()
    return int(info.uordblks + info.hblkhd)


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    return libc


def test_autocommit_opens_no_transaction_and_leaves_the_connection_atomic(pg: Postgres) -> None:
    """`Database.autocommit` saves BEGIN and COMMIT; the connection it used must still make the
    next `transaction` atomic."""
    url = migrated_uri(GRAPHS_CONFIG, pg, "reads")
    thread_id = new_time_ordered_id()

    def status(conn: Any) -> psycopg.pq.TransactionStatus:
        return conn.connection.dbapi_connection.info.transaction_status

    async def scenario() -> tuple[Any, Any, int, Any]:
        db = stead_database(url)
        try:
            async with db.autocommit() as tx:
                page = await tx.threads.search(
                    ids=None,
                    metadata=None,
                    values=None,
                    status=None,
                    limit=10,
                    offset=0,
                    sort_by="created_at",
                    sort_order="desc",
                )
                in_autocommit = await tx.connection.run_sync(status)
            with pytest.raises(RuntimeError):
                async with db.transaction() as tx:
                    await tx.threads.insert(new_thread_record(thread_id, {}))
                    in_transaction = await tx.connection.run_sync(status)
                    raise RuntimeError("the request failed half-way")
            async with db.autocommit() as tx:
                left = await tx.threads.get(thread_id)
            return in_autocommit, in_transaction, len(page.rows), left
        finally:
            await db.close()

    in_autocommit, in_transaction, rows, left = asyncio.run(scenario())
    assert in_autocommit == psycopg.pq.TransactionStatus.IDLE
    assert in_transaction == psycopg.pq.TransactionStatus.INTRANS
    assert rows == 0 and left is None


@pytest.fixture
def quick_idle_check(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(connection_checks, "CHECK_AFTER_IDLE_SECONDS", 0.3)
    return 0.3


def test_a_stead_connection_cut_while_idle_is_replaced_and_a_busy_one_fails_once(
    pg: Postgres, quick_idle_check: float
) -> None:
    """Pooled connections are checked only after sitting idle (a check is a round trip)."""

    async def scenario() -> None:
        db = stead_database(pg.url("idle"))
        try:
            await db.ping()
            _cut_connections(pg, "idle")
            await asyncio.sleep(quick_idle_check * 2)
            await db.ping()  # checked, found dead, replaced
            _cut_connections(pg, "idle")
            with pytest.raises(database_errors()):
                await db.ping()  # returned moments ago: used unchecked
            await db.ping()
        finally:
            await db.close()

    asyncio.run(scenario())


def test_a_checkpoint_connection_cut_while_idle_is_replaced_and_a_busy_one_fails_once(
    pg: Postgres, quick_idle_check: float
) -> None:
    async def select_one(pool: Any) -> None:
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")

    async def scenario() -> None:
        pool = await open_savers_pool(pg.url("idle"))
        try:
            await select_one(pool)
            _cut_connections(pg, "idle")
            await asyncio.sleep(quick_idle_check * 2)
            await select_one(pool)
            cut = _cut_connections(pg, "idle")
            # Used moments ago: unchecked, so each cut connection fails once, then is replaced.
            failures = 0
            while True:
                try:
                    await select_one(pool)
                    break
                except psycopg.OperationalError:
                    failures += 1
            assert 1 <= failures <= cut
        finally:
            await pool.close()

    asyncio.run(scenario())


def _cut_connections(pg: Postgres, database: str) -> int:
    """End every session on `database`, as a database restart does; how many there were."""
    with psycopg.connect(pg.url("postgres")) as conn:
        ended = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (database,),
        ).fetchall()
    assert ended, "no connection to cut"
    return len(ended)


def _answers_ok(port: int) -> bool:
    try:
        return httpx.get(f"http://{HOST}:{port}/ok", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_run_refuses_an_unmigrated_database(pg: Postgres, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stead",
            "run",
            "--config",
            str(GRAPHS_CONFIG),
            "--host",
            HOST,
            "--port",
            str(free_port()),
            "--data-dir",
            str(tmp_path),
        ],
        env=migrate_env(pg.url("unmigrated")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("stead: error: ") and "run 'stead migrate'" in lines[0]
    with psycopg.connect(pg.url("unmigrated")) as conn:
        tables = conn.execute("SELECT to_regclass('run')").fetchone()
    assert tables == (None,)


def test_runs_and_state_survive_a_restart(pg: Postgres, tmp_path: Path) -> None:
    env = {
        "DATABASE_URI": migrated_uri(GRAPHS_CONFIG, pg, "served").replace(
            "postgresql://", "postgres://"
        )
    }
    with stead_server(GRAPHS_CONFIG, tmp_path / "first", env) as first:
        thread = httpx.post(f"{first.url}/threads", json={"metadata": {"team": "a"}}).json()
        tid = thread["thread_id"]
        result = httpx.post(
            f"{first.url}/threads/{tid}/runs/wait",
            json={"assistant_id": "echo", "input": {"text": "kept"}},
            timeout=30,
        )
        assert result.json() == {"text": "kept"}
        httpx.put(f"{first.url}/store/items", json={"namespace": ["n"], "key": "k", "value": {}})
    # Another data folder: whatever the second server finds came from PostgreSQL.
    with stead_server(GRAPHS_CONFIG, tmp_path / "second", env) as second:
        found = httpx.post(f"{second.url}/threads/search", json={"metadata": {"team": "a"}}).json()
        assert [t["thread_id"] for t in found] == [tid]
        assert found[0]["status"] == "idle" and found[0]["values"] == {"text": "kept"}
        runs = httpx.get(f"{second.url}/threads/{tid}/runs").json()
        assert [r["status"] for r in runs] == ["success"]
        state = httpx.get(f"{second.url}/threads/{tid}/state").json()
        assert state["values"] == {"text": "kept"}
        item = httpx.get(f"{second.url}/store/items", params={"namespace": "n", "key": "k"})
        assert item.json()["value"] == {}
    assert not list((tmp_path / "second").glob("*.sqlite"))


def test_queue_depth_query_counts_pending_runs(pg: Postgres, tmp_path: Path) -> None:
    """The official KEDA trigger's query, as written, against Stead's schema."""
    uri = migrated_uri(GRAPHS_CONFIG, pg, "queued")
    env = {"DATABASE_URI": uri, "N_JOBS_PER_WORKER": "0"}  # API only: runs stay pending
    with stead_server(GRAPHS_CONFIG, tmp_path, env) as api:
        for _ in range(3):
            tid = httpx.post(f"{api.url}/threads", json={}).json()["thread_id"]
            created = httpx.post(
                f"{api.url}/threads/{tid}/runs", json={"assistant_id": "echo", "input": {}}
            )
            assert created.status_code == 200
        with psycopg.connect(uri) as conn:
            depth = conn.execute("SELECT count(*) FROM run WHERE status = 'pending'").fetchone()
        assert depth == (3,)
    # A server that executes runs drains the queue, and the same query sees it empty.
    with stead_server(GRAPHS_CONFIG, tmp_path, {"DATABASE_URI": uri}):
        assert _wait_for_depth(uri, 0)


def _wait_for_depth(uri: str, expected: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    with psycopg.connect(uri, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*) FROM run WHERE status = 'pending'").fetchone()
            if row == (expected,):
                return True
            time.sleep(0.1)
    return False


def test_the_shipped_settings_load_into_postgresql_15() -> None:
    settings = REPO_ROOT / "deploy" / "postgres" / "postgresql.conf"
    with postgres_server() as server:
        conf = server.data_dir / "postgresql.conf"
        conf.write_text(conf.read_text() + f"\ninclude '{settings}'\n")
        server.stop()
        server.start()
        with psycopg.connect(server.url()) as conn:
            shown = {
                name: conn.execute(f"SHOW {name}").fetchone()
                for name in ("shared_buffers", "random_page_cost", "checkpoint_completion_target")
            }
    assert shown == {
        "shared_buffers": ("256MB",),
        "random_page_cost": ("1.1",),
        "checkpoint_completion_target": ("0.9",),
    }
