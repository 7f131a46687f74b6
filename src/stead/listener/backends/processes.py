"""The processes of the process backend's deployments: started in sessions of their own (they
outlive the listener), known by pid and start time, stopped SIGTERM first.

A state is a dict whose "processes" each hold "args", "pid", "started" (the kernel's start time of
that pid, in clock ticks since boot) and optionally "env"; "env" and "log" are the state's own.
The pid and its start time name one process: a pid reused later has another start time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

STOP_GRACE_SECONDS = 30.0
# How the listener's own child processes ended, by pid, once reaped (for the deploy logs).
_EXIT_STATUSES: dict[int, int] = {}
# /proc/<pid>/stat after the command's closing parenthesis: state is the first field, the
# start time the twentieth (fields 3 and 22 of proc(5)).
_STATE_FIELD = 0
_START_TIME_FIELD = 19


def start_missing(state: dict[str, Any]) -> dict[str, Any]:
    """`state` with every process that is not running started again."""
    processes = []
    for process in state["processes"]:
        if process["pid"] is None or not is_running(process):
            with open(state["log"], "ab") as log:
                child = subprocess.Popen(
                    process["args"],
                    env={**state["env"], **process.get("env", {})},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            process = {**process, "pid": child.pid, "started": _start_time(child.pid)}
        processes.append(process)
    return {**state, "processes": processes}


def all_running(state: dict[str, Any]) -> bool:
    return all(is_running(process) for process in state["processes"])


def is_running(process: dict[str, Any]) -> bool:
    """Whether the pid is alive and still this process (pids are reused)."""
    pid = process["pid"]
    if pid is None:
        return False
    # Reaps it when it is a child of this listener that exited, keeping how it ended.
    with contextlib.suppress(ChildProcessError):
        reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped:
            _EXIT_STATUSES[pid] = status
    fields = _stat_fields(pid)
    if fields is None or fields[_STATE_FIELD] == "Z":
        return False
    if "started" in process:
        return int(fields[_START_TIME_FIELD]) == process["started"]
    # A state written before start times were kept: compare the command line, which is only
    # safe once the process is past its exec (it reads empty during it).
    return _command_line(pid) == process["args"]


def first_exited(state: dict[str, Any]) -> str | None:
    """Which of the state's processes is not running, and how it ended when known."""
    for process in state["processes"]:
        if not is_running(process):
            status = _EXIT_STATUSES.get(process["pid"])
            ended = "" if status is None else f" ({_how_it_ended(status)})"
            return f"`stead {process['args'][3]}` (pid {process['pid']}) exited{ended}"
    return None


def stop(state: dict[str, Any]) -> None:
    """SIGTERM (runs in progress go back to the queue), then SIGKILL after the grace period."""
    alive = [p for p in state["processes"] if is_running(p)]
    for process in alive:
        _signal(process["pid"], signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if is_running(p)]
    for process in alive:
        _signal(process["pid"], signal.SIGKILL)


def _start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[_START_TIME_FIELD])


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command in parentheses may hold spaces and parentheses itself.
    return stat.rsplit(")", 1)[-1].split()


def _command_line(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _how_it_ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)
