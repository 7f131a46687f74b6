"""Differential tests of the thread streaming protocol: the same commands against Stead and the
official server, on one `POST /threads/{id}/stream/events` per thread with every channel open.

What must agree is compared side by side (root lifecycle, `input.requested` payloads, the message
content-block events and their text, subgraph lifecycle, the `values` snapshots, seq and event id
rules, the command answers' envelopes). What differs on purpose is asserted as a difference, one
assertion each, with the reason next to it.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, NamedTuple

import httpx
import pytest

from tests.differential.conftest import Clients
from tests.support.protocol import (
    EVERY_CHANNEL,
    Event,
    command,
    event_stream,
    events_of,
    new_thread_id,
    root_lifecycle,
)
from tests.support.sse import OpenStream

HI = {"messages": [{"role": "user", "content": "hi"}]}

# The official server emits `custom`, `updates` and `tools` only for graphs compiled with those
# transformers (`compile(transformers=...)`); Stead emits them for every graph.
STEAD_ONLY_CHANNELS = {"custom", "updates", "tools"}


class Recording(NamedTuple):
    """One server's side of a scenario: every event of the thread and every command answer."""

    events: list[Event]
    answers: list[dict[str, Any]]
    # The highest seq the stream had delivered when each command was sent.
    seen_seq: list[int]


# --------------------------------------------------------------------------------------------------
# Driving one server


def _last_seq(stream: OpenStream) -> int:
    return max((event["seq"] for event in events_of(stream)), default=0)


async def _settle(stream: OpenStream, runs: int) -> None:
    """Wait until `runs` root runs have ended or paused, then a little longer: the official
    server sends a `values` event after `interrupted`, and nothing may trail a terminal event."""
    terminal = ("completed", "failed", "interrupted")
    await stream.until(
        lambda events: (
            sum(phase in terminal for phase in root_lifecycle([event.data for event in events]))
            >= runs
        ),
        timeout=30,
    )
    await asyncio.sleep(0.5)


def _interrupt_id(events: list[Event]) -> str:
    requested = [event for event in events if event["method"] == "input.requested"]
    return str(requested[-1]["params"]["data"]["interrupt_id"])


async def drive(
    http: httpx.AsyncClient, graph: str, graph_input: Any, resume: str | None = None
) -> Recording:
    """Start `graph` on a new thread with its stream open; with `resume`, answer its interrupt by
    `run.start` with input "yes" (`"start"`) or by `input.respond` (`"respond"`)."""
    thread_id = new_thread_id()
    answers: list[dict[str, Any]] = []
    seen: list[int] = []
    async with event_stream(http, thread_id, channels=EVERY_CHANNEL) as stream:
        seen.append(_last_seq(stream))
        answers.append(
            await command(
                http, thread_id, "run.start", {"assistant_id": graph, "input": graph_input}
            )
        )
        await _settle(stream, 1)
        if resume is not None:
            seen.append(_last_seq(stream))
            params: dict[str, Any]
            if resume == "start":
                params = {"assistant_id": graph, "input": "yes"}
                answers.append(await command(http, thread_id, "run.start", params, 2))
            else:
                params = {
                    "interrupt_id": _interrupt_id(events_of(stream)),
                    "namespace": [],
                    "response": "yes",
                }
                answers.append(await command(http, thread_id, "input.respond", params, 2))
            await _settle(stream, 2)
        return Recording(events_of(stream), answers, seen)


async def both(clients: Clients, *args: Any) -> tuple[Recording, Recording]:
    """The same scenario on both servers at once: (Stead, official)."""
    stead, official = await asyncio.gather(
        drive(clients.stead, *args), drive(clients.official, *args)
    )
    return stead, official


# --------------------------------------------------------------------------------------------------
# What is compared


def _namespace_shape(namespace: list[str]) -> list[str]:
    """`["review:1f0c…"]` -> `["review:"]`: the task id differs per run."""
    return [segment.split(":", 1)[0] + ":" for segment in namespace]


def _without_defaults(value: Any) -> Any:
    """`value` without message ids and without empty or null fields.

    The official server serialises LangChain messages without their defaults (no
    `additional_kwargs: {}`, `name: null`, `tool_calls: []`...); Stead writes every field.
    """
    if isinstance(value, dict):
        return {
            key: _without_defaults(item)
            for key, item in value.items()
            if key != "id" and item not in (None, {}, [])
        }
    if isinstance(value, list):
        return [_without_defaults(item) for item in value]
    return value


def of(events: list[Event], method: str) -> list[Event]:
    return [event for event in events if event["method"] == method]


def input_requests(events: list[Event]) -> list[Any]:
    return [event["params"]["data"]["payload"] for event in of(events, "input.requested")]


def message_events(events: list[Event]) -> list[tuple[list[str], str]]:
    return [
        (_namespace_shape(event["params"]["namespace"]), event["params"]["data"]["event"])
        for event in of(events, "messages")
    ]


def message_text(events: list[Event]) -> str:
    return "".join(
        event["params"]["data"]["delta"]["text"]
        for event in of(events, "messages")
        if event["params"]["data"]["event"] == "content-block-delta"
    )


def subgraph_lifecycle(events: list[Event]) -> list[tuple[list[str], str, str]]:
    return [
        (
            _namespace_shape(event["params"]["namespace"]),
            event["params"]["data"]["event"],
            event["params"]["data"]["graph_name"],
        )
        for event in of(events, "lifecycle")
        if event["params"]["namespace"]
    ]


def values_snapshots(events: list[Event]) -> list[tuple[list[str], Any]]:
    return [
        (_namespace_shape(event["params"]["namespace"]), _without_defaults(event["params"]["data"]))
        for event in of(events, "values")
    ]


def final_values(events: list[Event]) -> Any:
    root = [event for event in of(events, "values") if not event["params"]["namespace"]]
    return _without_defaults(root[-1]["params"]["data"])


def without_stead_only(events: list[Event]) -> list[Event]:
    return [event for event in events if event["method"] not in STEAD_ONLY_CHANNELS]


def assert_well_formed(recording: Recording) -> None:
    """seq runs 1, 2, 3... across the runs of the thread; every event id is unique; the stream
    ends with the root's terminal lifecycle event."""
    events = recording.events
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    ids = [event["event_id"] for event in events]
    assert len(set(ids)) == len(ids)
    last = events[-1]
    assert (last["method"], last["params"]["namespace"]) == ("lifecycle", [])
    assert last["params"]["data"]["event"] in ("completed", "failed")
    for event in events:
        assert sorted(event) == ["event_id", "method", "params", "seq", "type"]
        assert sorted(event["params"]) == ["data", "namespace", "timestamp"]


def assert_agree(stead: Recording, official: Recording) -> None:
    """Everything both servers must send alike."""
    for recording in (stead, official):
        assert_well_formed(recording)
    compared = {
        "root lifecycle": root_lifecycle,
        "input requested": input_requests,
        "message events": message_events,
        "message text": message_text,
        "subgraph lifecycle": subgraph_lifecycle,
        "values": values_snapshots,
        "final values": final_values,
    }
    for label, extract in compared.items():
        assert extract(stead.events) == extract(official.events), label
    graph_names = {
        (event["params"]["data"]["event"], event["params"]["data"]["graph_name"])
        for event in of(stead.events, "lifecycle")
        if not event["params"]["namespace"]
    }
    assert graph_names == {
        (event["params"]["data"]["event"], event["params"]["data"]["graph_name"])
        for event in of(official.events, "lifecycle")
        if not event["params"]["namespace"]
    }
    # Success envelopes: same keys, same result keys.
    for ours, theirs in zip(stead.answers, official.answers, strict=True):
        assert ours["type"] == theirs["type"] == "success"
        assert sorted(ours) == sorted(theirs) == ["id", "meta", "result", "type"]
        assert sorted(ours["result"]) == sorted(theirs["result"])
        assert ours["id"] == theirs["id"]
        assert sorted(ours["meta"]) == sorted(theirs["meta"]) == ["applied_through_seq"]


def assert_applied_through_seq(stead: Recording, official: Recording) -> None:
    """Intended difference: the official server always answers `applied_through_seq: 0`; Stead
    answers the thread's latest seq when the command was applied (0 on a new thread)."""
    assert [answer["meta"]["applied_through_seq"] for answer in official.answers] == [0] * len(
        official.answers
    )
    assert [answer["meta"]["applied_through_seq"] for answer in stead.answers] == stead.seen_seq


def assert_trailing_values_after_interrupt(stead: Recording, official: Recording) -> None:
    """Intended difference: at an interrupt the official server sends the state's `values` after
    root `interrupted`; Stead sends that snapshot before `input.requested`, so its `interrupted`
    is followed directly by the resumed run's `running`. (The snapshots themselves agree.)"""

    def after_interrupted(events: list[Event]) -> list[str]:
        start = next(
            index
            for index, event in enumerate(events)
            if event["method"] == "lifecycle"
            and not event["params"]["namespace"]
            and event["params"]["data"]["event"] == "interrupted"
        )
        return [event["method"] for event in events[start + 1 : start + 3]]

    def before_input_requested(events: list[Event]) -> str:
        index = next(i for i, event in enumerate(events) if event["method"] == "input.requested")
        return str(events[index - 1]["method"])

    assert after_interrupted(official.events) == ["values", "lifecycle"]
    assert after_interrupted(stead.events) == ["lifecycle", "values"]
    assert before_input_requested(stead.events) == "values"


def assert_stead_only_channels(stead: Recording, official: Recording, expected: set[str]) -> None:
    """Intended difference: see STEAD_ONLY_CHANNELS. Without those, both send the same methods
    in the same order, except the official trailing `values` (checked apart)."""
    assert {event["method"] for event in official.events} & STEAD_ONLY_CHANNELS == set()
    assert {event["method"] for event in stead.events} & STEAD_ONLY_CHANNELS == expected


# --------------------------------------------------------------------------------------------------
# Scenarios


@pytest.mark.parametrize("resume", ["start", "respond"])
async def test_protocol_graph_interrupt_and_resume(clients: Clients, resume: str) -> None:
    """plan (custom, a streamed message) -> tools -> approve (interrupt) -> review (subgraph);
    resumed by `run.start` with input "yes" or by `input.respond`."""
    stead, official = await both(clients, "protocol", HI, resume)
    assert_agree(stead, official)
    assert root_lifecycle(stead.events) == ["running", "interrupted", "running", "completed"]
    assert input_requests(stead.events) == [{"question": "go on?"}]
    assert message_text(stead.events) == "Let me look that up"
    assert [event for _, event in message_events(stead.events)] == [
        "message-start",
        "content-block-start",
        *["content-block-delta"] * 9,
        "content-block-finish",
        "message-finish",
    ]
    assert subgraph_lifecycle(stead.events) == [
        (["review:"], "started", "review"),
        (["review:"], "completed", "review"),
    ]
    assert final_values(stead.events)["notes"] == ["planned", "approved:yes"]
    assert_stead_only_channels(stead, official, {"custom", "updates", "tools"})
    assert_trailing_values_after_interrupt(stead, official)
    assert_applied_through_seq(stead, official)
    # `run.start` answers a run id, `input.respond` an empty result, on both.
    assert sorted(stead.answers[1]["result"]) == (["run_id"] if resume == "start" else [])


async def test_hitl_interrupt_and_resume(clients: Clients) -> None:
    stead, official = await both(clients, "hitl", {"text": "a"}, "start")
    assert_agree(stead, official)
    assert input_requests(stead.events) == [{"question": "approve?"}]
    assert final_values(stead.events) == {"text": "a:yes", "answer": "yes"}
    assert_stead_only_channels(stead, official, {"updates"})
    assert_trailing_values_after_interrupt(stead, official)
    assert_applied_through_seq(stead, official)


async def test_nested_subgraph(clients: Clients) -> None:
    stead, official = await both(clients, "nested", {"text": "a"})
    assert_agree(stead, official)
    assert subgraph_lifecycle(stead.events) == [
        (["child:"], "started", "child"),
        (["child:"], "completed", "child"),
    ]
    assert final_values(stead.events) == {"text": "a+parent+child"}
    assert_stead_only_channels(stead, official, {"updates"})
    # Without Stead's extra channels, the same methods in the same order.
    assert [e["method"] for e in without_stead_only(stead.events)] == [
        e["method"] for e in official.events
    ]


async def test_steps(clients: Clients) -> None:
    stead, official = await both(clients, "steps", {"steps": []})
    assert_agree(stead, official)
    assert final_values(stead.events) == {"steps": ["one", "two", "three"]}
    assert_stead_only_channels(stead, official, {"updates"})
    assert [e["method"] for e in without_stead_only(stead.events)] == [
        e["method"] for e in official.events
    ]


async def test_failing(clients: Clients) -> None:
    stead, official = await both(clients, "failing", {"text": "x"})
    assert_agree(stead, official)
    assert root_lifecycle(stead.events) == ["running", "failed"]
    ours, theirs = (recording.events[-1]["params"]["data"] for recording in (stead, official))
    assert ours["graph_name"] == theirs["graph_name"] == "failing"
    # The exception's message, without its type.
    assert ours["error"] == theirs["error"] == "boom: x"
    assert [e["method"] for e in stead.events] == [e["method"] for e in official.events]


@pytest.mark.parametrize("when", ["pending", "running"])
async def test_cancelled_run(clients: Clients, when: str) -> None:
    """Intended difference: a cancelled protocol run ends with root lifecycle `failed` (error
    "cancelled") on Stead. The official server sends nothing for a run cancelled before it
    started, and `interrupted` (not terminal for the SDK) for a running one, so the SDK's
    iterators wait until they time out."""

    async def cancel(http: httpx.AsyncClient) -> list[Event]:
        thread_id = new_thread_id()
        async with event_stream(http, thread_id, channels=EVERY_CHANNEL) as stream:
            answer = await command(
                http, thread_id, "run.start", {"assistant_id": "slow", "input": {"seconds": 3}}
            )
            run_id = answer["result"]["run_id"]
            if when == "running":
                await stream.until(lambda events: bool(events), timeout=30)
            response = await http.post(f"/threads/{thread_id}/runs/{run_id}/cancel?wait=0")
            assert response.status_code in (200, 202, 204), response.text
            await asyncio.sleep(4)
            return events_of(stream)

    stead, official = await asyncio.gather(cancel(clients.stead), cancel(clients.official))
    assert root_lifecycle(stead)[-1] == "failed"
    assert stead[-1]["params"]["data"]["error"] == "cancelled"
    assert root_lifecycle(official) == ([] if when == "pending" else ["running", "interrupted"])


# --------------------------------------------------------------------------------------------------
# Command answers


async def _post_command(http: httpx.AsyncClient, thread_id: str, **kwargs: Any) -> httpx.Response:
    return await http.post(f"/threads/{thread_id}/commands", **kwargs)


async def test_command_errors(clients: Clients) -> None:
    async def answers(http: httpx.AsyncClient) -> dict[str, tuple[int, Any]]:
        thread_id = new_thread_id()
        bodies: dict[str, dict[str, Any]] = {
            "unknown command": {"id": 5, "method": "nope.nope", "params": {}},
            "no id": {"method": "run.start", "params": {}},
            "missing assistant": {"id": 7, "method": "run.start", "params": {}},
        }
        seen: dict[str, tuple[int, Any]] = {}
        for label, body in bodies.items():
            response = await _post_command(http, thread_id, json=body)
            seen[label] = (response.status_code, response.json())
        response = await _post_command(
            http, thread_id, content=b"{not json", headers={"content-type": "application/json"}
        )
        seen["not json"] = (response.status_code, response.json())
        for label, channels in (("unknown channel", ["nope"]), ("no channel", [])):
            response = await http.post(
                f"/threads/{thread_id}/stream/events", json={"channels": channels}
            )
            seen[label] = (response.status_code, response.json())
        return seen

    stead, official = await asyncio.gather(answers(clients.stead), answers(clients.official))
    for label in ("unknown command", "missing assistant"):
        for status, body in (stead[label], official[label]):
            assert status == 200
            assert sorted(body) == ["error", "id", "message", "type"]
        assert stead[label] == official[label], label
    assert stead["unknown command"][1]["error"] == "unknown_command"
    assert stead["missing assistant"][1]["error"] == "invalid_argument"
    for status, body in (stead["no id"], official["no id"]):
        assert status == 400
        assert (body["type"], body["id"], body["error"]) == ("error", None, "invalid_argument")
    assert stead["not json"] == official["not json"] == (400, {"detail": "Invalid JSON body"})
    # Unknown or missing channels: 400 with a `detail` on both (the wording differs).
    for label in ("unknown channel", "no channel"):
        for status, body in (stead[label], official[label]):
            assert (status, sorted(body)) == (400, ["detail"])


async def test_a_malformed_command_with_an_id_is_answered_with_it(clients: Clients) -> None:
    """A command with an id but no method is a 400 `invalid_argument` echoing its id."""
    body = {"id": 6, "params": {}}
    thread_id = str(uuid.uuid4())
    stead = await _post_command(clients.stead, thread_id, json=body)
    official = await _post_command(clients.official, thread_id, json=body)
    assert stead.status_code == official.status_code == 400
    assert stead.json()["id"] == official.json()["id"] == 6
    assert stead.json()["error"] == official.json()["error"] == "invalid_argument"


async def test_responding_on_a_thread_with_no_run_is_no_such_run(clients: Clients) -> None:
    thread_id = str(uuid.uuid4())
    body = {"id": 1, "method": "input.respond", "params": {"interrupt_id": "x", "response": 1}}
    stead = await _post_command(clients.stead, thread_id, json=body)
    official = await _post_command(clients.official, thread_id, json=body)
    assert stead.json()["error"] == official.json()["error"] == "no_such_run"
