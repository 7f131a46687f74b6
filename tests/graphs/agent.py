"""Hermetic graphs used by the test suite, the differential tests and the benchmarks.

Every model is one of langchain-core's fake chat models: no network, deterministic output.
"""

import asyncio
import itertools
import operator
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import interrupt

_model = GenericFakeChatModel(messages=itertools.cycle([AIMessage(content="Hello there friend")]))


async def call_model(state: MessagesState) -> dict:
    get_stream_writer()({"progress": "calling model"})
    return {"messages": [await _model.ainvoke(state["messages"])]}


graph = (
    StateGraph(MessagesState)
    .add_node(call_model)
    .add_edge(START, "call_model")
    .add_edge("call_model", END)
    .compile()
)


class PacedFakeChatModel(GenericFakeChatModel):
    """Streams its tokens 20 ms apart, as a real model does. A client that opens several streams
    on a thread (the SDKs' thread.messages beside their lifecycle watcher) is then connected
    before the run ends, as with any real model, instead of racing a run that took a millisecond.
    """

    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        async for chunk in super()._astream(*args, **kwargs):
            await asyncio.sleep(0.02)
            yield chunk


_paced_model = PacedFakeChatModel(
    messages=itertools.cycle([AIMessage(content="Hello there friend")])
)


async def call_paced_model(state: MessagesState) -> dict:
    return {"messages": [await _paced_model.ainvoke(state["messages"])]}


paced_chat = (
    StateGraph(MessagesState)
    .add_node(call_paced_model)
    .add_edge(START, "call_paced_model")
    .add_edge("call_paced_model", END)
    .compile()
)


class EchoState(TypedDict, total=False):
    text: str


def echo_node(state: EchoState) -> EchoState:
    return {"text": state.get("text", "")}


# The smallest graph there is: one node, no model. Used by the latency benchmark.
echo = StateGraph(EchoState).add_node("echo", echo_node).add_edge(START, "echo").compile()


class HitlState(TypedDict, total=False):
    text: str
    answer: str


def ask(state: HitlState) -> HitlState:
    answer = interrupt({"question": "approve?"})
    return {"answer": answer}


def finish(state: HitlState) -> HitlState:
    return {"text": f"{state.get('text', '')}:{state.get('answer', '')}"}


hitl = (
    StateGraph(HitlState)
    .add_node("ask", ask)
    .add_node("finish", finish)
    .add_edge(START, "ask")
    .add_edge("ask", "finish")
    .add_edge("finish", END)
    .compile()
)


class StepsState(TypedDict, total=False):
    steps: Annotated[list[str], operator.add]


def _step(name: str):
    def node(state: StepsState) -> StepsState:
        return {"steps": [name]}

    return node


# Three nodes in a row: a target for interrupt_before/after, history and forks.
steps = (
    StateGraph(StepsState)
    .add_node("one", _step("one"))
    .add_node("two", _step("two"))
    .add_node("three", _step("three"))
    .add_edge(START, "one")
    .add_edge("one", "two")
    .add_edge("two", "three")
    .add_edge("three", END)
    .compile()
)


class PausingState(TypedDict, total=False):
    steps: Annotated[list[str], operator.add]
    pause: float


async def _pause(state: PausingState) -> PausingState:
    await asyncio.sleep(state.get("pause", 2))
    return {"steps": ["two"]}


# One, a pause in two, three: a target for killing a process in the middle of a run.
pausing = (
    StateGraph(PausingState)
    .add_node("one", _step("one"))
    .add_node("two", _pause)
    .add_node("three", _step("three"))
    .add_edge(START, "one")
    .add_edge("one", "two")
    .add_edge("two", "three")
    .add_edge("three", END)
    .compile()
)


class SlowState(TypedDict, total=False):
    seconds: float
    done: bool


async def sleep_node(state: SlowState) -> SlowState:
    await asyncio.sleep(state.get("seconds", 3))
    return {"done": True}


slow = StateGraph(SlowState).add_node("sleep", sleep_node).add_edge(START, "sleep").compile()


class ChildState(TypedDict, total=False):
    text: str


def child_node(state: ChildState) -> ChildState:
    return {"text": state.get("text", "") + "+child"}


_child = StateGraph(ChildState).add_node("child_node", child_node).add_edge(START, "child_node")


def parent_node(state: ChildState) -> ChildState:
    return {"text": state.get("text", "") + "+parent"}


nested = (
    StateGraph(ChildState)
    .add_node("parent_node", parent_node)
    .add_node("child", _child.compile())
    .add_edge(START, "parent_node")
    .add_edge("parent_node", "child")
    .add_edge("child", END)
    .compile()
)


def explode(state: EchoState) -> EchoState:
    raise ValueError("boom: " + state.get("text", ""))


failing = StateGraph(EchoState).add_node("explode", explode).add_edge(START, "explode").compile()

# An uncompiled StateGraph: the server compiles it.
uncompiled = StateGraph(EchoState).add_node("echo", echo_node).add_edge(START, "echo")


def make_graph(config: RunnableConfig):
    """A factory: the graph it builds depends on the run's configuration."""
    suffix = config.get("configurable", {}).get("suffix", "!")

    def shout(state: EchoState) -> EchoState:
        return {"text": state.get("text", "").upper() + suffix}

    return StateGraph(EchoState).add_node("shout", shout).add_edge(START, "shout").compile()
