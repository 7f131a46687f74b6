"""The events of the thread streaming protocol, built from a run's graph output and its outcome.

The worker streams a protocol run's graph (see `stead.worker.protocol_stream`); this module turns
what the graph says into what clients expect and adds what the graph does not say itself: the root
`lifecycle` (running, interrupted, completed, failed) and `input.requested` for interrupts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from langgraph.types import Interrupt

from stead import serde
from stead.broker import Broker, ThreadEvent

# Channels a subscription may name (besides `custom:<name>`), and the methods each one carries.
CHANNEL_METHODS = {
    "values": ("values",),
    "updates": ("updates",),
    "messages": ("messages",),
    "tools": ("tools",),
    "custom": ("custom",),
    "lifecycle": ("lifecycle",),
    "input": ("input.requested",),
    "tasks": ("tasks",),
    "checkpoints": ("checkpoints",),
}
# The kwarg that marks a run started through the protocol: its worker streams protocol events.
PROTOCOL_RUN = "thread_protocol"


def is_protocol_run(run: dict[str, Any]) -> bool:
    return bool(run["kwargs"].get(PROTOCOL_RUN))


def thread_event(method: str, namespace: Iterable[str], data: Any, event_id: str) -> ThreadEvent:
    namespace = tuple(namespace)
    params = {"namespace": list(namespace), "timestamp": now_ms(), "data": data}
    return ThreadEvent(method, namespace, serde.dumps(params), event_id)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class RunEventIds:
    """Event ids of one attempt of a run: the same event has the same id on every connection,
    and an attempt that repeats a step gives its events new ids."""

    def __init__(self, run: dict[str, Any]) -> None:
        self._prefix = f"{run['run_id']}:{run['attempt']}:"
        self._count = 0

    def next(self) -> str:
        self._count += 1
        return f"{self._prefix}{self._count}"


def lifecycle(
    run: dict[str, Any], event: str, *, error: str | None = None, namespace: Iterable[str] = ()
) -> ThreadEvent:
    """A root (or subgraph) lifecycle event. Terminal ones have an id per run and outcome, so a
    client that hears one from two places (a cancel and the worker) keeps it once."""
    data: dict[str, Any] = {"event": event, "graph_name": graph_name(run)}
    if error is not None:
        data["error"] = error
    return thread_event(
        "lifecycle", namespace, data, f"{run['run_id']}:{run['attempt']}:lifecycle:{event}"
    )


def graph_name(run: dict[str, Any]) -> str:
    return str(run["kwargs"]["config"]["configurable"]["graph_id"])


def outcome_events(
    run: dict[str, Any], status: str, interrupts: list[Interrupt], error: dict[str, Any] | None
) -> list[ThreadEvent]:
    """What ends a protocol run on its stream: the interrupts it waits on, or how it ended."""
    if status == "success" and interrupts:
        requested = [
            thread_event(
                "input.requested",
                (),
                {"interrupt_id": item.id, "payload": item.value},
                f"{run['run_id']}:{run['attempt']}:input:{item.id}",
            )
            for item in interrupts
        ]
        return [*requested, lifecycle(run, "interrupted")]
    if status == "success":
        return [lifecycle(run, "completed")]
    return [lifecycle(run, "failed", error=_error_text(status, error))]


def _error_text(status: str, error: dict[str, Any] | None) -> str:
    if status == "interrupted":
        return "cancelled"
    if error and error.get("message"):
        return str(error["message"])
    return status


async def publish_cancelled(broker: Broker, runs: Iterable[dict[str, Any]]) -> None:
    """End the stream of protocol runs cancelled before a worker took them: no worker will."""
    for run in runs:
        if is_protocol_run(run):
            await broker.append_thread_events(
                run["thread_id"], [lifecycle(run, "failed", error="cancelled")]
            )


class GraphEvents:
    """Turns what a graph streams into the protocol's events, numbered for one run attempt.

    - Subgraph lifecycle is reported under the subgraph's own namespace, with its graph name on
      `completed` too.
    - Chat model output keeps the content-block events; whole-message tuples are dropped.
    - The root interrupt (`__interrupt__`) leaves `updates`: it comes as `input.requested`.
    """

    def __init__(self, run: dict[str, Any]) -> None:
        self._ids = RunEventIds(run)
        self._subgraph_names: dict[tuple[str, ...], str] = {}

    def convert(self, method: str, namespace: Iterable[str], data: Any) -> ThreadEvent | None:
        if method == "lifecycle":
            namespace, data = self._subgraph_lifecycle(data)
        elif method == "messages":
            data = _content_block_event(data)
            if data is None:
                return None
        elif method == "updates" and isinstance(data, dict) and "__interrupt__" in data:
            data = {key: value for key, value in data.items() if key != "__interrupt__"}
        return thread_event(method, namespace, data, self._ids.next())

    def _subgraph_lifecycle(self, data: dict[str, Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
        namespace = tuple(data.get("namespace") or ())
        if "graph_name" in data:
            self._subgraph_names[namespace] = data["graph_name"]
        name = self._subgraph_names.get(namespace)
        reported = {"event": data["event"], **({"graph_name": name} if name else {})}
        if data.get("error"):
            reported["error"] = data["error"]
        return namespace, reported


def _content_block_event(data: Any) -> Any:
    """The v2 message event of a `(payload, metadata)` pair; None for a legacy whole message."""
    payload = data[0] if isinstance(data, (list, tuple)) and data else data
    if isinstance(payload, dict) and "event" in payload:
        return payload
    return None
