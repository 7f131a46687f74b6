"""The two ways a worker streams a protocol run's graph say the same thing.

A graph without stream transformers of its own runs under the classic `astream`, with Stead
reading the subgraph lifecycle from `tasks` events; one with them runs under LangGraph's v3 event
stream. Both must give clients the same events, in the same order: every graph below runs both
ways on a real LangGraph with an in-memory checkpointer, and the events are compared whole.

Reference: src/stead/worker/protocol_stream.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.types import Command
from typing_extensions import TypedDict

from stead import serde
from stead.worker.protocol_stream import GraphEvent, _classic_events, _v3_events
from tests.graphs.protocol import graph as protocol_graph

QUESTION = {"messages": [{"role": "user", "content": "what does stead mean?"}]}


class Broken(TypedDict, total=False):
    done: bool


def _explode(state: Broken) -> dict[str, Any]:
    raise ValueError("the subgraph broke")


broken_subgraph = StateGraph(Broken).add_node("explode", _explode).add_edge(START, "explode")


def _with_broken_subgraph() -> Any:
    inner = broken_subgraph.compile()
    return (
        StateGraph(Broken)
        .add_node("outer", inner)
        .add_edge(START, "outer")
        .compile(checkpointer=InMemorySaver())
    )


# What differs between two runs of the same graph on two threads.
RUN_SPECIFIC = {"id", "run_id", "thread_id", "trigger_call_id", "checkpoint_ns"}


def _stable(value: Any) -> Any:
    """The value as clients get it (JSON), without ids and task ids that differ between runs."""
    return _without_ids(json.loads(serde.dumps(value)))


def _without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_ids(item) for key, item in value.items() if key not in RUN_SPECIFIC}
    if isinstance(value, list):
        return [_without_ids(item) for item in value]
    if isinstance(value, str) and value.count("-") >= 4 and ":" in value:
        # A namespace or checkpoint namespace segment, `node:<task id>`.
        return "|".join(part.split(":")[0] for part in value.split("|"))
    return value


async def _collect(events: AsyncIterator[GraphEvent]) -> tuple[list[Any], BaseException | None]:
    collected: list[Any] = []
    try:
        async for method, namespace, data in events:
            collected.append(_stable([method, namespace, data]))
    except Exception as exc:
        return collected, exc
    return collected, None


async def _both_ways(graph: Any, inputs: list[Any]) -> tuple[list[Any], list[Any]]:
    """Every input in turn on one thread per way (a resume continues that thread)."""
    classic: list[Any] = []
    v3: list[Any] = []
    for way, out in ((_classic_events, classic), (_v3_events, v3)):
        config = {"configurable": {"thread_id": str(uuid.uuid4())}}
        for graph_input in inputs:
            events, error = await _collect(way(graph, graph_input, config, {}))
            out.append((events, repr(error)))
    return classic, v3


async def test_a_graph_on_every_channel_streams_the_same_both_ways() -> None:
    graph = protocol_graph.copy(update={"checkpointer": InMemorySaver()})
    classic, v3 = await _both_ways(graph, [QUESTION, Command(resume="yes")])

    assert classic == v3
    first_run, resumed = classic[0][0], classic[1][0]
    methods = {event[0] for event in first_run}
    assert {"values", "updates", "messages", "tools", "custom"} <= methods
    assert "tasks" not in methods
    lifecycle = [event for event in resumed if event[0] == "lifecycle"]
    assert [(event[2]["event"], event[2]["namespace"]) for event in lifecycle] == [
        ("started", ["review"]),
        ("completed", ["review"]),
    ]
    assert lifecycle[0][2]["graph_name"] == "review"


async def test_a_failing_subgraph_ends_with_failed_both_ways() -> None:
    classic, v3 = await _both_ways(_with_broken_subgraph(), [{}])

    assert classic == v3
    events, error = classic[0]
    assert "the subgraph broke" in error
    assert [event[2]["event"] for event in events if event[0] == "lifecycle"] == [
        "started",
        "failed",
    ]
