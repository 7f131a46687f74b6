"""Run streams (`POST …/runs/stream`, `GET …/runs/{run_id}/stream`): SSE framing, every stream mode,
subgraphs, errors, interrupts, joins, disconnects and concurrency.

Framing is checked on the raw bytes with httpx; client behaviour through `client.runs.stream`.
Reference: agent-server-api.md §3 and the official server's captures in /work/notes/probe/out/.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
import warnings
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient

HI = {"messages": [{"role": "user", "content": "hi"}]}
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
TERMINAL = {"success", "error", "interrupted", "timeout"}

Event = tuple[str, Any]


# --------------------------------------------------------------------------------------------
# helpers


def parse_sse(raw: bytes) -> list[Event]:
    """Split a CRLF-framed SSE body into (event, data) pairs, skipping comment-only blocks."""
    events: list[Event] = []
    for block in raw.split(b"\r\n\r\n"):
        if not block:
            continue
        lines = block.split(b"\r\n")
        if all(line.startswith(b":") for line in lines):
            continue  # heartbeat
        fields: dict[bytes, list[bytes]] = {}
        for line in lines:
            key, sep, value = line.partition(b": ")
            assert sep, f"malformed SSE line {line!r}"
            fields.setdefault(key, []).append(value)
        assert list(fields) == [b"event", b"data"], f"unexpected fields in {block!r}"
        assert len(fields[b"data"]) == 1, f"more than one data line in {block!r}"
        events.append((fields[b"event"][0].decode(), json.loads(fields[b"data"][0])))
    return events


async def raw_stream(
    http: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> tuple[httpx.Response, bytes]:
    async with http.stream("POST", path, json=body) as response:
        raw = await response.aread()
    return response, raw


async def new_thread(client: LangGraphClient) -> str:
    return (await client.threads.create())["thread_id"]


async def sdk_events(
    client: LangGraphClient, thread_id: str | None, assistant: str, **kw
) -> list[Event]:
    return [
        (part.event, part.data) async for part in client.runs.stream(thread_id, assistant, **kw)
    ]


def of(events: list[Event], name: str) -> list[Any]:
    return [data for event, data in events if event == name]


def names(events: list[Event]) -> list[str]:
    return [event for event, _ in events]


def collapse(seq: list[str]) -> list[str]:
    """Consecutive duplicates removed: ["a", "a", "b", "a"] -> ["a", "b", "a"]."""
    return [item for i, item in enumerate(seq) if i == 0 or seq[i - 1] != item]


async def wait_for_status(
    http: httpx.AsyncClient, thread_id: str, run_id: str, statuses: set[str], timeout: float = 15
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = (await http.get(f"/threads/{thread_id}/runs/{run_id}")).json()
        if run["status"] in statuses:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {run['status']!r}, wanted one of {statuses}")
        await asyncio.sleep(0.05)


# --------------------------------------------------------------------------------------------
# SSE framing (§3.1)


async def test_stateful_stream_framing_and_headers(
    http: httpx.AsyncClient, client: LangGraphClient
) -> None:
    thread_id = await new_thread(client)
    response, raw = await raw_stream(
        http,
        f"/threads/{thread_id}/runs/stream",
        {
            "assistant_id": "agent",
            "input": HI,
            "stream_mode": ["values", "updates", "messages-tuple", "custom"],
        },
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    content_location = response.headers["content-location"]
    match = re.fullmatch(rf"/threads/{thread_id}/runs/({UUID})", content_location)
    assert match, content_location
    run_id = match.group(1)
    assert response.headers["location"] == f"/threads/{thread_id}/runs/{run_id}/stream"

    # CRLF everywhere: no bare LF or CR, every event ends with a blank line.
    assert raw.endswith(b"\r\n\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    assert raw.startswith(b"event: metadata\r\ndata: ")
    # Not resumable: no ids.
    assert b"\r\nid: " not in raw

    events = parse_sse(raw)
    assert events[0] == ("metadata", {"run_id": run_id, "attempt": 1})
    assert "metadata" not in names(events)[1:]
    assert "end" not in names(events)
    assert set(names(events)) == {"metadata", "values", "updates", "messages", "custom"}

    # The stream only closes once the run is terminal (the SDK reconnects otherwise).
    run = (await http.get(content_location)).json()
    assert run["status"] == "success"


async def test_stateless_stream_headers_and_events(http: httpx.AsyncClient) -> None:
    response, raw = await raw_stream(
        http, "/runs/stream", {"assistant_id": "echo", "input": {"text": "x"}}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    match = re.fullmatch(rf"/runs/({UUID})", response.headers["content-location"])
    assert match, response.headers["content-location"]
    run_id = match.group(1)
    assert response.headers["location"] == f"/runs/{run_id}/stream"
    # The official server sends the input state and the final state, both {"text": "x"}.
    assert parse_sse(raw) == [
        ("metadata", {"run_id": run_id, "attempt": 1}),
        ("values", {"text": "x"}),
        ("values", {"text": "x"}),
    ]


async def test_default_stream_mode_is_values(
    http: httpx.AsyncClient, client: LangGraphClient
) -> None:
    thread_id = await new_thread(client)
    _, raw = await raw_stream(
        http, f"/threads/{thread_id}/runs/stream", {"assistant_id": "steps", "input": {"steps": []}}
    )
    events = parse_sse(raw)
    assert names(events) == ["metadata"] + ["values"] * 4
    assert of(events, "values")[-1] == {"steps": ["one", "two", "three"]}


async def test_sdk_reports_run_created_from_content_location(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    created = []
    events = await sdk_events(
        client, thread_id, "echo", input={"text": "x"}, on_run_created=created.append
    )
    assert len(created) == 1
    assert created[0]["thread_id"] == thread_id
    assert created[0]["run_id"] == events[0][1]["run_id"]


async def test_sdk_stream_of_a_slow_run_does_not_reconnect(client: LangGraphClient) -> None:
    """The SDK reconnects (and warns) if the stream closes while the run is still active."""
    thread_id = await new_thread(client)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        events = await sdk_events(
            client, thread_id, "slow", input={"seconds": 0.3}, stream_mode="updates"
        )
    assert names(events) == ["metadata", "updates"]
    assert of(events, "updates") == [{"sleep": {"done": True}}]


# --------------------------------------------------------------------------------------------
# stream modes (§3.2)


async def test_values_mode_first_is_input_last_is_final(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    events = await sdk_events(client, thread_id, "agent", input=HI, stream_mode="values")
    values = of(events, "values")
    assert len(values) == 2
    assert [(m["type"], m["content"]) for m in values[0]["messages"]] == [("human", "hi")]
    assert [(m["type"], m["content"]) for m in values[-1]["messages"]] == [
        ("human", "hi"),
        ("ai", "Hello there friend"),
    ]
    state = await client.threads.get_state(thread_id)
    assert state["values"] == values[-1]


async def test_updates_mode_is_node_to_output(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    events = await sdk_events(
        client, thread_id, "steps", input={"steps": []}, stream_mode="updates"
    )
    assert names(events) == ["metadata", "updates", "updates", "updates"]
    assert of(events, "updates") == [
        {"one": {"steps": ["one"]}},
        {"two": {"steps": ["two"]}},
        {"three": {"steps": ["three"]}},
    ]


async def test_updates_mode_with_a_message(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    events = await sdk_events(client, thread_id, "agent", input=HI, stream_mode="updates")
    (update,) = of(events, "updates")
    assert list(update) == ["call_model"]
    (message,) = update["call_model"]["messages"]
    assert message["type"] == "ai"
    assert message["content"] == "Hello there friend"


async def test_messages_tuple_mode(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    events = await sdk_events(client, thread_id, "agent", input=HI, stream_mode="messages-tuple")
    assert set(names(events)) == {"metadata", "messages"}
    run_id = events[0][1]["run_id"]
    tuples = of(events, "messages")
    assert len(tuples) > 1  # streamed token by token
    for item in tuples:
        assert isinstance(item, list)
        assert len(item) == 2
        chunk, metadata = item
        assert chunk["type"] == "AIMessageChunk"
        assert metadata["langgraph_node"] == "call_model"
        assert metadata["thread_id"] == thread_id
        assert metadata["run_id"] == run_id
        assert metadata["graph_id"] == "agent"
    assert "".join(chunk["content"] for chunk, _ in tuples) == "Hello there friend"
    assert len({chunk["id"] for chunk, _ in tuples}) == 1


async def test_legacy_messages_mode(client: LangGraphClient) -> None:
    """`messages` (not `messages-tuple`) is the server-side accumulated format of older clients."""
    thread_id = await new_thread(client)
    events = await sdk_events(client, thread_id, "agent", input=HI, stream_mode="messages")
    event_names = set(names(events))
    assert "messages" not in event_names
    assert "messages/metadata" in event_names
    assert "messages/partial" in event_names
    partials = of(events, "messages/partial")
    last = partials[-1]
    assert isinstance(last, list)
    assert last[0]["type"] == "ai"
    assert last[0]["content"] == "Hello there friend"
    (meta,) = of(events, "messages/metadata")
    assert list(meta) == [last[0]["id"]]
    assert meta[last[0]["id"]]["metadata"]["langgraph_node"] == "call_model"


async def test_custom_mode(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    events = await sdk_events(client, thread_id, "agent", input=HI, stream_mode="custom")
    assert events[1:] == [("custom", {"progress": "calling model"})]


async def test_debug_mode(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    events = await sdk_events(client, thread_id, "steps", input={"steps": []}, stream_mode="debug")
    debug = of(events, "debug")
    assert set(names(events)) == {"metadata", "debug"}
    for item in debug:
        assert {"step", "timestamp", "type", "payload"} <= set(item)
    kinds = [item["type"] for item in debug]
    assert kinds.count("checkpoint") == 5
    assert kinds.count("task") == 3
    assert kinds.count("task_result") == 3
    checkpoints = [item for item in debug if item["type"] == "checkpoint"]
    assert [item["step"] for item in checkpoints] == [-1, 0, 1, 2, 3]
    for item in checkpoints:
        assert {"config", "parent_config", "values", "metadata", "next", "tasks"} <= set(
            item["payload"]
        )
    assert checkpoints[-1]["payload"]["next"] == []
    assert checkpoints[-1]["payload"]["values"] == {"steps": ["one", "two", "three"]}
    task_names = [item["payload"]["name"] for item in debug if item["type"] == "task"]
    assert task_names == ["one", "two", "three"]
    results = [item["payload"] for item in debug if item["type"] == "task_result"]
    assert [r["result"] for r in results] == [
        {"steps": ["one"]},
        {"steps": ["two"]},
        {"steps": ["three"]},
    ]


async def test_tasks_mode(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    events = await sdk_events(client, thread_id, "steps", input={"steps": []}, stream_mode="tasks")
    tasks = of(events, "tasks")
    assert set(names(events)) == {"metadata", "tasks"}
    assert len(tasks) == 6
    starts, results = tasks[0::2], tasks[1::2]
    for start, result in zip(starts, results, strict=True):
        assert {"id", "name", "input", "triggers"} <= set(start)
        assert {"id", "name", "error", "result", "interrupts"} <= set(result)
        assert start["id"] == result["id"]
        assert result["error"] is None
        assert result["interrupts"] == []
    assert [s["name"] for s in starts] == ["one", "two", "three"]
    assert [s["input"] for s in starts] == [
        {"steps": []},
        {"steps": ["one"]},
        {"steps": ["one", "two"]},
    ]
    assert [r["result"] for r in results] == [
        {"steps": ["one"]},
        {"steps": ["two"]},
        {"steps": ["three"]},
    ]


async def test_checkpoints_mode(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    events = await sdk_events(
        client, thread_id, "steps", input={"steps": []}, stream_mode="checkpoints"
    )
    checkpoints = of(events, "checkpoints")
    assert set(names(events)) == {"metadata", "checkpoints"}
    assert [c["next"] for c in checkpoints] == [["__start__"], ["one"], ["two"], ["three"], []]
    for item in checkpoints:
        assert {"config", "parent_config", "values", "metadata", "next", "tasks"} <= set(item)
        assert item["config"]["configurable"]["thread_id"] == thread_id
    assert [c["metadata"]["step"] for c in checkpoints] == [-1, 0, 1, 2, 3]
    assert checkpoints[0]["parent_config"] is None
    for previous, current in itertools.pairwise(checkpoints):
        assert (
            current["parent_config"]["configurable"]["checkpoint_id"]
            == previous["config"]["configurable"]["checkpoint_id"]
        )
    assert checkpoints[-1]["values"] == {"steps": ["one", "two", "three"]}
    # The last checkpoint streamed is the thread's current state.
    state = await client.threads.get_state(thread_id)
    assert (
        state["checkpoint"]["checkpoint_id"]
        == (checkpoints[-1]["config"]["configurable"]["checkpoint_id"])
    )


async def test_events_mode(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    events = await sdk_events(client, thread_id, "echo", input={"text": "x"}, stream_mode="events")
    run_id = events[0][1]["run_id"]
    assert set(names(events)) == {"metadata", "events"}
    payloads = of(events, "events")
    for item in payloads:
        assert isinstance(item, dict)
        assert "event" in item
    kinds = [item["event"] for item in payloads]
    assert kinds[0] == "on_chain_start"
    assert "on_chain_end" in kinds
    assert "on_chain_stream" in kinds
    root = payloads[0]
    # The root run is the API run, named after the graph (official: name "echo").
    assert root["run_id"] == run_id
    assert root["name"] == "echo"
    assert root["metadata"]["thread_id"] == thread_id
    assert root["parent_ids"] == []
    assert root["data"]["input"] == {"text": "x"}
    node_events = [item for item in payloads if item["metadata"].get("langgraph_node") == "echo"]
    assert node_events, "no events from the echo node"


async def test_several_modes_at_once(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    events = await sdk_events(
        client,
        thread_id,
        "agent",
        input=HI,
        stream_mode=["values", "updates", "messages-tuple", "custom"],
    )
    # Official order: metadata, input values, custom, message chunks, updates, final values.
    assert collapse(names(events)) == [
        "metadata",
        "values",
        "custom",
        "messages",
        "updates",
        "values",
    ]


async def test_unknown_stream_mode_is_rejected(
    http: httpx.AsyncClient, client: LangGraphClient
) -> None:
    thread_id = await new_thread(client)
    response = await http.post(
        f"/threads/{thread_id}/runs/stream",
        json={"assistant_id": "echo", "input": {}, "stream_mode": ["nope"]},
    )
    assert response.status_code == 422
    assert "detail" in response.json()


# --------------------------------------------------------------------------------------------
# subgraphs (§3.3)


async def test_stream_subgraphs_namespaces_events(
    http: httpx.AsyncClient, client: LangGraphClient
) -> None:
    thread_id = await new_thread(client)
    _, raw = await raw_stream(
        http,
        f"/threads/{thread_id}/runs/stream",
        {
            "assistant_id": "nested",
            "input": {"text": "x"},
            "stream_mode": ["updates"],
            "stream_subgraphs": True,
        },
    )
    events = parse_sse(raw)
    assert len(events) == 4
    assert events[1] == ("updates", {"parent_node": {"text": "x+parent"}})
    name, data = events[2]
    assert re.fullmatch(rf"updates\|child:{UUID}", name), name
    assert data == {"child_node": {"text": "x+parent+child"}}
    assert events[3] == ("updates", {"child": {"text": "x+parent+child"}})


async def test_stream_subgraphs_applies_to_values(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    events = await sdk_events(
        client,
        thread_id,
        "nested",
        input={"text": "x"},
        stream_mode=["values", "updates"],
        stream_subgraphs=True,
    )
    sub = [(event, data) for event, data in events if "|" in event]
    modes = {event.split("|")[0] for event, _ in sub}
    assert modes == {"values", "updates"}
    namespaces = {event.split("|", 1)[1] for event, _ in sub}
    assert len(namespaces) == 1
    assert re.fullmatch(rf"child:{UUID}", namespaces.pop())
    sub_values = [data for event, data in sub if event.startswith("values|")]
    assert sub_values[-1] == {"text": "x+parent+child"}
    assert of(events, "values")[-1] == {"text": "x+parent+child"}


async def test_no_subgraph_events_without_stream_subgraphs(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    events = await sdk_events(
        client, thread_id, "nested", input={"text": "x"}, stream_mode=["values", "updates"]
    )
    assert not [event for event in names(events) if "|" in event]
    assert of(events, "updates") == [
        {"parent_node": {"text": "x+parent"}},
        {"child": {"text": "x+parent+child"}},
    ]


# --------------------------------------------------------------------------------------------
# errors


async def test_graph_error_is_the_last_event(
    http: httpx.AsyncClient, client: LangGraphClient
) -> None:
    thread_id = await new_thread(client)
    response, raw = await raw_stream(
        http,
        f"/threads/{thread_id}/runs/stream",
        {"assistant_id": "failing", "input": {"text": "y"}},
    )
    assert response.status_code == 200
    assert raw.endswith(b'event: error\r\ndata: {"error":"ValueError","message":"boom: y"}\r\n\r\n')
    events = parse_sse(raw)
    assert names(events) == ["metadata", "values", "error"]
    assert events[-1][1] == {"error": "ValueError", "message": "boom: y"}
    run = (await http.get(response.headers["content-location"])).json()
    assert run["status"] == "error"
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "error"


async def test_sdk_yields_error_event_and_stops(client: LangGraphClient) -> None:
    events = await sdk_events(client, None, "failing", input={"text": "z"}, stream_mode="updates")
    assert names(events) == ["metadata", "error"]
    assert events[-1][1] == {"error": "ValueError", "message": "boom: z"}


async def test_stream_request_errors_are_json(http: httpx.AsyncClient) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    response = await http.post(
        f"/threads/{missing}/runs/stream", json={"assistant_id": "echo", "input": {}}
    )
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert "detail" in response.json()


# --------------------------------------------------------------------------------------------
# interrupts


async def test_interrupt_in_values_mode(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    events = await sdk_events(
        client, thread_id, "hitl", input={"text": "hello"}, stream_mode="values"
    )
    assert "error" not in names(events)
    last = of(events, "values")[-1]
    assert last["text"] == "hello"
    (interrupt,) = last["__interrupt__"]
    assert interrupt["value"] == {"question": "approve?"}
    assert isinstance(interrupt["id"], str)
    assert interrupt["id"]

    thread = await client.threads.get(thread_id)
    assert thread["status"] == "interrupted"
    run = (await client.runs.list(thread_id))[0]
    assert run["status"] == "success"

    resumed = await sdk_events(
        client, thread_id, "hitl", command={"resume": "yes"}, stream_mode="values"
    )
    assert of(resumed, "values")[-1] == {"text": "hello:yes", "answer": "yes"}
    assert not any("__interrupt__" in v for v in of(resumed, "values"))


async def test_interrupt_in_updates_mode(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    events = await sdk_events(
        client, thread_id, "hitl", input={"text": "hello"}, stream_mode="updates"
    )
    last = of(events, "updates")[-1]
    assert list(last) == ["__interrupt__"]
    (interrupt,) = last["__interrupt__"]
    assert interrupt["value"] == {"question": "approve?"}
    state = await client.threads.get_state(thread_id)
    assert state["next"] == ["ask"]
    assert [i["id"] for i in state["interrupts"]] == [interrupt["id"]]

    resumed = await sdk_events(
        client, thread_id, "hitl", command={"resume": "ok"}, stream_mode="updates"
    )
    assert of(resumed, "updates") == [
        {"ask": {"answer": "ok"}},
        {"finish": {"text": "hello:ok"}},
    ]


async def test_static_interrupt_before_in_updates_mode(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    events = await sdk_events(
        client,
        thread_id,
        "steps",
        input={"steps": []},
        stream_mode="updates",
        interrupt_before=["two"],
    )
    assert of(events, "updates") == [{"one": {"steps": ["one"]}}, {"__interrupt__": []}]


# --------------------------------------------------------------------------------------------
# join stream (§3.6)


async def _start_slow_run(
    client: LangGraphClient, http: httpx.AsyncClient, seconds: float
) -> tuple[str, str]:
    thread_id = await new_thread(client)
    run = await client.runs.create(
        thread_id, "slow", input={"seconds": seconds}, stream_mode=["values", "updates"]
    )
    await wait_for_status(http, thread_id, run["run_id"], {"running"} | TERMINAL)
    return thread_id, run["run_id"]


def _after_first_step(events: list[Event], seconds: float) -> list[Event]:
    """A join's events from the slow run's first step on. `metadata` and the input's `values`
    come before it: a join sees them only if it lands between the claim and that step."""
    while events and (events[0][0] == "metadata" or events[0] == ("values", {"seconds": seconds})):
        events = events[1:]
    return events


async def test_join_stream_of_running_run(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id, run_id = await _start_slow_run(client, http, seconds=1.0)
    events = [(part.event, part.data) async for part in client.runs.join_stream(thread_id, run_id)]
    run = await client.runs.get(thread_id, run_id)
    assert run["status"] == "success"
    # Events after the join: the node's update and the final values.
    events = _after_first_step(events, seconds=1.0)
    assert names(events) == ["updates", "values"]
    assert events[0][1] == {"sleep": {"done": True}}
    assert events[1][1] == {"seconds": 1.0, "done": True}


async def test_join_stream_with_stream_mode_filter(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id, run_id = await _start_slow_run(client, http, seconds=1.0)
    events = [
        (part.event, part.data)
        async for part in client.runs.join_stream(thread_id, run_id, stream_mode="updates")
    ]
    assert (await client.runs.get(thread_id, run_id))["status"] == "success"
    assert "values" not in names(events)
    assert of(events, "updates") == [{"sleep": {"done": True}}]


async def test_join_stream_with_json_list_stream_mode(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id, run_id = await _start_slow_run(client, http, seconds=0.5)
    async with http.stream(
        "GET",
        f"/threads/{thread_id}/runs/{run_id}/stream",
        params={"stream_mode": '["updates"]'},
    ) as response:
        raw = await response.aread()
    assert parse_sse(raw) == [("updates", {"sleep": {"done": True}})]


async def test_join_stream_of_finished_run_ends_at_once(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "echo", input={"text": "x"})
    await client.runs.join(thread_id, run["run_id"])
    started = time.monotonic()
    events = [part.event async for part in client.runs.join_stream(thread_id, run["run_id"])]
    assert time.monotonic() - started < 3
    assert "values" not in events


async def test_join_stream_headers(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id, run_id = await _start_slow_run(client, http, seconds=0.5)
    async with http.stream("GET", f"/threads/{thread_id}/runs/{run_id}/stream") as response:
        raw = await response.aread()
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["content-location"] == f"/threads/{thread_id}/runs/{run_id}"
    assert response.headers["location"] == f"/threads/{thread_id}/runs/{run_id}/stream"
    assert names(_after_first_step(parse_sse(raw), seconds=0.5)) == ["updates", "values"]


async def test_join_stream_of_unknown_run_is_404(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await new_thread(client)
    missing = "00000000-0000-0000-0000-000000000000"
    response = await http.get(f"/threads/{thread_id}/runs/{missing}/stream")
    assert response.status_code == 404


# --------------------------------------------------------------------------------------------
# on_disconnect


async def _open_and_drop(http: httpx.AsyncClient, thread_id: str, body: dict[str, Any]) -> str:
    """Start a streamed run, read until its metadata event, then drop the connection."""
    async with http.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as response:
        run_id = response.headers["content-location"].rsplit("/", 1)[1]
        buffer = b""
        async for chunk in response.aiter_raw():
            buffer += chunk
            if b"event: metadata" in buffer and b"\r\n\r\n" in buffer:
                break
    return run_id


async def test_on_disconnect_cancel_interrupts_the_run(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await new_thread(client)
    run_id = await _open_and_drop(
        http,
        thread_id,
        {
            "assistant_id": "slow",
            "input": {"seconds": 10},
            "on_disconnect": "cancel",
            "stream_mode": ["updates"],
        },
    )
    started = time.monotonic()
    run = await wait_for_status(http, thread_id, run_id, TERMINAL, timeout=10)
    assert run["status"] == "interrupted"
    assert time.monotonic() - started < 8  # cancelled, not finished sleeping
    state = await client.threads.get_state(thread_id)
    assert state["values"].get("done") is None


async def test_on_disconnect_default_continues(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await new_thread(client)
    run_id = await _open_and_drop(
        http, thread_id, {"assistant_id": "slow", "input": {"seconds": 0.5}}
    )
    run = await wait_for_status(http, thread_id, run_id, TERMINAL, timeout=10)
    assert run["status"] == "success"
    state = await client.threads.get_state(thread_id)
    assert state["values"] == {"seconds": 0.5, "done": True}


# --------------------------------------------------------------------------------------------
# no event is lost


async def test_concurrent_streams_each_get_every_event(client: LangGraphClient) -> None:
    count = 20
    threads = await asyncio.gather(*(new_thread(client) for _ in range(count)))

    async def one(i: int, thread_id: str) -> list[Event]:
        return await sdk_events(client, thread_id, "echo", input={"text": f"t{i}"})

    results = await asyncio.wait_for(
        asyncio.gather(*(one(i, t) for i, t in enumerate(threads))), timeout=60
    )
    run_ids = set()
    for i, events in enumerate(results):
        assert events[0][0] == "metadata"
        run_ids.add(events[0][1]["run_id"])
        assert of(events, "values") == [{"text": f"t{i}"}, {"text": f"t{i}"}]
    assert len(run_ids) == count


@pytest.mark.parametrize("stateless", [False, True])
async def test_fast_run_events_are_not_missed(
    client: LangGraphClient, http: httpx.AsyncClient, stateless: bool
) -> None:
    """A run that finishes at once still streams everything: the request subscribes first."""
    for i in range(10):
        path = "/runs/stream" if stateless else f"/threads/{await new_thread(client)}/runs/stream"
        _, raw = await raw_stream(
            http,
            path,
            {"assistant_id": "echo", "input": {"text": str(i)}, "stream_mode": "updates"},
        )
        events = parse_sse(raw)
        assert names(events) == ["metadata", "updates"], raw
        assert events[1][1] == {"echo": {"text": str(i)}}
