"""Runs started over plain HTTP, for tests that then stop, signal or tamper with the server."""

from __future__ import annotations

import time

import httpx


def running_slow_run(base: str, seconds: float = 30) -> tuple[str, str, str]:
    """A `slow` run of `seconds` on a new thread, once a worker runs it: its thread, id and URL."""
    thread_id = httpx.post(f"{base}/threads", json={}).json()["thread_id"]
    run = httpx.post(
        f"{base}/threads/{thread_id}/runs",
        json={"assistant_id": "slow", "input": {"seconds": seconds}},
    ).json()
    url = f"{base}/threads/{thread_id}/runs/{run['run_id']}"
    deadline = time.monotonic() + 20
    while httpx.get(url).json()["status"] != "running":
        assert time.monotonic() < deadline, "no worker ever ran the run"
        time.sleep(0.02)
    return thread_id, run["run_id"], url
