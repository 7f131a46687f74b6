"""Graph factories whose annotations are strings that do not resolve at run time: the names are
imported only for type checkers, as the SDK's own fixture does."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server_runtime import echo_graph, record_call

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig
    from langgraph.graph.state import CompiledStateGraph
    from langgraph_sdk.runtime import ServerRuntime

    # A context type only a type checker sees: `ServerRuntime[MyContext]` cannot be evaluated.
    from my_project import MyContext  # type: ignore[import-not-found]


async def runtime_only(runtime: ServerRuntime) -> CompiledStateGraph:
    return echo_graph(await record_call("deferred_runtime_only", runtime))


async def config_then_runtime(config: RunnableConfig, runtime: ServerRuntime) -> CompiledStateGraph:
    return echo_graph(await record_call("deferred_config_then_runtime", runtime, config))


async def runtime_then_config(
    runtime: ServerRuntime[MyContext], config: RunnableConfig
) -> CompiledStateGraph:
    return echo_graph(await record_call("deferred_runtime_then_config", runtime, config))
