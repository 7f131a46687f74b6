"""Example graphs that run without any API key: a chat bot and an approval flow.

Swap `EchoChatModel` for a real model (e.g. `langchain_openai.ChatOpenAI`) to build your own agent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import interrupt


class EchoChatModel(GenericFakeChatModel):
    """A chat model that streams back what the user said, token by token."""

    messages: Any = iter(())

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        reply = AIMessage(content=f"You said: {messages[-1].content}")
        return ChatResult(generations=[ChatGeneration(message=reply)])

    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        # A token every 20 ms, roughly as a hosted model streams.
        async for chunk in super()._astream(*args, **kwargs):
            await asyncio.sleep(0.02)
            yield chunk


_model = EchoChatModel()


async def respond(state: MessagesState) -> dict[str, Any]:
    return {"messages": [await _model.ainvoke(state["messages"])]}


chat = (
    StateGraph(MessagesState)
    .add_node("respond", respond)
    .add_edge(START, "respond")
    .add_edge("respond", END)
    .compile()
)


class ApprovalState(TypedDict, total=False):
    request: str
    decision: str


def ask_for_approval(state: ApprovalState) -> ApprovalState:
    decision = interrupt({"question": f"Approve '{state.get('request', '')}'?"})
    return {"decision": str(decision)}


approval = (
    StateGraph(ApprovalState)
    .add_node("ask_for_approval", ask_for_approval)
    .add_edge(START, "ask_for_approval")
    .add_edge("ask_for_approval", END)
    .compile()
)
