"""Double-texting: what a new run does to a thread that is busy, including the races."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
from langgraph_sdk.client import LangGraphClient

TERMINAL = {"success", "error", "timeout", "interrupted"}


async def _settled(client: LangGraphClient, thread_id: str, timeout: float = 20) -> list[dict]:
    """All runs of the thread once none is pending or running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = await client.runs.list(thread_id, limit=100)
        if all(r["status"] in TERMINAL for r in runs):
            return runs
        await asyncio.sleep(0.05)
    raise AssertionError("runs never settled")


async def _until_running(client: LangGraphClient, thread_id: str, run_id: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if (await client.runs.get(thread_id, run_id))["status"] == "running":
            return
        await asyncio.sleep(0.02)
    raise AssertionError("run never started")


async def test_interrupt_stops_the_running_run_and_keeps_its_progress(
    client: LangGraphClient,
) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread_id, "steps", input={"steps": []})
    first = await client.runs.create(thread_id, "slow", input={"seconds": 5})
    await _until_running(client, thread_id, first["run_id"])
    second = await client.runs.create(
        thread_id, "steps", input={"steps": ["again"]}, multitask_strategy="interrupt"
    )
    await client.runs.join(thread_id, second["run_id"])
    assert (await client.runs.get(thread_id, first["run_id"]))["status"] == "interrupted"
    assert (await client.runs.get(thread_id, second["run_id"]))["status"] == "success"
    state = await client.threads.get_state(thread_id)
    # The first run's work stays: the steps of the earlier run plus the new input and nodes.
    assert state["values"]["steps"][:3] == ["one", "two", "three"]
    assert state["values"]["steps"][3:] == ["again", "one", "two", "three"]
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_interrupt_cancels_queued_runs_too(client: LangGraphClient) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    running = await client.runs.create(thread_id, "slow", input={"seconds": 5})
    queued = await client.runs.create(thread_id, "echo", input={"text": "queued"})
    last = await client.runs.create(
        thread_id, "echo", input={"text": "last"}, multitask_strategy="interrupt"
    )
    assert await client.runs.join(thread_id, last["run_id"]) == {"text": "last"}
    statuses = {r["run_id"]: r["status"] for r in await _settled(client, thread_id)}
    assert statuses == {
        running["run_id"]: "interrupted",
        queued["run_id"]: "interrupted",
        last["run_id"]: "success",
    }


async def test_rollback_deletes_earlier_runs_and_their_checkpoints(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread_id, "steps", input={"steps": []})
    history_before = await client.threads.get_history(thread_id, limit=100)
    doomed = await client.runs.create(thread_id, "slow", input={"seconds": 5})
    await _until_running(client, thread_id, doomed["run_id"])
    queued = await client.runs.create(thread_id, "echo", input={"text": "queued"})
    last = await client.runs.create(
        thread_id, "steps", input={"steps": ["new"]}, multitask_strategy="rollback"
    )
    await client.runs.join(thread_id, last["run_id"])
    for run_id in (doomed["run_id"], queued["run_id"]):
        assert (await http.get(f"/threads/{thread_id}/runs/{run_id}")).status_code == 404
    history_after = await client.threads.get_history(thread_id, limit=100)
    before_ids = {s["checkpoint_id"] for s in history_before}
    slow_checkpoints = [
        s for s in history_after if s["checkpoint_id"] not in before_ids and "done" in s["values"]
    ]
    assert slow_checkpoints == []
    state = await client.threads.get_state(thread_id)
    assert state["values"]["steps"] == ["one", "two", "three", "new", "one", "two", "three"]


async def test_simultaneous_reject_gives_one_run_and_one_409(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    for _ in range(5):
        thread_id = (await client.threads.create())["thread_id"]
        body = {"assistant_id": "slow", "input": {"seconds": 0.2}, "multitask_strategy": "reject"}
        responses = await asyncio.gather(
            http.post(f"/threads/{thread_id}/runs", json=body),
            http.post(f"/threads/{thread_id}/runs", json=body),
        )
        assert sorted(r.status_code for r in responses) == [200, 409]
        runs = await _settled(client, thread_id)
        assert len(runs) == 1 and runs[0]["status"] == "success"


async def test_interrupt_under_load_leaves_no_thread_busy(client: LangGraphClient) -> None:
    thread_ids = [(await client.threads.create())["thread_id"] for _ in range(3)]

    async def hammer(thread_id: str) -> str:
        last = None
        for i in range(8):
            last = await client.runs.create(
                thread_id, "slow", input={"seconds": 0.05 * (i % 3)}, multitask_strategy="interrupt"
            )
        assert last is not None
        return last["run_id"]

    lasts = await asyncio.gather(*(hammer(t) for t in thread_ids))
    for thread_id, last_run in zip(thread_ids, lasts, strict=True):
        runs = await _settled(client, thread_id)
        by_id = {r["run_id"]: r["status"] for r in runs}
        assert by_id.pop(last_run) == "success"
        assert set(by_id.values()) <= {"interrupted", "success"}
        assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_cancel_racing_completion_is_consistent(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    """Cancel at every moment of a short run: the run ends one way, the thread is never stuck."""
    for delay in (0, 0.001, 0.003, 0.005, 0.01, 0.02):
        thread_id = (await client.threads.create())["thread_id"]
        run = await client.runs.create(thread_id, "echo", input={"text": "x"})
        await asyncio.sleep(delay)
        response = await http.post(f"/threads/{thread_id}/runs/{run['run_id']}/cancel")
        runs = await _settled(client, thread_id)
        status = runs[0]["status"]
        if response.status_code == 404:
            assert status == "success"
        else:
            assert response.status_code == 202
            assert status in {"interrupted", "success"}
        thread = await client.threads.get(thread_id)
        assert thread["status"] in {"idle", "interrupted"}
        if status == "success":
            assert thread["values"] == {"text": "x"}


async def test_wait_with_on_disconnect_cancel(client: LangGraphClient, url: str) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    body = {"assistant_id": "slow", "input": {"seconds": 3}, "on_disconnect": "cancel"}
    async with httpx.AsyncClient(base_url=url) as short:
        with contextlib.suppress(httpx.ReadTimeout):
            await short.post(f"/threads/{thread_id}/runs/wait", json=body, timeout=0.5)
    runs = await _settled(client, thread_id)
    assert runs[0]["status"] == "interrupted"


async def test_join_with_cancel_on_disconnect(client: LangGraphClient, url: str) -> None:
    for path in ("join", "stream"):
        thread_id = (await client.threads.create())["thread_id"]
        run = await client.runs.create(thread_id, "slow", input={"seconds": 3})
        async with httpx.AsyncClient(base_url=url) as short:
            with contextlib.suppress(httpx.ReadTimeout):
                await short.get(
                    f"/threads/{thread_id}/runs/{run['run_id']}/{path}",
                    params={"cancel_on_disconnect": "true"},
                    timeout=0.5,
                )
        runs = await _settled(client, thread_id)
        assert runs[0]["status"] == "interrupted", path


async def test_join_without_cancel_on_disconnect_lets_the_run_finish(
    client: LangGraphClient, url: str
) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    run = await client.runs.create(thread_id, "slow", input={"seconds": 1})
    async with httpx.AsyncClient(base_url=url) as short:
        with contextlib.suppress(httpx.ReadTimeout):
            await short.get(f"/threads/{thread_id}/runs/{run['run_id']}/join", timeout=0.3)
    runs = await _settled(client, thread_id)
    assert runs[0]["status"] == "success"
