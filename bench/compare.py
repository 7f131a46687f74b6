"""Stead beside the official server, the figures of issue 16 in one run:

- stateful `POST /threads/{id}/runs/wait`, sequential: p50 latency;
- stateless `POST /runs/wait` at 1, 16 and 64 clients: runs/s;
- server CPU per run (user + system time of every server process, over the 16- and the
  64-client level);
- `POST /threads` at 16 clients: threads/s;
- `POST /threads/search` (limit 10) at 5,000 threads: p50 latency;
- resident memory after all that (every server process summed);
- one stateless run whose input is a 20 MiB string: the server's peak extra memory, as a multiple
  of the body; then ten such runs at once, as a multiple of the ten bodies, and the memory still
  held a second after them.

Servers, all started at once: Stead on its embedded default, Stead on PostgreSQL 15 + Redis 7 (one
API process with `N_JOBS_PER_WORKER=0` and one `stead worker`, both counted), the official
in-memory server (`langgraph-api`, `N_JOBS_PER_WORKER=10`, with its own logging set-up), and the
floor: the graph in-process behind the least HTTP server, storing nothing (bench/floor_app.py).
The graph is the one-node `echo`. The sequential stateful runs, each run level (1, 16 and 64
clients) and the search run on one server at a time, in interleaved rounds: the table has the
medians. The other rows are measured on one server at a time, thread creation once, before any
thread exists.

    python bench/compare.py [--seconds 5] [--rounds 3] [--servers embedded,pg-redis,official,floor]
                            [--json out.json] [--source path/to/src]

`make bench` runs it. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.support.load import cpu_seconds, resident_bytes  # noqa: E402
from tests.support.postgres import migrated_postgres  # noqa: E402
from tests.support.servers import (  # noqa: E402
    floor_server,
    official_server,
    pid_listening,
    stead_server,
)
from tests.support.services import redis_server  # noqa: E402
from tests.support.worker import stead_worker  # noqa: E402

GRAPHS_DIR = REPO_ROOT / "tests" / "graphs"
CONFIG = GRAPHS_DIR / "langgraph.json"
SERVERS = ("embedded", "pg-redis", "official", "floor")
# Columns measured for scale, not compared with the official server: see floor_app.py.
REFERENCES = ("official", "floor")
ECHO = {"assistant_id": "echo", "input": {"text": "hi"}}
SEARCH_THREADS = 5_000
LARGE_BODY_MIB = 20
LARGE_AT_ONCE = 10


@dataclass
class Server:
    url: str
    pids: list[int]
    # The official server's queue polls about once a second: fewer sequential samples.
    stateful_samples: int = 100

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pids)

    def rss_bytes(self) -> int:
        return resident_bytes(self.pids)


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


@contextmanager
def start(name: str, source: Path | None) -> Iterator[Server]:
    with ExitStack() as stack:
        if name == "official":
            url = stack.enter_context(official_server(GRAPHS_DIR))
            yield Server(url, [pid_listening(_port(url))], stateful_samples=10)
        elif name == "floor":
            url = stack.enter_context(floor_server())
            yield Server(url, [pid_listening(_port(url))])
        elif name == "embedded":
            server = stack.enter_context(stead_server(CONFIG, source=source))
            yield Server(server.url, [server.process.pid])
        else:
            env = {
                "DATABASE_URI": stack.enter_context(migrated_postgres(CONFIG, source=source)),
                "REDIS_URI": stack.enter_context(redis_server()).url,
            }
            api_env = {**env, "N_JOBS_PER_WORKER": "0"}
            api = stack.enter_context(stead_server(CONFIG, env=api_env, source=source))
            worker = stack.enter_context(stead_worker(CONFIG, env=env, source=source))
            yield Server(api.url, [api.process.pid, pid_listening(_port(worker))])


# The load comes from aiohttp: httpx spends about 1.3 ms of CPU per request, more than the
# servers do to create a thread, and on two cores that made the client the bottleneck
# (bench/README.md, "The bench's client").
_JSON = {"content-type": "application/json"}
_TIMEOUT = aiohttp.ClientTimeout(total=600)


def client_session(url: str, connections: int = 100) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=connections)
    return aiohttp.ClientSession(url, connector=connector, timeout=_TIMEOUT)


async def post_json(http: aiohttp.ClientSession, path: str, body: bytes) -> Any:
    """`POST path` with a JSON body; its JSON answer, which must be a success."""
    async with http.post(path, data=body, headers=_JSON) as response:
        text = await response.read()
    assert response.status == 200, text[:500]
    return json.loads(text)


async def stateful_wait_p50(url: str, samples: int) -> float:
    async with client_session(url) as http:
        thread_id = (await post_json(http, "/threads", b"{}"))["thread_id"]
        timings = await stateful_waits(http, thread_id, samples)
    return 1000 * statistics.median(timings)


async def stateful_waits(http: aiohttp.ClientSession, thread_id: str, runs: int) -> list[float]:
    """The seconds each of `runs` sequential `runs/wait` of `echo` on the thread took."""
    body = json.dumps(ECHO).encode()
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        await post_json(http, f"/threads/{thread_id}/runs/wait", body)
        timings.append(time.perf_counter() - start)
    return timings


async def requests_done(
    url: str, clients: int, seconds: float, path: str, body: dict[str, Any], answer: Any = None
) -> int:
    """How many `POST path` the clients completed back to back in `seconds`; each must succeed
    (and, given `answer`, answer it)."""

    encoded = json.dumps(body).encode()

    async def client(http: aiohttp.ClientSession, deadline: float) -> int:
        done = 0
        while time.monotonic() < deadline:
            found = await post_json(http, path, encoded)
            assert answer is None or found == answer, found
            done += 1
        return done

    async with client_session(url, clients) as http:
        deadline = time.monotonic() + seconds
        return sum(await asyncio.gather(*(client(http, deadline) for _ in range(clients))))


async def stateless_runs(url: str, clients: int, seconds: float) -> int:
    return await requests_done(url, clients, seconds, "/runs/wait", ECHO, {"text": "hi"})


async def created_threads(url: str, clients: int, seconds: float) -> int:
    body = {"metadata": {"bench": "create"}}
    return await requests_done(url, clients, seconds, "/threads", body)


async def search_p50(url: str, samples: int) -> float:
    async with client_session(url) as http:
        count = await post_json(http, "/threads/count", b"{}")
        missing = max(0, SEARCH_THREADS - int(count))
        for start in range(0, missing, 100):
            await asyncio.gather(
                *(
                    post_json(http, "/threads", json.dumps({"metadata": {"n": n}}).encode())
                    for n in range(start, min(missing, start + 100))
                )
            )
        timings = []
        for _ in range(samples):
            start_at = time.perf_counter()
            found = await post_json(http, "/threads/search", b'{"limit": 10}')
            timings.append(time.perf_counter() - start_at)
            assert len(found) == 10, found
    return 1000 * statistics.median(timings)


def large_request_peak(server: Server, requests: int = 1) -> float:
    """Peak extra resident memory while `requests` stateless runs, each with a 20 MiB input, go
    through at once, in bodies (`requests` x 20 MiB)."""
    text = "x" * (LARGE_BODY_MIB * 1024 * 1024)
    before = server.rss_bytes()
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, server.rss_bytes())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        asyncio.run(_large_runs(server.url, text, requests))
    finally:
        done.set()
        sampler.join()
    return (peak - before) / (requests * len(text))


async def _large_runs(url: str, text: str, requests: int) -> None:
    body = {"assistant_id": "echo", "input": {"text": text}}
    encoded = json.dumps(body).encode()
    async with client_session(url) as http:
        answers = await asyncio.gather(
            *(post_json(http, "/runs/wait", encoded) for _ in range(requests))
        )
    for answer in answers:
        assert answer["text"] == text


def measure(servers: dict[str, Server], seconds: float, rounds: int) -> dict[str, dict[str, float]]:
    """Every row of the table for each server. The sequential runs and the load levels run on
    each server in turn, in `rounds` interleaved rounds (the others idle meanwhile), so that a
    slow spell of the machine falls on all of them; their figures are the medians."""
    results: dict[str, dict[str, float]] = {name: {} for name in servers}
    for server in servers.values():
        asyncio.run(stateless_runs(server.url, 4, 1.0))  # warm-up
    merge(results, interleaved(servers, rounds, stateful_level))
    for clients in (1, 16, 64):
        merge(results, interleaved(servers, rounds, partial(stateless_level, clients, seconds)))
    # Once, on servers that hold no thread yet: the official server creates threads the slower
    # the more it holds (1,025/s empty, 508/s with 5,000 more), so later rounds would measure it
    # holding the threads of the rounds before.
    merge(results, interleaved(servers, 1, partial(_thread_creation_level, seconds)))
    # In rounds too: measured once per server (until 2026-12-07), a slow moment of the machine
    # fell on one server's figure.
    merge(results, interleaved(servers, rounds, _search_level))
    for name, server in servers.items():
        row = results[name]
        row["rss_mib"] = server.rss_bytes() / 2**20
        row["large_request_peak_bodies"] = large_request_peak(server)
        row["large_requests_10_peak_bodies"] = large_request_peak(server, LARGE_AT_ONCE)
        time.sleep(1)
        row["rss_kept_after_large_mib"] = server.rss_bytes() / 2**20 - row["rss_mib"]
    return results


def interleaved(
    servers: dict[str, Server],
    rounds: int,
    level: Callable[[Server], dict[str, float]],
    summed: Collection[str] = (),
) -> dict[str, dict[str, float]]:
    """`level` on each server in turn, `rounds` times, starting one server later each round;
    the median of each of its figures per server, or the sum for the figures in `summed` (a
    count that must stay zero, which a median could hide)."""
    names = list(servers)
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for round_ in range(rounds):
        first = round_ % len(names)
        for name in names[first:] + names[:first]:
            samples[name].append(level(servers[name]))
    return {
        name: {
            key: (sum if key in summed else statistics.median)(sample[key] for sample in runs)
            for key in runs[0]
        }
        for name, runs in samples.items()
    }


def stateful_level(server: Server) -> dict[str, float]:
    p50 = asyncio.run(stateful_wait_p50(server.url, server.stateful_samples))
    return {"stateful_wait_p50_ms": p50}


def stateless_level(clients: int, seconds: float, server: Server) -> dict[str, float]:
    cpu_before = server.cpu_seconds()
    runs = asyncio.run(stateless_runs(server.url, clients, seconds))
    figures = {f"stateless_runs_per_s_{clients}": runs / seconds}
    if clients > 1:
        cpu_ms = 1000 * (server.cpu_seconds() - cpu_before) / max(runs, 1)
        figures["cpu_ms_per_run" if clients == 16 else f"cpu_ms_per_run_{clients}"] = cpu_ms
    return figures


def _thread_creation_level(seconds: float, server: Server) -> dict[str, float]:
    return {
        "threads_created_per_s_16": asyncio.run(created_threads(server.url, 16, seconds)) / seconds
    }


def _search_level(server: Server) -> dict[str, float]:
    # The first round adds the threads the search needs; the later ones find them there.
    return {"search_p50_ms_5000": asyncio.run(search_p50(server.url, 50))}


def merge(results: dict[str, dict[str, float]], figures: dict[str, dict[str, float]]) -> None:
    for name, row in figures.items():
        results[name].update(row)


ROWS = [
    ("stateful `runs/wait` p50, sequential", "stateful_wait_p50_ms", "{:.1f} ms", False),
    ("stateless `runs/wait`, 1 client", "stateless_runs_per_s_1", "{:.0f} runs/s", True),
    ("stateless `runs/wait`, 16 clients", "stateless_runs_per_s_16", "{:.0f} runs/s", True),
    ("stateless `runs/wait`, 64 clients", "stateless_runs_per_s_64", "{:.0f} runs/s", True),
    ("server CPU per run (16 clients)", "cpu_ms_per_run", "{:.1f} ms", False),
    ("server CPU per run (64 clients)", "cpu_ms_per_run_64", "{:.1f} ms", False),
    ("create threads, 16 clients", "threads_created_per_s_16", "{:.0f} /s", True),
    ("`threads/search` p50 at 5,000 threads", "search_p50_ms_5000", "{:.1f} ms", False),
    ("RSS after warm-up", "rss_mib", "{:.0f} MiB", False),
    ("peak extra memory, 20 MiB request", "large_request_peak_bodies", "{:.1f}x body", False),
    (
        "peak extra memory, ten 20 MiB requests at once",
        "large_requests_10_peak_bodies",
        "{:.1f}x bodies",
        False,
    ),
    ("RSS kept 1 s after those large requests", "rss_kept_after_large_mib", "{:.0f} MiB", False),
]


def table(results: dict[str, dict[str, float]]) -> str:
    names = list(results)
    stead = [name for name in names if name not in REFERENCES]
    header = "| | " + " | ".join(names)
    if "official" in results:
        header += " | " + " | ".join(f"{name} vs official" for name in stead)
    lines = [header + " |", "|---" * (1 + len(names) + ("official" in results) * len(stead)) + "|"]
    for label, key, shape, higher_is_better in ROWS:
        cells = [shape.format(results[name][key]) for name in names]
        if "official" in results:
            for name in stead:
                if results["official"][key] <= 0:
                    # Memory the official server gave back entirely: no ratio to speak of.
                    cells.append("n/a")
                    continue
                ratio = results[name][key] / results["official"][key]
                better = ratio >= 1 if higher_is_better else ratio <= 1
                cells.append(f"{ratio:.2f}x{'' if better else ' (worse)'}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--source", type=Path, help="the src folder of the Stead to measure")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per load level")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    with ExitStack() as stack:
        servers: dict[str, Server] = {}
        for name in args.servers.split(","):
            print(f"# starting {name}", file=sys.stderr, flush=True)
            servers[name] = stack.enter_context(start(name, args.source))
        results = measure(servers, args.seconds, args.rounds)
    how = (
        f"sequential runs, load levels and search: medians of {args.rounds} interleaved rounds, "
        f"load levels of {args.seconds:g} s"
    )
    report(table(results), results, load_before, how, args.json)
    return 0


def report(
    table: str, results: Any, load_before: tuple[float, ...], how: str, json_path: Path | None
) -> None:
    """Print the table, then the machine's load before the servers started and now, and `how`
    the figures were measured; write `results` to `json_path` when given."""
    load_after = os.getloadavg()
    print(table)
    print(
        f"\n{os.cpu_count()} CPUs; load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after; {how}"
    )
    if json_path:
        json_path.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    raise SystemExit(main())
