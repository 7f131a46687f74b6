"""The thread streaming protocol vs `runs/stream`: first-event latency and events/s, side by side.

    python bench/protocol.py [--runs N] [--warmup N] [--jitter S] [--json out.json]
                             [--events 200] [--concurrency 50] [--rounds 3]
                             [--configs embedded,official,pg-redis]

Graph `chatty` (bench/graphs) writes `--events` custom events in one node. Each sample runs it on a
new thread two ways: `POST /threads/{id}/stream/events` (every channel, opened before `run.start`)
and `POST /threads/{id}/runs/stream` (stream_mode values+updates+custom+messages-tuple). See
bench/README.md.
"""

from __future__ import annotations

import asyncio
import json
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.latency import parse_sampling, sampling_parser  # noqa: E402
from tests.support.postgres import migrated_postgres  # noqa: E402
from tests.support.servers import official_server, stead_server  # noqa: E402
from tests.support.services import redis_server  # noqa: E402

GRAPHS_DIR = REPO_ROOT / "bench" / "graphs"
CONFIG = GRAPHS_DIR / "langgraph.json"
CONFIGS = ("embedded", "official", "pg-redis")
PATHS = ("protocol", "runs/stream")
CHANNELS = ["values", "updates", "messages", "tools", "custom", "lifecycle", "input"]
STREAM_MODES = ["values", "updates", "custom", "messages-tuple"]


class Sample(NamedTuple):
    first_event_s: float
    # The first event the graph wrote (`custom`); None when none came (official protocol).
    first_custom_s: float | None
    total_s: float
    events: int


# --------------------------------------------------------------------------------------------------
# Servers


@contextmanager
def _embedded() -> Iterator[str]:
    with stead_server(CONFIG) as server:
        yield server.url


@contextmanager
def _pg_redis() -> Iterator[str]:
    """One `stead run` (API and worker in one process) on PostgreSQL and Redis."""
    with ExitStack() as stack:
        env = {
            "DATABASE_URI": stack.enter_context(migrated_postgres(CONFIG)),
            "REDIS_URI": stack.enter_context(redis_server()).url,
        }
        yield stack.enter_context(stead_server(CONFIG, env=env)).url


def _start(name: str) -> AbstractContextManager[str]:
    if name == "embedded":
        return _embedded()
    if name == "official":
        return official_server(GRAPHS_DIR)
    return _pg_redis()


# --------------------------------------------------------------------------------------------------
# One stream


class _Frames:
    """SSE frames parsed as they arrive; the data of each, as JSON when it is JSON."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[tuple[str, Any]]:
        self._buffer += chunk.replace(b"\r\n", b"\n")
        complete, _, self._buffer = self._buffer.rpartition(b"\n\n")
        frames = []
        for raw in complete.split(b"\n\n"):
            name, data = "", b""
            for line in raw.split(b"\n"):
                if line.startswith(b"event:"):
                    name = line[6:].strip().decode()
                elif line.startswith(b"data:"):
                    data += line[5:].strip()
            if name:
                frames.append((name, json.loads(data) if data else None))
        return frames


def _root_end(name: str, data: Any) -> bool:
    return (
        name == "lifecycle"
        and not data["params"]["namespace"]
        and data["params"]["data"]["event"] in ("completed", "failed")
    )


class Gate:
    """Holds concurrent protocol samples between opening their streams and sending `run.start`,
    so that a round is timed from the commands, as a single sample is."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._opened = 0
        self.all_open = asyncio.Event()
        self.go = asyncio.Event()

    async def pass_through(self) -> None:
        self._opened += 1
        if self._opened == self._size:
            self.all_open.set()
        await self.go.wait()


async def protocol_sample(http: httpx.AsyncClient, count: int, gate: Gate | None = None) -> Sample:
    """Open the thread's stream, send `run.start`; timed from the command to the root's end."""
    thread_id = str(uuid.uuid4())
    body = {"channels": CHANNELS}
    opened = asyncio.Event()
    result: list[Sample] = []
    clock: list[float] = []

    async def read() -> None:
        frames = _Frames()
        first: float | None = None
        first_custom: float | None = None
        events = 0
        path = f"/threads/{thread_id}/stream/events"
        async with http.stream("POST", path, json=body) as response:
            response.raise_for_status()
            opened.set()
            async for chunk in response.aiter_raw():
                for name, data in frames.feed(chunk):
                    now = time.perf_counter() - clock[0]
                    first = now if first is None else first
                    if first_custom is None and name == "custom":
                        first_custom = now
                    events += 1
                    if _root_end(name, data):
                        if data["params"]["data"]["event"] != "completed":
                            raise RuntimeError(f"run failed: {data}")
                        result.append(Sample(first, first_custom, now, events))
                        return

    reader = asyncio.create_task(read())
    await asyncio.wait_for(opened.wait(), 30)
    if gate is not None:
        await gate.pass_through()
    clock.append(time.perf_counter())
    command = {
        "id": 1,
        "method": "run.start",
        "params": {"assistant_id": "chatty", "input": {"count": count}},
    }
    answer = (await http.post(f"/threads/{thread_id}/commands", json=command)).json()
    if answer.get("type") != "success":
        raise RuntimeError(f"run.start failed: {answer}")
    await asyncio.wait_for(reader, 300)
    return result[0]


async def runs_stream_sample(http: httpx.AsyncClient, count: int) -> Sample:
    """`POST /threads/{id}/runs/stream` creating its thread, as `run.start` does; request to last
    event."""
    thread_id = str(uuid.uuid4())
    body = {
        "assistant_id": "chatty",
        "input": {"count": count},
        "stream_mode": STREAM_MODES,
        "if_not_exists": "create",
    }
    frames = _Frames()
    first: float | None = None
    first_custom: float | None = None
    events = 0
    start = time.perf_counter()
    async with http.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as response:
        response.raise_for_status()
        async for chunk in response.aiter_raw():
            for name, _ in frames.feed(chunk):
                if name == "error":
                    raise RuntimeError("run failed")
                now = time.perf_counter() - start
                first = now if first is None else first
                if first_custom is None and name == "custom":
                    first_custom = now
                events += 1
    total = time.perf_counter() - start
    return Sample(first if first is not None else total, first_custom, total, events)


SAMPLERS = {"protocol": protocol_sample, "runs/stream": runs_stream_sample}


# --------------------------------------------------------------------------------------------------
# Measuring


async def _round(
    http: httpx.AsyncClient, path: str, events: int, concurrency: int
) -> tuple[list[Sample], float]:
    """`concurrency` samples at once and the round's wall time: for the protocol, from when every
    stream is open and the commands go out (a client keeps its thread's stream open across runs)."""
    if path != "protocol":
        started = time.perf_counter()
        samples = await asyncio.gather(
            *(runs_stream_sample(http, events) for _ in range(concurrency))
        )
        return list(samples), time.perf_counter() - started
    gate = Gate(concurrency)
    running = asyncio.gather(*(protocol_sample(http, events, gate) for _ in range(concurrency)))
    await asyncio.wait_for(gate.all_open.wait(), 60)
    started = time.perf_counter()
    gate.go.set()
    samples = await running
    return list(samples), time.perf_counter() - started


def _median(values: list[float | None], scale: float = 1.0) -> float | None:
    """The median of the known values, times `scale`; None when none is known."""
    known = [value for value in values if value is not None]
    return scale * statistics.median(known) if known else None


async def measure(url: str, args: Any) -> dict[str, Any]:
    """Per path: single-stream samples, then `--rounds` rounds of `--concurrency` streams at once
    (the paths interleaved sample by sample, so both see the same machine load)."""
    single: dict[str, list[Sample]] = {path: [] for path in PATHS}
    concurrent: dict[str, list[dict[str, float | None]]] = {path: [] for path in PATHS}
    limits = httpx.Limits(max_connections=4 * args.concurrency + 10)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:
        for _ in range(args.warmup):
            for path in PATHS:
                await SAMPLERS[path](http, args.events)
        for index in range(args.runs):
            for path in PATHS if index % 2 == 0 else reversed(PATHS):
                if args.jitter > 0:
                    await asyncio.sleep(args.jitter * ((index * 7919) % 1000) / 1000)
                single[path].append(await SAMPLERS[path](http, args.events))
        for index in range(args.rounds):
            for path in PATHS if index % 2 == 0 else reversed(PATHS):
                samples, wall = await _round(http, path, args.events, args.concurrency)
                concurrent[path].append(
                    {
                        "first_event_ms": 1000
                        * statistics.median(s.first_event_s for s in samples),
                        "first_custom_ms": _median([s.first_custom_s for s in samples], 1000),
                        "events_per_s": sum(s.events for s in samples) / wall,
                        "events_per_stream": statistics.median(s.events for s in samples),
                        "wall_ms": 1000 * wall,
                    }
                )
    return {
        path: {
            "single": {
                "first_event_ms": 1000 * statistics.median(s.first_event_s for s in single[path]),
                "first_custom_ms": _median([s.first_custom_s for s in single[path]], 1000),
                "total_ms": 1000 * statistics.median(s.total_s for s in single[path]),
                "events_per_s": statistics.median(s.events / s.total_s for s in single[path]),
                "events_per_stream": statistics.median(s.events for s in single[path]),
            },
            "concurrent": {
                key: _median([round_[key] for round_ in concurrent[path]])
                for key in (
                    "first_event_ms",
                    "first_custom_ms",
                    "events_per_s",
                    "events_per_stream",
                    "wall_ms",
                )
            },
        }
        for path in PATHS
    }


COLUMNS = (
    ("first_event_ms", "first ms", 1),
    ("first_custom_ms", "custom ms", 1),
    ("events_per_s", "ev/s", 0),
)


def print_table(results: dict[str, dict[str, Any]], concurrency: int) -> None:
    header = f"{'config':<11}{'path':<15}{'events':>7}"
    for kind in ("1", str(concurrency)):
        header += "".join(f"{f'{kind}: {label}':>15}" for _, label, _ in COLUMNS)
    print(header)
    print("-" * len(header))
    for config, by_path in results.items():
        for path in PATHS:
            line = f"{config:<11}{path:<15}{by_path[path]['single']['events_per_stream']:>7.0f}"
            for kind in ("single", "concurrent"):
                row = by_path[path][kind]
                line += "".join(_cell(row[key], digits) for key, _, digits in COLUMNS)
            print(line)
        ratios = _ratios(by_path)
        line = f"{config:<11}{'protocol/runs':<15}{'':>7}"
        for kind in ("single", "concurrent"):
            line += "".join(_cell(ratios[f"{kind}_{key}"], 2) for key, _, _ in COLUMNS)
        print(line)
    print("(medians; events: per stream; custom ms: to the first event the graph wrote; ev/s:")
    print(" events delivered per second, all streams together when concurrent; ratio rows:")
    print(" protocol over runs/stream, < 1 = protocol faster in ms, > 1 = protocol faster in ev/s)")


def _cell(value: float | None, digits: int) -> str:
    return f"{'n/a':>15}" if value is None else f"{value:>15.{digits}f}"


def _ratios(by_path: dict[str, Any]) -> dict[str, float | None]:
    """Protocol over runs/stream per column; None where the protocol delivered none (official
    `custom`: its server sends them only for graphs compiled with that transformer)."""
    proto, runs = by_path["protocol"], by_path["runs/stream"]
    return {
        f"{kind}_{key}": None
        if proto[kind][key] is None or not runs[kind][key]
        else proto[kind][key] / runs[kind][key]
        for kind in ("single", "concurrent")
        for key, _, _ in COLUMNS
    }


def main(argv: list[str] | None = None) -> int:
    parser = sampling_parser(__doc__.splitlines()[0])
    parser.set_defaults(runs=10, warmup=2)
    parser.add_argument("--events", type=int, default=200, help="custom events per run (200)")
    parser.add_argument("--concurrency", type=int, default=50, help="streams at once (50)")
    parser.add_argument("--rounds", type=int, default=3, help="concurrent rounds per path (3)")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    args = parse_sampling(parser, argv)
    results: dict[str, dict[str, Any]] = {}
    for name in args.configs.split(","):
        print(f"# {name}: starting", file=sys.stderr, flush=True)
        with _start(name) as url:
            print(f"# {name}: measuring on {url}", file=sys.stderr, flush=True)
            results[name] = asyncio.run(measure(url, args))
    print_table(results, args.concurrency)
    if args.json:
        report = {
            "events": args.events,
            "runs": args.runs,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "channels": CHANNELS,
            "stream_modes": STREAM_MODES,
            "python": platform.python_version(),
            "results": results,
            "protocol_over_runs_stream": {name: _ratios(r) for name, r in results.items()},
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
