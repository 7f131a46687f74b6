"""Speaking the thread streaming protocol in tests: commands, and a thread's event stream over
SSE (`POST /threads/{id}/stream/events`) or a WebSocket on the same path."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import websockets

from tests.support.sse import OpenStream, SseEvent

EVERY_CHANNEL = ["values", "updates", "messages", "tools", "custom", "lifecycle", "input"]

Event = dict[str, Any]


def new_thread_id() -> str:
    return str(uuid.uuid4())


async def command(
    http: httpx.AsyncClient, thread_id: str, method: str, params: dict[str, Any], id_: int = 1
) -> dict[str, Any]:
    """The command's envelope; the HTTP status must be 200."""
    response = await http.post(
        f"/threads/{thread_id}/commands", json={"id": id_, "method": method, "params": params}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def start_run(
    http: httpx.AsyncClient, thread_id: str, assistant_id: str, graph_input: Any
) -> str:
    answer = await command(
        http, thread_id, "run.start", {"assistant_id": assistant_id, "input": graph_input}
    )
    assert answer["type"] == "success", answer
    return str(answer["result"]["run_id"])


def events_of(stream: OpenStream) -> list[Event]:
    return [event.data for event in stream.events]


def root_lifecycle(events: list[Event]) -> list[str]:
    return [
        event["params"]["data"]["event"]
        for event in events
        if event["method"] == "lifecycle" and not event["params"]["namespace"]
    ]


def ended(count: int = 1) -> Callable[[list[SseEvent]], bool]:
    """Done once `count` root runs ended (completed, failed) or waited on an interrupt."""
    terminal = ("completed", "failed", "interrupted")
    return lambda events: (
        sum(phase in terminal for phase in root_lifecycle([event.data for event in events]))
        >= count
    )


@contextlib.asynccontextmanager
async def event_stream(
    http: httpx.AsyncClient, thread_id: str, **body: Any
) -> AsyncIterator[OpenStream]:
    body.setdefault("channels", EVERY_CHANNEL)
    async with OpenStream(
        http, f"/threads/{thread_id}/stream/events", method="POST", json=body
    ) as stream:
        yield stream


class Socket:
    """A WebSocket on a thread's events: commands in, answers and events out, in order."""

    def __init__(self, connection: websockets.ClientConnection) -> None:
        self.connection = connection
        self.received: list[dict[str, Any]] = []
        self._next_id = 1

    async def send(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send a command and return its answer; events that came first are kept."""
        command_id = self._next_id
        self._next_id += 1
        await self.connection.send(
            json.dumps({"id": command_id, "method": method, "params": params})
        )
        return await self.until(lambda message: message.get("id") == command_id)

    async def until(
        self, matches: Callable[[dict[str, Any]], bool], timeout: float = 20.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"never received it; got {self.received}"
            message = json.loads(await asyncio.wait_for(self.connection.recv(), remaining))
            self.received.append(message)
            if matches(message):
                return message

    def events(self) -> list[Event]:
        return [message for message in self.received if message.get("type") == "event"]


@contextlib.asynccontextmanager
async def socket(
    base_url: str, thread_id: str, headers: dict[str, str] | None = None
) -> AsyncIterator[Socket]:
    url = base_url.replace("http://", "ws://") + f"/threads/{thread_id}/stream/events"
    async with websockets.connect(url, additional_headers=headers) as connection:
        yield Socket(connection)
