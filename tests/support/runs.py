"""Runs started over plain HTTP, for tests that then stop, signal or tamper with the server, or
measure it."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.support.load import resident_bytes, resident_growth

LARGE_INPUT_MIB = 20


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


def echo_run(url: str, text: str) -> None:
    """A stateless `echo` run, waited on; it must answer its input."""
    answer = httpx.post(
        f"{url}/runs/wait", json={"assistant_id": "echo", "input": {"text": text}}, timeout=60
    )
    assert answer.status_code == 200 and answer.json() == {"text": text}


def mib_kept_after_large_runs(url: str, pid: int, runs: int = 3) -> float:
    """How much larger the process `pid` is a second after `runs` echo runs with a 20 MiB input
    than after a few small ones."""
    for _ in range(5):
        echo_run(url, "small")
    before = resident_bytes([pid])
    for _ in range(runs):
        echo_run(url, "x" * LARGE_INPUT_MIB * 2**20)
    time.sleep(1)
    return (resident_bytes([pid]) - before) / 2**20


def peak_mib_of_a_large_run(url: str, pid: int) -> float:
    """How much larger than before the process `pid` grew at most (sampled every 5 ms) while
    one echo run with a 20 MiB input went through, after a few small ones."""
    for _ in range(5):
        echo_run(url, "small")
    with resident_growth(pid, interval=0.005) as growth:
        echo_run(url, "x" * LARGE_INPUT_MIB * 2**20)
    return growth.bytes / 2**20


def mib_held_while_a_large_run_sleeps(url: str, pid: int) -> float:
    """How much larger than after a few small runs the process `pid` is while a `slow` run with
    a 20 MiB input, waited on, sleeps: stored, and executing. The least of samples taken from 1
    to 2.5 s into its 3 s sleep: on a busy machine the request may still be being stored at 1 s,
    and what is held for the whole run is in every sample."""
    for _ in range(3):
        echo_run(url, "small")
    before = resident_bytes([pid])
    padding = "x" * LARGE_INPUT_MIB * 2**20
    body = {"assistant_id": "slow", "input": {"seconds": 3, "padding": padding}}
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(httpx.post, f"{url}/runs/wait", json=body, timeout=60)
        time.sleep(1.0)
        held = []
        for _ in range(30):
            held.append(resident_bytes([pid]) - before)
            time.sleep(0.05)
        assert waiting.result().json() == {"seconds": 3, "done": True}
    return min(held) / 2**20


def mib_held_while_a_large_state_pauses(url: str, pid: int, observer: str) -> float:
    """How much larger than after a few small runs the process `pid` is while a `pausing` run
    it waits on, whose state holds a 20 MiB step, pauses in its second node: the least of
    samples over half a second, once `observer` (another API process) has seen the run reach
    the pause and the waiting process has had time to read the run's events."""
    for _ in range(3):
        echo_run(url, "small")
    before = resident_bytes([pid])
    padding = "x" * LARGE_INPUT_MIB * 2**20
    thread_id = httpx.post(f"{url}/threads", json={}).json()["thread_id"]
    body = {"assistant_id": "pausing", "input": {"steps": [padding], "pause": 4}}
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(
            httpx.post, f"{url}/threads/{thread_id}/runs/wait", json=body, timeout=60
        )
        deadline = time.monotonic() + 20
        while httpx.get(f"{observer}/threads/{thread_id}/state").json()["next"] != ["two"]:
            assert time.monotonic() < deadline, "the run never reached its pause"
            time.sleep(0.1)
        time.sleep(0.5)
        held = []
        for _ in range(10):
            held.append(resident_bytes([pid]) - before)
            time.sleep(0.05)
        answer = waiting.result().json()
    assert answer == {"steps": [padding, "one", "two", "three"], "pause": 4}
    return min(held) / 2**20
