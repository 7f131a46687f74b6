"""The thread streaming protocol on the session server (both runtimes): commands on
`POST /threads/{id}/commands`, the thread's events over SSE and WebSocket, replay with `since`,
interrupts and `input.respond`, subgraph namespaces, cancel, and protocol runs as ordinary runs.

Reference: thread-protocol.md; the SDK's own suite runs in tests/sdk_suite.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from langgraph_sdk.client import LangGraphClient

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

QUESTION = {"messages": [{"role": "user", "content": "what does stead mean?"}]}


def methods(events: list[dict[str, Any]]) -> list[str]:
    return [event["method"] for event in events]


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return [event["seq"] for event in events]


def root_phase(phase: str) -> Callable[[dict[str, Any]], bool]:
    """Matches the root lifecycle event of that phase."""
    return lambda message: (
        message.get("method") == "lifecycle"
        and message["params"]["namespace"] == []
        and message["params"]["data"]["event"] == phase
    )


async def run_to_interrupt(http: httpx.AsyncClient, thread_id: str) -> list[dict[str, Any]]:
    async with event_stream(http, thread_id) as stream:
        await start_run(http, thread_id, "protocol", QUESTION)
        await stream.until(ended())
        return events_of(stream)


async def test_a_run_speaks_on_every_channel_in_seq_order(http: httpx.AsyncClient) -> None:
    thread_id = new_thread_id()
    events = await run_to_interrupt(http, thread_id)

    assert seqs(events) == list(range(1, len(events) + 1))
    assert len({event["event_id"] for event in events}) == len(events)
    assert events[0]["method"] == "lifecycle"
    assert events[0]["params"]["data"] == {"event": "running", "graph_name": "protocol"}
    assert set(methods(events)) == {
        "lifecycle",
        "values",
        "custom",
        "messages",
        "updates",
        "tools",
        "input.requested",
    }
    deltas = [
        event["params"]["data"]["delta"]["text"]
        for event in events
        if event["method"] == "messages"
        and event["params"]["data"]["event"] == "content-block-delta"
    ]
    assert "".join(deltas) == "Let me look that up"
    tools = [event["params"]["data"] for event in events if event["method"] == "tools"]
    assert [tool["event"] for tool in tools] == ["tool-started", "tool-finished"]
    assert tools[0]["tool_name"] == "lookup" and tools[0]["input"] == {"query": "stead"}
    # The interrupt ends the run's events: what it asks, then the pause.
    assert methods(events)[-2:] == ["input.requested", "lifecycle"]
    assert events[-2]["params"]["data"]["payload"] == {"question": "go on?"}
    assert root_lifecycle(events) == ["running", "interrupted"]


async def test_channels_custom_names_and_namespaces_filter(http: httpx.AsyncClient) -> None:
    thread_id = new_thread_id()
    async with (
        event_stream(http, thread_id) as everything,
        event_stream(http, thread_id, channels=["custom:audit", "lifecycle"]) as audit,
        event_stream(http, thread_id, channels=["custom"], namespaces=[[]], depth=0) as root,
        event_stream(
            http, thread_id, channels=["values", "lifecycle"], namespaces=[["review"]]
        ) as none,
    ):
        await start_run(http, thread_id, "protocol", QUESTION)
        await everything.until(ended())
        await start_run(http, thread_id, "protocol", "yes")
        await everything.until(ended(2))
        await audit.until(ended(2))
        await asyncio.sleep(0.3)

    audit_events = events_of(audit)
    custom = [event["params"]["data"] for event in audit_events if event["method"] == "custom"]
    assert custom == [{"name": "audit", "step": "plan"}]
    assert set(methods(audit_events)) == {"custom", "lifecycle"}
    # Depth 0 under the root: the subgraph's custom event stays out.
    root_custom = [event["params"]["data"]["step"] for event in events_of(root)]
    assert root_custom == ["plan", "plan"]
    nested = [
        e for e in events_of(everything) if e["method"] == "custom" and e["params"]["namespace"]
    ]
    assert [event["params"]["data"]["step"] for event in nested] == ["check"]
    # A namespace prefix is whole segments: "review" is not "review:<task id>".
    assert events_of(none) == []


async def test_subgraphs_report_their_lifecycle_under_their_namespace(
    http: httpx.AsyncClient,
) -> None:
    thread_id = new_thread_id()
    await run_to_interrupt(http, thread_id)
    async with event_stream(http, thread_id, channels=["lifecycle"]) as stream:
        await start_run(http, thread_id, "protocol", "yes")
        await stream.until(lambda events: "completed" in root_lifecycle([e.data for e in events]))
    subgraph = [event for event in events_of(stream) if event["params"]["namespace"]]
    assert [event["params"]["data"]["event"] for event in subgraph] == ["started", "completed"]
    (namespace,) = {tuple(event["params"]["namespace"]) for event in subgraph}
    assert len(namespace) == 1 and namespace[0].startswith("review:")
    assert all(event["params"]["data"]["graph_name"] == "review" for event in subgraph)


async def test_one_connection_follows_the_thread_across_runs(http: httpx.AsyncClient) -> None:
    thread_id = new_thread_id()
    async with event_stream(http, thread_id) as stream:
        await start_run(http, thread_id, "protocol", QUESTION)
        await stream.until(ended())
        interrupt_id = events_of(stream)[-2]["params"]["data"]["interrupt_id"]
        answer = await command(
            http,
            thread_id,
            "input.respond",
            {"interrupt_id": interrupt_id, "namespace": [], "response": "sure"},
        )
        assert answer["type"] == "success" and answer["result"] == {}
        await stream.until(ended(2))
    events = events_of(stream)
    assert root_lifecycle(events) == ["running", "interrupted", "running", "completed"]
    assert seqs(events) == list(range(1, len(events) + 1))
    state = (await http.get(f"/threads/{thread_id}/state")).json()
    assert state["values"]["notes"] == ["planned", "approved:sure"]
    assert state["values"]["review"] == "checked"


async def test_replay_since_gives_every_event_exactly_once(http: httpx.AsyncClient) -> None:
    thread_id = new_thread_id()
    async with event_stream(http, thread_id) as whole:
        await start_run(http, thread_id, "protocol", QUESTION)
        first_run = await whole.until(ended())
        since = first_run[-1].data["seq"]
        async with event_stream(http, thread_id, since=since) as first:
            await start_run(http, thread_id, "protocol", "yes")
            cut = (await first.until(lambda events: len(events) >= 5))[:5]
        # The client saw 5 events when its connection was cut; it reconnects after the last.
        async with event_stream(http, thread_id, since=cut[-1].data["seq"]) as second:
            await second.until(ended())
        await whole.until(ended(2))
    resumed = [event.data for event in cut] + events_of(second)
    assert resumed == [event for event in events_of(whole) if event["seq"] > since]
    # Without `since`, a connection replays the thread's current run from its start.
    async with event_stream(http, thread_id) as late:
        await late.until(ended())
    assert events_of(late) == [event for event in events_of(whole) if event["seq"] > since]


async def test_commands_answer_with_the_error_envelope(http: httpx.AsyncClient) -> None:
    thread_id = new_thread_id()
    unknown = await command(http, thread_id, "run.fly", {})
    assert unknown == {
        "type": "error",
        "id": 1,
        "error": "unknown_command",
        "message": "Unknown protocol command: run.fly",
    }
    no_assistant = await command(http, thread_id, "run.start", {"input": {}})
    assert no_assistant["error"] == "invalid_argument"
    bad_assistant = await command(http, thread_id, "run.start", {"assistant_id": "nope"})
    assert bad_assistant["error"] == "invalid_argument"
    assert "nope" in bad_assistant["message"]
    nothing_to_answer = await command(
        http, thread_id, "input.respond", {"interrupt_id": "x", "response": 1}
    )
    assert nothing_to_answer["error"] == "no_such_run"
    await run_to_interrupt(http, thread_id)
    wrong_id = await command(
        http, thread_id, "input.respond", {"interrupt_id": "not-it", "response": 1}
    )
    assert wrong_id["error"] == "no_such_interrupt"
    over_http = await command(http, thread_id, "subscription.subscribe", {"channels": ["values"]})
    assert over_http["error"] == "not_supported"

    malformed = await http.post(f"/threads/{thread_id}/commands", json={"method": "run.start"})
    assert malformed.status_code == 400
    assert malformed.json()["id"] is None and malformed.json()["error"] == "invalid_argument"
    with_id = await http.post(f"/threads/{thread_id}/commands", json={"id": 7, "params": {}})
    assert with_id.status_code == 400 and with_id.json()["id"] == 7
    not_json = await http.post(f"/threads/{thread_id}/commands", content=b"{")
    assert not_json.status_code == 400 and "detail" in not_json.json()
    for body in ({"channels": []}, {"channels": ["bogus"]}, {"channels": ["values"], "since": -1}):
        refused = await http.post(f"/threads/{thread_id}/stream/events", json=body)
        assert refused.status_code == 400, body
        assert "detail" in refused.json()


async def test_a_protocol_run_is_an_ordinary_run(
    http: httpx.AsyncClient, client: LangGraphClient
) -> None:
    thread_id = new_thread_id()
    events = await run_to_interrupt(http, thread_id)
    run_id = events[0]["event_id"].split(":")[0]
    run = await client.runs.get(thread_id, run_id)
    assert run["status"] == "success"
    joined = await client.runs.join(thread_id, run_id)
    assert joined["notes"] == ["planned"]
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "interrupted"
    history = await client.threads.get_history(thread_id)
    assert history and history[0]["next"] == ["approve"]
    await client.threads.update_state(thread_id, {"notes": ["edited"]})
    state = await client.threads.get_state(thread_id)
    assert state["values"]["notes"] == ["planned", "edited"]


async def test_cancel_ends_the_stream_with_failed(http: httpx.AsyncClient) -> None:
    thread_id = new_thread_id()
    async with event_stream(http, thread_id, channels=["lifecycle"]) as stream:
        running = await start_run(http, thread_id, "slow", {"seconds": 30})
        queued = await start_run(http, thread_id, "slow", {"seconds": 30})
        await stream.until(lambda events: root_lifecycle([e.data for e in events]) == ["running"])
        # The queued run never started; the running one stops.
        for run_id in (queued, running):
            cancelled = await http.post(f"/threads/{thread_id}/runs/{run_id}/cancel")
            assert cancelled.status_code == 202
        await stream.until(ended(2), timeout=15)
    failed = [
        (event["event_id"].split(":")[0], event["params"]["data"])
        for event in events_of(stream)
        if event["params"]["data"]["event"] == "failed"
    ]
    assert sorted(failed, key=str) == sorted(
        [
            (queued, {"event": "failed", "graph_name": "slow", "error": "cancelled"}),
            (running, {"event": "failed", "graph_name": "slow", "error": "cancelled"}),
        ],
        key=str,
    )
    # Not stuck: the thread is no longer busy, and both runs are recorded as interrupted.
    thread = (await http.get(f"/threads/{thread_id}")).json()
    assert thread["status"] != "busy"
    runs = (await http.get(f"/threads/{thread_id}/runs")).json()
    assert {run["status"] for run in runs} == {"interrupted"}


async def test_a_failing_run_ends_with_failed_and_its_error(http: httpx.AsyncClient) -> None:
    thread_id = new_thread_id()
    async with event_stream(http, thread_id, channels=["lifecycle"]) as stream:
        await start_run(http, thread_id, "failing", {"text": "bad luck"})
        await stream.until(ended())
    last = events_of(stream)[-1]["params"]["data"]
    assert last == {"event": "failed", "graph_name": "failing", "error": "boom: bad luck"}


async def test_websocket_subscribes_replays_and_closes_cleanly(
    url: str, http: httpx.AsyncClient
) -> None:
    thread_id = new_thread_id()
    await run_to_interrupt(http, thread_id)
    async with socket(url, thread_id) as ws:
        answer = await ws.send("subscription.subscribe", {"channels": ["lifecycle", "input"]})
        assert answer["type"] == "success"
        subscription_id = answer["result"]["subscription_id"]
        # The interrupted run replays: running, input.requested, interrupted.
        assert answer["result"]["replayed_events"] == 3
        await ws.until(root_phase("interrupted"))
        # `applied_through_seq` is the thread's latest seq: resuming after it replays nothing.
        latest = answer["meta"]["applied_through_seq"]
        assert latest == ws.events()[-1]["seq"]
        values = await ws.send("subscription.subscribe", {"channels": ["values"], "since": latest})
        assert values["result"]["replayed_events"] == 0
        started = await ws.send(
            "run.start", {"assistant_id": "protocol", "input": "over the socket"}
        )
        assert started["type"] == "success"
        await ws.until(root_phase("completed"))
        garbage = await ws.connection.send("{not json")
        assert garbage is None
        refused = await ws.until(lambda m: m.get("type") == "error")
        assert refused["id"] is None and refused["error"] == "invalid_argument"
        unsubscribed = await ws.send(
            "subscription.unsubscribe", {"subscription_id": subscription_id}
        )
        assert unsubscribed["type"] == "success"
        again = await ws.send("subscription.unsubscribe", {"subscription_id": subscription_id})
        assert again["error"] == "no_such_subscription"
    events = ws.events()
    lifecycle = [e for e in events if e["method"] == "lifecycle" and not e["params"]["namespace"]]
    assert [e["params"]["data"]["event"] for e in lifecycle] == [
        "running",
        "interrupted",
        "running",
        "completed",
    ]
    assert any(e["method"] == "values" for e in events)
    assert seqs(lifecycle) == sorted(seqs(lifecycle))


async def test_the_sdk_threads_stream_over_both_transports(
    url: str, client: LangGraphClient
) -> None:
    for transport in ("sse", "websocket"):
        async with client.threads.stream(assistant_id="protocol", transport=transport) as thread:
            await thread.run.start(input=QUESTION)
            async for _ in thread.values:
                pass
            assert thread.interrupted, transport
            assert len(thread.interrupts) == 1
            await thread.run.respond("ok")
            output = await thread.output
        assert output["notes"] == ["planned", "approved:ok"], transport
        assert output["review"] == "checked"


async def test_a_thread_stream_from_everyone_is_not_listed(http: httpx.AsyncClient) -> None:
    # Protocol events stay with their thread: another thread's stream sees none of them.
    thread_id, other = new_thread_id(), new_thread_id()
    async with event_stream(http, other, channels=EVERY_CHANNEL) as unrelated:
        await run_to_interrupt(http, thread_id)
        await asyncio.sleep(0.2)
    assert events_of(unrelated) == []
