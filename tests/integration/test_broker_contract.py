"""One contract for both brokers: the in-process one and Redis (two RedisBroker objects stand for
two processes sharing one real Redis). Then what Redis being down does, and `stead run` on Redis.

Reference: DESIGN.md (Storage, Runs, Streams), src/stead/broker/base.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from stead import serde
from stead.broker import (
    Broker,
    InProcessBroker,
    StreamEvent,
    Subscription,
    ThreadEvent,
    ThreadEventFeed,
)
from stead.broker.base import END, FROM_START, event_position, run_done
from stead.broker.redis import RedisBroker
from stead.worker.queue import WakeUps
from tests.support.servers import stead_server
from tests.support.services import Redis, redis_server
from tests.support.sse import assert_increasing_ids, read_stream

GRAPHS_CONFIG = Path(__file__).parents[1] / "graphs" / "langgraph.json"
WAIT = 10.0


@pytest.fixture(params=["in-process", "redis"])
async def brokers(
    request: pytest.FixtureRequest, redis: Redis
) -> AsyncIterator[tuple[Broker, Broker]]:
    """Two handles on one broker: the same object in-process, two clients of Redis otherwise."""
    if request.param == "in-process":
        broker = InProcessBroker(replay_ttl_seconds=1)
        yield broker, broker
        await broker.close()
        return
    prefix = f"test-{uuid.uuid4().hex}:"
    first, second = (
        RedisBroker(redis.url, key_prefix=prefix, replay_ttl_seconds=1) for _ in range(2)
    )
    yield first, second
    await first.close()
    await second.close()


@pytest.fixture
def broker(brokers: tuple[Broker, Broker]) -> Broker:
    return brokers[0]


def event(name: str, value: object = None) -> StreamEvent:
    return StreamEvent(name, serde.dumps(value))


def new_id() -> str:
    return str(uuid.uuid4())


async def until_end(subscription: Subscription) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    while (received := await subscription.next(WAIT)) is not None:
        if received.is_end:
            return events
        events.append(received)
    raise AssertionError(f"no END after {events}")


async def take(subscription: Subscription, count: int) -> list[StreamEvent]:
    events = []
    for _ in range(count):
        received = await subscription.next(WAIT)
        assert received is not None, f"only {events} arrived"
        events.append(received)
    return events


def plain(events: list[StreamEvent]) -> list[tuple[str, bytes]]:
    return [(e.event, e.data) for e in events]


async def test_every_subscriber_gets_every_event_in_order(brokers: tuple[Broker, Broker]) -> None:
    publisher, listener = brokers
    run_id = new_id()
    sent = [event("values", n) for n in range(5)]
    async with listener.subscribe(run_id) as one, publisher.subscribe(run_id) as two:
        for item in sent:
            await publisher.publish(run_id, item)
        await publisher.publish(run_id, END)
        for subscription in (one, two):
            received = await until_end(subscription)
            assert plain(received) == plain(sent)
            assert all(e.id is None for e in received)  # not resumable: no ids


async def test_a_published_event_is_not_kept_once_sent(broker: Broker) -> None:
    """A large run's values went on being held by the sender after they were sent."""
    tracemalloc.start()
    try:
        await broker.publish(new_id(), StreamEvent("values", b"x" * 8 * 2**20))
        await asyncio.sleep(0)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held < 2**20, f"{held / 2**20:.0f} MiB still held after publishing"


async def test_a_subscriber_to_a_new_run_gets_every_event_from_its_first(
    brokers: tuple[Broker, Broker],
) -> None:
    """`new_run`: no look-up of where the run's events end, since it has none yet."""
    publisher, listener = brokers
    run_id = new_id()
    sent = [event("values", n) for n in range(5)]
    async with listener.subscribe(run_id, new_run=True) as subscription:
        for item in sent:
            await publisher.publish(run_id, item)
        await publisher.publish(run_id, END)
        assert plain(await until_end(subscription)) == plain(sent)
        assert not subscription.replaying


async def test_a_live_subscriber_gets_nothing_from_before_unless_kept(broker: Broker) -> None:
    run_id = new_id()
    await broker.publish(run_id, event("values", "before"))
    async with broker.subscribe(run_id) as live, broker.subscribe(run_id, after=FROM_START) as asks:
        assert not asks.replaying
        await broker.publish(run_id, event("values", "after"))
        await broker.publish(run_id, END)
        assert plain(await until_end(live)) == plain([event("values", "after")])
        assert plain(await until_end(asks)) == plain([event("values", "after")])


async def test_replay_after_an_id_has_no_gap_and_no_duplicate(
    brokers: tuple[Broker, Broker],
) -> None:
    publisher, listener = brokers
    run_id = new_id()
    async with listener.subscribe(run_id) as first:
        for n in range(3):
            await publisher.publish(run_id, event("values", n), resumable=True)
        seen = await take(first, 3)
    assert_ids_increase(seen)

    async with listener.subscribe(run_id, after=seen[0].id) as resumed:
        assert resumed.replaying
        await publisher.publish(run_id, event("values", 3), resumable=True)
        await publisher.publish(run_id, END, resumable=True)
        rest = await until_end(resumed)

    assert rest[:2] == seen[1:]
    assert plain(rest[2:]) == plain([event("values", 3)])
    assert_ids_increase(seen + rest[2:])


async def test_from_start_replays_a_finished_resumable_run_whole(broker: Broker) -> None:
    run_id = new_id()
    async with broker.subscribe(run_id) as live:
        for n in range(3):
            await broker.publish(run_id, event("values", n), resumable=True)
        await broker.publish(run_id, END, resumable=True)
        original = await until_end(live)

    async with broker.subscribe(run_id, after=FROM_START) as replay:
        assert await until_end(replay) == original
    async with broker.subscribe(run_id, after=original[-1].id) as tail:
        assert await until_end(tail) == []


async def test_the_thread_channel_gets_runs_run_done_and_state_updates(
    brokers: tuple[Broker, Broker],
) -> None:
    publisher, listener = brokers
    thread_id, run_id = new_id(), new_id()
    async with listener.subscribe_thread(thread_id) as thread:
        await publisher.publish(run_id, event("values", 1), thread_id=thread_id, resumable=True)
        await publisher.publish(run_id, END, thread_id=thread_id, resumable=True)
        await publisher.publish_to_thread(thread_id, event("state_update", {"x": 1}))
        received = await take(thread, 3)
        assert await thread.next(0.2) is None  # a thread stream never ends by itself
    assert plain(received) == plain(
        [event("values", 1), run_done(run_id), event("state_update", {"x": 1})]
    )
    assert_ids_increase(received)

    async with listener.subscribe_thread(thread_id, after=FROM_START) as replay:
        # The state update was not kept; the resumable run's events were.
        assert await take(replay, 2) == received[:2]
        assert await replay.next(0.2) is None


async def test_end_closes_the_subscription(broker: Broker) -> None:
    run_id = new_id()
    async with broker.subscribe(run_id) as subscription:
        await broker.publish(run_id, event("values", 1))
        await broker.publish(run_id, END)
        received = [e async for e in subscription]
    assert plain(received) == plain([event("values", 1)])


async def test_kept_events_expire_after_the_ttl(broker: Broker) -> None:
    thread_id, run_id = new_id(), new_id()
    await broker.publish(run_id, event("values", 1), thread_id=thread_id, resumable=True)
    await broker.publish(run_id, END, thread_id=thread_id, resumable=True)
    async with broker.subscribe(run_id, after=FROM_START) as replay:
        assert replay.replaying

    deadline = time.monotonic() + WAIT
    while True:
        async with broker.subscribe(run_id, after=FROM_START) as replay:
            if not replay.replaying:
                break
        assert time.monotonic() < deadline, "the kept events outlived their TTL"
        await asyncio.sleep(0.1)
    async with broker.subscribe_thread(thread_id, after=FROM_START) as thread:
        assert await thread.next(0.2) is None


async def test_a_wake_up_reaches_a_waiting_worker(brokers: tuple[Broker, Broker]) -> None:
    api, worker = brokers
    waiting = asyncio.create_task(worker.wait_for_work(60))
    await asyncio.sleep(0.1)
    await api.wake_workers()
    await asyncio.wait_for(waiting, WAIT)


async def test_wait_for_work_returns_after_its_timeout(broker: Broker) -> None:
    await asyncio.wait_for(broker.wait_for_work(0.2), WAIT)


async def test_a_wake_up_names_its_run_where_the_broker_carries_it(
    brokers: tuple[Broker, Broker],
) -> None:
    """Redis carries each wake-up; the in-process broker merges them into one that names none."""
    api, worker = brokers
    await api.wake_workers("run-1")
    await api.wake_workers()
    woken = [await asyncio.wait_for(worker.wait_for_work(0.2), WAIT) for _ in range(2)]
    assert woken == (["run-1", None] if isinstance(worker, RedisBroker) else [None, None])


async def test_wake_ups_sent_at_once_arrive_in_order_and_only_the_latest_are_kept(
    redis: Redis,
) -> None:
    """Wake-ups go through the process's outbox, many in one round trip; no worker waiting, the
    latest 32 are kept (each costs a waking worker a claim), the oldest dropped."""
    prefix = f"test-{uuid.uuid4().hex}:"
    api, worker = (RedisBroker(redis.url, key_prefix=prefix) for _ in range(2))
    try:
        await asyncio.gather(*(api.wake_workers(f"run-{i}") for i in range(100)))
        woken = [await asyncio.wait_for(worker.wait_for_work(0.1), WAIT) for _ in range(33)]
        assert woken == [f"run-{i}" for i in range(68, 100)] + [None]
    finally:
        await api.close()
        await worker.close()


async def test_the_queue_skips_a_wake_up_for_a_run_it_started(
    brokers: tuple[Broker, Broker],
) -> None:
    api, worker = brokers
    wake_ups = WakeUps(worker, remembered=2)
    for run_id in ("forgotten", "started", "claimed"):
        wake_ups.started(run_id)
    waiting = asyncio.create_task(wake_ups.wait(60))
    await asyncio.sleep(0.1)
    await api.wake_workers("claimed")
    await api.wake_workers("started")
    await asyncio.sleep(0.3)
    # Where wake-ups name no run, each one may bring work.
    assert waiting.done() is isinstance(worker, InProcessBroker)
    await api.wake_workers("forgotten")
    await asyncio.wait_for(waiting, WAIT)
    await asyncio.wait_for(wake_ups.wait(0.2), WAIT)  # and its timeout still ends it


async def test_a_cancel_reaches_the_run_it_names(brokers: tuple[Broker, Broker]) -> None:
    api, worker = brokers
    run_id, other_id = new_id(), new_id()
    async with worker.watch_cancel(run_id) as cancel, worker.watch_cancel(other_id) as other:
        # Before any signal, a wait ends with its timeout and no action.
        assert await asyncio.wait_for(cancel.wait(0.05), WAIT) is None
        await api.signal_cancel(run_id, "rollback")
        assert await asyncio.wait_for(cancel.wait(), WAIT) == "rollback"
        assert await asyncio.wait_for(other.wait(0.05), WAIT) is None


def assert_ids_increase(events: list[StreamEvent]) -> None:
    positions = [event_position(e.id or "") for e in events]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)


# Redis down: nothing raises, workers poll, streams end with an error, and all recovers.


# The thread streaming protocol's log: numbering, replay, its bound.


def thread_events(*names: str) -> list[ThreadEvent]:
    return [ThreadEvent("custom", (), serde.dumps({"data": name}), name) for name in names]


async def take_events(feed: ThreadEventFeed, count: int) -> list[tuple[int, str]]:
    """(seq, event id) of the next `count` events, replayed ones first."""
    events = feed.take_replayed()
    iterator = feed.__aiter__()
    while len(events) < count:
        events.append(await asyncio.wait_for(iterator.__anext__(), WAIT))
    return [(event.seq, event.event_id) for event in events[:count]]


async def test_thread_events_are_numbered_across_runs_and_handles(
    brokers: tuple[Broker, Broker],
) -> None:
    writer, reader = brokers
    thread_id = new_id()
    async with reader.follow_thread_events(thread_id, since=0) as feed:
        await writer.append_thread_events(thread_id, thread_events("a", "b"), starts_run=True)
        await writer.append_thread_events(thread_id, thread_events("c"))
        await writer.append_thread_events(thread_id, thread_events("d", "e"), starts_run=True)
        assert await take_events(feed, 5) == [(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, "e")]
    assert await reader.last_thread_seq(thread_id) == 5
    assert await reader.last_thread_seq(new_id()) == 0


async def test_following_replays_since_a_seq_or_the_current_run(broker: Broker) -> None:
    thread_id = new_id()
    await broker.append_thread_events(thread_id, thread_events("a", "b"), starts_run=True)
    await broker.append_thread_events(thread_id, thread_events("c", "d"), starts_run=True)
    async with broker.follow_thread_events(thread_id) as current_run:
        assert current_run.replayed == 2
        await broker.append_thread_events(thread_id, thread_events("e"))
        assert await take_events(current_run, 3) == [(3, "c"), (4, "d"), (5, "e")]
    async with broker.follow_thread_events(thread_id, since=1) as since_one:
        assert await take_events(since_one, 4) == [(2, "b"), (3, "c"), (4, "d"), (5, "e")]
    async with broker.follow_thread_events(thread_id, since=5) as caught_up:
        assert caught_up.take_replayed() == []


async def test_concurrent_followers_get_every_event_exactly_once(
    brokers: tuple[Broker, Broker],
) -> None:
    writer, reader = brokers
    thread_id = new_id()
    names = [f"e{index}" for index in range(300)]
    async with contextlib.AsyncExitStack() as stack:
        feeds = [
            await stack.enter_async_context(reader.follow_thread_events(thread_id, since=0))
            for _ in range(3)
        ]
        for start in range(0, len(names), 7):
            await writer.append_thread_events(thread_id, thread_events(*names[start : start + 7]))
        expected = list(enumerate(names, start=1))
        for feed in feeds:
            assert await take_events(feed, len(names)) == expected


async def test_the_kept_thread_events_are_bounded(redis: Redis) -> None:
    in_process = InProcessBroker(thread_events_kept=5)
    on_redis = RedisBroker(redis.url, key_prefix=f"test-{uuid.uuid4().hex}:", thread_events_kept=5)
    for broker in (in_process, on_redis):
        thread_id = new_id()
        for index in range(0, 400, 10):
            batch = [f"e{n}" for n in range(index, index + 10)]
            await broker.append_thread_events(thread_id, thread_events(*batch))
        async with broker.follow_thread_events(thread_id, since=0) as feed:
            kept = [event.seq for event in feed.take_replayed()]
        # Redis trims approximately (whole nodes of the stream), never below the bound.
        assert kept == list(range(401 - len(kept), 401))
        assert 5 <= len(kept) < 400, type(broker)
        await broker.close()


@pytest.fixture
async def lone_redis() -> AsyncIterator[tuple[Redis, RedisBroker]]:
    with redis_server() as server:
        broker = RedisBroker(server.url, replay_ttl_seconds=5)
        yield server, broker
        await broker.close()


async def test_losing_redis_ends_streams_with_an_error_and_nothing_raises(
    lone_redis: tuple[Redis, RedisBroker],
) -> None:
    server, broker = lone_redis
    run_id, thread_id = new_id(), new_id()
    async with broker.subscribe(run_id) as run_stream, broker.subscribe_thread(thread_id) as thread:
        await broker.publish(run_id, event("values", 1), thread_id=thread_id)
        assert plain(await take(run_stream, 1)) == plain([event("values", 1)])
        server.stop()
        for subscription in (run_stream, thread):
            # The thread stream may or may not have read event 1 before Redis went away.
            *before, lost = await until_end(subscription)
            assert [e.event for e in before] in ([], ["values"])
            assert lost.event == "error"
            assert serde.loads(lost.data)["error"] == "StreamInterrupted"

    await broker.publish(run_id, event("values", 2), thread_id=thread_id, resumable=True)
    await broker.publish_to_thread(thread_id, event("state_update"))
    await broker.append_thread_events(thread_id, thread_events("while down"))
    await broker.wake_workers()
    await broker.signal_cancel(run_id, "interrupt")
    await asyncio.wait_for(broker.wait_for_work(0.2), WAIT)
    async with broker.subscribe(run_id) as while_down:
        assert [e.event for e in await until_end(while_down)] == ["error"]


async def test_everything_works_again_when_redis_returns(
    lone_redis: tuple[Redis, RedisBroker],
) -> None:
    server, broker = lone_redis
    async with broker.watch_cancel(new_id()):
        pass  # the cancel listener is running when Redis goes away
    server.stop()
    await broker.publish(new_id(), event("values"))
    server.start()

    run_id = new_id()
    async with broker.subscribe(run_id) as subscription:
        await broker.publish(run_id, event("values", 1))
        await broker.publish(run_id, END)
        assert plain(await until_end(subscription)) == plain([event("values", 1)])

    waiting = asyncio.create_task(broker.wait_for_work(60))
    await broker.wake_workers()
    await asyncio.wait_for(waiting, WAIT)

    async with broker.watch_cancel(run_id) as cancel:
        # The listener resubscribes on its own; until it has, a signal is missed (the row's flag
        # covers that), so keep sending.
        deadline = time.monotonic() + WAIT
        while cancel.action is None:
            assert time.monotonic() < deadline, "the cancel listener did not come back"
            await broker.signal_cancel(run_id, "interrupt")
            await asyncio.sleep(0.1)


# `stead run` on Redis: a stream, a resumable reconnect with Last-Event-ID, a cancel.


async def test_stead_run_streams_resumes_and_cancels_through_redis(
    redis: Redis, tmp_path: Path
) -> None:
    env = {"REDIS_URI": redis.url, "REDIS_KEY_PREFIX": f"e2e-{uuid.uuid4().hex}:"}
    with stead_server(GRAPHS_CONFIG, tmp_path / "data", env=env) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            thread_id = (await http.post("/threads", json={})).json()["thread_id"]
            body = {
                "assistant_id": "steps",
                "input": {"steps": []},
                "stream_mode": ["values", "updates"],
                "stream_resumable": True,
            }
            response, original = await read_stream(
                http, "POST", f"/threads/{thread_id}/runs/stream", json=body
            )
            assert [e.event for e in original][:2] == ["metadata", "values"]
            assert original[-1].event == "values"
            assert_increasing_ids(original)

            _, resumed = await read_stream(
                http, "GET", response.headers["location"], headers={"Last-Event-ID": original[1].id}
            )
            assert resumed == original[2:]

            slow = {"assistant_id": "slow", "input": {"seconds": 30}}
            run = (await http.post(f"/threads/{thread_id}/runs", json=slow)).json()
            run_path = f"/threads/{thread_id}/runs/{run['run_id']}"
            await wait_for_status(http, run_path, "running")
            cancelled = await http.post(f"{run_path}/cancel", params={"wait": "true"})
            assert cancelled.status_code in (200, 204), cancelled.text
            assert (await http.get(run_path)).json()["status"] == "interrupted"


async def wait_for_status(http: httpx.AsyncClient, run_path: str, status: str) -> None:
    deadline = time.monotonic() + 20
    while (current := (await http.get(run_path)).json()["status"]) != status:
        assert time.monotonic() < deadline, f"run stayed {current}"
        await asyncio.sleep(0.05)


async def test_losing_redis_ends_thread_event_feeds_as_lost(
    lone_redis: tuple[Redis, RedisBroker],
) -> None:
    server, broker = lone_redis
    thread_id = new_id()
    async with broker.follow_thread_events(thread_id, since=0) as feed:
        await broker.append_thread_events(thread_id, thread_events("a"))
        assert await take_events(feed, 1) == [(1, "a")]
        server.stop()
        rest = [event async for event in feed]
        assert rest == [] and feed.lost
    async with broker.follow_thread_events(thread_id) as while_down:
        assert [event async for event in while_down] == [] and while_down.lost
