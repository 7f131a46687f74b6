"""A graph that emits many events: one node writes `count` custom events with the stream writer."""

from __future__ import annotations

from typing import Any

from langgraph.config import get_stream_writer
from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    count: int
    written: int


def chatter(state: State) -> dict[str, Any]:
    write = get_stream_writer()
    count = state.get("count", 100)
    for index in range(count):
        write({"name": "tick", "index": index})
    return {"written": count}


graph = StateGraph(State).add_node("chatter", chatter).add_edge(START, "chatter").compile()
