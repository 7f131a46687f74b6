"""Sending a run's events in batches: a fast graph must not wait one broker round trip per event."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")

# Items added before the sender gets a turn (measured in bench/protocol.py: 16 cost throughput,
# no bound delayed a fast node's first event by a fifth).
SEND_EVERY = 64
# How long closing waits for what was added to be sent (a cancelled run's last events).
_CLOSE_DRAIN_SECONDS = 5.0


class BatchWriter(Generic[Item]):
    """Sends items in order, batching those that come while the previous send is under way. One
    task sends for the whole run: adding an item is a list append, not a task."""

    def __init__(self, send: Callable[[list[Item]], Awaitable[None]]) -> None:
        self._send = send
        self._pending: list[Item] = []
        self._added = asyncio.Event()
        self._idle = asyncio.Event()
        self._writing = asyncio.ensure_future(self._send_batches())

    def add(self, item: Item) -> None:
        self._pending.append(item)
        self._idle.clear()
        self._added.set()

    async def put(self, item: Item) -> None:
        """Add an item, and every `SEND_EVERY` items give the sender a turn: a fast node's events
        all come at once, and its first ones should go out before its last are made."""
        self.add(item)
        if len(self._pending) >= SEND_EVERY:
            await asyncio.sleep(0)

    async def drain(self) -> None:
        """Wait until every added item is sent."""
        if self._idle.is_set():
            return
        idle = asyncio.ensure_future(self._idle.wait())
        try:
            await asyncio.wait({idle, self._writing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            idle.cancel()
        if self._writing.done():
            self._writing.result()

    async def close(self) -> None:
        """Send what is left (within a bound: the broker may be away), then stop."""
        # Mostly all is sent by then: the wait's two tasks would be a tenth of a run's.
        if not self._idle.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.drain()), _CLOSE_DRAIN_SECONDS)
        self._writing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writing

    async def _send_batches(self) -> None:
        while True:
            self._idle.set()
            await self._added.wait()
            self._added.clear()
            while self._pending:
                # No local keeps a sent batch: its events (a large run's values) would stay
                # in memory while this waits for the next.
                await self._send(self._take_pending())

    def _take_pending(self) -> list[Item]:
        batch, self._pending = self._pending, []
        return batch
