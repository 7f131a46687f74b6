"""The broker of the embedded default: everything in one process, no network hop."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator

from stead.broker.base import Broker, CancelSignal, StreamEvent, Subscription


class InProcessBroker(Broker):
    def __init__(self) -> None:
        self._subscribers: defaultdict[str, set[Subscription]] = defaultdict(set)
        self._cancel_watchers: defaultdict[str, set[CancelSignal]] = defaultdict(set)
        self._work = asyncio.Event()

    async def publish(self, run_id: str, event: StreamEvent) -> None:
        for subscription in self._subscribers.get(run_id, ()):
            subscription.deliver(event)

    @contextlib.asynccontextmanager
    async def subscribe(self, run_id: str) -> AsyncIterator[Subscription]:
        subscription = Subscription()
        self._subscribers[run_id].add(subscription)
        try:
            yield subscription
        finally:
            _discard(self._subscribers, run_id, subscription)

    async def wake_workers(self) -> None:
        self._work.set()

    async def wait_for_work(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._work.wait(), timeout)
        self._work.clear()

    async def signal_cancel(self, run_id: str, action: str) -> None:
        for signal in self._cancel_watchers.get(run_id, ()):
            signal.fire(action)

    @contextlib.asynccontextmanager
    async def watch_cancel(self, run_id: str) -> AsyncIterator[CancelSignal]:
        signal = CancelSignal()
        self._cancel_watchers[run_id].add(signal)
        try:
            yield signal
        finally:
            _discard(self._cancel_watchers, run_id, signal)


def _discard(registry: defaultdict[str, set], key: str, item: object) -> None:
    members = registry.get(key)
    if members is None:
        return
    members.discard(item)
    if not members:
        del registry[key]
