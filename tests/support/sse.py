"""Reading SSE bodies with their `id:` lines, and keeping a long-lived stream open in a test."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class SseEvent:
    event: str
    data: Any
    id: str | None


def parse_events(raw: bytes) -> list[SseEvent]:
    """The events of a CRLF-framed body; heartbeats skipped, the field order checked."""
    events = []
    for block in raw.split(b"\r\n\r\n"):
        lines = [line for line in block.split(b"\r\n") if line and not line.startswith(b":")]
        if not lines:
            continue
        fields = [line.partition(b": ") for line in lines]
        names = [name for name, _, _ in fields]
        assert names in ([b"event", b"data"], [b"event", b"data", b"id"]), block
        values = [value.decode() for _, _, value in fields]
        events.append(
            SseEvent(values[0], json.loads(values[1]), values[2] if len(values) > 2 else None)
        )
    return events


def id_order(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq)


def assert_increasing_ids(events: list[SseEvent]) -> None:
    ids = [event.id for event in events]
    assert all(ids), ids
    orders = [id_order(event_id) for event_id in ids if event_id]
    assert orders == sorted(set(orders)), ids


async def read_stream(
    http: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    headers: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> tuple[httpx.Response, list[SseEvent]]:
    """A whole stream that ends on its own (a run stream), parsed."""
    async with http.stream(method, path, headers=headers, **kwargs) as response:
        raw = await response.aread()
    return response, parse_events(raw) if response.status_code == 200 else []


class OpenStream:
    """A stream read in the background (a thread stream never ends), events parsed as they come.

    `async with OpenStream(...)` returns once the server has answered: the stream is subscribed.
    """

    def __init__(
        self, http: httpx.AsyncClient, path: str, method: str = "GET", **kwargs: Any
    ) -> None:
        self._http = http
        self._path = path
        self._method = method
        self._kwargs = kwargs
        self._buffer = b""
        self._opened = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.events: list[SseEvent] = []
        self.response: httpx.Response | None = None

    async def __aenter__(self) -> OpenStream:
        self._task = asyncio.create_task(self._read())
        opened = asyncio.create_task(self._opened.wait())
        await asyncio.wait({opened, self._task}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
        opened.cancel()
        if self._task.done():
            self._task.result()
        assert self.response is not None, "stream did not open"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    @property
    def closed(self) -> bool:
        """The server ended the stream (or reading it failed)."""
        return self._task is not None and self._task.done()

    async def until(
        self, done: Callable[[list[SseEvent]], bool], timeout: float = 20.0
    ) -> list[SseEvent]:
        """The events so far, once `done` holds for them."""
        deadline = time.monotonic() + timeout
        while not done(self.events):
            assert time.monotonic() < deadline, f"stream never got there: {self.events}"
            assert self._task is not None and not self._task.done(), "stream closed early"
            await asyncio.sleep(0.02)
        return list(self.events)

    async def _read(self) -> None:
        async with self._http.stream(self._method, self._path, **self._kwargs) as response:
            self.response = response
            self._opened.set()
            async for chunk in response.aiter_raw():
                self._buffer += chunk
                complete, _, self._buffer = self._buffer.rpartition(b"\r\n\r\n")
                if complete:
                    self.events.extend(parse_events(complete + b"\r\n\r\n"))
