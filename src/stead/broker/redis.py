"""The broker of multi-process deployments: API processes and workers share one Redis.

Redis holds nothing that cannot be lost, so every failure here is contained:
- a publish that fails is logged and dropped (the run still finishes and is recorded in the
  database);
- `wait_for_work` sleeps its timeout instead, so workers poll the database;
- a subscription whose connection breaks gets an `error` event and END, and the client reconnects;
- a missed cancel signal is caught by the worker reading the cancel flag on the run's row.

Each run and each thread has a Redis stream. Its entry ids ("<ms>-<seq>") are the SSE event ids, so
`Last-Event-ID` replay is a read after that id, and a subscriber reads on from a position without a
gap between what was kept and what is live. Entries carry whether they are kept for replay: those of
resumable runs are; the others are only live fan-out and never replay to a late subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from stead import serde
from stead.broker.base import (
    END,
    FROM_START,
    Broker,
    CancelSignal,
    StreamEvent,
    Subscription,
    ThreadEvent,
    ThreadEventFeed,
    event_position,
    run_done,
)
from stead.broker.memory import DEFAULT_THREAD_EVENTS_KEPT, THREAD_EVENTS_TTL_SECONDS

logger = logging.getLogger("stead.broker")

# Entry fields: the event name, its JSON data, and "1" when it is kept for replay.
_EVENT, _DATA, _KEPT = b"e", b"d", b"k"
# Streams of runs that have not ended yet are dropped after a day, in case their END never comes.
_OPEN_STREAM_TTL_SECONDS = 86400
# A thread stream is capped (approximately) so that a long-lived thread does not grow forever.
_THREAD_STREAM_MAXLEN = 10_000
# Wake-up tokens left when no worker is idle; each one costs a waking worker one claim query.
_MAX_PENDING_WAKEUPS = 32
# How long one blocking read waits before it is issued again.
_READ_BLOCK_MS = 10_000
_READ_BATCH = 256
# How long the cancel listener waits before reconnecting to a Redis that went away.
_RECONNECT_SECONDS = 1.0
# How long the first `watch_cancel` waits for the cancel channel to be listened to.
_CANCEL_LISTEN_WAIT_SECONDS = 2.0
_CONNECT_TIMEOUT_SECONDS = 2.0
# How long a cancelled stream reader gets to end before it is cancelled again.
_CANCEL_REPEAT_SECONDS = 0.05
# Longer than the longest blocking read (XREAD BLOCK, BLPOP of `wait_for_work`): redis-py 8's
# default of 5 s would end a quiet run stream with StreamInterrupted after 5 s.
_SOCKET_TIMEOUT_SECONDS = _READ_BLOCK_MS / 1000 + 5

# A thread's protocol counter outlives its kept events, so that `seq` keeps increasing across
# its runs; it is refreshed by every event.
_THREAD_SEQ_TTL_SECONDS = 30 * 86400
# Appends a batch of protocol events to a thread's log, numbering them on from its counter (or
# from the log's last entry, should the counter have been evicted). Each entry's stream id is
# "<seq>-0", so that a replay after `since` is a read after "<since>-0".
_APPEND_THREAD_EVENTS = """
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if last[1] then
  seq = math.max(seq, tonumber(string.match(last[1][1], '^(%d+)')))
end
if ARGV[4] == '1' then
  redis.call('SET', KEYS[3], seq + 1, 'EX', ARGV[2])
end
for i = 5, #ARGV, 4 do
  seq = seq + 1
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], seq .. '-0',
    'm', ARGV[i], 'n', ARGV[i + 1], 'p', ARGV[i + 2], 'i', ARGV[i + 3])
end
redis.call('SET', KEYS[1], seq, 'EX', ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return seq
"""

STREAM_LOST = StreamEvent(
    "error",
    serde.dumps(
        {
            "error": "StreamInterrupted",
            "message": "The connection to the event broker was lost; reconnect to resume.",
        }
    ),
)


@dataclass(frozen=True)
class _Keys:
    prefix: str

    def run(self, run_id: str) -> str:
        return f"{self.prefix}run:{run_id}:stream"

    def thread(self, thread_id: str) -> str:
        return f"{self.prefix}thread:{thread_id}:stream"

    def thread_events(self, thread_id: str) -> str:
        return f"{self.prefix}thread:{thread_id}:events"

    def thread_seq(self, thread_id: str) -> str:
        return f"{self.prefix}thread:{thread_id}:seq"

    def thread_run_start(self, thread_id: str) -> str:
        return f"{self.prefix}thread:{thread_id}:run_start"

    @property
    def wakeups(self) -> str:
        return f"{self.prefix}workers:wakeups"

    @property
    def cancels(self) -> str:
        return f"{self.prefix}runs:cancel"


@dataclass(frozen=True)
class _Reader:
    """Where a subscription reads from, and until where only kept entries are delivered."""

    key: str
    position: str
    replay_until: str
    for_thread: bool


class RedisBroker(Broker):
    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "stead:",
        replay_ttl_seconds: float = 120.0,
        thread_events_kept: int = DEFAULT_THREAD_EVENTS_KEPT,
    ) -> None:
        # One quick retry replaces a pooled connection that died while idle; more would only slow
        # a run down while Redis is away.
        self._redis: Redis = Redis.from_url(
            url,
            protocol=2,
            retry=Retry(NoBackoff(), 1),
            socket_connect_timeout=_CONNECT_TIMEOUT_SECONDS,
            socket_timeout=_SOCKET_TIMEOUT_SECONDS,
            socket_keepalive=True,
        )
        self._keys = _Keys(key_prefix)
        self._replay_ttl = max(1, round(replay_ttl_seconds))
        self._cancel_watchers: defaultdict[str, set[CancelSignal]] = defaultdict(set)
        self._cancel_listener: asyncio.Task[None] | None = None
        self._cancel_listening = asyncio.Event()
        self._thread_events_kept = thread_events_kept
        self._append_thread_events = self._redis.register_script(_APPEND_THREAD_EVENTS)

    async def publish(
        self,
        run_id: str,
        event: StreamEvent,
        *,
        thread_id: str | None = None,
        resumable: bool = False,
    ) -> None:
        run_key = self._keys.run(run_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(run_key, _fields(event, kept=resumable))
            ttl = self._replay_ttl if event.is_end else _OPEN_STREAM_TTL_SECONDS
            pipe.expire(run_key, ttl)
            if thread_id is not None:
                thread_event = run_done(run_id) if event.is_end else event
                self._add_to_thread(pipe, thread_id, thread_event, kept=resumable)
            await self._send(pipe, f"event of run {run_id}")

    async def publish_to_thread(self, thread_id: str, event: StreamEvent) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            self._add_to_thread(pipe, thread_id, event, kept=False)
            await self._send(pipe, f"event of thread {thread_id}")

    @contextlib.asynccontextmanager
    async def subscribe(
        self, run_id: str, *, after: str | None = None
    ) -> AsyncIterator[Subscription]:
        key = self._keys.run(run_id)
        try:
            last_id, resumable = await self._stream_state(key)
        except RedisError:
            logger.warning("cannot subscribe to run %s: Redis is unavailable", run_id)
            async with _lost_subscription() as subscription:
                yield subscription
            return
        replaying = after is not None and resumable
        # A resumable run's entries are all kept, so replaying is reading on from `after`.
        position = after if replaying and after is not None else last_id
        reader = _Reader(key, position, replay_until=position, for_thread=False)
        async with self._reading(reader, Subscription([] if replaying else None)) as subscription:
            yield subscription

    @contextlib.asynccontextmanager
    async def subscribe_thread(
        self, thread_id: str, *, after: str | None = None
    ) -> AsyncIterator[Subscription]:
        key = self._keys.thread(thread_id)
        try:
            last_id, _ = await self._stream_state(key)
        except RedisError:
            logger.warning("cannot subscribe to thread %s: Redis is unavailable", thread_id)
            async with _lost_subscription() as subscription:
                yield subscription
            return
        # Up to the subscription, only the kept entries replay; after it, every entry is live.
        position = after if after is not None else last_id
        reader = _Reader(key, position, replay_until=last_id, for_thread=True)
        async with self._reading(reader, Subscription([] if after is not None else None)) as sub:
            yield sub

    async def append_thread_events(
        self, thread_id: str, events: list[ThreadEvent], *, starts_run: bool = False
    ) -> None:
        args: list[EncodableT] = [
            self._thread_events_kept,
            _THREAD_SEQ_TTL_SECONDS,
            round(THREAD_EVENTS_TTL_SECONDS),
            1 if starts_run else 0,
        ]
        for event in events:
            args += [event.method, serde.dumps(event.namespace), event.params, event.event_id]
        keys = [
            self._keys.thread_seq(thread_id),
            self._keys.thread_events(thread_id),
            self._keys.thread_run_start(thread_id),
        ]
        try:
            await self._append_thread_events(keys=keys, args=args)
        except RedisError as exc:
            logger.warning(
                "%d protocol events of thread %s not published: Redis is unavailable (%s)",
                len(events),
                thread_id,
                exc,
            )

    async def last_thread_seq(self, thread_id: str) -> int | None:
        try:
            return int(await self._redis.get(self._keys.thread_seq(thread_id)) or 0)
        except RedisError as exc:
            logger.warning("seq of thread %s unknown: Redis is unavailable (%s)", thread_id, exc)
            return None

    @contextlib.asynccontextmanager
    async def follow_thread_events(
        self, thread_id: str, *, since: int | None = None
    ) -> AsyncIterator[ThreadEventFeed]:
        key = self._keys.thread_events(thread_id)
        try:
            if since is None:
                since = int(await self._redis.get(self._keys.thread_run_start(thread_id)) or 1) - 1
            kept = cast(list[_Entry], await self._redis.xrange(key, min=f"{since + 1}-0"))
        except RedisError as exc:
            logger.warning("cannot follow thread %s: Redis is unavailable (%s)", thread_id, exc)
            feed = ThreadEventFeed()
            feed.lose()
            yield feed
            return
        feed = ThreadEventFeed(_thread_event(raw_id, fields) for raw_id, fields in kept)
        position = kept[-1][0].decode() if kept else f"{since}-0"
        task = asyncio.create_task(
            self._read_thread_events(key, position, feed), name=f"follow {key}"
        )
        try:
            yield feed
        finally:
            await _stop_reading(task)

    async def wake_workers(self) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.rpush(self._keys.wakeups, b"1")
            pipe.ltrim(self._keys.wakeups, -_MAX_PENDING_WAKEUPS, -1)
            await self._send(pipe, "worker wake-up")

    async def wait_for_work(self, timeout: float) -> None:
        if timeout <= 0:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            await self._redis.blpop([self._keys.wakeups], timeout=timeout)
        except RedisError:
            logger.warning("waiting for work through Redis failed; polling the database")
            await asyncio.sleep(max(0.0, deadline - loop.time()))

    async def signal_cancel(self, run_id: str, action: str) -> None:
        try:
            await self._redis.publish(self._keys.cancels, serde.dumps([run_id, action]))
        except RedisError:
            logger.warning("cancel signal for run %s not sent: Redis is unavailable", run_id)

    @contextlib.asynccontextmanager
    async def watch_cancel(self, run_id: str) -> AsyncIterator[CancelSignal]:
        await self._listen_for_cancels()
        signal = CancelSignal()
        self._cancel_watchers[run_id].add(signal)
        try:
            yield signal
        finally:
            watchers = self._cancel_watchers.get(run_id)
            if watchers is not None:
                watchers.discard(signal)
                if not watchers:
                    del self._cancel_watchers[run_id]

    async def close(self) -> None:
        if self._cancel_listener is not None:
            self._cancel_listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._cancel_listener
            self._cancel_listener = None
        await self._redis.aclose()

    def _add_to_thread(
        self, pipe: Pipeline, thread_id: str, event: StreamEvent, *, kept: bool
    ) -> None:
        key = self._keys.thread(thread_id)
        pipe.xadd(key, _fields(event, kept=kept), maxlen=_THREAD_STREAM_MAXLEN, approximate=True)
        # Kept thread events live for the TTL after the thread's latest event.
        pipe.expire(key, self._replay_ttl)

    async def _send(self, pipe: Pipeline, what: str) -> None:
        try:
            await pipe.execute()
        except RedisError as exc:
            logger.warning("%s not published: Redis is unavailable (%s)", what, exc)

    async def _stream_state(self, key: str) -> tuple[str, bool]:
        """The stream's last id ("0-0" when empty) and whether its first entry is kept."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xrevrange(key, count=1)
            pipe.xrange(key, count=1)
            last, first = await pipe.execute()
        last_id = last[0][0].decode() if last else FROM_START
        kept = bool(first) and first[0][1].get(_KEPT) == b"1"
        return last_id, kept

    @contextlib.asynccontextmanager
    async def _reading(
        self, reader: _Reader, subscription: Subscription
    ) -> AsyncIterator[Subscription]:
        task = asyncio.create_task(self._read(reader, subscription), name=f"read {reader.key}")
        try:
            yield subscription
        finally:
            await _stop_reading(task)

    async def _read(self, reader: _Reader, subscription: Subscription) -> None:
        """Deliver the stream's entries after the reader's position until END."""
        position = reader.position
        replay_until = event_position(reader.replay_until)
        try:
            while True:
                reply = await self._redis.xread(
                    {reader.key: position}, count=_READ_BATCH, block=_READ_BLOCK_MS
                )
                for raw_id, fields in _entries(reply):
                    position = raw_id.decode()
                    kept = fields.get(_KEPT) == b"1"
                    if not kept and event_position(position) <= replay_until:
                        continue
                    event = StreamEvent(fields[_EVENT].decode(), fields[_DATA])
                    if kept or reader.for_thread:
                        event = event.with_id(position)
                    subscription.deliver(event)
                    if event.is_end and not reader.for_thread:
                        return
        except RedisError as exc:
            logger.warning("stream %s interrupted: Redis is unavailable (%s)", reader.key, exc)
            subscription.deliver(STREAM_LOST)
            subscription.deliver(END)

    async def _read_thread_events(self, key: str, position: str, feed: ThreadEventFeed) -> None:
        try:
            while True:
                reply = await self._redis.xread(
                    {key: position}, count=_READ_BATCH, block=_READ_BLOCK_MS
                )
                for raw_id, fields in _entries(reply):
                    position = raw_id.decode()
                    feed.deliver(_thread_event(raw_id, fields))
        except RedisError as exc:
            logger.warning("protocol stream %s interrupted: Redis is unavailable (%s)", key, exc)
            feed.lose()

    async def _listen_for_cancels(self) -> None:
        """Start the one listener of the cancel channel, and give it a moment to subscribe."""
        if self._cancel_listener is not None:
            return
        self._cancel_listener = asyncio.create_task(self._cancel_loop(), name="cancel listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._cancel_listening.wait(), _CANCEL_LISTEN_WAIT_SECONDS)

    async def _cancel_loop(self) -> None:
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self._keys.cancels)
                    self._cancel_listening.set()
                    async for message in pubsub.listen():
                        self._fire_cancel(message["data"])
            except RedisError as exc:
                self._cancel_listening.clear()
                logger.warning("cancel listener lost Redis (%s); retrying", exc)
                await asyncio.sleep(_RECONNECT_SECONDS)

    def _fire_cancel(self, data: bytes) -> None:
        try:
            run_id, action = serde.loads(data)
        except (ValueError, TypeError):
            logger.warning("ignored a malformed cancel signal: %r", data)
            return
        for signal in self._cancel_watchers.get(run_id, ()):
            signal.fire(action)


# One stream entry as redis-py returns it: its id and its fields.
_Entry = tuple[bytes, dict[bytes, bytes]]


def _entries(reply: Any) -> list[_Entry]:
    """The entries of an XREAD reply on one stream."""
    return [entry for _key, entries in reply or () for entry in cast(list[_Entry], entries)]


async def _stop_reading(task: asyncio.Task[None]) -> None:
    """Cancel a reading task and wait for it to end. redis-py can lose a cancel that lands while
    a command is being sent (the read that follows then blocks for its whole timeout), so the
    cancel is repeated until the task has ended."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=_CANCEL_REPEAT_SECONDS)
    if not task.cancelled() and task.exception() is not None:
        logger.warning("a stream reader ended with %r", task.exception())


def _thread_event(raw_id: bytes, fields: dict[bytes, bytes]) -> ThreadEvent:
    return ThreadEvent(
        method=fields[b"m"].decode(),
        namespace=tuple(serde.loads(fields[b"n"])),
        params=fields[b"p"],
        event_id=fields[b"i"].decode(),
        seq=int(raw_id.split(b"-", 1)[0]),
    )


def _fields(event: StreamEvent, *, kept: bool) -> dict[FieldT, EncodableT]:
    return {_EVENT: event.event.encode(), _DATA: event.data, _KEPT: b"1" if kept else b"0"}


@contextlib.asynccontextmanager
async def _lost_subscription() -> AsyncIterator[Subscription]:
    """A subscription that could not reach Redis: it ends at once, telling the client why."""
    subscription = Subscription()
    subscription.deliver(STREAM_LOST)
    subscription.deliver(END)
    yield subscription
