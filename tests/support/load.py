"""Load scenarios shared by the load tier (tests/load) and bench/load.py.

Each scenario drives many streams, runs or cancels at once against a `Cluster` (two API replicas
and the workers, tests/support/topology.py), spreading them over both API processes, and returns
what every client saw, so that a test can check each stream event by event. `measured` records
what a benchmark reports alongside: wall time, peak Redis connections and server CPU.

The graphs are `ticker` and `relay` (tests/graphs/load.py) and `echo` and `slow`
(tests/graphs/agent.py).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any, TypeVar

import httpx
import redis
from redis.exceptions import RedisError

from tests.support.servers import HOST
from tests.support.topology import Cluster, cluster

T = TypeVar("T")

# A killed worker's runs are taken over once their lease expires (the reaper looks every half
# lease). 15 s keeps that quick; with 5 s, the busy workers of the 500-run scenario lost hundreds
# of leases (their renewals, every third of a lease, failed or came late).
LEASE_SECS = "15"
# Enough slots for every run of a scenario to be live at once (200 streams, 100 cancelled runs);
# the default 10 per worker would queue most of them instead.
SLOTS_PER_WORKER = "100"
# Four processes with up to 40 pooled PostgreSQL connections each, over PostgreSQL's default 100.
MAX_DATABASE_CONNECTIONS = 200

# Thread-protocol channels a tick stream listens to: the graph's events and the run's lifecycle.
PROTOCOL_CHANNELS = ["custom", "lifecycle"]
_TERMINAL_PHASES = ("completed", "failed", "interrupted")
# Requests that only check a result (statuses, thread states) go this many at a time.
_CHECKS_AT_ONCE = 50
_FINAL_STATUSES = ("success", "error", "interrupted", "timeout")
# A stream whose run has ended and which got no event for this long will not get its end: longer
# than a 10 s Redis freeze, which only delays an end.
_ORPHANED_AFTER_SECONDS = 20.0
_WATCH_SECONDS = 5.0
# Tries of a request the API answers 503, and the pause between them.
_ATTEMPTS = 5
_RETRY_PAUSE_SECONDS = 1.0


@contextmanager
def load_cluster(config: Path, log_dir: Path) -> Iterator[Cluster]:
    """The topology of the tier and the benchmark: two API replicas and two workers."""
    with cluster(
        config,
        log_dir,
        env={"BG_JOB_LEASE_SECS": LEASE_SECS},
        worker_env={"N_JOBS_PER_WORKER": SLOTS_PER_WORKER},
        max_connections=MAX_DATABASE_CONNECTIONS,
    ) as built:
        yield built


def http_client(timeout: float = 120.0) -> httpx.AsyncClient:
    """One client for hundreds of requests at once, each on a connection of its own (httpx
    allows 100 connections by default). Reused connections fail now and then under this load, in
    the client: httpcore 1.0.9 can close an idle connection it has just handed to a waiting
    request, when another pass of its pool finds it expired or over the idle limit, which it
    compares with all its connections, busy ones included (encode/httpcore#1110). The request
    then fails with `ReadError('')`, caused by the client's own `ClosedResourceError`."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    return httpx.AsyncClient(timeout=timeout, limits=limits)


@asynccontextmanager
async def opened(
    http: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> AsyncIterator[httpx.Response]:
    """A response, its body not read yet. A 503 is the API's "retry shortly" (its database
    pool is exhausted under load): it is retried a few times, as a client would."""
    for attempt in range(_ATTEMPTS):
        async with http.stream(method, url, **kwargs) as response:
            if response.status_code != 503 or attempt == _ATTEMPTS - 1:
                yield response
                return
        await asyncio.sleep(_RETRY_PAUSE_SECONDS)


async def request(http: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """A response read whole, 503s retried as in `opened`."""
    async with opened(http, method, url, **kwargs) as response:
        await response.aread()
        return response


# --------------------------------------------------------------------------------------------------
# Reading SSE as it comes


class SseFrames:
    """Frames of an SSE body fed in chunks: (event name, JSON data); heartbeats are skipped."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[tuple[str, Any]]:
        self._buffer += chunk
        complete, _, self._buffer = self._buffer.rpartition(b"\r\n\r\n")
        return [frame for block in complete.split(b"\r\n\r\n") if (frame := _frame(block))]


def _frame(block: bytes) -> tuple[str, Any] | None:
    name, data = "", b""
    for line in block.split(b"\r\n"):
        if line.startswith(b"event: "):
            name = line[7:].decode()
        elif line.startswith(b"data: "):
            data = line[6:]
    return (name, json.loads(data)) if name else None


# --------------------------------------------------------------------------------------------------
# Tick streams: each run writes ticks 0..count-1 and its client must see exactly those


@dataclass
class StreamResult:
    """What one client saw of one `ticker` run, filled in as the events come (so that a test can
    act in the middle of a stream)."""

    thread_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    run_id: str | None = None
    # The `index` of each tick, in the order they arrived.
    indexes: list[int] = field(default_factory=list)
    # Protocol streams: the `seq` of every event, in the order they arrived.
    seqs: list[int] = field(default_factory=list)
    # The data of the `error` event that ended the stream.
    error: Any = None
    # The stream ended: the server closed it (runs/stream), or the root run ended (protocol).
    ended: bool = False
    # Why the stream could not be read to its end: HTTP status, transport error, deadline.
    failure: str | None = None
    seconds: float = 0.0

    def is_complete(self, count: int) -> bool:
        return (
            self.ended
            and self.error is None
            and self.indexes == list(range(count))
            and _increasing(self.seqs)
        )

    def is_in_order(self) -> bool:
        """Every tick (and protocol event) once, in increasing order, possibly with gaps."""
        return _increasing(self.indexes) and _increasing(self.seqs)


def _increasing(values: list[int]) -> bool:
    return all(a < b for a, b in pairwise(values))


def new_streams(count: int) -> list[StreamResult]:
    return [StreamResult() for _ in range(count)]


async def classic_streams(
    http: httpx.AsyncClient,
    urls: Sequence[str],
    results: Sequence[StreamResult],
    count: int,
    pause: float = 0.0,
    deadline: float = 300.0,
) -> None:
    """One runs/stream request per result, all at once, alternating between the API replicas."""
    await asyncio.gather(
        *(
            classic_tick_stream(http, urls[i % len(urls)], result, count, pause, deadline)
            for i, result in enumerate(results)
        )
    )


async def protocol_streams(
    http: httpx.AsyncClient,
    urls: Sequence[str],
    results: Sequence[StreamResult],
    count: int,
    pause: float = 0.0,
    deadline: float = 300.0,
) -> None:
    """One protocol stream per result, all at once: each listens on one replica and its run is
    started on the next, so that every event crosses processes through Redis."""
    await asyncio.gather(
        *(
            protocol_tick_stream(
                http, urls[i % len(urls)], urls[(i + 1) % len(urls)], result, count, pause, deadline
            )
            for i, result in enumerate(results)
        )
    )


async def classic_tick_stream(
    http: httpx.AsyncClient,
    base: str,
    result: StreamResult,
    count: int,
    pause: float = 0.0,
    deadline: float = 300.0,
) -> None:
    """`POST /threads/{id}/runs/stream` on a new thread, `stream_mode: ["custom"]`."""
    body = {
        "assistant_id": "ticker",
        "input": {"count": count, "pause": pause},
        "stream_mode": ["custom"],
        "if_not_exists": "create",
    }
    started = time.perf_counter()
    try:
        async with asyncio.timeout(deadline):
            url = f"{base}/threads/{result.thread_id}/runs/stream"
            async with opened(http, "POST", url, json=body) as response:
                result.run_id = _run_id(response)
                await _unless_orphaned(http, base, result, _read_classic(response, result))
    except TimeoutError:
        result.failure = f"no end after {deadline:.0f} s"
    except httpx.TransportError as exc:
        result.failure = repr(exc)
    finally:
        result.seconds = time.perf_counter() - started


async def _read_classic(response: httpx.Response, result: StreamResult) -> None:
    if response.status_code != 200:
        result.failure = f"HTTP {response.status_code}: {(await response.aread())[:200]!r}"
        return
    frames = SseFrames()
    async for chunk in response.aiter_raw():
        for name, data in frames.feed(chunk):
            if name == "custom" and data.get("name") == "tick":
                result.indexes.append(data["index"])
            elif name == "error":
                result.error = data
    result.ended = True


async def _unless_orphaned(
    http: httpx.AsyncClient, base: str, result: StreamResult, reading: Awaitable[None]
) -> None:
    """Read the stream, but stop once its run has ended and no event came for a while: an
    end the broker lost would keep it open for good (it has heartbeats)."""
    read = asyncio.ensure_future(reading)
    watch = asyncio.ensure_future(_orphaned(http, base, result))
    try:
        await asyncio.wait({read, watch}, return_when=asyncio.FIRST_COMPLETED)
        if watch.done():
            result.failure = (
                f"its run ended {watch.result()}, the stream stayed open (thread"
                f" {result.thread_id}, run {result.run_id}, {len(result.seqs)} events heard)"
            )
            return
        await read
    finally:
        read.cancel()
        watch.cancel()


async def _orphaned(http: httpx.AsyncClient, base: str, result: StreamResult) -> str:
    """The run's final status, once it has one and the stream has had no tick for
    `_ORPHANED_AFTER_SECONDS`; a live run's stream is never that quiet."""
    ticks, quiet_since = -1, time.monotonic()
    while True:
        await asyncio.sleep(_WATCH_SECONDS)
        if len(result.indexes) != ticks:
            ticks, quiet_since = len(result.indexes), time.monotonic()
        elif time.monotonic() - quiet_since >= _ORPHANED_AFTER_SECONDS:
            status = await run_status(http, base, result)
            if status in _FINAL_STATUSES:
                return status


def _run_id(response: httpx.Response) -> str | None:
    location = response.headers.get("content-location")
    return location.rstrip("/").split("/")[-1] if location else None


async def protocol_tick_stream(
    http: httpx.AsyncClient,
    stream_base: str,
    command_base: str,
    result: StreamResult,
    count: int,
    pause: float = 0.0,
    deadline: float = 300.0,
) -> None:
    """`POST /threads/{id}/stream/events` on `stream_base`, then `run.start` on `command_base`;
    read until the root run's lifecycle ends or an `error` event comes."""
    body = {"channels": PROTOCOL_CHANNELS}
    started = time.perf_counter()
    try:
        async with asyncio.timeout(deadline):
            url = f"{stream_base}/threads/{result.thread_id}/stream/events"
            async with opened(http, "POST", url, json=body) as response:
                if response.status_code != 200:
                    result.failure = f"HTTP {response.status_code}"
                    return
                # The server subscribed before answering: not one event of the run can be missed.
                start = asyncio.create_task(
                    _start_protocol_run(http, command_base, result, count, pause)
                )
                reading = asyncio.create_task(
                    _unless_orphaned(http, stream_base, result, _read_protocol(response, result))
                )
                try:
                    await _until_read_or_not_started(reading, start, result)
                finally:
                    start.cancel()
                    reading.cancel()
    except TimeoutError:
        result.failure = f"no end after {deadline:.0f} s"
    except httpx.TransportError as exc:
        result.failure = repr(exc)
    finally:
        result.seconds = time.perf_counter() - started


async def _until_read_or_not_started(
    reading: asyncio.Task[None], start: asyncio.Task[None], result: StreamResult
) -> None:
    """Until the stream's end, or until `run.start` failed: then no run will end it."""
    await asyncio.wait({reading, start}, return_when=asyncio.FIRST_COMPLETED)
    if start.done():
        start.result()
        if result.failure is not None:
            return
    await reading
    await start


async def _start_protocol_run(
    http: httpx.AsyncClient, base: str, result: StreamResult, count: int, pause: float
) -> None:
    command = {
        "id": 1,
        "method": "run.start",
        "params": {"assistant_id": "ticker", "input": {"count": count, "pause": pause}},
    }
    response = await request(
        http, "POST", f"{base}/threads/{result.thread_id}/commands", json=command
    )
    answer = response.json() if response.status_code == 200 else {}
    if answer.get("type") != "success":
        result.failure = f"run.start answered {response.status_code}: {response.text[:200]}"
        return
    result.run_id = answer["result"]["run_id"]


async def _read_protocol(response: httpx.Response, result: StreamResult) -> None:
    frames = SseFrames()
    async for chunk in response.aiter_raw():
        for name, data in frames.feed(chunk):
            if name == "error":
                result.error, result.ended = data, True
                return
            result.seqs.append(data["seq"])
            params = data["params"]
            if name == "custom" and params["data"].get("name") == "tick":
                result.indexes.append(params["data"]["index"])
            elif _is_root_end(name, params):
                result.ended = True
                return


def _is_root_end(method: str, params: dict[str, Any]) -> bool:
    return (
        method == "lifecycle"
        and not params["namespace"]
        and params["data"]["event"] in _TERMINAL_PHASES
    )


@dataclass(frozen=True)
class Tally:
    """What many tick streams saw, against `count` ticks each."""

    streams: int
    # Every tick exactly once, in order, and no error.
    complete: int
    # Ended with an `error` event, the ticks before it in order (some may be missing).
    errored: int
    # Neither: ticks lost, duplicated or out of order without an error, or no end at all.
    broken: int
    # Over the streams that did not end with an error.
    lost_events: int = 0
    duplicated_events: int = 0
    reordered_streams: int = 0
    unfinished_streams: int = 0
    failures: tuple[str, ...] = ()


def tally(results: Sequence[StreamResult], count: int) -> Tally:
    complete = sum(r.is_complete(count) for r in results)
    errored = sum(r.error is not None and r.is_in_order() for r in results)
    quiet = [r for r in results if r.error is None]
    return Tally(
        streams=len(results),
        complete=complete,
        errored=errored,
        broken=len(results) - complete - errored,
        lost_events=sum(len(set(range(count)) - set(r.indexes)) for r in quiet),
        duplicated_events=sum(len(r.indexes) - len(set(r.indexes)) for r in quiet),
        reordered_streams=sum(not r.is_in_order() for r in quiet),
        unfinished_streams=sum(not r.ended for r in results),
        failures=tuple(sorted({r.failure for r in results if r.failure})),
    )


def every_stream_complete(streams: int) -> Tally:
    """The tally of `streams` streams that each got every event once, in order."""
    return Tally(streams=streams, complete=streams, errored=0, broken=0)


# --------------------------------------------------------------------------------------------------
# Background runs, joins and cancels


@dataclass
class RunResult:
    thread_id: str
    run_id: str = ""
    # What `GET /threads/{id}/runs/{run_id}/join` answered (the thread's values).
    output: Any = None
    failure: str | None = None
    seconds: float = 0.0


async def background_runs_with_joins(
    http: httpx.AsyncClient, urls: Sequence[str], runs: int, tag: str = "run"
) -> list[RunResult]:
    """`runs` `echo` runs created at once, each on a new thread, each joined on the replica that
    did not create it; the output of run i must be `{"text": "<tag> i"}`."""
    return await asyncio.gather(
        *(
            _create_and_join(http, urls[i % len(urls)], urls[(i + 1) % len(urls)], f"{tag} {i}")
            for i in range(runs)
        )
    )


async def _create_and_join(
    http: httpx.AsyncClient, create_base: str, join_base: str, text: str
) -> RunResult:
    started = time.perf_counter()
    result = RunResult(str(uuid.uuid4()))
    body = {"assistant_id": "echo", "input": {"text": text}, "if_not_exists": "create"}
    try:
        created = await request(
            http, "POST", f"{create_base}/threads/{result.thread_id}/runs", json=body
        )
    except httpx.TransportError as exc:
        result.failure = f"create: {exc!r}"
        return result
    if created.status_code != 200:
        result.failure = f"create: HTTP {created.status_code}"
        return result
    result.run_id = created.json()["run_id"]
    await _join(http, join_base, result)
    result.seconds = time.perf_counter() - started
    return result


async def _join(http: httpx.AsyncClient, base: str, result: RunResult) -> None:
    path = f"{base}/threads/{result.thread_id}/runs/{result.run_id}/join"
    try:
        joined = await request(http, "GET", path)
    except httpx.TransportError as exc:
        result.failure = f"join: {exc!r}"
        return
    if joined.status_code != 200:
        result.failure = f"join: HTTP {joined.status_code}"
        return
    # The body starts with keep-alive newlines when the run took longer than a heartbeat.
    output = json.loads(joined.content)
    if not isinstance(output, dict):
        # Values are an object: anything else is a failure, recorded with what came.
        result.failure = f"join {result.run_id}: body {joined.content[:200]!r}"
        return
    result.output = output


async def start_background_runs(
    http: httpx.AsyncClient,
    urls: Sequence[str],
    assistant_id: str,
    inputs: Sequence[Any],
    **options: Any,
) -> list[RunResult]:
    """One run per input, each on a new thread, created at once across the replicas; `options`
    go into every run's body."""

    async def create(index: int) -> RunResult:
        result = RunResult(str(uuid.uuid4()))
        body = {
            "assistant_id": assistant_id,
            "input": inputs[index],
            "if_not_exists": "create",
            **options,
        }
        base = urls[index % len(urls)]
        response = await request(http, "POST", f"{base}/threads/{result.thread_id}/runs", json=body)
        assert response.status_code == 200, response.text
        result.run_id = response.json()["run_id"]
        return result

    return await asyncio.gather(*(create(i) for i in range(len(inputs))))


async def join_runs(
    http: httpx.AsyncClient, urls: Sequence[str], runs: Sequence[RunResult]
) -> list[RunResult]:
    """Join every run at once, each on the replica after the one that created it."""

    async def join(index: int, run: RunResult) -> RunResult:
        started = time.perf_counter()
        result = RunResult(run.thread_id, run.run_id)
        await _join(http, urls[(index + 1) % len(urls)], result)
        result.seconds = time.perf_counter() - started
        return result

    return await asyncio.gather(*(join(i, run) for i, run in enumerate(runs)))


async def wait_on_threads(
    http: httpx.AsyncClient,
    urls: Sequence[str],
    thread_ids: Sequence[str],
    assistant_id: str,
    graph_input: Any,
) -> list[Any]:
    """A `POST /threads/{id}/runs/wait` on each thread at once; each answer's body."""

    async def wait(index: int) -> Any:
        body = {"assistant_id": assistant_id, "input": graph_input}
        base = urls[index % len(urls)]
        url = f"{base}/threads/{thread_ids[index]}/runs/wait"
        response = await request(http, "POST", url, json=body)
        return response.json() if response.status_code == 200 else f"HTTP {response.status_code}"

    return await asyncio.gather(*(wait(i) for i in range(len(thread_ids))))


def unexpected(answers: Sequence[Any], expected: Sequence[Any]) -> dict[str, int]:
    """The answers that differ from the expected ones, counted by what they were."""
    return counts([json.dumps(a) for a, e in zip(answers, expected, strict=True) if a != e])


async def wait_until_all(
    http: httpx.AsyncClient,
    base: str,
    runs: Sequence[RunResult],
    statuses: set[str],
    timeout: float,
) -> None:
    """Poll until every run has one of `statuses`; AssertionError with the laggards otherwise."""
    deadline = time.monotonic() + timeout
    waiting = list(runs)
    while waiting:
        found = await run_statuses(http, base, waiting)
        waiting = [run for run, got in zip(waiting, found, strict=True) if got not in statuses]
        assert time.monotonic() < deadline, f"runs never reached {statuses}: {counts(found)}"
        if waiting:
            await asyncio.sleep(0.2)


async def cancel_storm(
    http: httpx.AsyncClient, urls: Sequence[str], runs: Sequence[RunResult]
) -> list[RunResult]:
    """Cancel every run at once, each through the replica after the one that created it, then
    join it there; a run's `seconds` is from its cancel to its join's answer."""

    async def cancel_and_join(index: int, run: RunResult) -> RunResult:
        base = urls[(index + 1) % len(urls)]
        started = time.perf_counter()
        result = RunResult(run.thread_id, run.run_id)
        path = f"{base}/threads/{run.thread_id}/runs/{run.run_id}/cancel"
        cancelled = await request(http, "POST", path)
        if cancelled.status_code != 202:
            result.failure = f"cancel: HTTP {cancelled.status_code}: {cancelled.text[:200]}"
            return result
        await _join(http, base, result)
        result.seconds = time.perf_counter() - started
        return result

    return await asyncio.gather(*(cancel_and_join(i, run) for i, run in enumerate(runs)))


async def run_statuses(
    http: httpx.AsyncClient, base: str, runs: Sequence[RunResult | StreamResult]
) -> list[str]:
    """Each run's status; `missing` for one the server does not know (or never created)."""
    return await at_most(_CHECKS_AT_ONCE, [partial(run_status, http, base, run) for run in runs])


async def run_status(http: httpx.AsyncClient, base: str, run: RunResult | StreamResult) -> str:
    if not run.run_id:
        return "missing"
    response = await request(http, "GET", f"{base}/threads/{run.thread_id}/runs/{run.run_id}")
    return str(response.json()["status"]) if response.status_code == 200 else "missing"


async def thread_statuses(
    http: httpx.AsyncClient, base: str, thread_ids: Sequence[str]
) -> list[str]:
    async def status(thread_id: str) -> str:
        response = await request(http, "GET", f"{base}/threads/{thread_id}")
        return str(response.json()["status"]) if response.status_code == 200 else "missing"

    return await at_most(_CHECKS_AT_ONCE, [partial(status, thread_id) for thread_id in thread_ids])


async def at_most(limit: int, calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """The calls' results in order, no more than `limit` of them running at once."""
    gate = asyncio.Semaphore(limit)

    async def gated(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    return await asyncio.gather(*(gated(call) for call in calls))


def counts(values: Sequence[str]) -> dict[str, int]:
    """How many times each value occurs: a readable summary of hundreds of statuses."""
    return {value: values.count(value) for value in sorted(set(values))}


# --------------------------------------------------------------------------------------------------
# Server logs


class LogWatch:
    """The warnings and errors the servers logged since the watch was made, counted by message
    (ids and numbers blanked), so that a failing test says what the servers saw."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._paths = list(paths)
        self._start = {path: _size(path) for path in self._paths}

    def warnings(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for path in self._paths:
            with path.open("rb") as log:
                log.seek(self._start[path])
                for line in log.read().decode(errors="replace").splitlines():
                    if _LEVEL.search(line):
                        message = _message(line)
                        found[message] = found.get(message, 0) + 1
        return dict(sorted(found.items(), key=lambda item: -item[1]))


_LEVEL = re.compile(r"\[(warning|error|critical) *\]")
_VARYING = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\d+")


def _message(line: str) -> str:
    """The log line without its timestamp and context fields, ids and numbers blanked."""
    text = line.split(" ", 1)[-1].split(" [stead", 1)[0]
    return _VARYING.sub("#", text)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


# --------------------------------------------------------------------------------------------------
# Measuring


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time the processes have used so far (utime + stime in /proc/<pid>/stat)."""
    ticks = 0
    for pid in pids:
        # The fields after the command name (which may hold spaces) start at field 3, `state`.
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def resident_bytes(pids: Sequence[int]) -> int:
    """The processes' resident memory now (VmRSS in /proc/<pid>/status)."""
    total = 0
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        total += int(line.split()[1]) * 1024
    return total


@dataclass
class ResidentGrowth:
    """The most a measure grew over its value at the start of a block, once the block ended."""

    bytes: int = 0


@contextmanager
def resident_growth(pid: int, interval: float = 0.001) -> Iterator[ResidentGrowth]:
    """Sample the resident memory of `pid` every `interval` seconds while the block runs."""
    with peak_growth(partial(resident_bytes, [pid]), interval) as growth:
        yield growth


@contextmanager
def peak_growth(measure: Callable[[], int], interval: float) -> Iterator[ResidentGrowth]:
    """Sample `measure()` every `interval` seconds, in a thread, while the block runs."""
    growth = ResidentGrowth()
    before = peak = measure()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, measure())
            time.sleep(interval)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield growth
    finally:
        done.set()
        sampler.join()
        growth.bytes = peak - before


class RedisClientsPoller:
    """Polls `INFO clients` in a thread and keeps the peak of `connected_clients`, not counting
    its own connection. Polls that time out (Redis stopped) are skipped."""

    def __init__(self, port: int, interval: float = 0.1) -> None:
        self.peak = 0
        self._client = redis.Redis(host=HOST, port=port, socket_timeout=1.0)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="redis clients poller", daemon=True)

    def __enter__(self) -> RedisClientsPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._client.close()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                clients = int(self._client.info("clients")["connected_clients"]) - 1
            except RedisError:
                clients = 0
            self.peak = max(self.peak, clients)
            self._stop.wait(self._interval)


@dataclass
class Meter:
    """Figures of one scenario; the scenario fills in `events`, `runs` and `latencies`."""

    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_redis_clients: int = 0
    events: int = 0
    runs: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def events_per_second(self) -> float:
        return self.events / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def runs_per_second(self) -> float:
        return self.runs / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def p99_ms(self) -> float:
        return 1000 * percentile(self.latencies, 99)

    @property
    def cpu_ms_per_run(self) -> float:
        return 1000 * self.cpu_seconds / self.runs if self.runs else 0.0

    def figures(self) -> dict[str, float]:
        return {
            "wall_s": self.wall_seconds,
            "events": self.events,
            "runs": self.runs,
            "events_per_s": self.events_per_second,
            "runs_per_s": self.runs_per_second,
            "p99_ms": self.p99_ms,
            "peak_redis_clients": self.peak_redis_clients,
            "cpu_ms_per_run": self.cpu_ms_per_run,
        }


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


@contextmanager
def measured(pids: Sequence[int], redis_port: int) -> Iterator[Meter]:
    """Wall time, server CPU (the `pids`, before and after) and peak Redis connections of the
    block."""
    meter = Meter()
    before = cpu_seconds(pids)
    started = time.perf_counter()
    with RedisClientsPoller(redis_port) as poller:
        yield meter
    meter.wall_seconds = time.perf_counter() - started
    meter.cpu_seconds = cpu_seconds(pids) - before
    meter.peak_redis_clients = poller.peak
