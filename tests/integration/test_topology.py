"""Many replicas on one PostgreSQL and one Redis: two API-only `stead run` processes and `stead
worker` processes. Streams and cancels cross processes, a thread runs one run at a time across
workers, a run survives its worker being killed (SIGKILL) or stopped (SIGTERM), and an attempt
that was taken over writes no more checkpoints."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import GRAPHS_CONFIG
from tests.support.protocol import (
    EVERY_CHANNEL,
    command,
    ended,
    event_stream,
    events_of,
    new_thread_id,
    root_lifecycle,
    socket,
    start_run,
)
from tests.support.runs import (
    LARGE_INPUT_MIB,
    mib_held_while_a_large_run_sleeps,
    mib_held_while_a_large_state_pauses,
)
from tests.support.sse import SseEvent, parse_events
from tests.support.topology import api_replicas, production_services
from tests.support.worker import stead_worker, stead_worker_process

# Short leases so that a killed worker's run is taken over within a couple of seconds.
LEASE_SECS = "1"


@dataclass
class Topology:
    env: dict[str, str]
    a: str
    b: str
    a_pid: int


@pytest.fixture(scope="module")
def topology() -> Iterator[Topology]:
    with production_services(GRAPHS_CONFIG) as services:
        env = {**services.env, "BG_JOB_LEASE_SECS": LEASE_SECS}
        with api_replicas(GRAPHS_CONFIG, env) as (a, b):
            yield Topology(env, a.url, b.url, a.process.pid)


def _new_thread(base: str) -> str:
    response = httpx.post(f"{base}/threads", json={})
    assert response.status_code == 200, response.text
    return str(response.json()["thread_id"])


def _create_run(base: str, thread_id: str, assistant_id: str, graph_input: dict[str, Any]) -> str:
    response = httpx.post(
        f"{base}/threads/{thread_id}/runs",
        json={"assistant_id": assistant_id, "input": graph_input, "multitask_strategy": "enqueue"},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["run_id"])


def _run(base: str, thread_id: str, run_id: str) -> dict[str, Any]:
    response = httpx.get(f"{base}/threads/{thread_id}/runs/{run_id}")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _wait_for_status(
    base: str, thread_id: str, run_id: str, statuses: set[str], timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = _run(base, thread_id, run_id)
        if run["status"] in statuses:
            return run
        assert time.monotonic() < deadline, f"run stayed {run['status']}, wanted {statuses}"
        time.sleep(0.05)


def _wait_for_next(base: str, thread_id: str, next_nodes: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(f"{base}/threads/{thread_id}/state").json()["next"] != next_nodes:
        assert time.monotonic() < deadline, f"the thread never reached {next_nodes}"
        time.sleep(0.02)


def _values(events: list[SseEvent]) -> list[Any]:
    return [event.data for event in events if event.event == "values"]


async def test_a_run_created_on_one_api_streams_to_clients_of_both(topology: Topology) -> None:
    thread_id = _new_thread(topology.a)
    with (
        stead_worker(GRAPHS_CONFIG, env=topology.env),
        stead_worker(GRAPHS_CONFIG, env=topology.env),
    ):
        async with httpx.AsyncClient(timeout=30) as http:
            body = {"assistant_id": "pausing", "input": {"pause": 1.5}, "stream_mode": "values"}
            async with http.stream(
                "POST", f"{topology.a}/threads/{thread_id}/runs/stream", json=body
            ) as on_a:
                assert on_a.status_code == 200
                run_id = on_a.headers["content-location"].rstrip("/").split("/")[-1]
                _wait_for_next(topology.a, thread_id, ["two"], timeout=20)
                joined = asyncio.create_task(
                    http.get(f"{topology.b}/threads/{thread_id}/runs/{run_id}/stream")
                )
                raw_a = await on_a.aread()
            on_b = await asyncio.wait_for(joined, timeout=20)
    assert on_b.status_code == 200
    events_a, events_b = parse_events(raw_a), parse_events(on_b.content)
    assert events_a[0].event == "metadata" and events_a[0].data["run_id"] == run_id
    assert _values(events_a)[-1]["steps"] == ["one", "two", "three"]
    # The joiner came in during node two: it sees the rest of the run, then the stream ends.
    assert _values(events_b) and _values(events_b)[-1]["steps"] == ["one", "two", "three"]
    assert _run(topology.b, thread_id, run_id)["status"] == "success"


def test_a_cancel_sent_to_one_api_stops_a_run_created_on_the_other(topology: Topology) -> None:
    thread_id = _new_thread(topology.a)
    with (
        stead_worker(GRAPHS_CONFIG, env=topology.env),
        stead_worker(GRAPHS_CONFIG, env=topology.env),
    ):
        run_id = _create_run(topology.a, thread_id, "slow", {"seconds": 30})
        _wait_for_status(topology.a, thread_id, run_id, {"running"}, timeout=20)
        cancel = httpx.post(f"{topology.b}/threads/{thread_id}/runs/{run_id}/cancel")
        assert cancel.status_code == 202, cancel.text
        run = _wait_for_status(topology.a, thread_id, run_id, {"interrupted"}, timeout=5)
    assert run["status"] == "interrupted"
    assert httpx.get(f"{topology.a}/threads/{thread_id}").json()["status"] != "busy"


def test_runs_of_one_thread_never_execute_at_once_across_workers(topology: Topology) -> None:
    thread_id = _new_thread(topology.a)
    with (
        stead_worker(GRAPHS_CONFIG, env=topology.env),
        stead_worker(GRAPHS_CONFIG, env=topology.env),
    ):
        apis = [topology.a, topology.b]
        run_ids = [_create_run(apis[i % 2], thread_id, "slow", {"seconds": 0.3}) for i in range(6)]
        most_running = 0
        deadline = time.monotonic() + 30
        while True:
            runs = httpx.get(f"{topology.a}/threads/{thread_id}/runs?limit=100").json()
            statuses = [run["status"] for run in runs]
            most_running = max(most_running, statuses.count("running"))
            if all(status not in ("pending", "running") for status in statuses):
                break
            assert time.monotonic() < deadline, f"the runs never finished: {statuses}"
            time.sleep(0.02)
    assert most_running == 1
    assert sorted(run["run_id"] for run in runs) == sorted(run_ids)
    assert statuses == ["success"] * len(run_ids)


def test_a_killed_workers_run_continues_on_another_from_its_checkpoint(
    topology: Topology,
) -> None:
    one_slot = {**topology.env, "N_JOBS_PER_WORKER": "1"}
    with ExitStack() as stack:
        stack.enter_context(stead_worker(GRAPHS_CONFIG, env=one_slot))
        # The surviving worker is busy until the kill, so the run below can only go to the
        # worker to be killed, however slowly that one starts; the cancel then frees it.
        blocker_thread = _new_thread(topology.a)
        blocker = _create_run(topology.a, blocker_thread, "slow", {"seconds": 120})
        _wait_for_status(topology.a, blocker_thread, blocker, {"running"}, timeout=20)
        doomed = stack.enter_context(stead_worker_process(GRAPHS_CONFIG, env=one_slot))
        thread_id = _new_thread(topology.a)
        run_id = _create_run(topology.a, thread_id, "pausing", {"pause": 1})
        _wait_for_next(topology.a, thread_id, ["two"], timeout=20)
        doomed.process.send_signal(signal.SIGKILL)
        doomed.process.wait(timeout=10)
        cancel = httpx.post(f"{topology.a}/threads/{blocker_thread}/runs/{blocker}/cancel")
        assert cancel.status_code == 202
        run = _wait_for_status(topology.a, thread_id, run_id, {"success", "error"}, timeout=30)
    assert run["status"] == "success"
    state = httpx.get(f"{topology.a}/threads/{thread_id}/state").json()
    assert state["values"]["steps"] == ["one", "two", "three"]
    assert state["metadata"]["run_attempt"] == 2
    assert httpx.get(f"{topology.a}/threads/{thread_id}").json()["status"] == "idle"


def test_a_stopped_workers_run_goes_back_to_the_queue_at_once(topology: Topology) -> None:
    # A long lease: only the stopping worker itself can hand the run back this quickly.
    env = {**topology.env, "BG_JOB_LEASE_SECS": "60"}
    with ExitStack() as stack:
        stopping = stack.enter_context(
            stead_worker_process(
                GRAPHS_CONFIG, env={**env, "BG_JOB_SHUTDOWN_GRACE_PERIOD_SECS": "0.5"}
            )
        )
        thread_id = _new_thread(topology.a)
        run_id = _create_run(topology.a, thread_id, "slow", {"seconds": 5})
        _wait_for_status(topology.a, thread_id, run_id, {"running"}, timeout=20)
        stack.enter_context(stead_worker(GRAPHS_CONFIG, env=env))
        assert _run(topology.a, thread_id, run_id)["status"] == "running"
        stopping.process.send_signal(signal.SIGTERM)
        assert stopping.process.wait(timeout=10) == 0
        run = _wait_for_status(topology.a, thread_id, run_id, {"success", "error"}, timeout=12)
    assert run["status"] == "success"
    state = httpx.get(f"{topology.a}/threads/{thread_id}/state").json()
    assert state["values"]["done"] is True
    assert state["metadata"]["run_attempt"] == 2


def test_a_taken_over_attempt_writes_no_more_checkpoints(topology: Topology) -> None:
    # A long lease: the worker does not renew (and so notice the takeover) before node two ends.
    env = {**topology.env, "BG_JOB_LEASE_SECS": "60", "N_JOBS_PER_WORKER": "1"}
    with stead_worker(GRAPHS_CONFIG, env=env):
        thread_id = _new_thread(topology.a)
        run_id = _create_run(topology.a, thread_id, "pausing", {"pause": 2})
        _wait_for_next(topology.a, thread_id, ["two"], timeout=20)
        checkpoints = _history_length(topology.a, thread_id)
        _take_over(topology.env["DATABASE_URI"], run_id)
        # The worker's one slot is free once the stale attempt has stopped: then this run runs.
        other_thread = _new_thread(topology.a)
        probe = _create_run(topology.a, other_thread, "echo", {"text": "after"})
        _wait_for_status(topology.a, other_thread, probe, {"success"}, timeout=20)
    assert _history_length(topology.a, thread_id) == checkpoints
    state = httpx.get(f"{topology.a}/threads/{thread_id}/state").json()
    assert state["values"]["steps"] == ["one"] and state["next"] == ["two"]
    # Nothing recorded for the stale attempt: the run belongs to the attempt that took it over.
    assert _run(topology.a, thread_id, run_id)["status"] == "running"


def _history_length(base: str, thread_id: str) -> int:
    response = httpx.post(f"{base}/threads/{thread_id}/history", json={"limit": 100})
    assert response.status_code == 200, response.text
    return len(response.json())


def _take_over(database_uri: str, run_id: str) -> None:
    """What the reaper and another worker's claim do to the row of a run whose lease expired."""
    with psycopg.connect(database_uri) as conn:
        conn.execute(
            "UPDATE run SET attempt = attempt + 1, lease_expires_at = now() + interval '1 hour' "
            "WHERE run_id = %s AND status = 'running'",
            (run_id,),
        )


async def test_the_thread_protocol_crosses_api_replicas_and_workers(topology: Topology) -> None:
    thread_id = new_thread_id()
    question = {"messages": [{"role": "user", "content": "across replicas"}]}
    with (
        stead_worker(GRAPHS_CONFIG, env=topology.env),
        stead_worker(GRAPHS_CONFIG, env=topology.env),
    ):
        async with (
            httpx.AsyncClient(base_url=topology.a, timeout=30) as a,
            httpx.AsyncClient(base_url=topology.b, timeout=30) as b,
            socket(topology.b, thread_id) as on_b,
        ):
            subscribed = await on_b.send("subscription.subscribe", {"channels": EVERY_CHANNEL})
            assert subscribed["type"] == "success"
            async with event_stream(a, thread_id) as on_a:
                await start_run(b, thread_id, "protocol", question)
                first = await on_a.until(ended())
                interrupt_id = first[-2].data["params"]["data"]["interrupt_id"]
                respond = {"interrupt_id": interrupt_id, "namespace": [], "response": "ok"}
                assert (await command(a, thread_id, "input.respond", respond))["type"] == "success"
                await on_a.until(ended(2))
            await on_b.until(
                lambda m: (
                    m.get("method") == "lifecycle"
                    and m["params"]["namespace"] == []
                    and m["params"]["data"]["event"] == "completed"
                )
            )
            # A third client resumes on replica a after the first run's last event.
            since = first[-1].data["seq"]
            async with event_stream(a, thread_id, since=since) as resumed:
                await resumed.until(ended())
    sse = events_of(on_a)
    assert [event["seq"] for event in sse] == list(range(1, len(sse) + 1))
    # The same events, with the same ids, reach both replicas over both transports.
    assert on_b.events() == sse
    assert events_of(resumed) == [event for event in sse if event["seq"] > since]
    assert root_lifecycle(sse) == ["running", "interrupted", "running", "completed"]


def test_a_worker_serves_its_own_metrics_and_readiness_and_the_apis_the_whole_queue(
    topology: Topology,
) -> None:
    """Worker gauges are per process, queue gauges come from the database: an API replica with
    no run slots still reports the runs that a worker executes."""
    with stead_worker(GRAPHS_CONFIG, env=topology.env) as probe:
        thread_id = _new_thread(topology.a)
        run_id = _create_run(topology.a, thread_id, "slow", {"seconds": 30})
        try:
            _wait_for_status(topology.a, thread_id, run_id, {"running"}, timeout=10)
            worker = httpx.get(f"{probe}/metrics")
            assert worker.status_code == 200
            assert "\nlg_api_workers_max 10.0\n" in worker.text
            assert "\nlg_api_workers_active 1.0\n" in worker.text
            assert httpx.get(f"{probe}/ready").json()["checks"]["redis"] == "ok"
            api = httpx.get(f"{topology.b}/metrics", params={"format": "json"}).json()
            assert api["workers"] == {"max": 0, "active": 0, "available": 0}
            assert api["queue"]["n_running"] >= 1
        finally:
            httpx.post(f"{topology.a}/threads/{thread_id}/runs/{run_id}/cancel")


def _shout(base: str, assistant_id: str, thread_id: str | None = None) -> httpx.Response:
    """A run of the `factory` graph, whose output ends with its assistant's `suffix`."""
    path = "/runs/wait" if thread_id is None else f"/threads/{thread_id}/runs/wait"
    body = {"assistant_id": assistant_id, "input": {"text": "hi"}}
    return httpx.post(f"{base}{path}", json=body, timeout=30)


def _thread_count(base: str) -> int:
    return int(httpx.post(f"{base}/threads/count", json={}).json())


def test_an_assistant_changed_through_one_api_is_what_the_others_next_runs_use(
    topology: Topology,
) -> None:
    """Each API process keeps the assistants its runs were built from, and a run's INSERT
    checks that its assistant is unchanged: a change made through another replica is never
    missed, by a stateless run or a run on a thread, and a deleted assistant stores no run."""
    a, b = topology.a, topology.b
    created = httpx.post(
        f"{a}/assistants", json={"graph_id": "factory", "config": {"configurable": {"suffix": "?"}}}
    )
    assert created.status_code == 200, created.text
    assistant_id = created.json()["assistant_id"]
    with stead_worker(GRAPHS_CONFIG, env=topology.env):
        thread_id = _new_thread(a)
        assert _shout(a, assistant_id).json() == {"text": "HI?"}
        assert _shout(a, assistant_id, thread_id).json() == {"text": "HI?"}
        # The first run after each change finds a's copy stale: a stateless run, then a run on
        # the thread (the next one finds the copy the first read again).
        for suffix, threads in (("!!", (None, thread_id)), ("#", (thread_id, None))):
            patched = httpx.patch(
                f"{b}/assistants/{assistant_id}",
                json={"config": {"configurable": {"suffix": suffix}}},
            )
            assert patched.status_code == 200, patched.text
            for on in threads:
                assert _shout(a, assistant_id, on).json() == {"text": "HI" + suffix}
        threads_before = _thread_count(a)
        assert httpx.delete(f"{b}/assistants/{assistant_id}").status_code == 204
        assert _shout(a, assistant_id).status_code == 404
        assert _shout(a, assistant_id, thread_id).status_code == 404
        assert _thread_count(a) == threads_before


def test_an_api_holds_no_copy_of_the_input_of_a_run_it_waits_on(topology: Topology) -> None:
    """The request follows its run without the run's input, which the stored row and the worker
    hold: an API process held a 20 MiB input, parsed, for as long as the run took."""
    with stead_worker(GRAPHS_CONFIG, env=topology.env):
        grown = mib_held_while_a_large_run_sleeps(topology.a, topology.a_pid)
    assert grown < 10, f"the API held {grown:.0f} MiB while a run with a 20 MiB input slept"


def test_an_api_holds_a_large_values_event_once_while_its_run_pauses(topology: Topology) -> None:
    """A waited run keeps its latest values event, 20 MiB here, and nothing more while the run
    pauses: the connection that read the event went with its buffer (hiredis kept it until the
    stream's next reply, a second copy for as long as the run was quiet)."""
    with stead_worker(GRAPHS_CONFIG, env=topology.env):
        grown = mib_held_while_a_large_state_pauses(topology.a, topology.a_pid, topology.b)
    assert grown < 1.5 * LARGE_INPUT_MIB, f"the API held {grown:.0f} MiB while the run paused"
