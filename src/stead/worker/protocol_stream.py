"""How a worker streams a run started through the thread streaming protocol.

A graph runs under the classic `astream`, asked for every stream mode the protocol's channels
carry (chat output as content-block events, subgraphs included), and LangGraph's own
`LifecycleTransformer` says when its subgraphs start and end. A graph compiled with stream
transformers of its own (`create_agent` graphs are) runs under LangGraph's v3 event stream
instead, which applies them; it yields the same events otherwise, but pulls each one through a
task of its own, which made the protocol a fifth slower than `runs/stream` on a fast graph.

The events go to the thread's protocol log in batches (`BatchWriter`).
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from typing import Any

from langchain_core._api.beta_decorator import LangChainBetaWarning
from langgraph._internal._constants import CONFIG_KEY_STREAM_MESSAGES_V2
from langgraph.stream import LifecyclePayload, LifecycleTransformer, StreamTransformer

from stead.broker import Broker, ThreadEvent
from stead.protocol.events import GraphEvents
from stead.worker.batching import BatchWriter

# What the protocol's channels carry; `tasks` only feeds the subgraph lifecycle.
PROTOCOL_STREAM_MODES = ["values", "updates", "messages", "tools", "custom", "tasks"]
# A graph event: its method, namespace and data.
GraphEvent = tuple[str, tuple[str, ...], Any]


class _SubgraphLifecycle(LifecycleTransformer):
    """LangGraph's rule for when a subgraph starts and ends, read from `tasks` events without
    the v3 mux: what the transformer publishes on its `lifecycle` channel is collected here."""

    def __init__(self) -> None:
        super().__init__(())
        self._reported: list[LifecyclePayload] = []
        # The mux would wire the channel to its event log; the classic stream has no mux.
        self.init()["lifecycle"]._wire(self._reported.append)

    def observe(self, namespace: tuple[str, ...], data: Any) -> list[LifecyclePayload]:
        self.process(
            {
                "type": "event",
                "method": "tasks",
                "params": {"namespace": list(namespace), "timestamp": 0, "data": data},
            }
        )
        return self._take()

    def finished(self) -> list[LifecyclePayload]:
        """Completes the subgraphs still open when the graph ended."""
        self.finalize()
        return self._take()

    def failed(self, error: BaseException) -> list[LifecyclePayload]:
        """Ends the subgraphs still open when the graph raised."""
        self.fail(error)
        return self._take()

    def _take(self) -> list[LifecyclePayload]:
        # The channel appends to this very list: empty it, do not replace it.
        taken = list(self._reported)
        self._reported.clear()
        return taken


class _ProtocolModes(StreamTransformer):
    """Asks the graph for what the protocol's channels carry beside LangGraph's defaults (values,
    messages, lifecycle, subgraphs), and keeps none of it: the worker forwards every event as it
    comes, so the projections LangGraph's own transformers would fill go unread."""

    required_stream_modes = ("custom", "updates", "tools")

    def init(self) -> dict[str, Any]:
        return {}

    def process(self, event: Any) -> bool:
        return True


# LangGraph marks its v3 stream experimental on every call; Stead chose it knowingly.
warnings.filterwarnings("ignore", category=LangChainBetaWarning, message=".*v3 streaming protocol")


def thread_event_writer(broker: Broker, thread_id: str) -> BatchWriter[ThreadEvent]:
    """Appends a run's protocol events to its thread's log. The first batch starts the thread's
    current run (it holds the run's `running` event); the others continue it."""
    first = True

    async def append(batch: list[ThreadEvent]) -> None:
        nonlocal first
        starts_run, first = first, False
        await broker.append_thread_events(
            thread_id, batch, starts_run=starts_run, continues=not starts_run
        )

    return BatchWriter(append)


async def stream_protocol_events(
    graph: Any,
    graph_input: Any,
    config: dict[str, Any],
    options: dict[str, Any],
    run: dict[str, Any],
    writer: BatchWriter[ThreadEvent],
) -> None:
    """Run the graph to its end or interrupt, writing its protocol events."""
    if getattr(graph, "stream_transformers", ()):
        events = _v3_events(graph, graph_input, config, options)
    else:
        events = _classic_events(graph, graph_input, config, options)
    protocol = GraphEvents(run)
    async for method, namespace, data in events:
        converted = protocol.convert(method, namespace, data)
        if converted is not None:
            await writer.put(converted)


async def _classic_events(
    graph: Any, graph_input: Any, config: dict[str, Any], options: dict[str, Any]
) -> AsyncIterator[GraphEvent]:
    subgraphs = _SubgraphLifecycle()
    # LangGraph's v3 stream sets this key to get chat output as content-block events; there is
    # no public switch for it (tests/integration/test_protocol_graph_streams.py holds the two
    # streams to the same events).
    parts = graph.astream(
        graph_input,
        {
            **config,
            "configurable": {**config.get("configurable", {}), CONFIG_KEY_STREAM_MESSAGES_V2: True},
        },
        stream_mode=PROTOCOL_STREAM_MODES,
        subgraphs=True,
        version="v2",
        **options,
    )
    try:
        async for part in parts:
            if part["type"] != "tasks":
                yield part["type"], part["ns"], part["data"]
                continue
            for payload in subgraphs.observe(part["ns"], part["data"]):
                yield "lifecycle", (), payload
    except Exception as exc:
        for payload in subgraphs.failed(exc):
            yield "lifecycle", (), payload
        raise
    for payload in subgraphs.finished():
        yield "lifecycle", (), payload


async def _v3_events(
    graph: Any, graph_input: Any, config: dict[str, Any], options: dict[str, Any]
) -> AsyncIterator[GraphEvent]:
    stream = await graph.astream_events(
        graph_input, config, version="v3", transformers=[_ProtocolModes], **options
    )
    async for event in stream:
        params = event["params"]
        yield event["method"], tuple(params["namespace"]), params["data"]
