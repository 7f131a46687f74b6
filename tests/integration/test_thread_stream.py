"""The thread stream, `GET /threads/{thread_id}/stream`: every run of a thread as it happens
(`run_modes`), only run starts and ends (`lifecycle`), state updates (`state_update`), replay of
resumable runs with `Last-Event-ID`, and the SDK's `threads.join_stream`.

Reference: agent-server-api.md §1.3, §3.7, §10 item 17.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import StreamPart

from tests.support.sse import OpenStream, SseEvent, assert_increasing_ids, read_stream

STEPS_INPUT = {"steps": []}
STEPS_UPDATES = [
    {"one": {"steps": ["one"]}},
    {"two": {"steps": ["two"]}},
    {"three": {"steps": ["three"]}},
]


async def new_thread(http: httpx.AsyncClient) -> str:
    return str((await http.post("/threads", json={})).json()["thread_id"])


async def wait_run(http: httpx.AsyncClient, thread_id: str, **body: Any) -> str:
    """Run `steps` to the end; its id."""
    async with http.stream(
        "POST",
        f"/threads/{thread_id}/runs/wait",
        json={"assistant_id": "steps", "input": STEPS_INPUT, **body},
    ) as response:
        await response.aread()
    assert response.status_code == 200, response.text
    return response.headers["content-location"].rsplit("/", 1)[1]


def run_done(run_id: str) -> SseEvent:
    return SseEvent("metadata", {"status": "run_done", "run_id": run_id}, None)


def without_ids(events: list[SseEvent]) -> list[SseEvent]:
    return [SseEvent(event.event, event.data, None) for event in events]


def runs_done(count: int) -> Any:
    return lambda events: sum(event.data.get("status") == "run_done" for event in events) >= count


async def test_run_modes_forwards_every_event_of_consecutive_runs(
    http: httpx.AsyncClient,
) -> None:
    thread_id = await new_thread(http)
    async with OpenStream(http, f"/threads/{thread_id}/stream") as stream:
        first = await wait_run(http, thread_id, stream_mode=["updates"])
        second = await wait_run(http, thread_id, stream_mode=["values"], stream_resumable=True)
        events = await stream.until(runs_done(2))

    assert stream.response is not None
    assert stream.response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert_increasing_ids(events)
    assert without_ids(events) == [
        SseEvent("metadata", {"run_id": first, "attempt": 1}, None),
        *(SseEvent("updates", update, None) for update in STEPS_UPDATES),
        run_done(first),
        SseEvent("metadata", {"run_id": second, "attempt": 1}, None),
        SseEvent("values", {"steps": ["one", "two", "three"]}, None),
        SseEvent("values", {"steps": ["one", "two", "three", "one"]}, None),
        SseEvent("values", {"steps": ["one", "two", "three", "one", "two"]}, None),
        SseEvent("values", {"steps": ["one", "two", "three", "one", "two", "three"]}, None),
        run_done(second),
    ]


async def test_lifecycle_is_only_run_starts_and_ends(http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(http)
    params = {"stream_modes": "lifecycle"}
    async with OpenStream(http, f"/threads/{thread_id}/stream", params=params) as stream:
        first = await wait_run(http, thread_id)
        await http.post(f"/threads/{thread_id}/state", json={"values": {"steps": ["x"]}})
        second = await wait_run(http, thread_id)
        events = await stream.until(runs_done(2))

    assert without_ids(events) == [
        SseEvent("metadata", {"run_id": first, "attempt": 1}, None),
        run_done(first),
        SseEvent("metadata", {"run_id": second, "attempt": 1}, None),
        run_done(second),
    ]


async def test_state_update_follows_an_update_of_the_state(http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(http)
    await wait_run(http, thread_id)
    params = {"stream_modes": "state_update"}
    async with OpenStream(http, f"/threads/{thread_id}/stream", params=params) as stream:
        await wait_run(http, thread_id)
        updated = await http.post(f"/threads/{thread_id}/state", json={"values": {"steps": ["x"]}})
        events = await stream.until(lambda events: len(events) > 0)

    state = (await http.get(f"/threads/{thread_id}/state")).json()
    assert [event.event for event in events] == ["state_update"]
    assert events[0].id is not None
    assert events[0].data == {"state": state, "thread_id": thread_id}
    assert state["checkpoint_id"] == updated.json()["checkpoint_id"]
    assert state["values"]["steps"][-1] == "x"


@pytest.mark.parametrize(
    "params",
    [
        {"stream_modes": "lifecycle,state_update"},
        [("stream_modes", "lifecycle"), ("stream_modes", "state_update")],
        [("stream_mode", "lifecycle"), ("stream_mode", "state_update")],
    ],
    ids=["comma-list", "repeated", "sdk-parameter"],
)
async def test_modes_combine_as_a_list_repeated_or_under_the_sdk_name(
    http: httpx.AsyncClient, params: Any
) -> None:
    thread_id = await new_thread(http)
    async with OpenStream(http, f"/threads/{thread_id}/stream", params=params) as stream:
        run_id = await wait_run(http, thread_id)
        await http.post(f"/threads/{thread_id}/state", json={"values": {"steps": ["x"]}})
        events = await stream.until(lambda events: len(events) == 3)

    assert [event.event for event in events] == ["metadata", "metadata", "state_update"]
    assert events[1].data == {"status": "run_done", "run_id": run_id}


@contextlib.asynccontextmanager
async def sdk_thread_stream(
    client: LangGraphClient, thread_id: str, **kwargs: Any
) -> AsyncIterator[list[StreamPart]]:
    """`client.threads.join_stream` read in the background; the list fills as parts come."""
    parts: list[StreamPart] = []

    async def read() -> None:
        async for part in await client.threads.join_stream(thread_id, **kwargs):
            parts.append(part)

    task = asyncio.create_task(read())
    try:
        yield parts
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def first_whole_run(parts: list[StreamPart]) -> list[StreamPart] | None:
    """The parts of the first run seen from its start to its `run_done`, both included."""
    for index, part in enumerate(parts):
        if part.event == "metadata" and "attempt" in part.data:
            done = {"status": "run_done", "run_id": part.data["run_id"]}
            ends = [i for i, later in enumerate(parts) if i > index and later.data == done]
            if ends:
                return parts[index : ends[0] + 1]
    return None


async def whole_run_through(
    http: httpx.AsyncClient, thread_id: str, parts: list[StreamPart], **body: Any
) -> list[StreamPart]:
    """Run until the SDK stream has seen one run whole: it gives no sign of being open."""
    async with asyncio.timeout(20):
        while (whole := first_whole_run(parts)) is None:
            await wait_run(http, thread_id, **body)
            await asyncio.sleep(0.05)
    return whole


async def test_sdk_join_stream_with_stream_mode(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    async with sdk_thread_stream(client, thread_id, stream_mode="lifecycle") as parts:
        whole = await whole_run_through(http, thread_id, parts)

    run_id = whole[0].data["run_id"]
    assert [part.data for part in whole] == [
        {"run_id": run_id, "attempt": 1},
        {"status": "run_done", "run_id": run_id},
    ]
    assert {part.event for part in parts} == {"metadata"}
    assert all(part.id for part in parts)


async def test_sdk_join_stream_default_is_run_modes(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    async with sdk_thread_stream(client, thread_id) as parts:
        whole = await whole_run_through(http, thread_id, parts, stream_mode=["updates"])

    assert [part.event for part in whole] == [
        "metadata",
        "updates",
        "updates",
        "updates",
        "metadata",
    ]
    assert [part.data for part in whole[1:-1]] == STEPS_UPDATES


async def test_last_event_id_replays_resumable_runs_only(http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(http)
    await wait_run(http, thread_id, stream_mode=["updates"])
    kept = await wait_run(http, thread_id, stream_mode=["updates"], stream_resumable=True)
    await http.post(f"/threads/{thread_id}/state", json={"values": {"steps": ["x"]}})
    path = f"/threads/{thread_id}/stream"
    modes = {"stream_modes": "run_modes,state_update"}

    async with OpenStream(http, path, params=modes, headers={"Last-Event-ID": "-"}) as stream:
        replayed = await stream.until(runs_done(1))
    async with OpenStream(
        http, path, params=modes, headers={"Last-Event-ID": replayed[1].id or ""}
    ) as stream:
        rest = await stream.until(runs_done(1))

    assert without_ids(replayed) == [
        SseEvent("metadata", {"run_id": kept, "attempt": 1}, None),
        *(SseEvent("updates", update, None) for update in STEPS_UPDATES),
        run_done(kept),
    ]
    assert rest == replayed[2:]


async def test_thread_stream_replays_then_goes_live(http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(http)
    before = await wait_run(http, thread_id, stream_mode=["updates"], stream_resumable=True)
    path = f"/threads/{thread_id}/stream"
    async with OpenStream(
        http, path, params={"stream_modes": "lifecycle"}, headers={"Last-Event-ID": "0-0"}
    ) as stream:
        after = await wait_run(http, thread_id)
        events = await stream.until(runs_done(2))

    assert_increasing_ids(events)
    assert [event.data.get("run_id") for event in events] == [before, before, after, after]


@pytest.mark.parametrize("last_event_id", ["-1", "abc", "1-x"])
async def test_invalid_last_event_id_is_refused(
    http: httpx.AsyncClient, last_event_id: str
) -> None:
    thread_id = await new_thread(http)
    response = await http.get(
        f"/threads/{thread_id}/stream", headers={"Last-Event-ID": last_event_id}
    )
    assert response.status_code == 422
    assert response.json() == {"detail": "Invalid last-event-id: must be a valid Redis stream ID"}


async def test_unknown_mode_is_refused(http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(http)
    response = await http.get(f"/threads/{thread_id}/stream", params={"stream_modes": "values"})
    assert response.status_code == 422
    assert response.json() == {"detail": "Invalid stream mode: values"}


async def test_unknown_and_deleted_threads_are_not_found(http: httpx.AsyncClient) -> None:
    unknown = str(uuid.uuid4())
    deleted = await new_thread(http)
    assert (await http.delete(f"/threads/{deleted}")).status_code == 204

    for thread_id in (unknown, deleted):
        response = await http.get(f"/threads/{thread_id}/stream")
        assert response.status_code == 404
        assert response.json() == {"detail": f"Thread with ID {thread_id} not found"}
    assert (await http.get("/threads/not-a-uuid/stream")).status_code == 422


async def test_run_streams_of_the_thread_keep_their_own_framing(http: httpx.AsyncClient) -> None:
    """A thread stream listening does not give ids to a run stream that is not resumable."""
    thread_id = await new_thread(http)
    async with OpenStream(http, f"/threads/{thread_id}/stream") as stream:
        _, events = await read_stream(
            http,
            "POST",
            f"/threads/{thread_id}/runs/stream",
            json={"assistant_id": "steps", "input": STEPS_INPUT, "stream_mode": ["updates"]},
        )
        thread_events = await stream.until(runs_done(1))

    assert [event.id for event in events] == [None] * 4
    assert without_ids(thread_events[:-1]) == events
