"""Request latency of Stead vs the official LangGraph server on the same graphs, one at a time.

    python bench/latency.py [--runs N] [--graphs-dir tests/graphs] [--only stead|official]
                            [--jitter SECONDS] [--json out.json]

See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.support.servers import official_server, stead_server  # noqa: E402

SERVERS = ("stead", "official")
MEASUREMENTS = {
    "thread_wait_echo": "POST /threads/{id}/runs/wait (echo)",
    "stateless_wait_echo": "POST /runs/wait (echo)",
    "thread_stream_agent_ttfb": "POST /threads/{id}/runs/stream (agent), first byte",
    "thread_stream_agent": "POST /threads/{id}/runs/stream (agent), last byte",
}
STREAM_MODES = ["values", "messages-tuple"]


def _check(response: httpx.Response) -> httpx.Response:
    response.raise_for_status()
    return response


def _new_thread(client: httpx.Client) -> str:
    return str(_check(client.post("/threads", json={})).json()["thread_id"])


def thread_wait_echo(client: httpx.Client) -> float:
    thread_id = _new_thread(client)  # a new thread per call, created outside the timed part
    start = time.perf_counter()
    body = {"assistant_id": "echo", "input": {"text": "hi"}}
    result = _check(client.post(f"/threads/{thread_id}/runs/wait", json=body)).json()
    elapsed = time.perf_counter() - start
    if result != {"text": "hi"}:
        raise RuntimeError(f"unexpected /wait result: {result!r}")
    return elapsed


def stateless_wait_echo(client: httpx.Client) -> float:
    start = time.perf_counter()
    body = {"assistant_id": "echo", "input": {"text": "hi"}}
    result = _check(client.post("/runs/wait", json=body)).json()
    elapsed = time.perf_counter() - start
    if result != {"text": "hi"}:
        raise RuntimeError(f"unexpected /runs/wait result: {result!r}")
    return elapsed


def thread_stream_agent(client: httpx.Client) -> tuple[float, float]:
    """Time to first byte and to last byte of a stateful stream; a new thread per call."""
    thread_id = _new_thread(client)
    body = {
        "assistant_id": "agent",
        "input": {"messages": [{"role": "user", "content": "hi"}]},
        "stream_mode": STREAM_MODES,
    }
    start = time.perf_counter()
    first: float | None = None
    data = bytearray()
    with client.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as response:
        _check(response)
        for chunk in response.iter_raw():
            if first is None:
                first = time.perf_counter() - start
            data += chunk
    last = time.perf_counter() - start
    if b"event: error" in data or b"Hello there friend" not in data:
        raise RuntimeError(f"unexpected stream: {bytes(data[-500:])!r}")
    return first if first is not None else last, last


def measure(url: str, runs: int, warmup: int, jitter: float = 0.0) -> dict[str, list[float]]:
    """Run every measurement ``runs`` times after ``warmup`` untimed rounds; seconds per sample.

    ``jitter`` > 0 sleeps a random 0..jitter seconds (untimed) before each sample, so that requests
    do not fall into step with a server's fixed polling interval.
    """
    samples: dict[str, list[float]] = {name: [] for name in MEASUREMENTS}
    rng = random.Random(0)

    def pause() -> None:
        if jitter > 0:
            time.sleep(rng.uniform(0, jitter))

    with httpx.Client(base_url=url, timeout=60.0) as client:
        for _ in range(warmup):
            thread_wait_echo(client)
            stateless_wait_echo(client)
            thread_stream_agent(client)
        for _ in range(runs):
            pause()
            samples["thread_wait_echo"].append(thread_wait_echo(client))
        for _ in range(runs):
            pause()
            samples["stateless_wait_echo"].append(stateless_wait_echo(client))
        for _ in range(runs):
            pause()
            ttfb, ttlb = thread_stream_agent(client)
            samples["thread_stream_agent_ttfb"].append(ttfb)
            samples["thread_stream_agent"].append(ttlb)
    return samples


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile, ``q`` in [0, 100]."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize(samples: list[float]) -> dict[str, Any]:
    ms = [s * 1000 for s in samples]
    return {
        "median_ms": round(statistics.median(ms), 2),
        "p90_ms": round(percentile(ms, 90), 2),
        "min_ms": round(min(ms), 2),
        "max_ms": round(max(ms), 2),
        "samples_ms": [round(v, 2) for v in ms],
    }


def print_table(results: dict[str, dict[str, dict[str, Any]]]) -> None:
    servers = [s for s in SERVERS if s in results]
    header = f"{'measurement':<52}"
    for server in servers:
        header += f"{server + ' med':>14}{server + ' p90':>14}"
    if len(servers) == 2:
        header += f"{'official/stead':>16}"
    print(header)
    print("-" * len(header))
    for name, label in MEASUREMENTS.items():
        line = f"{label:<52}"
        for server in servers:
            stats = results[server][name]
            line += f"{stats['median_ms']:>14.1f}{stats['p90_ms']:>14.1f}"
        if len(servers) == 2:
            line += f"{_ratio(results, name):>16.2f}"
        print(line)
    print("(milliseconds)")


def _ratio(results: dict[str, dict[str, dict[str, Any]]], name: str) -> float:
    stead = float(results["stead"][name]["median_ms"])
    official = float(results["official"][name]["median_ms"])
    return official / stead if stead else float("inf")


@contextmanager
def _stead(graphs_dir: Path) -> Iterator[str]:
    with stead_server(graphs_dir / "langgraph.json") as server:
        yield server.url


def _start(server: str, graphs_dir: Path) -> AbstractContextManager[str]:
    starters: dict[str, Callable[[Path], AbstractContextManager[str]]] = {
        "stead": _stead,
        "official": official_server,
    }
    return starters[server](graphs_dir)


def sampling_parser(description: str) -> argparse.ArgumentParser:
    """The options every latency benchmark takes: samples, warm-up, jitter, JSON output."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=int, default=30, help="samples per measurement (30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first (3)")
    parser.add_argument(
        "--jitter",
        type=float,
        default=0.0,
        help="random untimed pause of 0..JITTER s before each sample (0: back to back)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser


def parse_sampling(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    parser = sampling_parser(__doc__.splitlines()[0])
    parser.add_argument("--graphs-dir", type=Path, default=REPO_ROOT / "tests" / "graphs")
    parser.add_argument("--only", choices=SERVERS, help="measure one server only")
    args = parse_sampling(parser, argv)

    results: dict[str, dict[str, dict[str, Any]]] = {}
    for server in [args.only] if args.only else list(SERVERS):
        print(f"# {server}: starting", file=sys.stderr, flush=True)
        with _start(server, args.graphs_dir.resolve()) as url:
            print(f"# {server}: measuring on {url}", file=sys.stderr, flush=True)
            samples = measure(url, args.runs, args.warmup, args.jitter)
        results[server] = {name: summarize(values) for name, values in samples.items()}

    print_table(results)
    if args.json:
        report: dict[str, Any] = {
            "runs": args.runs,
            "warmup": args.warmup,
            "jitter_s": args.jitter,
            "stream_modes": STREAM_MODES,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "measurements": MEASUREMENTS,
            "results": results,
        }
        if len(results) == 2:
            report["official_over_stead_median"] = {
                name: round(_ratio(results, name), 3) for name in MEASUREMENTS
            }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
