"""The broker interface. Nothing here is durable: losing a message must never lose a run."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True)
class StreamEvent:
    """One SSE event of a run: its name and its JSON payload, encoded once by the worker."""

    event: str
    data: bytes

    @property
    def is_end(self) -> bool:
        return self.event == END_EVENT


# Published after the run's row is final; subscribers close their streams on it.
END_EVENT = "__end__"
END = StreamEvent(END_EVENT, b"null")


class Subscription:
    """The events of one run, in order, for one listener, until the run ends."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[StreamEvent] = asyncio.Queue()

    def deliver(self, event: StreamEvent) -> None:
        self._queue.put_nowait(event)

    async def next(self, timeout: float | None = None) -> StreamEvent | None:
        """The next event; None when `timeout` passes first."""
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        while True:
            event = await self._queue.get()
            if event.is_end:
                return
            yield event


class CancelSignal:
    """Set when someone asks to cancel a run; carries the action (interrupt or rollback)."""

    def __init__(self) -> None:
        self.action: str | None = None
        self._event = asyncio.Event()

    def fire(self, action: str) -> None:
        self.action = action
        self._event.set()

    async def wait(self) -> str:
        await self._event.wait()
        assert self.action is not None
        return self.action


class Broker(ABC):
    @abstractmethod
    async def publish(self, run_id: str, event: StreamEvent) -> None: ...

    @abstractmethod
    def subscribe(self, run_id: str) -> contextlib.AbstractAsyncContextManager[Subscription]:
        """Listen to a run's events. Subscribe before the run can start, or events are missed."""

    @abstractmethod
    async def wake_workers(self) -> None:
        """Tell idle workers that a run may be ready."""

    @abstractmethod
    async def wait_for_work(self, timeout: float) -> None:
        """Return on a wake-up or after `timeout` seconds, whichever comes first."""

    @abstractmethod
    async def signal_cancel(self, run_id: str, action: str) -> None: ...

    @abstractmethod
    def watch_cancel(self, run_id: str) -> contextlib.AbstractAsyncContextManager[CancelSignal]:
        """A signal that fires when a cancel for this run is sent."""

    async def close(self) -> None:
        return None
