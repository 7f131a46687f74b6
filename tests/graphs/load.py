"""Graphs of the load and fault tier (tests/load).

- `ticker`: one node writes `count` custom events `{"name": "tick", "index": i}`, sleeping `pause`
  seconds after each, so that a client can tell a lost, duplicated or reordered event.
- `relay`: nodes `one` .. `five` in a row, each appending `"<node> <pid>"` to the file `record`
  when it starts and then sleeping `pause` seconds, so that a test can count node executions and
  tell which worker process ran each.
"""

from __future__ import annotations

import asyncio
import operator
import os
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict


class TickerState(TypedDict, total=False):
    count: int
    pause: float
    written: int


async def tick(state: TickerState) -> dict[str, Any]:
    write = get_stream_writer()
    count, pause = state.get("count", 1000), state.get("pause", 0.0)
    for index in range(count):
        write({"name": "tick", "index": index})
        # Without a pause, still yield now and then: the writer runs on the same event loop.
        await asyncio.sleep(pause)
    return {"written": count}


ticker = StateGraph(TickerState).add_node("tick", tick).add_edge(START, "tick").compile()


RELAY_NODES = ("one", "two", "three", "four", "five")


class RelayState(TypedDict, total=False):
    record: str
    pause: float
    steps: Annotated[list[str], operator.add]


def _relay_node(name: str) -> Callable[..., Awaitable[RelayState]]:
    async def node(state: RelayState) -> RelayState:
        # One short O_APPEND write per line: concurrent appends never interleave.
        with open(state["record"], "a") as record:
            record.write(f"{name} {os.getpid()}\n")
        await asyncio.sleep(state.get("pause", 0.5))
        return {"steps": [name]}

    return node


def _relay() -> Any:
    builder = StateGraph(RelayState)
    previous = START
    for name in RELAY_NODES:
        builder.add_node(name, _relay_node(name))
        builder.add_edge(previous, name)
        previous = name
    builder.add_edge(previous, END)
    return builder.compile()


relay = _relay()
