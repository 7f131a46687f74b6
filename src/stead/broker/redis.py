"""The broker of multi-process deployments: API processes and workers share one Redis.

Redis holds nothing that cannot be lost, so every failure here is contained, and none is silent:
- a publish waits its turn in the process's queue, and a command that finds every pooled
  connection busy waits for one (back-pressure, bounded);
- a publish that fails is logged, the run goes on (it is recorded in the database), and a marker
  is sent as soon as Redis takes it, which ends the run's and thread's streams with an `error`
  event: a client never misses events without being told;
- `wait_for_work` sleeps its timeout instead, so workers poll the database;
- a subscription whose read breaks gets an `error` event and END, and the client reconnects;
- a missed cancel signal is caught by the worker reading the cancel flag on the run's row.

A process uses at most `max_connections` pooled connections (the publishing queue, reads of kept
events, unblocking the stream reader, the cancel listener, a worker's wait for work) plus one for
the blocking read of every stream it follows (`StreamReader`), however many streams are open. The
events of all the runs a process executes, and the wake-ups of the runs it creates, go out through
one queue, a pipeline per round trip (`ScriptOutbox`).

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
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT, KeyT

from stead import serde
from stead.broker.base import (
    END,
    END_EVENT,
    EVENTS_LOST,
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
from stead.broker.redis_outbox import ScriptOutbox
from stead.broker.redis_streams import READ_BLOCK_MS, Entry, StreamReader, stop_reading

logger = logging.getLogger("stead.broker")

# Entry fields: the event name, its JSON data, "1" when it is kept for replay, and "1" on the
# marker that says events were lost (its listeners end there).
_EVENT, _DATA, _KEPT, _LOST = b"e", b"d", b"k", b"l"
# The protocol log's method of that marker.
_LOST_METHOD = b"__lost__"
# Pooled connections per process, unless the settings say otherwise.
DEFAULT_MAX_CONNECTIONS = 16
# How long a publish waits for a pooled connection: longer than Redis stalls for in practice
# (a fork for a snapshot, a frozen process), so that load waits instead of losing events.
_POOL_WAIT_SECONDS = 20.0
# How long the marker of lost events is retried: it is what ends the streams that lost them.
_LOST_MARKER_RETRY_SECONDS = 600.0
_LOST_MARKER_RETRY_PAUSE = 1.0
# Streams of runs that have not ended yet (the run's and its thread's) are dropped after a day,
# in case their END never comes.
_OPEN_STREAM_TTL_SECONDS = 86400
# A thread stream is capped (approximately) so that a long-lived thread does not grow forever.
_THREAD_STREAM_MAXLEN = 10_000
# Wake-up tokens left when no worker is idle; each one costs a waking worker one claim query.
_MAX_PENDING_WAKEUPS = 32
# A wake-up token that names no run (the only token of Stead before 2026-12-06, still understood).
_ANY_RUN = b"1"
# How long the cancel listener waits before reconnecting to a Redis that went away.
_RECONNECT_SECONDS = 1.0
# How long the first `watch_cancel` waits for the cancel channel to be listened to.
_CANCEL_LISTEN_WAIT_SECONDS = 2.0
_CONNECT_TIMEOUT_SECONDS = 2.0
# Longer than the longest blocking read (XREAD BLOCK, BLPOP of `wait_for_work`): redis-py 8's
# default of 5 s would end a quiet run stream with StreamInterrupted after 5 s.
_SOCKET_TIMEOUT_SECONDS = READ_BLOCK_MS / 1000 + 5

# A thread's protocol counter outlives its kept events, so that `seq` keeps increasing across
# its runs; it is refreshed by every event.
_THREAD_SEQ_TTL_SECONDS = 30 * 86400
# Appends a batch of protocol events to a thread's log, numbering them on from its counter (or
# from the log's last entry, should the counter have been evicted). Each entry's stream id is
# "<seq>-0", so that a replay after `since` is a read after "<since>-0". Should both be gone when
# the attempt appended before (evicted under memory pressure), numbering goes on from the clock
# in microseconds: above any `seq` given before, so that `seq` keeps increasing and listeners see
# the gap. Numbers are formatted with %d: Lua would print large ones in exponent form.
_APPEND_THREAD_EVENTS = """
local counter = redis.call('GET', KEYS[1])
local seq = tonumber(counter or '0')
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if last[1] then
  seq = math.max(seq, tonumber(string.match(last[1][1], '^(%d+)')))
elseif not counter and ARGV[5] == '1' then
  local now = redis.call('TIME')
  seq = tonumber(now[1]) * 1000000 + tonumber(now[2])
end
if ARGV[4] == '1' then
  redis.call('SET', KEYS[3], string.format('%d', seq + 1), 'EX', ARGV[2])
end
for i = 6, #ARGV, 4 do
  seq = seq + 1
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], string.format('%d-0', seq),
    'm', ARGV[i], 'n', ARGV[i + 1], 'p', ARGV[i + 2], 'i', ARGV[i + 3])
end
redis.call('SET', KEYS[1], string.format('%d', seq), 'EX', ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return seq
"""
# Adds a batch of a run's events to its stream and, given a second key, to its thread's (where
# END becomes `run_done`), in one call: a pipeline of two XADDs per event costs redis-py far more
# to pack and parse than one script call with the events as arguments.
# ARGV: kept ("1"/"0"), the streams' TTL, the thread stream's bound, the END event's name, the
# `run_done` data, whether the attempt published before ("1"/"0"), the marker of lost events,
# then name and data of each event.
# A stream that the attempt published to before and that is gone was dropped (evicted under
# memory pressure): it starts again with the marker, so that its listeners are told.
_PUBLISH_RUN_EVENTS = """
local kept = ARGV[1]
if ARGV[6] == '1' then
  for _, key in ipairs(KEYS) do
    if redis.call('EXISTS', key) == 0 then
      redis.call('XADD', key, '*', 'e', 'error', 'd', ARGV[7], 'k', kept, 'l', '1')
    end
  end
end
for i = 8, #ARGV, 2 do
  local name, data = ARGV[i], ARGV[i + 1]
  redis.call('XADD', KEYS[1], '*', 'e', name, 'd', data, 'k', kept)
  if KEYS[2] then
    if name == ARGV[4] then
      name, data = 'metadata', ARGV[5]
    end
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'e', name, 'd', data, 'k', kept)
  end
end
for _, key in ipairs(KEYS) do
  redis.call('EXPIRE', key, ARGV[2])
end
"""
# Pushes a wake-up token (ARGV[1]) for the workers and keeps the latest ARGV[2] of them. A script,
# sent through the outbox: the wake-ups of runs created at once go in one round trip.
_WAKE_WORKERS = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
"""
# Adds the marker of lost events to a thread's protocol log, right after its last entry
# ("<seq>-<n+1>"), so that it takes no `seq` and every later event still numbers on. A log that
# is gone (Redis restarted empty) gets none: its listeners lost their reads and were told.
_MARK_THREAD_EVENTS_LOST = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if not last[1] then
  return 0
end
local seq, sub = string.match(last[1][1], '^(%d+)-(%d+)$')
redis.call('XADD', KEYS[1], seq .. '-' .. string.format('%d', tonumber(sub) + 1), 'm', ARGV[1])
return 1
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


class RedisBroker(Broker):
    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "stead:",
        replay_ttl_seconds: float = 120.0,
        thread_events_kept: int = DEFAULT_THREAD_EVENTS_KEPT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        connection: dict[str, Any] = {
            "protocol": 2,
            "socket_connect_timeout": _CONNECT_TIMEOUT_SECONDS,
            "socket_timeout": _SOCKET_TIMEOUT_SECONDS,
            "socket_keepalive": True,
        }
        # One quick retry replaces a pooled connection that died while idle; more would only slow
        # a run down while Redis is away.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=_POOL_WAIT_SECONDS,
            retry=Retry(NoBackoff(), 1),
            **connection,
        )
        # The client owns its pool: closing it closes the pooled connections.
        self._redis: Redis = Redis.from_pool(pool)
        reading = Redis.from_url(
            url, single_connection_client=True, retry=Retry(NoBackoff(), 0), **connection
        )
        self._reader = StreamReader(reading, self._redis)
        self._keys = _Keys(key_prefix)
        self._replay_ttl = max(1, round(replay_ttl_seconds))
        self._cancel_watchers: defaultdict[str, set[CancelSignal]] = defaultdict(set)
        self._cancel_listener: asyncio.Task[None] | None = None
        self._cancel_listening = asyncio.Event()
        self._thread_events_kept = thread_events_kept
        self._append_thread_events = self._redis.register_script(_APPEND_THREAD_EVENTS)
        self._publish_run_events = self._redis.register_script(_PUBLISH_RUN_EVENTS)
        self._mark_thread_events_lost = self._redis.register_script(_MARK_THREAD_EVENTS_LOST)
        self._wake_workers = self._redis.register_script(_WAKE_WORKERS)
        self._lost_markers: set[asyncio.Task[None]] = set()
        self._outbox = ScriptOutbox(self._redis)

    async def publish_many(
        self,
        run_id: str,
        events: list[StreamEvent],
        *,
        thread_id: str | None = None,
        resumable: bool = False,
        continues: bool = False,
    ) -> None:
        keys = [self._keys.run(run_id)]
        if thread_id is not None:
            keys.append(self._keys.thread(thread_id))
        ended = any(event.is_end for event in events)
        # Streams of open runs outlive a quiet spell, so that one found missing was dropped.
        args: list[EncodableT] = [
            1 if resumable else 0,
            self._replay_ttl if ended else _OPEN_STREAM_TTL_SECONDS,
            _THREAD_STREAM_MAXLEN,
            END_EVENT,
            run_done(run_id).data,
            1 if continues else 0,
            EVENTS_LOST.data,
        ]
        for event in events:
            args += [event.event, event.data]
        error = await self._outbox.call(self._publish_run_events, list(keys), args)
        if error is not None:
            logger.warning(
                "%d events of run %s not published: Redis is unavailable (%s)",
                len(events),
                run_id,
                error,
            )
            self._mark_lost(keys, self._send_lost_marker)

    async def publish_to_thread(self, thread_id: str, event: StreamEvent) -> None:
        key = self._keys.thread(thread_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            self._add_to_thread(pipe, thread_id, event, kept=False)
            # A new stream gets the replay TTL; an open run's longer one is not shortened.
            pipe.expire(key, self._replay_ttl, nx=True)
            pipe.expire(key, self._replay_ttl, gt=True)
            if not await self._send(pipe, f"event of thread {thread_id}"):
                self._mark_lost([key], self._send_lost_marker)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, run_id: str, *, after: str | None = None, new_run: bool = False
    ) -> AsyncIterator[Subscription]:
        key = self._keys.run(run_id)
        try:
            last_id, resumable = (FROM_START, False) if new_run else await self._stream_state(key)
        except RedisError:
            logger.warning("cannot subscribe to run %s: Redis is unavailable", run_id)
            async with _lost_subscription() as subscription:
                yield subscription
            return
        replaying = after is not None and resumable
        # A resumable run's entries are all kept, so replaying is reading on from `after`.
        position = after if replaying and after is not None else last_id
        subscription = Subscription([] if replaying else None)
        listener = _SubscriptionListener(subscription, replay_until=position, for_thread=False)
        async with self._reader.follow(key, position, listener.deliver, listener.lose):
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
        subscription = Subscription([] if after is not None else None)
        listener = _SubscriptionListener(subscription, replay_until=last_id, for_thread=True)
        async with self._reader.follow(key, position, listener.deliver, listener.lose):
            yield subscription

    async def append_thread_events(
        self,
        thread_id: str,
        events: list[ThreadEvent],
        *,
        starts_run: bool = False,
        continues: bool = False,
    ) -> None:
        args: list[EncodableT] = [
            self._thread_events_kept,
            _THREAD_SEQ_TTL_SECONDS,
            round(THREAD_EVENTS_TTL_SECONDS),
            1 if starts_run else 0,
            1 if continues else 0,
        ]
        for event in events:
            args += [event.method, serde.dumps(event.namespace), event.params, event.event_id]
        keys = [
            self._keys.thread_seq(thread_id),
            self._keys.thread_events(thread_id),
            self._keys.thread_run_start(thread_id),
        ]
        error = await self._outbox.call(self._append_thread_events, list(keys), args)
        if error is not None:
            logger.warning(
                "%d protocol events of thread %s not published: Redis is unavailable (%s)",
                len(events),
                thread_id,
                error,
            )
            self._mark_lost([keys[1]], self._send_thread_events_lost_marker)

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
            kept = cast(list[Entry], await self._redis.xrange(key, min=f"{since + 1}-0"))
        except RedisError as exc:
            logger.warning("cannot follow thread %s: Redis is unavailable (%s)", thread_id, exc)
            feed = ThreadEventFeed()
            feed.lose()
            yield feed
            return
        replay, lost = _thread_events(kept, None)
        feed = ThreadEventFeed(replay)
        if lost:
            feed.lose()
        position = kept[-1][0].decode() if kept else f"{since}-0"
        # Live events follow on from the last one replayed, or from `since`: a jump is a loss.
        last_seq = replay[-1].seq if replay else since

        def deliver(entries: list[Entry]) -> None:
            nonlocal last_seq
            events, lost = _thread_events(entries, last_seq)
            for event in events:
                feed.deliver(event)
                last_seq = event.seq
            if lost:
                feed.lose()

        async with self._reader.follow(key, position, deliver, feed.lose):
            yield feed

    async def wake_workers(self, run_id: str | None = None) -> None:
        token = run_id or _ANY_RUN
        keys: list[KeyT] = [self._keys.wakeups]
        error = await self._outbox.call(self._wake_workers, keys, [token, _MAX_PENDING_WAKEUPS])
        if error is not None:
            logger.warning("worker wake-up not published: Redis is unavailable (%s)", error)

    async def wait_for_work(self, timeout: float) -> str | None:
        if timeout <= 0:
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            popped = await self._redis.blpop([self._keys.wakeups], timeout=timeout)
        except RedisError:
            logger.warning("waiting for work through Redis failed; polling the database")
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            return None
        if popped is None or popped[1] == _ANY_RUN:
            return None
        run_id = popped[1]
        return run_id.decode() if isinstance(run_id, bytes) else run_id

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

    @property
    def streams_followed(self) -> int:
        """How many streams this process reads at the moment (all with one blocking read)."""
        return self._reader.streams_followed

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        for marker in list(self._lost_markers):
            await stop_reading(marker)
        await self._outbox.close()
        await self._reader.close()
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

    async def _send(self, pipe: Pipeline, what: str) -> bool:
        try:
            await pipe.execute()
        except RedisError as exc:
            logger.warning("%s not published: Redis is unavailable (%s)", what, exc)
            return False
        return True

    def _mark_lost(self, keys: list[str], send: Callable[[list[str]], Awaitable[None]]) -> None:
        """Send the marker of lost events to those streams, in the background until Redis takes
        it: it is what tells their listeners, and it must come even if no event follows."""
        task = asyncio.create_task(_retry_until_sent(send, keys), name=f"lost marker {keys[0]}")
        self._lost_markers.add(task)
        task.add_done_callback(self._lost_markers.discard)

    async def _send_lost_marker(self, keys: list[str]) -> None:
        # A stream that is gone (Redis restarted empty) gets none: its listeners were told.
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.xadd(key, {**_fields(EVENTS_LOST, kept=True), _LOST: b"1"}, nomkstream=True)
            await pipe.execute()

    async def _send_thread_events_lost_marker(self, keys: list[str]) -> None:
        await self._mark_thread_events_lost(keys=keys, args=[_LOST_METHOD])

    async def _stream_state(self, key: str) -> tuple[str, bool]:
        """The stream's last id ("0-0" when empty) and whether its first entry is kept."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xrevrange(key, count=1)
            pipe.xrange(key, count=1)
            last, first = await pipe.execute()
        last_id = last[0][0].decode() if last else FROM_START
        kept = bool(first) and first[0][1].get(_KEPT) == b"1"
        return last_id, kept

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


class _SubscriptionListener:
    """Turns a run's or thread's stream entries into a subscription's events."""

    def __init__(self, subscription: Subscription, *, replay_until: str, for_thread: bool) -> None:
        self._subscription = subscription
        self._replay_until = event_position(replay_until)
        self._for_thread = for_thread
        self._ended = False

    def deliver(self, entries: list[Entry]) -> None:
        for raw_id, fields in entries:
            if self._ended:
                return
            position = raw_id.decode()
            kept = fields.get(_KEPT) == b"1"
            if not kept and event_position(position) <= self._replay_until:
                continue
            event = StreamEvent(fields[_EVENT].decode(), fields[_DATA])
            if kept or self._for_thread:
                event = event.with_id(position)
            self._subscription.deliver(event)
            if fields.get(_LOST) == b"1":
                self._end()
            elif event.is_end and not self._for_thread:
                self._ended = True

    def lose(self) -> None:
        self._subscription.deliver(STREAM_LOST)
        self._end()

    def _end(self) -> None:
        self._subscription.deliver(END)
        self._ended = True


def _thread_events(entries: list[Entry], last_seq: int | None) -> tuple[list[ThreadEvent], bool]:
    """The protocol events that follow `last_seq` without a gap, and whether the feed lost some:
    the marker of lost events came, or `seq` jumped (entries evicted under memory pressure)."""
    events: list[ThreadEvent] = []
    for raw_id, fields in entries:
        if fields[b"m"] == _LOST_METHOD:
            return events, True
        event = _thread_event(raw_id, fields)
        if last_seq is not None and event.seq != last_seq + 1:
            return events, True
        events.append(event)
        last_seq = event.seq
    return events, False


async def _retry_until_sent(send: Callable[[list[str]], Awaitable[None]], keys: list[str]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _LOST_MARKER_RETRY_SECONDS
    while True:
        try:
            await send(keys)
            return
        except RedisError:
            if loop.time() > deadline:
                logger.warning("gave up telling the listeners of %s that events were lost", keys)
                return
            await asyncio.sleep(_LOST_MARKER_RETRY_PAUSE)


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
