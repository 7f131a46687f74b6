"""How a worker streams a run started through the thread streaming protocol.

The graph runs under LangGraph's v3 event stream with the transformers the protocol's channels
need; its events go to the thread's protocol log in batches, so that a fast graph does not wait
for one broker round trip per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from typing import Any

from langchain_core._api.beta_decorator import LangChainBetaWarning
from langgraph.stream import StreamTransformer

from stead.broker import Broker, ThreadEvent
from stead.protocol.events import V3Events


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


class ThreadEventWriter:
    """Appends a run's protocol events to its thread's log in order, batching those that come
    while the previous append is under way. One task writes for the whole run: adding an event
    is a list append, not a task."""

    def __init__(self, broker: Broker, thread_id: str) -> None:
        self._broker = broker
        self._thread_id = thread_id
        self._pending: list[ThreadEvent] = []
        self._starts_run = False
        self._added = asyncio.Event()
        self._idle = asyncio.Event()
        self._writing = asyncio.ensure_future(self._write_batches())

    def add(self, event: ThreadEvent, *, starts_run: bool = False) -> None:
        if starts_run:
            self._starts_run = True
        self._pending.append(event)
        self._idle.clear()
        self._added.set()

    async def drain(self) -> None:
        """Wait until every added event is appended."""
        idle = asyncio.ensure_future(self._idle.wait())
        try:
            await asyncio.wait({idle, self._writing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            idle.cancel()
        if self._writing.done():
            self._writing.result()

    async def close(self) -> None:
        self._writing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writing

    async def _write_batches(self) -> None:
        while True:
            self._idle.set()
            await self._added.wait()
            self._added.clear()
            while self._pending:
                batch, self._pending = self._pending, []
                starts_run, self._starts_run = self._starts_run, False
                await self._broker.append_thread_events(
                    self._thread_id, batch, starts_run=starts_run
                )


async def stream_protocol_events(
    graph: Any,
    graph_input: Any,
    config: dict[str, Any],
    options: dict[str, Any],
    run: dict[str, Any],
    writer: ThreadEventWriter,
) -> None:
    """Run the graph to its end or interrupt, writing its protocol events."""
    stream = await graph.astream_events(
        graph_input, config, version="v3", transformers=[_ProtocolModes], **options
    )
    events = V3Events(run)
    async for event in stream:
        converted = events.convert(event)
        if converted is not None:
            writer.add(converted)
