"""A graph that records who started its run, as the server put it in config.configurable."""

from __future__ import annotations

from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph


class WhoamiState(TypedDict, total=False):
    user_id: str
    permissions: list[str]
    user: dict[str, Any]


def whoami_node(state: WhoamiState, config: RunnableConfig) -> WhoamiState:
    configurable = config["configurable"]
    return {
        "user_id": configurable.get("langgraph_auth_user_id", ""),
        "permissions": list(configurable.get("langgraph_auth_permissions") or []),
        "user": dict(configurable.get("langgraph_auth_user") or {}),
    }


graph = StateGraph(WhoamiState).add_node("whoami", whoami_node).add_edge(START, "whoami").compile()
