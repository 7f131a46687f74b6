"""Outages of the services Stead depends on, with a real `stead run` on a real PostgreSQL and Redis.

Redis lost for 30 s: runs keep executing and new ones are still accepted and executed (workers
poll the database), open streams end instead of hanging, and streaming resumes once Redis is back.
PostgreSQL restarted: requests during the outage fail fast with 503, the server recovers without a
restart, and a run whose checkpoint write failed continues from its last checkpoint.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import GRAPHS_CONFIG
from tests.support.postgres import stead_migrate
from tests.support.protocol import (
    ended,
    event_stream,
    events_of,
    new_thread_id,
    root_lifecycle,
    start_run,
)
from tests.support.servers import stead_server
from tests.support.services import Postgres, Redis, postgres_server, redis_server
from tests.support.sse import OpenStream, read_stream

# Longer than any outage here: a run must come through one by itself, not because its lease
# lapsed and the reaper handed it to a new attempt.
LEASE_SECS = "60"
REDIS_OUTAGE_SECS = 30.0
# Longer than the checkpoint pool's 10 s wait for a connection, so that a write fails.
POSTGRES_OUTAGE_SECS = 13.0
# A request during an outage must answer well before this; a hang fails the test.
FAIL_FAST_SECS = 8.0


@dataclass
class Deployment:
    pg: Postgres
    redis: Redis
    url: str


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    with postgres_server() as pg, redis_server() as redis:
        migrated = stead_migrate(GRAPHS_CONFIG, pg.url())
        assert migrated.returncode == 0, migrated.stderr
        env = {"DATABASE_URI": pg.url(), "REDIS_URI": redis.url, "BG_JOB_LEASE_SECS": LEASE_SECS}
        with stead_server(GRAPHS_CONFIG, env=env) as server:
            yield Deployment(pg, redis, server.url)


@pytest.fixture
async def api(deployment: Deployment) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=deployment.url, timeout=FAIL_FAST_SECS) as client:
        yield client


async def _new_thread(api: httpx.AsyncClient) -> str:
    response = await api.post("/threads", json={})
    assert response.status_code == 200, response.text
    return str(response.json()["thread_id"])


async def _background_run(
    api: httpx.AsyncClient, thread_id: str, assistant_id: str, graph_input: dict[str, Any]
) -> str:
    response = await api.post(
        f"/threads/{thread_id}/runs", json={"assistant_id": assistant_id, "input": graph_input}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["run_id"])


async def _wait_for_status(
    api: httpx.AsyncClient, thread_id: str, run_id: str, statuses: set[str], timeout: float
) -> str:
    deadline = time.monotonic() + timeout
    while True:
        response = await api.get(f"/threads/{thread_id}/runs/{run_id}")
        assert response.status_code == 200, response.text
        status = str(response.json()["status"])
        if status in statuses:
            return status
        assert time.monotonic() < deadline, f"run stayed {status}, wanted {statuses}"
        await asyncio.sleep(0.1)


async def _wait_until_served(api: httpx.AsyncClient, path: str, timeout: float) -> None:
    """Poll `path` until it answers 200; anything but 503 on the way fails."""
    deadline = time.monotonic() + timeout
    while True:
        response = await api.get(path)
        if response.status_code == 200:
            return
        assert response.status_code == 503, response.text
        assert time.monotonic() < deadline, f"{path} still answers {response.status_code}"
        await asyncio.sleep(0.2)


async def test_redis_outage_loses_no_run_and_streaming_recovers(
    deployment: Deployment, api: httpx.AsyncClient
) -> None:
    thread_id = await _new_thread(api)
    # Runs through most of the outage, writing checkpoints and publishing events as it goes.
    long_run = await _background_run(api, thread_id, "pausing", {"pause": REDIS_OUTAGE_SECS - 10})
    await _wait_for_status(api, thread_id, long_run, {"running"}, timeout=10)

    protocol_thread = new_thread_id()
    async with (
        OpenStream(api, f"/threads/{thread_id}/runs/{long_run}/stream") as joined,
        event_stream(api, protocol_thread, channels=["lifecycle"], since=0) as protocol,
    ):
        assert joined.response is not None and joined.response.status_code == 200
        deployment.redis.stop()
        outage_ends = time.monotonic() + REDIS_OUTAGE_SECS
        try:
            # The open stream ends (with an error event, or simply closes) instead of hanging.
            await _wait_for_stream_end(joined, timeout=10)
            errors = [event.data for event in joined.events if event.event == "error"]
            assert all(error.get("message") for error in errors), errors
            # A protocol stream says why it ends, in the frame the SDKs report.
            (lost,) = await protocol.until(lambda events: bool(events), timeout=10)
            assert lost.data["type"] == "error" and lost.data["id"] is None, lost
            assert "reconnect" in lost.data["message"]
            # A protocol command still starts a run, and it runs.
            run_id = await start_run(api, protocol_thread, "echo", {"text": "no redis"})
            assert (
                await _wait_for_status(api, protocol_thread, run_id, {"success"}, 15) == "success"
            )

            # Not ready, and saying why; the metrics say Redis is down.
            await _expect_unready(api, "redis", "stead_redis_up")

            # New runs are accepted and executed all along: idle workers poll the database.
            executed = await _echo_runs_until(api, outage_ends)
            assert executed >= 3

            # The run in progress finished, and its outcome is in the database.
            assert await _wait_for_status(api, thread_id, long_run, {"success"}, 1) == "success"
            state = await api.get(f"/threads/{thread_id}/state")
            assert state.json()["values"]["steps"] == ["one", "two", "three"]
        finally:
            deployment.redis.start()

    await _expect_ready(api)
    # Back on the same port: a new stream gets its events without restarting Stead.
    response, events = await read_stream(
        api,
        "POST",
        "/runs/stream",
        json={"assistant_id": "echo", "input": {"text": "redis is back"}},
    )
    assert response.status_code == 200
    names = [event.event for event in events]
    assert names[0] == "metadata" and "error" not in names, events
    assert events[-1].event == "values" and events[-1].data == {"text": "redis is back"}
    async with event_stream(api, protocol_thread, channels=["lifecycle"]) as protocol_again:
        await start_run(api, protocol_thread, "echo", {"text": "redis is back"})
        await protocol_again.until(ended())
    assert root_lifecycle(events_of(protocol_again)) == ["running", "completed"]


async def _expect_unready(api: httpx.AsyncClient, check: str, gauge: str) -> None:
    """`/ready` answers 503 at once, naming the failed check; the gauge reads 0."""
    ready = await api.get("/ready")
    assert ready.status_code == 503, ready.text
    assert ready.json()["ready"] is False and ready.json()["checks"][check] != "ok", ready.text
    metrics = await api.get("/metrics")
    assert metrics.status_code == 200
    assert f"\n{gauge} 0.0\n" in metrics.text


async def _expect_ready(api: httpx.AsyncClient) -> None:
    ready = await api.get("/ready")
    assert ready.status_code == 200, ready.text
    assert set(ready.json()["checks"].values()) == {"ok"}
    metrics = (await api.get("/metrics")).text
    assert "\nstead_database_up 1.0\n" in metrics and "\nstead_redis_up 1.0\n" in metrics


async def _echo_runs_until(api: httpx.AsyncClient, deadline: float) -> int:
    """Run `echo` on new threads one after another until `deadline`; returns how many ran."""
    executed = 0
    while time.monotonic() < deadline:
        thread_id = await _new_thread(api)
        text = f"no redis {executed}"
        run_id = await _background_run(api, thread_id, "echo", {"text": text})
        assert await _wait_for_status(api, thread_id, run_id, {"success"}, 15) == "success"
        state = await api.get(f"/threads/{thread_id}/state")
        assert state.json()["values"] == {"text": text}
        executed += 1
    return executed


async def _wait_for_stream_end(stream: OpenStream, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not stream.closed and not any(event.event == "error" for event in stream.events):
        assert time.monotonic() < deadline, f"stream still open: {stream.events}"
        await asyncio.sleep(0.05)


async def test_postgres_restart_fails_fast_with_503_and_recovers(
    deployment: Deployment, api: httpx.AsyncClient
) -> None:
    thread_id = await _new_thread(api)
    busy_thread = await _new_thread(api)
    claimed_run = await _background_run(api, busy_thread, "slow", {"seconds": 1})
    await _wait_for_status(api, busy_thread, claimed_run, {"running"}, timeout=10)

    deployment.pg.stop()
    try:
        requests = [
            ("GET", f"/threads/{thread_id}", None),
            ("GET", f"/threads/{thread_id}/state", None),
            ("POST", "/threads", {}),
            ("POST", f"/threads/{thread_id}/runs", {"assistant_id": "echo", "input": {}}),
            ("POST", "/threads/search", {}),
        ]
        for method, path, body in requests:
            response = await api.request(method, path, json=body)
            assert response.status_code == 503, response.text
            assert response.headers["content-type"].startswith("application/json")
            assert isinstance(response.json()["detail"], str)
        await _expect_unready(api, "database", "stead_database_up")
        await asyncio.sleep(3)
    finally:
        deployment.pg.start()

    await _wait_until_served(api, f"/threads/{thread_id}", timeout=10)
    await _expect_ready(api)
    response = await api.get(f"/threads/{thread_id}")
    assert response.json()["thread_id"] == thread_id

    # A run executing when the database went away is not left `running`.
    terminal = {"success", "error", "timeout", "interrupted"}
    assert await _wait_for_status(api, busy_thread, claimed_run, terminal, timeout=20) == "success"

    run_id = await _background_run(api, thread_id, "echo", {"text": "after the restart"})
    assert await _wait_for_status(api, thread_id, run_id, {"success"}, timeout=15) == "success"
    state = await api.get(f"/threads/{thread_id}/state")
    assert state.json()["values"] == {"text": "after the restart"}


async def test_a_run_whose_checkpoint_write_failed_continues_after_postgres_returns(
    deployment: Deployment, api: httpx.AsyncClient
) -> None:
    thread_id = await _new_thread(api)
    run_id = await _background_run(api, thread_id, "pausing", {"pause": 1})
    await _wait_for_next(api, thread_id, ["two"], timeout=10)

    deployment.pg.stop()
    try:
        # Node two ends during the outage; writing its checkpoint fails.
        await asyncio.sleep(POSTGRES_OUTAGE_SECS)
    finally:
        deployment.pg.start()

    await _wait_until_served(api, f"/threads/{thread_id}", timeout=10)
    # Not `error`: the run went back to the queue and ran again from its last checkpoint.
    assert await _wait_for_status(api, thread_id, run_id, {"success", "error"}, 30) == "success"
    state = (await api.get(f"/threads/{thread_id}/state")).json()
    assert state["values"]["steps"] == ["one", "two", "three"]
    assert state["metadata"]["run_attempt"] == 2


async def _wait_for_next(
    api: httpx.AsyncClient, thread_id: str, next_nodes: list[str], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while (await api.get(f"/threads/{thread_id}/state")).json()["next"] != next_nodes:
        assert time.monotonic() < deadline, f"the thread never reached {next_nodes}"
        await asyncio.sleep(0.02)
