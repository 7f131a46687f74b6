"""The Redis broker under load and under a partition, on a real Redis: a busy pool makes
publishers wait instead of dropping events, one process reads all its streams with one
connection, and events a publisher could not deliver end their streams with an `error` event.

Reference: src/stead/broker/redis.py, src/stead/broker/redis_streams.py; issue 10.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis_client

from stead import serde
from stead.broker import (
    StreamEvent,
    Subscription,
    ThreadEvent,
    ThreadEventFeed,
    redis_streams,
)
from stead.broker.base import END, FROM_START
from stead.broker.redis import RedisBroker
from stead.broker.redis_streams import READ_BLOCK_MS, RECONNECT_AFTER_BYTES, Entry, StreamReader
from tests.conftest import GRAPHS_DIR
from tests.support.proxy import SeverableProxy
from tests.support.servers import ServerStartError, stead_server
from tests.support.services import Redis, redis_server

WAIT = 15.0
POOL = 4


def _broker(url: str, **options: int) -> RedisBroker:
    return RedisBroker(url, key_prefix=f"test-{uuid.uuid4().hex}:", **options)


def _tick(index: int) -> StreamEvent:
    return StreamEvent("custom", serde.dumps({"index": index}))


async def _received(subscription: Subscription) -> list[StreamEvent]:
    """Every event up to END (END excluded)."""
    events = []
    while (event := await subscription.next(WAIT)) is not None and not event.is_end:
        events.append(event)
    assert event is not None, f"no END after {len(events)} events"
    return events


async def _broker_connections(inspector: redis_client.Redis) -> int:
    """Connections to Redis besides the inspector's own: the one broker under test (each test
    closes its brokers, and the module's Redis serves nothing else)."""
    info = await inspector.info("clients")
    return int(info["connected_clients"]) - 1


@contextlib.asynccontextmanager
async def _subscribed(broker: RedisBroker, runs: list[str]) -> AsyncIterator[list[Subscription]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(broker.subscribe(run_id)) for run_id in runs]


@contextlib.asynccontextmanager
async def _following(
    broker: RedisBroker, threads: list[str]
) -> AsyncIterator[list[ThreadEventFeed]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(broker.follow_thread_events(thread_id))
            for thread_id in threads
        ]


async def test_a_busy_pool_makes_publishers_wait_and_loses_nothing(
    redis: Redis, inspector: redis_client.Redis
) -> None:
    """50 runs publish 200 events one by one at once through 4 pooled connections."""
    broker = _broker(redis.url, max_connections=POOL)
    runs = [str(uuid.uuid4()) for _ in range(50)]
    async with _subscribed(broker, runs) as subscriptions:

        async def publish_all(run_id: str) -> None:
            for index in range(200):
                await broker.publish(run_id, _tick(index))
            await broker.publish(run_id, END)

        publishing = asyncio.gather(*(publish_all(run_id) for run_id in runs))
        peak = 0
        while not publishing.done():
            peak = max(peak, await _broker_connections(inspector))
            await asyncio.sleep(0.01)
        await publishing
        received = await asyncio.gather(*(_received(sub) for sub in subscriptions))

    expected = [serde.dumps({"index": index}) for index in range(200)]
    assert all([event.data for event in events] == expected for events in received)
    # The pool and the one connection that reads every stream.
    assert 1 < peak <= POOL + 1
    await broker.close()


async def test_one_process_reads_all_its_streams_with_one_connection(
    redis: Redis, inspector: redis_client.Redis
) -> None:
    broker = _broker(redis.url)
    runs = [str(uuid.uuid4()) for _ in range(150)]
    threads = [str(uuid.uuid4()) for _ in range(50)]
    async with _subscribed(broker, runs) as subscriptions, _following(broker, threads) as feeds:
        assert broker.streams_followed == 200
        # 200 open streams: the one reading connection, and the pooled one their catch-up
        # reads and unblocking used, one after the other.
        assert await _broker_connections(inspector) <= 3
        for run_id in runs:
            await broker.publish_many(run_id, [_tick(0), END])
        for thread_id in threads:
            await broker.append_thread_events(thread_id, [_thread_event("hello")])
        received = await asyncio.gather(*(_received(sub) for sub in subscriptions))
        assert all([event.data for event in events] == [_tick(0).data] for events in received)
        for feed in feeds:
            async for batch in feed.batches():
                assert [event.method for event in batch] == ["custom"]
                break
    assert broker.streams_followed == 0
    await broker.close()


async def test_events_a_cut_publisher_lost_end_its_streams_with_an_error(redis: Redis) -> None:
    """A worker cut off from Redis while API processes still read it: the listeners are told,
    once Redis takes the worker's marker, instead of waiting for events that never come."""
    async with SeverableProxy(redis.port) as proxy:
        publisher = _broker(f"redis://127.0.0.1:{proxy.port}/0")
        listener = RedisBroker(redis.url, key_prefix=publisher._keys.prefix)
        run_id, thread_id = str(uuid.uuid4()), str(uuid.uuid4())
        async with (
            listener.subscribe(run_id) as run_stream,
            listener.subscribe_thread(thread_id) as thread_stream,
            listener.follow_thread_events(thread_id) as feed,
        ):
            await publisher.publish(run_id, _tick(0), thread_id=thread_id)
            await publisher.append_thread_events(thread_id, [_thread_event("before")])
            proxy.sever()
            await publisher.publish(run_id, _tick(1), thread_id=thread_id)
            await publisher.append_thread_events(thread_id, [_thread_event("lost")])
            proxy.restore()

            for subscription in (run_stream, thread_stream):
                first, lost = await _received(subscription)
                assert first.data == _tick(0).data
                assert lost.event == "error"
                assert serde.loads(lost.data)["error"] == "EventsLost"
            delivered = [event async for event in feed]
            assert [event.method for event in delivered] == ["custom"]
            assert feed.lost
        await publisher.close()
        await listener.close()


async def test_a_listener_joining_further_back_mid_read_gets_every_event_once(
    redis: Redis,
) -> None:
    """Listeners of a resumable run rejoin from its start while another listener of the same
    run is being read at the tail, again and again while events keep coming."""
    broker = _broker(redis.url)
    run_id = str(uuid.uuid4())
    expected = [_tick(index).data for index in range(400)]
    async with broker.subscribe(run_id) as at_tail:

        async def publish_all() -> None:
            for index in range(400):
                await broker.publish(run_id, _tick(index), resumable=True)
                if index % 20 == 0:
                    await asyncio.sleep(0.001)
            await broker.publish(run_id, END, resumable=True)

        async def rejoin_from_start() -> list[bytes]:
            async with broker.subscribe(run_id, after=FROM_START) as rejoined:
                return [event.data for event in await _received(rejoined)]

        publishing = asyncio.create_task(publish_all())
        rejoins = []
        while not publishing.done() and len(rejoins) < 100:
            rejoins.append(asyncio.create_task(rejoin_from_start()))
            await asyncio.sleep(0.002)
        await publishing
        assert [event.data for event in await _received(at_tail)] == expected
        for received in await asyncio.gather(*rejoins):
            assert received == expected
    await broker.close()


async def test_publishing_goes_on_after_redis_forgets_its_scripts(
    redis: Redis, inspector: redis_client.Redis
) -> None:
    broker = _broker(redis.url)
    run_id, thread_id = str(uuid.uuid4()), str(uuid.uuid4())
    async with broker.subscribe(run_id) as subscription:
        await broker.publish(run_id, _tick(0))
        await broker.append_thread_events(thread_id, [_thread_event("first")])
        await inspector.script_flush()
        await broker.publish_many(run_id, [_tick(1), END])
        await broker.append_thread_events(thread_id, [_thread_event("second")])
        received = await _received(subscription)
    assert [event.data for event in received] == [_tick(0).data, _tick(1).data]
    async with broker.follow_thread_events(thread_id, since=0) as feed:
        assert [event.seq for event in feed.take_replayed()] == [1, 2]
    await broker.close()


async def test_a_large_event_renews_the_reading_connection_and_reading_goes_on(
    redis: Redis, inspector: redis_client.Redis
) -> None:
    """hiredis keeps the buffer it read a reply into until the next reply comes, so the
    connection that read a large one is closed for a new one. Reading goes on: the next event
    arrives, and a stream followed afterwards is taken in at once (its unblocking needs the new
    connection's client id)."""
    broker = _broker(redis.url)
    large = StreamEvent("custom", serde.dumps("x" * RECONNECT_AFTER_BYTES))
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    async with broker.subscribe(first) as subscription:
        reading_before = await _reading_clients(inspector)
        await broker.publish_many(first, [large, _tick(0)])
        received = [await subscription.next(WAIT) for _ in range(2)]
        assert [event.data for event in received if event] == [large.data, _tick(0).data]
        # Well within a blocking read's 10 s, after which a new stream is taken in anyway.
        async with asyncio.timeout(READ_BLOCK_MS / 4000), broker.subscribe(second) as other:
            await broker.publish_many(second, [_tick(1), END])
            assert [event.data for event in await _received(other)] == [_tick(1).data]
        reading_after = await _reading_clients(inspector)
    assert len(reading_before) == len(reading_after) == 1
    assert reading_after != reading_before, "the large event's connection still reads"
    await broker.close()


async def test_a_new_listener_is_taken_in_once_the_read_is_issued_again(
    redis: Redis, inspector: redis_client.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Following a stream unblocks the read in flight (CLIENT UNBLOCK), and the follow returns
    once the read is issued again with the new stream in it. The read can be issued again before
    the unblock's answer is seen: on uvloop it was, in every run of a server on PostgreSQL +
    Redis, and each run waited the pause after which the unblock is sent again (5 ms), since a
    run's stream is followed before the run is created. Here the unblock's answer is seen only
    after the read was issued again, and the pause is longer than the test's timeout."""
    monkeypatch.setattr(redis_streams, "_UNBLOCK_AGAIN_SECONDS", 4 * WAIT)
    commands = redis_client.Redis.from_url(redis.url)
    reader = StreamReader(
        redis_client.Redis.from_url(redis.url, single_connection_client=True), commands
    )
    unblock = commands.client_unblock

    async def unblock_answered_after_the_next_read(client_id: int) -> Any:
        answer = await unblock(client_id)
        # The reader's own record of what its read in flight holds.
        while reader._issued_generation < reader._generation:
            await asyncio.sleep(0.001)
        return answer

    monkeypatch.setattr(commands, "client_unblock", unblock_answered_after_the_next_read)
    received: dict[str, list[Entry]] = {}
    async with contextlib.AsyncExitStack() as stack:
        for index in range(3):
            key = f"{uuid.uuid4()}:{index}"
            received[key] = []
            async with asyncio.timeout(WAIT):
                if index:  # the read of the streams so far is in flight, blocked
                    await _reading_clients(inspector)
                await stack.enter_async_context(
                    reader.follow(key, "0-0", received[key].extend, lambda: None)
                )
            await inspector.xadd(key, {"index": str(index)})
        async with asyncio.timeout(WAIT):
            while not all(received.values()):
                await asyncio.sleep(0.01)
    assert [len(entries) for entries in received.values()] == [1, 1, 1]
    await reader.close()
    await commands.aclose()


async def _reading_clients(inspector: redis_client.Redis) -> set[str]:
    """The ids of the clients whose last command was a blocking stream read, once there is one
    (a read just sent may not have reached Redis yet)."""
    async with asyncio.timeout(WAIT):
        while True:
            clients = await inspector.client_list()
            reading = {client["id"] for client in clients if client["cmd"] == "xread"}
            if reading:
                return reading
            await asyncio.sleep(0.02)


async def test_following_while_redis_is_away_tells_the_listener_at_once() -> None:
    with redis_server() as gone:
        url = gone.url
    reader = StreamReader(
        redis_client.Redis.from_url(url, single_connection_client=True),
        redis_client.Redis.from_url(url),
    )
    lost = asyncio.Event()
    async with asyncio.timeout(WAIT), reader.follow("k", "0-0", lambda _: None, lost.set):
        await lost.wait()
    assert reader.streams_followed == 0
    await reader.close()


def _thread_event(text: str) -> ThreadEvent:
    return ThreadEvent("custom", (), serde.dumps({"data": text}), str(uuid.uuid4()))


def test_a_pool_too_small_to_work_stops_the_server_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"graphs": {"echo": f"{GRAPHS_DIR / 'agent.py'}:echo"}}))
    with (
        pytest.raises(ServerStartError, match="REDIS_MAX_CONNECTIONS must be at least 4, got 2"),
        stead_server(config, env={"REDIS_MAX_CONNECTIONS": "2"}, timeout=10),
    ):
        pass
