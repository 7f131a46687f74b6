"""A run whose caller waits on the process creating it (`runs/wait`, `runs/stream`) starts there
at once when that process's worker has a free slot: it is stored already claimed (running,
attempt 1, under its lease), with no claim and no queue wake-up. Without a free slot it queues
as before; a run that fails to be created gives its slot back. On a Runtime in this process,
with two slots."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from stead import serde
from stead.config import load_settings
from stead.graphs import load_graph_specs
from stead.runtime import Runtime
from stead.services.runs import RunRequest
from tests.conftest import GRAPHS_CONFIG

SLOTS = 2


@pytest.fixture
async def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Runtime]:
    for name in ("DATABASE_URI", "REDIS_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("N_JOBS_PER_WORKER", str(SLOTS))
    settings = load_settings(GRAPHS_CONFIG, data_dir=tmp_path)
    started = Runtime(settings, load_graph_specs(settings))
    await started.start()
    try:
        await _queue_idle(started)
        yield started
    finally:
        await started.stop()


async def _queue_idle(runtime: Runtime) -> None:
    """Past the queue's first claim, which holds the free slots while it looks for runs (its
    task has not even begun before the first pause)."""
    assert runtime.queue is not None
    for _ in range(100):
        await asyncio.sleep(0.02)
        if await runtime.queue.reserve_slot():
            runtime.queue.release_slot()
            return
    pytest.fail("the queue kept its slots")


def _echo(text: str) -> RunRequest:
    return RunRequest(assistant_id="echo", input={"text": text})


def _slow(seconds: float) -> RunRequest:
    return RunRequest(assistant_id="slow", input={"seconds": seconds})


async def _result(runtime: Runtime, run: dict[str, Any], subscription: Any) -> Any:
    return serde.loads(serde.dumps(await runtime.runs.result(run, subscription)))


async def _stored_status(runtime: Runtime, run_id: str) -> tuple[str, int]:
    async with runtime.db.transaction() as tx:
        stored = await tx.runs.get(run_id)
    assert stored is not None
    return stored["status"], stored["attempt"]


async def test_a_waited_run_is_stored_claimed_and_runs_at_once(runtime: Runtime) -> None:
    async with runtime.run_streams.create_and_subscribe(None, _slow(0.3), None) as (run, sub):
        assert (run["status"], run["attempt"]) == ("running", 1)
        assert run["lease_expires_at"] > run["created_at"]
        # Stored so by the creating transaction: no claim has run in between.
        assert await _stored_status(runtime, run["run_id"]) == ("running", 1)
        assert await _result(runtime, run, sub) == {"seconds": 0.3, "done": True}
    async with runtime.run_streams.create_and_subscribe(None, _echo("hi"), None) as (run, sub):
        assert run["status"] == "running"
        assert await _result(runtime, run, sub) == {"text": "hi"}


async def test_with_every_slot_busy_a_run_queues(runtime: Runtime) -> None:
    async with contextlib.AsyncExitStack() as stack:
        busy = [
            await stack.enter_async_context(
                runtime.run_streams.create_and_subscribe(None, _slow(0.5), None)
            )
            for _ in range(SLOTS)
        ]
        assert [run["status"] for run, _ in busy] == ["running"] * SLOTS
        queued, subscription = await stack.enter_async_context(
            runtime.run_streams.create_and_subscribe(None, _echo("later"), None)
        )
        assert (queued["status"], queued["attempt"]) == ("pending", 0)
        # The queue starts it once a slot frees.
        assert await _result(runtime, queued, subscription) == {"text": "later"}
        for run, sub in busy:
            assert await _result(runtime, run, sub) == {"seconds": 0.5, "done": True}


async def test_a_run_that_fails_to_be_created_gives_its_slot_back(runtime: Runtime) -> None:
    async with runtime.run_streams.create_and_subscribe(None, _slow(0.5), None) as (taken, sub):
        # The same run id again: the slot is reserved, then the insert fails.
        with pytest.raises(sa.exc.IntegrityError):
            await runtime.runs.create(None, _echo("twice"), run_id=taken["run_id"], start_here=True)
        # The second slot is free again: the next waited run starts at once.
        async with runtime.run_streams.create_and_subscribe(None, _echo("again"), None) as (
            run,
            again,
        ):
            assert run["status"] == "running"
            assert await _result(runtime, run, again) == {"text": "again"}
        assert await _result(runtime, taken, sub) == {"seconds": 0.5, "done": True}


async def test_a_background_run_goes_through_the_queue(runtime: Runtime) -> None:
    run = await runtime.runs.create(None, _echo("queued"))
    assert (run["status"], run["attempt"]) == ("pending", 0)
    for _ in range(100):
        await asyncio.sleep(0.02)
        async with runtime.db.transaction() as tx:
            if await tx.runs.get(run["run_id"]) is None:  # ended: its thread deleted with it
                return
    pytest.fail("the queue did not run the background run")


async def _new_thread(runtime: Runtime) -> str:
    thread = await runtime.threads.create(
        thread_id=None, metadata=None, if_exists="raise", supersteps=None
    )
    return str(thread["thread_id"])


async def test_a_run_on_an_idle_thread_starts_at_once_and_one_behind_it_queues(
    runtime: Runtime,
) -> None:
    thread_id = await _new_thread(runtime)
    async with contextlib.AsyncExitStack() as stack:
        first, first_events = await stack.enter_async_context(
            runtime.run_streams.create_and_subscribe(thread_id, _slow(0.4), None)
        )
        assert first["status"] == "running"  # `enqueue`, the default, on a thread with no run
        # A slot is free, but the thread is busy: the second run waits for the first.
        second, second_events = await stack.enter_async_context(
            runtime.run_streams.create_and_subscribe(thread_id, _slow(0.05), None)
        )
        assert (second["status"], second["attempt"]) == ("pending", 0)
        assert await _result(runtime, second, second_events) == {"seconds": 0.05, "done": True}
        assert await _stored_status(runtime, first["run_id"]) == ("success", 1)
        assert await _result(runtime, first, first_events) == {"seconds": 0.4, "done": True}
