"""Resumable run streams (`stream_resumable`): event ids, `Last-Event-ID` replay, the replay
buffer's TTL, and the SDK's own reconnect after a connection cut mid-run.

Reference: agent-server-api.md §3.1 (`id:` after `data:`), §3.5, §3.6, §10 item 8.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.support.proxy import CuttingProxy
from tests.support.servers import StartedServer, stead_server
from tests.support.sse import (
    OpenStream,
    SseEvent,
    assert_increasing_ids,
    parse_events,
    read_stream,
)

GRAPHS_CONFIG = Path(__file__).parents[1] / "graphs" / "langgraph.json"
STEPS = {"assistant_id": "steps", "input": {"steps": []}, "stream_mode": ["values", "updates"]}
STEPS_EVENTS = ["metadata", "values", "updates", "values", "updates", "values", "updates", "values"]
SLOW_EVENTS = ["metadata", "values", "updates", "values"]


async def new_thread(http: httpx.AsyncClient) -> str:
    return str((await http.post("/threads", json={})).json()["thread_id"])


async def stream_run(
    http: httpx.AsyncClient, thread_id: str, body: dict[str, Any]
) -> tuple[httpx.Response, list[SseEvent]]:
    return await read_stream(http, "POST", f"/threads/{thread_id}/runs/stream", json=body)


async def join(
    http: httpx.AsyncClient, location: str, last_event_id: str | None = None, **params: Any
) -> list[SseEvent]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    response, events = await read_stream(http, "GET", location, headers=headers, params=params)
    assert response.status_code == 200, response.text
    return events


async def first_events(response: httpx.Response, count: int) -> list[SseEvent]:
    raw = b""
    async for chunk in response.aiter_raw():
        raw += chunk
        events = parse_events(raw.rpartition(b"\r\n\r\n")[0] + b"\r\n\r\n")
        if len(events) >= count:
            return events[:count]
    raise AssertionError(f"the stream ended after {raw!r}")


def names(events: list[SseEvent]) -> list[str]:
    return [event.event for event in events]


async def wait_for_status(http: httpx.AsyncClient, run_path: str, statuses: set[str]) -> str:
    deadline = time.monotonic() + 20
    while (status := (await http.get(run_path)).json()["status"]) not in statuses:
        assert time.monotonic() < deadline, f"run stayed {status}"
        await asyncio.sleep(0.05)
    return str(status)


async def test_events_carry_ids_only_when_the_run_is_resumable(http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(http)
    _, resumable = await stream_run(http, thread_id, {**STEPS, "stream_resumable": True})
    _, plain = await stream_run(http, thread_id, STEPS)

    assert names(resumable) == STEPS_EVENTS
    assert_increasing_ids(resumable)
    assert names(plain) == STEPS_EVENTS
    assert [event.id for event in plain] == [None] * len(STEPS_EVENTS)


@pytest.mark.parametrize("from_start", ["-", "-1", "0-0"])
async def test_from_start_ids_replay_a_finished_run_whole(
    http: httpx.AsyncClient, from_start: str
) -> None:
    thread_id = await new_thread(http)
    response, original = await stream_run(http, thread_id, {**STEPS, "stream_resumable": True})

    replayed = await join(http, response.headers["location"], from_start)

    assert replayed == original


async def test_replay_after_an_id_gives_exactly_the_events_after_it(
    http: httpx.AsyncClient,
) -> None:
    thread_id = await new_thread(http)
    response, original = await stream_run(http, thread_id, {**STEPS, "stream_resumable": True})
    location = response.headers["location"]

    for seen in range(len(original)):
        assert await join(http, location, original[seen].id) == original[seen + 1 :]


async def test_replay_honours_the_stream_mode_filter(http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(http)
    response, original = await stream_run(http, thread_id, {**STEPS, "stream_resumable": True})

    updates = await join(http, response.headers["location"], "-", stream_mode="updates")

    assert [event for event in updates if event.event == "updates"] == [
        event for event in original if event.event == "updates"
    ]
    assert set(names(updates)) <= {"metadata", "updates"}


async def test_a_finished_run_is_not_replayed_without_a_last_event_id(
    http: httpx.AsyncClient,
) -> None:
    thread_id = await new_thread(http)
    response, _ = await stream_run(http, thread_id, {**STEPS, "stream_resumable": True})

    assert await join(http, response.headers["location"]) == []


async def test_a_run_that_is_not_resumable_keeps_nothing(http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(http)
    response, _ = await stream_run(http, thread_id, STEPS)

    assert await join(http, response.headers["location"], "-") == []


async def test_reconnect_gets_the_missed_events_then_the_live_tail(
    http: httpx.AsyncClient,
) -> None:
    thread_id = await new_thread(http)
    body = {**STEPS, "assistant_id": "slow", "input": {"seconds": 2}, "stream_resumable": True}
    async with http.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as response:
        location = response.headers["location"]
        run_path = response.headers["content-location"]
        # Metadata and the input values, then hang up while the node sleeps.
        first = await first_events(response, 2)
    assert names(first) == SLOW_EVENTS[:2]
    assert await wait_for_status(http, run_path, {"running", "success"}) == "running"

    rest = await join(http, location, first[0].id)

    assert names(rest) == SLOW_EVENTS[1:]
    assert rest[0].id == first[1].id
    assert rest[-1].data == {"seconds": 2, "done": True}
    whole = await join(http, location, "-")
    assert [event.id for event in whole] == [first[0].id, *(event.id for event in rest)]
    assert_increasing_ids(whole)


async def test_invalid_last_event_id_is_refused(http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(http)
    response, _ = await stream_run(http, thread_id, {**STEPS, "stream_resumable": True})

    refused = await http.get(response.headers["location"], headers={"Last-Event-ID": "abc"})

    assert refused.status_code == 422
    assert refused.json() == {"detail": "Invalid last-event-id: must be a valid Redis stream ID"}


async def test_sdk_recovers_a_stream_cut_mid_run(
    server: StartedServer, client: LangGraphClient
) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    async with CuttingProxy(server.port) as proxy:
        through_proxy = get_client(url=proxy.url, api_key=None)
        try:
            parts = [
                part
                async for part in through_proxy.runs.stream(
                    thread_id,
                    "slow",
                    input={"seconds": 2},
                    stream_mode=["values", "updates"],
                    stream_resumable=True,
                )
            ]
        finally:
            await through_proxy.http.client.aclose()

    assert b"event: metadata" in proxy.cut_response
    assert b"event: updates" not in proxy.cut_response
    assert proxy.connections >= 2
    assert [part.event for part in parts] == SLOW_EVENTS
    assert len({part.id for part in parts}) == len(SLOW_EVENTS)
    assert parts[-1].data == {"seconds": 2, "done": True}


async def test_the_buffer_is_dropped_after_the_ttl(tmp_path: Path) -> None:
    with stead_server(
        GRAPHS_CONFIG, tmp_path / "data", env={"RESUMABLE_STREAM_TTL_SECONDS": "1"}
    ) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            thread_id = await new_thread(http)
            response, original = await stream_run(
                http, thread_id, {**STEPS, "stream_resumable": True}
            )
            location = response.headers["location"]
            assert await join(http, location, "-") == original

            deadline = time.monotonic() + 20
            while await join(http, location, "-"):
                assert time.monotonic() < deadline, "the replay buffer outlived its TTL"
                await asyncio.sleep(0.2)

            # The thread's copy went too: the first event a replaying thread stream sees is new.
            async with OpenStream(
                http,
                f"/threads/{thread_id}/stream",
                params={"stream_modes": "run_modes,state_update"},
                headers={"Last-Event-ID": "-"},
            ) as thread_stream:
                await http.post(f"/threads/{thread_id}/state", json={"values": {"steps": ["x"]}})
                events = await thread_stream.until(lambda events: len(events) > 0)
            assert names(events) == ["state_update"]
