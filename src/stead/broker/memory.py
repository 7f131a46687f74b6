"""The broker of the embedded default: everything in one process, no network hop."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from stead.broker.base import (
    END,
    Broker,
    CancelSignal,
    StreamEvent,
    Subscription,
    ThreadEvent,
    ThreadEventFeed,
    event_position,
    run_done,
)

# The default bound of a thread's kept protocol events.
DEFAULT_THREAD_EVENTS_KEPT = 10_000
# A thread's kept protocol events are dropped this long after its latest one (its counter stays).
THREAD_EVENTS_TTL_SECONDS = 86400.0


@dataclass
class _RunBuffer:
    """The kept events of a resumable run, whether it has ended, and its thread."""

    events: list[StreamEvent] = field(default_factory=list)
    ended: bool = False
    thread_id: str | None = None


@dataclass(frozen=True)
class _ThreadEntry:
    """A kept event of a thread, with the run it belongs to, so that it expires with that run."""

    run_id: str
    event: StreamEvent


class _ThreadLog:
    """A thread's protocol events: its counter, the latest ones kept, and who listens.

    The counter outlives the kept events, so that `seq` keeps increasing across the thread's
    runs for as long as the process lives.
    """

    def __init__(self, kept: int) -> None:
        self.seq = 0
        self.run_start = 1
        self.events: deque[ThreadEvent] = deque(maxlen=kept)
        self.feeds: set[ThreadEventFeed] = set()
        self.expiry: asyncio.TimerHandle | None = None

    def replay(self, since: int | None) -> list[ThreadEvent]:
        after = self.run_start - 1 if since is None else since
        return [event for event in self.events if event.seq > after]


class _EventIds:
    """Redis-stream style ids, "<ms>-<seq>", strictly increasing even if the clock steps back."""

    def __init__(self) -> None:
        self._ms = 0
        self._seq = 0

    def next(self) -> str:
        now = time.time_ns() // 1_000_000
        if now > self._ms:
            self._ms, self._seq = now, 0
        else:
            self._seq += 1
        return f"{self._ms}-{self._seq}"


class InProcessBroker(Broker):
    def __init__(
        self,
        replay_ttl_seconds: float = 120.0,
        thread_events_kept: int = DEFAULT_THREAD_EVENTS_KEPT,
    ) -> None:
        self._subscribers: defaultdict[str, set[Subscription]] = defaultdict(set)
        self._thread_subscribers: defaultdict[str, set[Subscription]] = defaultdict(set)
        self._cancel_watchers: defaultdict[str, set[CancelSignal]] = defaultdict(set)
        self._work = asyncio.Event()
        self._ids = _EventIds()
        self._replay_ttl = replay_ttl_seconds
        self._run_buffers: dict[str, _RunBuffer] = {}
        self._thread_buffers: dict[str, list[_ThreadEntry]] = {}
        self._expiries: dict[str, asyncio.TimerHandle] = {}
        self._thread_events_kept = thread_events_kept
        self._thread_logs: dict[str, _ThreadLog] = {}

    async def publish_many(
        self,
        run_id: str,
        events: list[StreamEvent],
        *,
        thread_id: str | None = None,
        resumable: bool = False,
        continues: bool = False,
    ) -> None:
        # Nothing here drops a stream, so `continues` changes nothing.
        for event in events:
            self._publish_one(run_id, event, thread_id, resumable)

    def _publish_one(
        self, run_id: str, event: StreamEvent, thread_id: str | None, resumable: bool
    ) -> None:
        if resumable:
            event = self._keep_for_run(run_id, thread_id, event)
        for subscription in self._subscribers.get(run_id, ()):
            subscription.deliver(event)
        if thread_id is not None:
            thread_event = run_done(run_id) if event.is_end else event
            self._send_to_thread(thread_id, thread_event, kept_for=run_id if resumable else None)

    async def publish_to_thread(self, thread_id: str, event: StreamEvent) -> None:
        self._send_to_thread(thread_id, event, kept_for=None)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, run_id: str, *, after: str | None = None, new_run: bool = False
    ) -> AsyncIterator[Subscription]:
        # No await between reading the buffer and registering: nothing can slip in between.
        subscription = Subscription(self._run_replay(run_id, after))
        self._subscribers[run_id].add(subscription)
        try:
            yield subscription
        finally:
            _discard(self._subscribers, run_id, subscription)

    @contextlib.asynccontextmanager
    async def subscribe_thread(
        self, thread_id: str, *, after: str | None = None
    ) -> AsyncIterator[Subscription]:
        subscription = Subscription(self._thread_replay(thread_id, after))
        self._thread_subscribers[thread_id].add(subscription)
        try:
            yield subscription
        finally:
            _discard(self._thread_subscribers, thread_id, subscription)

    async def append_thread_events(
        self,
        thread_id: str,
        events: list[ThreadEvent],
        *,
        starts_run: bool = False,
        continues: bool = False,
    ) -> None:
        # Nothing here drops a log, so `continues` changes nothing.
        log = self._thread_log(thread_id)
        if starts_run:
            log.run_start = log.seq + 1
        for event in events:
            log.seq += 1
            numbered = event.numbered(log.seq)
            log.events.append(numbered)
            for feed in log.feeds:
                feed.deliver(numbered)
        if log.expiry is not None:
            log.expiry.cancel()
        log.expiry = asyncio.get_running_loop().call_later(
            THREAD_EVENTS_TTL_SECONDS, log.events.clear
        )

    async def last_thread_seq(self, thread_id: str) -> int | None:
        log = self._thread_logs.get(thread_id)
        return log.seq if log is not None else 0

    @contextlib.asynccontextmanager
    async def follow_thread_events(
        self, thread_id: str, *, since: int | None = None
    ) -> AsyncIterator[ThreadEventFeed]:
        log = self._thread_log(thread_id)
        # No await between reading the kept events and registering: nothing slips in between.
        feed = ThreadEventFeed(log.replay(since))
        log.feeds.add(feed)
        try:
            yield feed
        finally:
            log.feeds.discard(feed)

    async def wake_workers(self, run_id: str | None = None) -> None:
        # In one process wake-ups merge into one event: none names its run.
        self._work.set()

    async def wait_for_work(self, timeout: float) -> str | None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._work.wait(), timeout)
        self._work.clear()
        return None

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

    async def close(self) -> None:
        for expiry in self._expiries.values():
            expiry.cancel()
        self._expiries.clear()
        for log in self._thread_logs.values():
            if log.expiry is not None:
                log.expiry.cancel()

    def _thread_log(self, thread_id: str) -> _ThreadLog:
        log = self._thread_logs.get(thread_id)
        if log is None:
            log = self._thread_logs[thread_id] = _ThreadLog(self._thread_events_kept)
        return log

    def _keep_for_run(self, run_id: str, thread_id: str | None, event: StreamEvent) -> StreamEvent:
        event = event.with_id(self._ids.next())
        buffer = self._run_buffers.setdefault(run_id, _RunBuffer())
        buffer.thread_id = buffer.thread_id or thread_id
        if not event.is_end:
            buffer.events.append(event)
        elif not buffer.ended:
            buffer.ended = True
            loop = asyncio.get_running_loop()
            self._expiries[run_id] = loop.call_later(self._replay_ttl, self._drop_kept, run_id)
        return event

    def _send_to_thread(self, thread_id: str, event: StreamEvent, *, kept_for: str | None) -> None:
        if event.id is None:
            event = event.with_id(self._ids.next())
        if kept_for is not None:
            self._thread_buffers.setdefault(thread_id, []).append(_ThreadEntry(kept_for, event))
        for subscription in self._thread_subscribers.get(thread_id, ()):
            subscription.deliver(event)

    def _run_replay(self, run_id: str, after: str | None) -> list[StreamEvent] | None:
        buffer = self._run_buffers.get(run_id)
        if after is None or buffer is None:
            return None
        kept = _after(buffer.events, after)
        return [*kept, END] if buffer.ended else kept

    def _thread_replay(self, thread_id: str, after: str | None) -> list[StreamEvent] | None:
        if after is None:
            return None
        return _after([entry.event for entry in self._thread_buffers.get(thread_id, ())], after)

    def _drop_kept(self, run_id: str) -> None:
        self._expiries.pop(run_id, None)
        buffer = self._run_buffers.pop(run_id, None)
        thread_id = buffer.thread_id if buffer is not None else None
        if thread_id is None:
            return
        entries = self._thread_buffers.pop(thread_id, [])
        remaining = [entry for entry in entries if entry.run_id != run_id]
        if remaining:
            self._thread_buffers[thread_id] = remaining


def _after(events: list[StreamEvent], after: str) -> list[StreamEvent]:
    position = event_position(after)
    return [event for event in events if event.id and event_position(event.id) > position]


def _discard(registry: defaultdict[str, set], key: str, item: object) -> None:
    members = registry.get(key)
    if members is None:
        return
    members.discard(item)
    if not members:
        del registry[key]
