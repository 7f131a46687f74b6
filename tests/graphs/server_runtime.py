"""Graph factories that take the server's runtime, annotated with the real `ServerRuntime`.

Every factory records why and for whom the server called it in the runtime's store (namespace
`factory_calls`, key = the factory's name), so a test can see the call behind any request; a
run's output also carries what the factory was told. The topology is the same in every case.
"""

import contextlib
from collections.abc import AsyncIterator
from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph_sdk.runtime import ServerRuntime

CALLS_NAMESPACE = ("factory_calls",)


class CallState(TypedDict, total=False):
    text: str
    access_context: str
    is_for_execution: bool
    user: dict[str, Any] | None
    context: dict[str, Any] | None
    suffix: str | None


async def record_call(
    name: str, runtime: ServerRuntime, config: RunnableConfig | None = None
) -> CallState:
    execution = runtime.execution_runtime
    user = runtime.user
    call: CallState = {
        "access_context": runtime.access_context,
        "is_for_execution": execution is not None,
        "user": None
        if user is None
        else {"identity": user.identity, "permissions": list(user.permissions)},
        "context": execution.context if execution is not None else None,
        "suffix": (config or {}).get("configurable", {}).get("suffix"),
    }
    await runtime.store.aput(CALLS_NAMESPACE, name, dict(call))
    return call


def echo_graph(call: CallState) -> CompiledStateGraph:
    """One node that echoes the text and reports what the factory was told."""

    def echo(state: CallState) -> CallState:
        return {**call, "text": (state.get("text") or "") + " echoed"}

    return StateGraph(CallState).add_node("echo", echo).add_edge(START, "echo").compile()


async def runtime_only(runtime: ServerRuntime) -> CompiledStateGraph:
    return echo_graph(await record_call("runtime_only", runtime))


@contextlib.asynccontextmanager
async def runtime_then_config(
    runtime: ServerRuntime[dict[str, Any]], config: RunnableConfig
) -> AsyncIterator[CompiledStateGraph]:
    yield echo_graph(await record_call("runtime_then_config", runtime, config))
