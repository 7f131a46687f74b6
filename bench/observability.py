"""What metrics and tracing cost on `runs/wait`, side by side in one run.

    python bench/observability.py [--rounds 3] [--seconds 5] [--requests 200] [--baseline REV]

Three `stead run` servers on the embedded default, started together: `baseline`, the revision
before metrics existed (a git worktree of `--baseline`, by default the parent of the commit that
added src/stead/observability/metrics.py); `metrics`, this checkout (metrics are always on);
`tracing`, this checkout exporting every span over OTLP/HTTP to a sink in this process. Each
round measures every server in turn: the p50 of `--requests` sequential stateful `runs/wait`,
and runs/s of 16 clients for `--seconds`, the servers in a new random order each round. The
table gives medians over the rounds and the ratio to the baseline. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.compare import stateful_wait_p50  # noqa: E402
from bench.throughput import measure  # noqa: E402
from tests.support.servers import HOST, stead_server  # noqa: E402

CONFIG = REPO_ROOT / "tests" / "graphs" / "langgraph.json"
METRICS_MODULE = "src/stead/observability/metrics.py"


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        return


@contextmanager
def otlp_sink() -> Iterator[str]:
    server = ThreadingHTTPServer((HOST, 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{HOST}:{server.server_address[1]}"
    finally:
        server.shutdown()


@contextmanager
def worktree(revision: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="stead-baseline-") as parent:
        path = Path(parent) / "tree"
        git = ["git", "-C", str(REPO_ROOT)]
        subprocess.run([*git, "worktree", "add", "--detach", str(path), revision], check=True,
                       capture_output=True)  # fmt: skip
        try:
            yield path
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(path)], check=True)


def default_baseline() -> str:
    log = ["git", "-C", str(REPO_ROOT), "log", "--diff-filter=A", "--format=%H"]
    added = subprocess.run(
        [*log, "--", METRICS_MODULE], check=True, capture_output=True, text=True
    ).stdout.split()
    return f"{added[-1]}^"


def update_cost_us(repeats: int = 100_000) -> float:
    """Microseconds of the metric updates one `runs/wait` makes in this process: its request,
    its claim, its attempt and its end."""
    from stead.observability.metrics import METRICS

    started = time.perf_counter()
    for _ in range(repeats):
        METRICS.observe_request("POST", "/threads/{thread_id}/runs/wait", 200, 0.012)
        METRICS.queue_wait.observe(0.003)
        METRICS.attempts.labels("started").inc()
        METRICS.set_slots_in_use(1)
        METRICS.runs.labels("success", "echo").inc()
        METRICS.run_duration.labels("echo").observe(0.004)
        METRICS.set_slots_in_use(0)
    return (time.perf_counter() - started) / repeats * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--baseline", default=None, help="git revision without metrics")
    args = parser.parse_args()
    baseline = args.baseline or default_baseline()
    with ExitStack() as stack:
        tree = stack.enter_context(worktree(baseline))
        sink = stack.enter_context(otlp_sink())
        servers = {
            "baseline": stack.enter_context(stead_server(CONFIG, source=tree / "src")).url,
            "metrics": stack.enter_context(stead_server(CONFIG)).url,
            "tracing": stack.enter_context(
                stead_server(CONFIG, env={"OTEL_EXPORTER_OTLP_ENDPOINT": sink})
            ).url,
        }
        figures: dict[str, dict[str, list[float]]] = {n: {"p50": [], "rps": []} for n in servers}
        for index in range(args.rounds):
            print(f"# round {index + 1}", file=sys.stderr, flush=True)
            # A new order each round: whichever goes first after a busy spell is favoured.
            for name, url in random.sample(list(servers.items()), len(servers)):
                figures[name]["p50"].append(asyncio.run(stateful_wait_p50(url, args.requests)))
                result = asyncio.run(measure(url, 16, args.seconds))
                figures[name]["rps"].append(result["runs_per_second"])
    cost = update_cost_us()
    base = {key: statistics.median(values) for key, values in figures["baseline"].items()}
    print(f"baseline: {baseline}; medians of {args.rounds} rounds")
    print(f"{'server':<10}{'p50 ms (seq)':>14}{'ratio':>8}{'runs/s (16)':>13}{'ratio':>8}")
    for name, values in figures.items():
        p50, rps = statistics.median(values["p50"]), statistics.median(values["rps"])
        print(
            f"{name:<10}{p50:>14.2f}{p50 / base['p50']:>8.3f}{rps:>13.1f}{rps / base['rps']:>8.3f}"
        )
    print(f"metric updates of one runs/wait, in this process: {cost:.1f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
