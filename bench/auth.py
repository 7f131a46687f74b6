"""What authentication costs per request: Stead without auth, with custom auth, with API keys, and
the official server with the same custom auth, one after the other in one run.

    python bench/auth.py [--runs N] [--warmup N] [--jitter SECONDS] [--json out.json]

See bench/README.md.
"""

from __future__ import annotations

import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.latency import (  # noqa: E402
    _check,
    parse_sampling,
    sampling_parser,
    summarize,
    thread_wait_echo,
)
from tests.support.servers import official_server, stead_server  # noqa: E402

GRAPHS_DIR = REPO_ROOT / "tests" / "graphs"
CUSTOM_AUTH = {"path": f"{GRAPHS_DIR / 'auth.py'}:auth"}
BEARER = {"Authorization": "Bearer alice-token"}  # a user of tests/graphs/auth.py

CONFIGS = {
    "stead-none": "Stead, no auth",
    "stead-custom": "Stead, custom auth (auth.py, bearer)",
    "stead-apikey": "Stead, built-in API keys (x-api-key)",
    "official-custom": "official, custom auth (auth.py, bearer)",
}
MEASUREMENTS = {
    "thread_wait_echo": "POST /threads/{id}/runs/wait (echo)",
    "threads_search": "POST /threads/search (limit 10)",
}


def threads_search(client: httpx.Client) -> float:
    start = time.perf_counter()
    found = _check(client.post("/threads/search", json={"limit": 10})).json()
    elapsed = time.perf_counter() - start
    if not isinstance(found, list) or not found:
        raise RuntimeError(f"unexpected /threads/search result: {found!r}")
    return elapsed


SAMPLERS: dict[str, Callable[[httpx.Client], float]] = {
    "thread_wait_echo": thread_wait_echo,
    "threads_search": threads_search,
}


def _write_graphs_dir(tmp: Path, auth: dict[str, Any] | None) -> Path:
    """A graphs dir whose langgraph.json has the ``echo`` graph (absolute path) and ``auth``."""
    config: dict[str, Any] = {"graphs": {"echo": f"{GRAPHS_DIR / 'agent.py'}:echo"}}
    if auth is not None:
        config["auth"] = auth
    (tmp / "langgraph.json").write_text(json.dumps(config))
    return tmp


def _create_api_key(config: Path, data_dir: Path) -> str:
    """``stead apikey create`` in the data dir the server will then use; prints the key once."""
    command = [sys.executable, "-m", "stead", "apikey", "create", "--name", "bench"]
    command += ["--config", str(config), "--data-dir", str(data_dir)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    created = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return created.stdout.strip()


@contextmanager
def start(name: str, tmp: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """Start configuration ``name``; yield its base URL and the headers every request carries."""
    if name == "stead-none":
        with stead_server(_write_graphs_dir(tmp, None) / "langgraph.json") as server:
            yield server.url, {}
    elif name == "stead-custom":
        with stead_server(_write_graphs_dir(tmp, CUSTOM_AUTH) / "langgraph.json") as server:
            yield server.url, BEARER
    elif name == "stead-apikey":
        config = _write_graphs_dir(tmp, {"api_keys": True}) / "langgraph.json"
        data_dir = tmp / "data"
        key = _create_api_key(config, data_dir)
        with stead_server(config, data_dir=data_dir) as server:
            yield server.url, {"x-api-key": key}
    elif name == "official-custom":
        with official_server(_write_graphs_dir(tmp, CUSTOM_AUTH)) as url:
            yield url, BEARER
    else:
        raise ValueError(name)


def measure(
    url: str, headers: dict[str, str], runs: int, warmup: int, jitter: float
) -> dict[str, list[float]]:
    """``runs`` samples of each measurement after ``warmup`` untimed rounds (see latency.py for
    ``jitter``). Every configuration creates the same number of threads before its searches, so
    that they search tables of the same size."""
    samples: dict[str, list[float]] = {name: [] for name in MEASUREMENTS}
    rng = random.Random(0)
    with httpx.Client(base_url=url, headers=headers, timeout=60.0) as client:
        for _ in range(warmup):
            for sampler in SAMPLERS.values():
                sampler(client)
        for name, sampler in SAMPLERS.items():
            for _ in range(runs):
                if jitter > 0:
                    time.sleep(rng.uniform(0, jitter))
                samples[name].append(sampler(client))
    return samples


def _median(results: dict[str, dict[str, dict[str, Any]]], config: str, name: str) -> float:
    return float(results[config][name]["median_ms"])


def ratios(results: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Ratios of medians: each auth over no auth on Stead, and the official over Stead with the
    same custom auth (> 1: Stead is faster)."""
    pairs = {
        "stead-custom/stead-none": ("stead-custom", "stead-none"),
        "stead-apikey/stead-none": ("stead-apikey", "stead-none"),
        "official-custom/stead-custom": ("official-custom", "stead-custom"),
    }
    return {
        label: {
            name: round(_median(results, top, name) / _median(results, bottom, name), 2)
            for name in MEASUREMENTS
        }
        for label, (top, bottom) in pairs.items()
        if top in results and bottom in results
    }


def print_table(results: dict[str, dict[str, dict[str, Any]]]) -> None:
    header = f"{'configuration':<42}" + "".join(
        f"{label.split(' (')[0] + ' med/p90':>36}" for label in MEASUREMENTS.values()
    )
    print(header)
    print("-" * len(header))
    for config, stats in results.items():
        cells = "".join(
            f"{stats[name]['median_ms']:>25.1f} / {stats[name]['p90_ms']:>8.1f}"
            for name in MEASUREMENTS
        )
        print(f"{CONFIGS[config]:<42}{cells}")
    print("(milliseconds)")
    for label, by_name in ratios(results).items():
        print(f"{label:<42}" + "".join(f"{by_name[name]:>36.2f}" for name in MEASUREMENTS))


def main(argv: list[str] | None = None) -> int:
    parser = sampling_parser(__doc__.splitlines()[0])
    parser.add_argument("--only", choices=CONFIGS, action="append", help="repeatable")
    args = parse_sampling(parser, argv)

    results: dict[str, dict[str, dict[str, Any]]] = {}
    for config in args.only or list(CONFIGS):
        print(f"# {config}: starting", file=sys.stderr, flush=True)
        with (
            tempfile.TemporaryDirectory(prefix="stead-bench-auth-") as tmp,
            start(config, Path(tmp)) as (url, headers),
        ):
            print(f"# {config}: measuring on {url}", file=sys.stderr, flush=True)
            samples = measure(url, headers, args.runs, args.warmup, args.jitter)
        results[config] = {name: summarize(values) for name, values in samples.items()}

    print_table(results)
    if args.json:
        report = {
            "runs": args.runs,
            "warmup": args.warmup,
            "jitter_s": args.jitter,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "configurations": CONFIGS,
            "measurements": MEASUREMENTS,
            "results": results,
            "median_ratios": ratios(results),
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
