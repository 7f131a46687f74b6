"""How the process backend knows its deployments' processes: by pid and start time, from the
moment each is started (its command line reads empty while the kernel is still exec'ing it), and
never taking a reused pid for the process it was."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stead.listener.backends.processes import (
    all_running,
    first_exited,
    is_running,
    start_missing,
    stop,
)

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def state_of(tmp_path: Path, *commands: list[str]) -> dict[str, Any]:
    processes = [{"args": args, "pid": None} for args in commands]
    return {"log": str(tmp_path / "server.log"), "env": dict(os.environ), "processes": processes}


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[dict[str, Any]]]:
    """The states a test started; their processes are stopped after it."""
    states: list[dict[str, Any]] = []
    yield states
    for state in states:
        stop(state)


def test_a_process_counts_as_running_from_the_moment_it_is_started(
    tmp_path: Path, started: list[dict[str, Any]]
) -> None:
    # Read by command line, a start now and then read as "exited" here (under load, in CI): the
    # listener failed the rollout and left that server running unsupervised.
    for _ in range(30):
        state = start_missing(state_of(tmp_path, SLEEPER))
        started.append(state)
        assert all_running(state), first_exited(state)
        stop(state)
        assert not all_running(state)


def test_a_process_that_execs_another_program_is_still_the_one_started(
    tmp_path: Path, started: list[dict[str, Any]]
) -> None:
    execs = [sys.executable, "-c", "import os; os.execv('/bin/sleep', ['sleep', '60'])"]
    state = start_missing(state_of(tmp_path, execs))
    started.append(state)
    pid = state["processes"][0]["pid"]
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}/cmdline").read_bytes() != b"sleep\x0060\x00":
        assert time.monotonic() < deadline, "the child never became `sleep 60`"
        time.sleep(0.01)
    assert is_running(state["processes"][0])
    # Started again, it would be a second copy: start_missing leaves it alone.
    assert start_missing(state)["processes"][0]["pid"] == pid


def test_a_reused_pid_is_not_taken_for_the_process_it_was(
    tmp_path: Path, started: list[dict[str, Any]]
) -> None:
    state = start_missing(state_of(tmp_path, SLEEPER))
    started.append(state)
    process = state["processes"][0]
    assert is_running(process)
    # The same pid started at another time is another process.
    assert not is_running({**process, "started": process["started"] - 1})
    restarted = start_missing({**state, "processes": [{**process, "started": 0}]})
    started.append(restarted)
    assert restarted["processes"][0]["pid"] != process["pid"]
    assert all_running(restarted)


def test_a_state_from_before_start_times_were_kept_is_read_by_command_line(
    tmp_path: Path, started: list[dict[str, Any]]
) -> None:
    state = start_missing(state_of(tmp_path, SLEEPER))
    started.append(state)
    deadline = time.monotonic() + 10
    pid = state["processes"][0]["pid"]
    while not Path(f"/proc/{pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline, "the child never finished exec'ing"
        time.sleep(0.01)
    older = {"args": SLEEPER, "pid": pid}
    assert is_running(older)
    assert not is_running({**older, "args": [*SLEEPER, "--other"]})


def test_an_exited_process_is_reported_with_how_it_ended(
    tmp_path: Path, started: list[dict[str, Any]]
) -> None:
    fails = [sys.executable, "-m", "stead", "no-such-command"]
    state = start_missing(state_of(tmp_path, SLEEPER, fails))
    started.append(state)
    deadline = time.monotonic() + 30
    while all_running(state):
        assert time.monotonic() < deadline, "the failing command kept running"
        time.sleep(0.05)
    assert first_exited(state) == (
        f"`stead no-such-command` (pid {state['processes'][1]['pid']}) exited (exit status 2)"
    )
    assert is_running(state["processes"][0])
