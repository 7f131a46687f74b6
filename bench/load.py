"""The load tier's scenarios, measured: events/s, runs/s, p99, peak Redis connections, CPU per run.

    python bench/load.py [--rounds 1] [--streams 200] [--events 1000] [--runs 500]
                         [--cancels 100] [--scenarios runs/stream,protocol,join,cancel]
                         [--json out.json] [--logs DIR]

One cluster for every round, as in tests/load: PostgreSQL 15 and Redis 7 started by the script,
two API-only `stead run` replicas and two `stead worker` processes (100 slots each), all on
127.0.0.1. The scenarios are those of tests/support/load.py; each row also says how many streams
or runs came out right, so a figure bought by losing events shows. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.support.load import (  # noqa: E402
    Meter,
    StreamResult,
    background_runs_with_joins,
    cancel_storm,
    classic_streams,
    http_client,
    load_cluster,
    measured,
    new_streams,
    protocol_streams,
    run_statuses,
    start_background_runs,
    tally,
    wait_until_all,
)
from tests.support.topology import Cluster  # noqa: E402

CONFIG = REPO_ROOT / "tests" / "graphs" / "langgraph.json"
SCENARIOS = ("runs/stream", "protocol", "join", "cancel")
# What each scenario's p99 is of.
LATENCY_OF = {
    "runs/stream": "request to the stream's end",
    "protocol": "stream opened to the root run's end",
    "join": "run created to its join's answer",
    "cancel": "cancel sent to its join's answer",
}

Scenario = Callable[[Cluster, httpx.AsyncClient, argparse.Namespace], Awaitable[tuple[Meter, str]]]


async def classic(
    cluster: Cluster, http: httpx.AsyncClient, args: argparse.Namespace
) -> tuple[Meter, str]:
    streams = new_streams(args.streams)
    with measured(cluster.pids, cluster.services.redis.port) as meter:
        await classic_streams(http, cluster.urls, streams, args.events)
    return _stream_figures(meter, streams, args.events)


async def protocol(
    cluster: Cluster, http: httpx.AsyncClient, args: argparse.Namespace
) -> tuple[Meter, str]:
    streams = new_streams(args.streams)
    with measured(cluster.pids, cluster.services.redis.port) as meter:
        await protocol_streams(http, cluster.urls, streams, args.events)
    return _stream_figures(meter, streams, args.events)


def _stream_figures(meter: Meter, streams: list[StreamResult], events: int) -> tuple[Meter, str]:
    meter.events = sum(len(stream.indexes) for stream in streams)
    meter.runs = len(streams)
    meter.latencies = [stream.seconds for stream in streams]
    found = tally(streams, events)
    outcome = f"{found.complete}/{found.streams} complete, {found.lost_events} events lost"
    outcome = f"{outcome}, {found.unfinished_streams} never ended"
    # Which streams failed, so that their thread can be looked up in the servers' logs.
    return meter, "; ".join([outcome, *found.failures])


async def joins(
    cluster: Cluster, http: httpx.AsyncClient, args: argparse.Namespace
) -> tuple[Meter, str]:
    with measured(cluster.pids, cluster.services.redis.port) as meter:
        runs = await background_runs_with_joins(http, cluster.urls, args.runs)
    meter.runs = len(runs)
    meter.latencies = [run.seconds for run in runs]
    right = sum(run.output == {"text": f"run {i}"} for i, run in enumerate(runs))
    return meter, f"{right}/{len(runs)} joined"


async def cancels(
    cluster: Cluster, http: httpx.AsyncClient, args: argparse.Namespace
) -> tuple[Meter, str]:
    """Only the storm is measured: the runs are started, and running, before it."""
    urls = cluster.urls
    runs = await start_background_runs(http, urls, "slow", [{"seconds": 120}] * args.cancels)
    await wait_until_all(http, urls[0], runs, {"running"}, timeout=120)
    with measured(cluster.pids, cluster.services.redis.port) as meter:
        cancelled = await cancel_storm(http, urls, runs)
    meter.runs = len(cancelled)
    meter.latencies = [run.seconds for run in cancelled]
    statuses = await run_statuses(http, urls[0], runs)
    return meter, f"{statuses.count('interrupted')}/{len(runs)} interrupted"


RUNNERS: dict[str, Scenario] = {
    "runs/stream": classic,
    "protocol": protocol,
    "join": joins,
    "cancel": cancels,
}


async def measure(cluster: Cluster, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every round of every scenario: its figures and how many came out right."""
    rounds: list[dict[str, Any]] = []
    async with http_client(timeout=300) as http:
        await classic_streams(http, cluster.urls, new_streams(4), 10)  # warm-up: graphs loaded
        for index in range(args.rounds):
            row: dict[str, Any] = {}
            for name in args.scenarios:
                print(f"# round {index + 1}: {name}", file=sys.stderr, flush=True)
                meter, outcome = await RUNNERS[name](cluster, http, args)
                row[name] = {**meter.figures(), "outcome": outcome}
            rounds.append(row)
    return rounds


def medians(rounds: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per scenario, the median of each figure over the rounds, and every round's outcome."""
    return {
        name: {
            **{
                key: statistics.median(row[name][key] for row in rounds)
                for key, value in figures.items()
                if isinstance(value, int | float)
            },
            "outcomes": [row[name]["outcome"] for row in rounds],
        }
        for name, figures in rounds[0].items()
    }


def print_table(figures: dict[str, dict[str, Any]], rounds: int) -> None:
    header = (
        f"{'scenario':<13}{'events/s':>10}{'runs/s':>9}{'p99 ms':>10}"
        f"{'Redis conns':>13}{'CPU ms/run':>12}"
    )
    print(header)
    print("-" * len(header))
    for name, row in figures.items():
        # Joins and cancels stream no events: a dash, not a rate of 0.
        events = f"{row['events_per_s']:>10.0f}" if row["events"] else f"{'-':>10}"
        print(
            f"{name:<13}{events}{row['runs_per_s']:>9.1f}{row['p99_ms']:>10.0f}"
            f"{row['peak_redis_clients']:>13.0f}{row['cpu_ms_per_run']:>12.1f}"
        )
    print(f"(medians of {rounds} round(s); p99 of:")
    print("\n".join(f" {name}: {LATENCY_OF[name]}" for name in figures) + ")")
    print("outcome of each round:")
    for name, row in figures.items():
        print(f" {name}: {'; '.join(row['outcomes'])}")


@contextmanager
def _log_dir(kept: Path | None) -> Iterator[Path]:
    """The folder named to keep the logs, else a temporary one."""
    if kept is not None:
        kept.mkdir(parents=True, exist_ok=True)
        yield kept
        return
    with tempfile.TemporaryDirectory(prefix="stead-bench-load-") as logs:
        yield Path(logs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1, help="rounds of every scenario (1)")
    parser.add_argument("--streams", type=int, default=200, help="streams at once (200)")
    parser.add_argument("--events", type=int, default=1000, help="events per stream (1000)")
    parser.add_argument("--runs", type=int, default=500, help="background runs joined (500)")
    parser.add_argument("--cancels", type=int, default=100, help="runs cancelled at once (100)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--json", type=Path, help="also write every round and the medians here")
    parser.add_argument("--logs", type=Path, help="keep the servers' logs in this folder")
    args = parser.parse_args(argv)
    args.scenarios = args.scenarios.split(",")
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown or args.rounds < 1:
        parser.error(f"--rounds must be at least 1; scenarios are {', '.join(SCENARIOS)}")
    print("# starting PostgreSQL, Redis, two API replicas, two workers", file=sys.stderr)
    with (
        _log_dir(args.logs) as logs,
        load_cluster(CONFIG, logs) as cluster,
    ):
        rounds = asyncio.run(measure(cluster, args))
    figures = medians(rounds)
    print_table(figures, args.rounds)
    if args.json:
        report = {
            "arguments": {
                key: value for key, value in vars(args).items() if key not in ("json", "logs")
            },
            "python": platform.python_version(),
            "latency_of": LATENCY_OF,
            "rounds": rounds,
            "medians": figures,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
