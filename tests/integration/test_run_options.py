"""Run options: rollback cancels, delayed runs and durability."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient


async def _until(client: LangGraphClient, thread_id: str, run_id: str, status: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if (await client.runs.get(thread_id, run_id))["status"] == status:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"run never reached {status}")


async def test_rollback_of_a_running_run_deletes_it_and_its_checkpoints(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread_id, "steps", input={"steps": []})
    before = await client.threads.get_history(thread_id, limit=100)
    run = await client.runs.create(thread_id, "slow", input={"seconds": 5})
    await _until(client, thread_id, run["run_id"], "running")
    await client.runs.cancel(thread_id, run["run_id"], action="rollback", wait=True)
    gone = await http.get(f"/threads/{thread_id}/runs/{run['run_id']}")
    assert gone.status_code == 404
    after = await client.threads.get_history(thread_id, limit=100)
    assert [s["checkpoint_id"] for s in after] == [s["checkpoint_id"] for s in before]
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "idle"
    assert thread["values"] == {"steps": ["one", "two", "three"]}


async def test_rollback_of_a_pending_run_deletes_it(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    first = await client.runs.create(thread_id, "slow", input={"seconds": 0.5})
    queued = await client.runs.create(thread_id, "echo", input={"text": "never"})
    await client.runs.cancel(thread_id, queued["run_id"], action="rollback")
    assert (await http.get(f"/threads/{thread_id}/runs/{queued['run_id']}")).status_code == 404
    await client.runs.join(thread_id, first["run_id"])
    runs = await client.runs.list(thread_id)
    assert [r["run_id"] for r in runs] == [first["run_id"]]


async def test_after_seconds_delays_the_start(client: LangGraphClient) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    started = time.monotonic()
    run = await client.runs.create(thread_id, "echo", input={"text": "later"}, after_seconds=2)
    await asyncio.sleep(0.5)
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "pending"
    result = await client.runs.join(thread_id, run["run_id"])
    assert result == {"text": "later"}
    assert time.monotonic() - started >= 2


async def test_a_delayed_run_starts_when_due_while_other_runs_are_claimed(
    client: LangGraphClient,
) -> None:
    """The claim that takes the other run also says when the delayed one falls due: the queue
    wakes for it then, not at its idle recheck seconds later."""
    delayed_thread = (await client.threads.create())["thread_id"]
    other_thread = (await client.threads.create())["thread_id"]
    started = time.monotonic()
    delayed = await client.runs.create(delayed_thread, "echo", input={"text": "d"}, after_seconds=1)
    assert await client.runs.wait(other_thread, "echo", input={"text": "now"}) == {"text": "now"}
    assert await client.runs.join(delayed_thread, delayed["run_id"]) == {"text": "d"}
    assert 1 <= time.monotonic() - started < 3.5


async def test_durability_reaches_the_graph(client: LangGraphClient) -> None:
    """`exit` saves only the final checkpoint; `sync` saves one per step."""
    counts = {}
    for durability in ("sync", "exit"):
        thread_id = (await client.threads.create())["thread_id"]
        await client.runs.wait(thread_id, "steps", input={"steps": []}, durability=durability)
        counts[durability] = len(await client.threads.get_history(thread_id, limit=100))
        state = await client.threads.get_state(thread_id)
        assert state["values"] == {"steps": ["one", "two", "three"]}
    assert counts["exit"] < counts["sync"]


async def test_checkpoint_during_false_means_exit_durability(client: LangGraphClient) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    with pytest.warns(DeprecationWarning, match="checkpoint_during"):
        run = await client.runs.create(
            thread_id, "steps", input={"steps": []}, checkpoint_during=False
        )
    assert run["kwargs"]["durability"] == "exit"
    await client.runs.join(thread_id, run["run_id"])
    assert len(await client.threads.get_history(thread_id, limit=100)) == 1
