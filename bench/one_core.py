"""What keeping a server's threads on one core does: Stead on the embedded default and the official
server, each measured as the system places its threads and again with every thread of it on one
core (`sched_setaffinity`, as `taskset` or `docker run --cpuset-cpus` would); the bench's client
is never pinned.

LangGraph runs a graph's synchronous node on the event loop's thread pool, so each run of `echo`
hands the GIL from the loop's thread to a pool thread and back. On two cores the two threads tend
to run on different ones, and each hand-over then costs more. Graph `ticker` with `count` 0 (one
`async` node, no hand-over) is the control.

For each server, placement and graph: stateless `runs/wait` at each `--clients` level, runs/s and
the server's CPU per run; medians of `--rounds` interleaved rounds.

    python bench/one_core.py [--servers embedded,official] [--clients 1,64] [--rounds 3]
                             [--seconds 4] [--json out.json]

See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.compare import ECHO, Server, interleaved, merge, report, requests_done, start  # noqa: E402

Figures = dict[str, float]
# The servers that are one process (compare.py's names).
ONE_PROCESS = ("embedded", "official", "floor")
# (label, request body, its answer)
GRAPHS = {
    "echo": (ECHO, {"text": "hi"}),
    "ticker": ({"assistant_id": "ticker", "input": {"count": 0}}, {"count": 0, "written": 0}),
}


@dataclass
class Placed(Server):
    """A server measured with its threads on `cpus`; None: wherever the system puts them."""

    cpus: frozenset[int] | None = None


def place(pids: list[int], cpus: frozenset[int]) -> None:
    """Every thread of the processes may run on `cpus` only (threads they start later inherit
    it from the thread that starts them)."""
    for pid in pids:
        for thread in os.listdir(f"/proc/{pid}/task"):
            os.sched_setaffinity(int(thread), cpus)


def placed_level(
    graph: str, clients: int, seconds: float, every_cpu: frozenset[int], server: Server
) -> Figures:
    assert isinstance(server, Placed)
    place(server.pids, server.cpus or every_cpu)
    body, answer = GRAPHS[graph]
    cpu_before = server.cpu_seconds()
    runs = asyncio.run(requests_done(server.url, clients, seconds, "/runs/wait", body, answer))
    cpu_ms = 1000 * (server.cpu_seconds() - cpu_before) / max(runs, 1)
    return {f"{graph}_runs_per_s_{clients}": runs / seconds, f"{graph}_cpu_ms_{clients}": cpu_ms}


def measure(
    servers: dict[str, Placed], clients: list[int], seconds: float, rounds: int
) -> dict[str, Figures]:
    every_cpu = frozenset(os.sched_getaffinity(0))
    results: dict[str, Figures] = {name: {} for name in servers}
    levels: list[Callable[[Server], Figures]] = [
        partial(placed_level, graph, level, seconds, every_cpu)
        for graph in GRAPHS
        for level in clients
    ]
    for level in levels:
        merge(results, interleaved(dict(servers), rounds, level))
    return results


def table(results: dict[str, Figures], names: list[str], clients: list[int]) -> str:
    lines = [
        "| server | graph | clients | as placed: runs/s, CPU per run "
        "| one core: runs/s, CPU per run | runs/s, one core / as placed |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        free, pinned = results[name], results[f"{name}, one core"]
        for graph in GRAPHS:
            for level in clients:
                rate, cpu = f"{graph}_runs_per_s_{level}", f"{graph}_cpu_ms_{level}"
                gain = pinned[rate] / free[rate]
                lines.append(
                    f"| {name} | {graph} | {level} | {free[rate]:.0f}, {free[cpu]:.2f} ms "
                    f"| {pinned[rate]:.0f}, {pinned[cpu]:.2f} ms | {gain:.2f} |"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="embedded,official")
    parser.add_argument("--clients", default="1,64")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    names = args.servers.split(",")
    if not set(names) <= set(ONE_PROCESS):
        # PostgreSQL + Redis is two processes: one core for both is not what this measures.
        parser.error(f"--servers: each of {', '.join(ONE_PROCESS)}")
    clients = [int(level) for level in args.clients.split(",")]
    # The last CPU the bench may use; the client stays free to run on any.
    one_core = frozenset({max(os.sched_getaffinity(0))})
    load_before = os.getloadavg()
    with ExitStack() as stack:
        servers: dict[str, Placed] = {}
        for name in names:
            server = stack.enter_context(start(name, None))
            servers[name] = Placed(server.url, server.pids)
            servers[f"{name}, one core"] = Placed(server.url, server.pids, cpus=one_core)
        results = measure(servers, clients, args.seconds, args.rounds)
    how = f"medians of {args.rounds} interleaved rounds of {args.seconds:g} s; "
    how += f"one core: CPU {min(one_core)}"
    report(table(results, names, clients), results, load_before, how, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
