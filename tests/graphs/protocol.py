"""A graph that speaks on every channel of the thread streaming protocol.

plan (custom event, a streamed chat message) -> tools (a ToolNode call) -> approve (an interrupt)
-> review (a subgraph) -> end.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.tools import tool
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode
from langgraph.types import interrupt
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    notes: Annotated[list[str], operator.add]
    review: str


class ReviewState(TypedDict, total=False):
    review: str


@tool
def lookup(query: str) -> str:
    """Look a word up."""
    return f"{query} means yes"


def _model() -> GenericFakeChatModel:
    # A new model per call: its scripted messages are an iterator.
    return GenericFakeChatModel(messages=iter([AIMessage(content="Let me look that up")]))


async def plan(state: State) -> dict[str, Any]:
    write = get_stream_writer()
    write({"name": "progress", "step": "plan"})
    said = await _model().ainvoke(state.get("messages", []))
    call = AIMessage(
        content="",
        id="call-lookup",
        tool_calls=[{"id": "tc-1", "name": "lookup", "args": {"query": "stead"}}],
    )
    write({"name": "audit", "step": "plan"})
    return {"messages": [said, call], "notes": ["planned"]}


def approve(state: State) -> dict[str, Any]:
    answer = interrupt({"question": "go on?"})
    return {"notes": [f"approved:{answer}"]}


def _check(state: ReviewState) -> dict[str, Any]:
    get_stream_writer()({"name": "progress", "step": "check"})
    return {"review": "checked"}


review = StateGraph(ReviewState).add_node("check", _check).add_edge(START, "check").compile()

graph = (
    StateGraph(State)
    .add_node("plan", plan)
    .add_node("tools", ToolNode([lookup]))
    .add_node("approve", approve)
    .add_node("review", review)
    .add_edge(START, "plan")
    .add_edge("plan", "tools")
    .add_edge("tools", "approve")
    .add_edge("approve", "review")
    .add_edge("review", END)
    .compile()
)
