"""Hundreds of streams, runs and cancels at once on two API replicas and two workers, then Redis
frozen and a worker killed under load (see tests/load/__init__.py). The scenarios themselves are
in tests/support/load.py, shared with bench/load.py."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.graphs.load import RELAY_NODES
from tests.support.load import (
    LogWatch,
    RunResult,
    StreamResult,
    background_runs_with_joins,
    cancel_storm,
    classic_streams,
    counts,
    every_stream_complete,
    join_runs,
    new_streams,
    protocol_streams,
    run_statuses,
    start_background_runs,
    tally,
    thread_statuses,
    unexpected,
    wait_on_threads,
    wait_until_all,
)
from tests.support.topology import Cluster

pytestmark = [pytest.mark.load, pytest.mark.alone]

STREAMS = 200
EVENTS = 1000
BACKGROUND_RUNS = 500
CANCELLED_RUNS = 100
FREEZE_SECONDS = 10


# --------------------------------------------------------------------------------------------------
# Streams


@pytest.mark.timeout(300)
async def test_200_run_streams_get_every_event_once_in_order(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    watch = LogWatch(cluster.log_paths())
    streams = new_streams(STREAMS)
    await classic_streams(http, cluster.urls, streams, EVENTS, deadline=240)
    found = tally(streams, EVENTS)
    assert found == every_stream_complete(STREAMS), f"{found}\nserver log: {watch.warnings()}"
    assert counts(await run_statuses(http, cluster.urls[0], streams)) == {"success": STREAMS}


@pytest.mark.timeout(240)
async def test_200_protocol_streams_get_every_event_once_in_order(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    watch = LogWatch(cluster.log_paths())
    streams = new_streams(STREAMS)
    await protocol_streams(http, cluster.urls, streams, EVENTS, deadline=180)
    found = tally(streams, EVENTS)
    assert found == every_stream_complete(STREAMS), f"{found}\nserver log: {watch.warnings()}"
    assert counts(await run_statuses(http, cluster.urls[0], streams)) == {"success": STREAMS}


# --------------------------------------------------------------------------------------------------
# Runs


@pytest.mark.timeout(180)
async def test_500_background_runs_with_joins_all_finish_and_free_their_threads(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    urls = cluster.urls
    watch = LogWatch(cluster.log_paths())
    runs = await background_runs_with_joins(http, urls, BACKGROUND_RUNS)
    assert [run.failure for run in runs if run.failure] == [], watch.warnings()
    # Each join answers its own run's output.
    wrong = unexpected(
        [run.output for run in runs], [{"text": f"run {i}"} for i in range(BACKGROUND_RUNS)]
    )
    assert wrong == {}, f"server log: {watch.warnings()}"
    assert counts(await run_statuses(http, urls[0], runs)) == {"success": BACKGROUND_RUNS}
    threads = [run.thread_id for run in runs]
    assert counts(await thread_statuses(http, urls[1], threads)) == {"idle": BACKGROUND_RUNS}


@pytest.mark.timeout(180)
async def test_a_storm_of_100_cancels_interrupts_every_run_and_frees_its_thread(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    urls = cluster.urls
    runs = await start_background_runs(http, urls, "slow", [{"seconds": 120}] * CANCELLED_RUNS)
    await wait_until_all(http, urls[0], runs, {"running"}, timeout=60)
    watch = LogWatch(cluster.log_paths())
    cancelled = await cancel_storm(http, urls, runs)
    assert [run.failure for run in cancelled if run.failure] == [], watch.warnings()
    assert counts(await run_statuses(http, urls[1], runs)) == {"interrupted": CANCELLED_RUNS}
    # Stopped inside its node, a run leaves that node due: the API then calls the thread
    # `interrupted`, not `busy` (as tests/integration/test_runs.py::test_cancel_running_run).
    threads = [run.thread_id for run in runs]
    assert counts(await thread_statuses(http, urls[0], threads)) == {"interrupted": CANCELLED_RUNS}
    # Free at once: a new run on each thread finishes, and the thread is idle after it.
    answers = await wait_on_threads(http, urls, threads, "slow", {"seconds": 0})
    assert unexpected(answers, [{"seconds": 0, "done": True}] * CANCELLED_RUNS) == {}
    assert counts(await thread_statuses(http, urls[1], threads)) == {"idle": CANCELLED_RUNS}


# --------------------------------------------------------------------------------------------------
# Faults


@pytest.mark.timeout(240)
async def test_redis_frozen_for_10_s_under_load_loses_no_run_and_recovers(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    urls, processes = cluster.urls, cluster.pids
    watch = LogWatch(cluster.log_paths())
    # Runs of at least 10 s (1,000 ticks 10 ms apart, 200 ticks 50 ms apart for the background
    # ones): all of them are in the middle when Redis stops.
    classic, protocol = new_streams(20), new_streams(20)
    streaming = asyncio.gather(
        classic_streams(http, urls, classic, EVENTS, pause=0.01, deadline=150),
        protocol_streams(http, urls, protocol, EVENTS, pause=0.01, deadline=150),
    )
    background = await start_background_runs(
        http, urls, "ticker", [{"count": 200, "pause": 0.05}] * 20
    )
    joining = asyncio.ensure_future(join_runs(http, urls, background))
    await _until_every_stream_is_under_way([*classic, *protocol])
    with _frozen(cluster):
        # Runs created while Redis is stopped: their wake-ups cannot reach the workers.
        created_frozen = asyncio.ensure_future(
            background_runs_with_joins(http, urls, 10, tag="frozen")
        )
        await asyncio.sleep(FREEZE_SECONDS)
    await streaming
    joined, frozen = await joining, await created_frozen

    problems = watch.warnings()
    # Each stream either got every event once and in order, or ended with an `error` event.
    for streams in (classic, protocol):
        found = tally(streams, EVENTS)
        assert (found.broken, found.unfinished_streams) == (0, 0), (found, problems)
    # A join, too, answers its run's output or tells its client the broker was lost.
    assert [run.failure for run in [*joined, *frozen] if run.failure] == [], problems
    ticked = [{"count": 200, "pause": 0.05, "written": 200}] * len(joined)
    assert _unexplained([run.output for run in joined], ticked) == {}, problems
    echoed = [{"text": f"frozen {i}"} for i in range(10)]
    assert _unexplained([run.output for run in frozen], echoed) == {}, problems
    every_run: list[RunResult | StreamResult] = [*classic, *protocol, *background, *frozen]
    assert counts(await run_statuses(http, urls[0], every_run)) == {"success": 70}
    threads = [run.thread_id for run in every_run]
    assert counts(await thread_statuses(http, urls[1], threads)) == {"idle": 70}
    # The same processes serve new streams and runs in full afterwards.
    assert cluster.pids == processes
    await _assert_streams_and_runs_work(cluster, http)


def _unexplained(outputs: list[Any], expected: list[Any]) -> dict[str, int]:
    """The outputs that are neither the expected ones nor a join's error."""
    allowed = [
        output if isinstance(output, dict) and "__error__" in output else want
        for output, want in zip(outputs, expected, strict=True)
    ]
    return unexpected(outputs, allowed)


async def _until_every_stream_is_under_way(streams: list[StreamResult]) -> None:
    async with asyncio.timeout(60):
        while not all(stream.indexes for stream in streams):
            await asyncio.sleep(0.05)


@contextmanager
def _frozen(cluster: Cluster) -> Iterator[None]:
    """Redis stopped (SIGSTOP) for the block: its sockets stay open and nothing answers."""
    redis = cluster.services.redis.process
    assert redis is not None
    redis.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        redis.send_signal(signal.SIGCONT)


async def _assert_streams_and_runs_work(cluster: Cluster, http: httpx.AsyncClient) -> None:
    urls = cluster.urls
    classic, protocol = new_streams(10), new_streams(10)
    await classic_streams(http, urls, classic, 100, deadline=60)
    await protocol_streams(http, urls, protocol, 100, deadline=60)
    assert tally(classic, 100) == every_stream_complete(10)
    assert tally(protocol, 100) == every_stream_complete(10)
    runs = await background_runs_with_joins(http, urls, 10, tag="after")
    assert [run.output for run in runs] == [{"text": f"after {i}"} for i in range(10)]


@pytest.mark.timeout(180)
async def test_a_worker_killed_under_load_leaves_its_runs_to_the_other_once(
    cluster: Cluster, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    urls = cluster.urls
    doomed, survivor = cluster.workers
    records = [tmp_path / f"run-{i}" for i in range(60)]
    # With `sync` durability a node's checkpoint is written before the next node starts, which
    # is what makes "a finished node never runs again" a promise; `async` (the default) may lose
    # the last checkpoints with the process.
    inputs = [{"record": str(path), "pause": 0.5} for path in records]
    runs = await start_background_runs(http, urls, "relay", inputs, durability="sync")
    await _until_runs_are_midway_on(doomed.process.pid, records)
    watch = LogWatch(cluster.log_paths())
    cluster.kill_worker(doomed)
    try:
        joined = await join_runs(http, urls, runs)
    finally:
        cluster.start_worker()

    assert [run.failure for run in joined if run.failure] == [], watch.warnings()
    finished = [{**graph_input, "steps": list(RELAY_NODES)} for graph_input in inputs]
    assert unexpected([run.output for run in joined], finished) == {}
    assert counts(await run_statuses(http, urls[0], runs)) == {"success": len(runs)}
    threads = [run.thread_id for run in runs]
    assert counts(await thread_statuses(http, urls[1], threads)) == {"idle": len(runs)}
    executions = [_executions(path) for path in records]
    # Only the node a run was in when its worker died runs a second time, on the survivor.
    reran = {
        str(path): nodes
        for path, nodes in zip(records, executions, strict=True)
        if not _ran_each_node_once_but_the_interrupted_one(nodes, doomed.process.pid)
    }
    assert reran == {}, f"{len(reran)} of {len(runs)} runs ran a finished node again: {reran}"
    moved = [nodes for nodes in executions if _moved(nodes, doomed.process.pid)]
    assert moved, "the killed worker had no run in flight"
    assert all(nodes[-1] == ("five", survivor.process.pid) for nodes in moved)


async def _until_runs_are_midway_on(pid: int, records: list[Path]) -> None:
    """Until the worker `pid` has started node two of several runs (and so holds them)."""
    mark = f"two {pid}"
    async with asyncio.timeout(60):
        while sum(path.exists() and mark in path.read_text() for path in records) < 5:
            await asyncio.sleep(0.05)


def _executions(record: Path) -> list[tuple[str, int]]:
    """The nodes a run executed, in order, with the process that ran each."""
    lines = [line.split() for line in record.read_text().splitlines()]
    return [(node, int(pid)) for node, pid in lines]


def _ran_each_node_once_but_the_interrupted_one(nodes: list[tuple[str, int]], doomed: int) -> bool:
    names = [name for name, _ in nodes]
    collapsed = [name for i, name in enumerate(names) if i == 0 or names[i - 1] != name]
    repeats = [i for i in range(1, len(nodes)) if names[i] == names[i - 1]]
    again_after_the_kill = all(nodes[i - 1][1] == doomed != nodes[i][1] for i in repeats)
    return collapsed == list(RELAY_NODES) and len(repeats) <= 1 and again_after_the_kill


def _moved(nodes: list[tuple[str, int]], doomed: int) -> bool:
    """The run started on the killed worker and finished on another."""
    return nodes[0][1] == doomed and nodes[-1][1] != doomed
