"""`langgraph.pregel.remote.RemoteGraph` against Stead: how LangGraph users call a deployment.

RemoteGraph streams every call (`runs.stream` with `if_not_exists="create"`), splits `mode|ns` event
names into namespaces, and maps state calls onto the threads endpoints.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from langgraph.pregel.remote import RemoteException, RemoteGraph
from langgraph.types import Command, Interrupt
from langgraph_sdk.client import LangGraphClient

from tests.graphs.agent import EchoState

HI = {"messages": [{"role": "user", "content": "hi"}]}
Factory = Callable[[str], RemoteGraph]


@pytest.fixture
async def remote(url: str) -> AsyncIterator[Factory]:
    """Build RemoteGraphs the way users do (from a URL) and close their clients afterwards."""
    made: list[RemoteGraph] = []

    def make(graph_id: str) -> RemoteGraph:
        graph = RemoteGraph(graph_id, url=url)
        made.append(graph)
        return graph

    yield make
    for graph in made:
        if graph.client is not None:
            await graph.client.http.client.aclose()
        if graph.sync_client is not None:
            graph.sync_client.http.client.close()


def thread_config() -> RunnableConfig:
    """A config for a thread that does not exist yet: RemoteGraph creates it."""
    return {"configurable": {"thread_id": str(uuid.uuid4())}}


def thread_id_of(config: RunnableConfig) -> str:
    return str(config["configurable"]["thread_id"])


def contents(state: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["type"], m["content"]) for m in state["messages"]]


# --------------------------------------------------------------------------------------------
# invoke


def test_invoke_stateless(remote: Factory) -> None:
    result = remote("agent").invoke(HI)
    assert contents(result) == [("human", "hi"), ("ai", "Hello there friend")]


async def test_ainvoke_stateless(remote: Factory) -> None:
    result = await remote("agent").ainvoke(HI)
    assert contents(result) == [("human", "hi"), ("ai", "Hello there friend")]


async def test_ainvoke_creates_thread_and_keeps_state(
    remote: Factory, client: LangGraphClient
) -> None:
    graph = remote("steps")
    config = thread_config()
    first = await graph.ainvoke({"steps": []}, config)
    assert first == {"steps": ["one", "two", "three"]}
    thread = await client.threads.get(thread_id_of(config))
    assert thread["status"] == "idle"
    assert thread["metadata"]["graph_id"] == "steps"
    assert thread["values"] == first

    # Same thread: the state carries over.
    second = await graph.ainvoke({"steps": ["again"]}, config)
    assert second == {"steps": ["one", "two", "three", "again", "one", "two", "three"]}


def test_invoke_stateful_sync(remote: Factory, sync_client: Any) -> None:
    config = thread_config()
    result = remote("echo").invoke({"text": "sync"}, config)
    assert result == {"text": "sync"}
    assert sync_client.threads.get_state(thread_id_of(config))["values"] == {"text": "sync"}


def test_invoke_raises_remote_exception_on_graph_error(remote: Factory) -> None:
    with pytest.raises(RemoteException) as caught:
        remote("failing").invoke({"text": "q"})
    assert caught.value.args[0] == {"error": "ValueError", "message": "boom: q"}


async def test_ainvoke_raises_remote_exception_on_graph_error(remote: Factory) -> None:
    with pytest.raises(RemoteException) as caught:
        await remote("failing").ainvoke({"text": "q"}, thread_config())
    assert caught.value.args[0]["error"] == "ValueError"


# --------------------------------------------------------------------------------------------
# stream


def test_stream_updates(remote: Factory) -> None:
    chunks = list(remote("steps").stream({"steps": []}, stream_mode="updates"))
    assert chunks == [
        {"one": {"steps": ["one"]}},
        {"two": {"steps": ["two"]}},
        {"three": {"steps": ["three"]}},
    ]


def test_stream_values(remote: Factory) -> None:
    chunks = list(remote("steps").stream({"steps": []}, thread_config(), stream_mode="values"))
    assert chunks == [
        {"steps": []},
        {"steps": ["one"]},
        {"steps": ["one", "two"]},
        {"steps": ["one", "two", "three"]},
    ]


async def test_astream_several_modes(remote: Factory) -> None:
    parts = [
        (part[0], part[1])
        async for part in remote("steps").astream(
            {"steps": []}, thread_config(), stream_mode=["values", "updates"]
        )
    ]
    assert parts[0] == ("values", {"steps": []})
    assert parts[-1] == ("values", {"steps": ["one", "two", "three"]})
    assert [data for mode, data in parts if mode == "updates"] == [
        {"one": {"steps": ["one"]}},
        {"two": {"steps": ["two"]}},
        {"three": {"steps": ["three"]}},
    ]


async def test_astream_messages(remote: Factory) -> None:
    parts = [
        part async for part in remote("agent").astream(HI, thread_config(), stream_mode="messages")
    ]
    assert parts
    assert "".join(chunk["content"] for chunk, _ in parts) == "Hello there friend"
    for chunk, metadata in parts:
        assert chunk["type"] == "AIMessageChunk"
        assert metadata["langgraph_node"] == "call_model"


async def test_astream_subgraphs_gives_namespaced_tuples(remote: Factory) -> None:
    parts = [
        part
        async for part in remote("nested").astream(
            {"text": "x"}, thread_config(), stream_mode="updates", subgraphs=True
        )
    ]
    assert len(parts) == 3
    assert parts[0] == ((), {"parent_node": {"text": "x+parent"}})
    namespace, data = parts[1]
    assert len(namespace) == 1
    assert namespace[0].startswith("child:")
    assert uuid.UUID(namespace[0].removeprefix("child:"))
    assert data == {"child_node": {"text": "x+parent+child"}}
    assert parts[2] == ((), {"child": {"text": "x+parent+child"}})


async def test_astream_without_subgraphs_hides_subgraph_events(remote: Factory) -> None:
    parts = [
        part
        async for part in remote("nested").astream(
            {"text": "x"}, thread_config(), stream_mode="updates"
        )
    ]
    assert parts == [
        {"parent_node": {"text": "x+parent"}},
        {"child": {"text": "x+parent+child"}},
    ]


# --------------------------------------------------------------------------------------------
# state


def test_get_state(remote: Factory) -> None:
    graph = remote("steps")
    config = thread_config()
    graph.invoke({"steps": []}, config)
    snapshot = graph.get_state(config)
    assert snapshot.values == {"steps": ["one", "two", "three"]}
    assert snapshot.next == ()
    assert snapshot.tasks == ()
    assert snapshot.config["configurable"]["thread_id"] == thread_id_of(config)
    assert snapshot.config["configurable"]["checkpoint_id"]
    assert snapshot.parent_config is not None
    assert snapshot.metadata["step"] == 3
    assert snapshot.metadata["source"] == "loop"


async def test_aget_state(remote: Factory) -> None:
    graph = remote("agent")
    config = thread_config()
    await graph.ainvoke(HI, config)
    snapshot = await graph.aget_state(config)
    assert contents(snapshot.values) == [("human", "hi"), ("ai", "Hello there friend")]
    assert snapshot.next == ()
    assert snapshot.config["configurable"]["thread_id"] == thread_id_of(config)


def test_get_state_history(remote: Factory) -> None:
    graph = remote("steps")
    config = thread_config()
    graph.invoke({"steps": []}, config)
    history = list(graph.get_state_history(config))
    assert [s.values for s in history] == [
        {"steps": ["one", "two", "three"]},
        {"steps": ["one", "two"]},
        {"steps": ["one"]},
        {"steps": []},
        {"steps": []},
    ]
    assert [s.next for s in history] == [(), ("three",), ("two",), ("one",), ("__start__",)]
    for newer, older in itertools.pairwise(history):
        assert newer.parent_config is not None
        assert (
            newer.parent_config["configurable"]["checkpoint_id"]
            == older.config["configurable"]["checkpoint_id"]
        )
    assert history[-1].parent_config is None
    assert len(list(graph.get_state_history(config, limit=2))) == 2

    # A past checkpoint can be read back by its config.
    past = graph.get_state(history[2].config)
    assert past.values == {"steps": ["one"]}
    assert past.next == ("two",)


async def test_aget_state_history(remote: Factory) -> None:
    graph = remote("steps")
    config = thread_config()
    await graph.ainvoke({"steps": []}, config)
    history = [s async for s in graph.aget_state_history(config, limit=3)]
    assert [s.values for s in history] == [
        {"steps": ["one", "two", "three"]},
        {"steps": ["one", "two"]},
        {"steps": ["one"]},
    ]


def test_update_state(remote: Factory) -> None:
    graph = remote("steps")
    config = thread_config()
    graph.invoke({"steps": []}, config)
    before = graph.get_state(config)

    updated = graph.update_state(config, {"steps": ["extra"]}, as_node="three")
    assert updated["configurable"]["thread_id"] == thread_id_of(config)
    assert (
        updated["configurable"]["checkpoint_id"] != (before.config["configurable"]["checkpoint_id"])
    )
    after = graph.get_state(config)
    assert after.values == {"steps": ["one", "two", "three", "extra"]}
    assert (
        after.config["configurable"]["checkpoint_id"] == (updated["configurable"]["checkpoint_id"])
    )
    assert after.metadata["source"] == "update"


async def test_aupdate_state_then_continue(remote: Factory) -> None:
    """Update state as node `one`, then resume: the graph continues from `two`."""
    graph = remote("steps")
    config = thread_config()
    await graph.ainvoke({"steps": []}, config, interrupt_before=["one"])
    assert (await graph.aget_state(config)).next == ("one",)
    await graph.aupdate_state(config, {"steps": ["manual"]}, as_node="one")
    assert (await graph.aget_state(config)).next == ("two",)
    result = await graph.ainvoke(None, config)
    assert result == {"steps": ["manual", "two", "three"]}


# --------------------------------------------------------------------------------------------
# graph


def test_get_graph(remote: Factory) -> None:
    drawable = remote("nested").get_graph()
    assert set(drawable.nodes) == {"__start__", "parent_node", "child", "__end__"}
    edges = {(edge.source, edge.target) for edge in drawable.edges}
    assert edges == {("__start__", "parent_node"), ("parent_node", "child"), ("child", "__end__")}


async def test_aget_graph_xray(remote: Factory) -> None:
    drawable = await remote("nested").aget_graph(xray=True)
    assert "child:child_node" in drawable.nodes
    assert "child" not in drawable.nodes
    edges = {(edge.source, edge.target) for edge in drawable.edges}
    assert ("parent_node", "child:child_node") in edges


# --------------------------------------------------------------------------------------------
# interrupts


def test_interrupt_then_resume(remote: Factory) -> None:
    graph = remote("hitl")
    config = thread_config()
    result = graph.invoke({"text": "hello"}, config)
    assert result["text"] == "hello"
    (pending,) = result["__interrupt__"]
    assert pending["value"] == {"question": "approve?"}

    snapshot = graph.get_state(config)
    assert snapshot.next == ("ask",)
    (interrupt,) = snapshot.interrupts
    assert interrupt.value == {"question": "approve?"}
    assert interrupt.id == pending["id"]
    assert snapshot.tasks[0].name == "ask"

    resumed = graph.invoke(Command(resume="yes"), config)
    assert resumed == {"text": "hello:yes", "answer": "yes"}
    assert graph.get_state(config).next == ()


async def test_interrupt_v2_stream_then_resume(remote: Factory) -> None:
    graph = remote("hitl")
    config = thread_config()
    parts = [
        part
        async for part in graph.astream(
            {"text": "hello"}, config, stream_mode="values", version="v2"
        )
    ]
    last = parts[-1]
    assert last["type"] == "values"
    assert last["data"] == {"text": "hello"}
    (interrupt,) = last["interrupts"]
    assert isinstance(interrupt, Interrupt)
    assert interrupt.value == {"question": "approve?"}

    resumed = await graph.ainvoke(Command(resume="no"), config)
    assert resumed == {"text": "hello:no", "answer": "no"}


# --------------------------------------------------------------------------------------------
# RemoteGraph as a node of a local graph


async def test_remote_graph_as_a_node(remote: Factory) -> None:
    local = (
        StateGraph(EchoState)
        .add_node("remote_echo", remote("echo"))
        .add_edge(START, "remote_echo")
        .compile()
    )
    assert await local.ainvoke({"text": "through"}) == {"text": "through"}
    updates = [chunk async for chunk in local.astream({"text": "u"}, stream_mode="updates")]
    assert updates == [{"remote_echo": {"text": "u"}}]
