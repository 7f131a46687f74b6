"""The `stead run` process: persistence across restarts, clean shutdown, one-line startup errors."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import GRAPHS_CONFIG, GRAPHS_DIR
from tests.support.servers import HOST, free_port, stead_server


def _wait_for_status(
    base: str, thread_id: str, run_id: str, status: str, timeout: float = 15
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = httpx.get(f"{base}/threads/{thread_id}/runs/{run_id}").json()
        if run["status"] == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} never reached {status}")


def test_data_survives_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with stead_server(GRAPHS_CONFIG, data_dir) as first:
        base = first.url
        thread = httpx.post(f"{base}/threads", json={"metadata": {"k": "v"}}).json()
        tid = thread["thread_id"]
        run = httpx.post(
            f"{base}/threads/{tid}/runs/wait", json={"assistant_id": "steps", "input": {}}
        )
        assert run.status_code == 200
        assistant = httpx.post(
            f"{base}/assistants", json={"graph_id": "echo", "name": "kept"}
        ).json()
        put = httpx.put(
            f"{base}/store/items", json={"namespace": ["n"], "key": "k", "value": {"a": 1}}
        )
        assert put.status_code == 204
        history_before = httpx.get(f"{base}/threads/{tid}/history", params={"limit": 50}).json()
    with stead_server(GRAPHS_CONFIG, data_dir) as second:
        base = second.url
        assert httpx.get(f"{base}/threads/{tid}").json()["metadata"]["k"] == "v"
        state = httpx.get(f"{base}/threads/{tid}/state").json()
        assert state["values"]["steps"] == ["one", "two", "three"]
        runs = httpx.get(f"{base}/threads/{tid}/runs").json()
        assert [r["status"] for r in runs] == ["success"]
        history_after = httpx.get(f"{base}/threads/{tid}/history", params={"limit": 50}).json()
        assert [h["checkpoint_id"] for h in history_after] == [
            h["checkpoint_id"] for h in history_before
        ]
        assert httpx.get(f"{base}/assistants/{assistant['assistant_id']}").json()["name"] == "kept"
        item = httpx.get(f"{base}/store/items", params={"namespace": "n", "key": "k"}).json()
        assert item["value"] == {"a": 1}


def test_sigterm_returns_in_flight_runs_to_the_queue(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {"BG_JOB_SHUTDOWN_GRACE_PERIOD_SECS": "0.5"}
    with stead_server(GRAPHS_CONFIG, data_dir, env) as first:
        base = first.url
        tid = httpx.post(f"{base}/threads", json={}).json()["thread_id"]
        run = httpx.post(
            f"{base}/threads/{tid}/runs", json={"assistant_id": "slow", "input": {"seconds": 2}}
        ).json()
        _wait_for_status(base, tid, run["run_id"], "running")
        first.process.send_signal(signal.SIGTERM)
        assert first.process.wait(timeout=20) == 0
    with stead_server(GRAPHS_CONFIG, data_dir) as second:
        base = second.url
        # The interrupted attempt is not lost: the next start executes it again, to the end.
        _wait_for_status(base, tid, run["run_id"], "success", timeout=20)
        assert httpx.get(f"{base}/threads/{tid}").json()["status"] == "idle"
        assert httpx.get(f"{base}/threads/{tid}/state").json()["values"]["done"] is True


def _stead(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stead", "run", "--host", HOST, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def _assert_one_line_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("stead: error:")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_config_is_one_line(tmp_path: Path) -> None:
    result = _stead("--config", str(tmp_path / "nope.json"), "--port", str(free_port()))
    _assert_one_line_error(result, "config file not found")


def test_invalid_config_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "langgraph.json"
    config.write_text("{not json")
    _assert_one_line_error(_stead("--config", str(config)), "is not valid JSON")
    config.write_text(json.dumps({"graphs": {}}))
    _assert_one_line_error(_stead("--config", str(config)), "'graphs' must be")


def test_graph_that_does_not_import_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"graphs": {"broken": "./broken.py:graph"}}))
    result = _stead("--config", str(config), "--port", str(free_port()))
    _assert_one_line_error(result, "graph 'broken'")
    assert "not_a_module_anywhere" in result.stderr


def test_port_in_use_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _stead("--config", str(GRAPHS_CONFIG), "--port", str(port))
    _assert_one_line_error(result, f"port {port}")


def test_default_config_and_data_dir(tmp_path: Path) -> None:
    """Without flags, `stead run` reads ./langgraph.json and keeps data in .stead/ beside it."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "agent.py").write_text((GRAPHS_DIR / "agent.py").read_text())
    (project / "langgraph.json").write_text(json.dumps({"graphs": {"echo": "./agent.py:echo"}}))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "stead", "run", "--port", str(port)],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://{HOST}:{port}/ok").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        body = httpx.post(
            f"http://{HOST}:{port}/runs/wait", json={"assistant_id": "echo", "input": {"text": "x"}}
        ).json()
        assert body == {"text": "x"}
        assert (project / ".stead" / "stead.sqlite").is_file()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
    assert process.returncode == 0


@pytest.mark.parametrize("variant", ["module", "script"])
def test_entry_points(variant: str) -> None:
    command = (
        [sys.executable, "-m", "stead", "--help"] if variant == "module" else ["stead", "--help"]
    )
    if variant == "script":
        command[0] = str(Path(sys.executable).parent / "stead")
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "run" in result.stdout


def test_sigkill_mid_run_continues_from_the_last_checkpoint(tmp_path: Path) -> None:
    """A killed process loses no run, and the next attempt does not redo finished nodes.

    LangGraph resumes from the latest checkpoint instead of re-applying the input when that
    checkpoint's metadata carries the same run_id, which the server puts in every run's config.
    """
    data_dir = tmp_path / "data"
    short_lease = {"BG_JOB_LEASE_SECS": "1"}
    with stead_server(GRAPHS_CONFIG, data_dir, short_lease) as first:
        base = first.url
        tid = httpx.post(f"{base}/threads", json={}).json()["thread_id"]
        run = httpx.post(
            f"{base}/threads/{tid}/runs",
            json={"assistant_id": "pausing", "input": {"steps": [], "pause": 2}},
        ).json()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            state = httpx.get(f"{base}/threads/{tid}/state").json()
            if state["next"] == ["two"]:
                break
            time.sleep(0.05)
        assert state["values"]["steps"] == ["one"], "node one never checkpointed"
        first.process.kill()
        first.process.wait(timeout=10)
    with stead_server(GRAPHS_CONFIG, data_dir, short_lease) as second:
        base = second.url
        _wait_for_status(base, tid, run["run_id"], "success", timeout=20)
        assert httpx.get(f"{base}/threads/{tid}/state").json()["values"]["steps"] == [
            "one",
            "two",
            "three",
        ]
        history = httpx.get(f"{base}/threads/{tid}/history", params={"limit": 50}).json()
        attempts = {h["metadata"].get("run_attempt") for h in history if h["metadata"]}
        assert attempts == {1, 2}
        assert httpx.get(f"{base}/threads/{tid}").json()["status"] == "idle"


def test_a_taken_over_attempt_writes_no_more_checkpoints(tmp_path: Path) -> None:
    """On SQLite the fence is a check of the run's row just before each checkpoint write."""
    data_dir = tmp_path / "data"
    # A long lease: the attempt does not renew (and so notice the takeover) before node two ends.
    env = {"BG_JOB_LEASE_SECS": "60", "N_JOBS_PER_WORKER": "1"}
    with stead_server(GRAPHS_CONFIG, data_dir, env) as server:
        base = server.url
        tid = httpx.post(f"{base}/threads", json={}).json()["thread_id"]
        run_id = httpx.post(
            f"{base}/threads/{tid}/runs", json={"assistant_id": "pausing", "input": {"pause": 2}}
        ).json()["run_id"]
        _wait_for_next(base, tid, ["two"])
        checkpoints = len(httpx.post(f"{base}/threads/{tid}/history", json={}).json())
        with sqlite3.connect(data_dir / "stead.sqlite") as conn:
            conn.execute("UPDATE run SET attempt = attempt + 1 WHERE run_id = ?", (run_id,))
        # The one slot is free once the stale attempt has stopped: then this run executes.
        probe_thread = httpx.post(f"{base}/threads", json={}).json()["thread_id"]
        probe = httpx.post(
            f"{base}/threads/{probe_thread}/runs", json={"assistant_id": "echo", "input": {}}
        ).json()
        _wait_for_status(base, probe_thread, probe["run_id"], "success")
        assert len(httpx.post(f"{base}/threads/{tid}/history", json={}).json()) == checkpoints
        assert httpx.get(f"{base}/threads/{tid}/runs/{run_id}").json()["status"] == "running"


def _wait_for_next(base: str, thread_id: str, next_nodes: list[str], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(f"{base}/threads/{thread_id}/state").json()["next"] != next_nodes:
        assert time.monotonic() < deadline, f"the thread never reached {next_nodes}"
        time.sleep(0.02)


def _start_run_and_kill(base: str, process: Any, graph: str, graph_input: dict) -> tuple[str, str]:
    tid = httpx.post(f"{base}/threads", json={}).json()["thread_id"]
    run = httpx.post(
        f"{base}/threads/{tid}/runs", json={"assistant_id": graph, "input": graph_input}
    ).json()
    _wait_for_status(base, tid, run["run_id"], "running")
    process.kill()
    process.wait(timeout=10)
    return tid, run["run_id"]


def test_a_run_whose_worker_keeps_dying_ends_error_after_max_attempts(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {"BG_JOB_LEASE_SECS": "1", "BG_JOB_MAX_RETRIES": "1"}
    with stead_server(GRAPHS_CONFIG, data_dir, env) as first:
        tid, run_id = _start_run_and_kill(first.url, first.process, "slow", {"seconds": 30})
    with stead_server(GRAPHS_CONFIG, data_dir, env) as second:
        base = second.url
        _wait_for_status(base, tid, run_id, "error", timeout=20)
        thread = httpx.get(f"{base}/threads/{tid}").json()
        assert thread["status"] == "error"
        assert "exceeded max attempts" in thread["error"]["message"]
        # The thread takes new runs again.
        done = httpx.post(
            f"{base}/threads/{tid}/runs/wait",
            json={"assistant_id": "slow", "input": {"seconds": 0}},
        )
        assert done.json()["done"] is True


def test_timeout_ends_an_over_long_run(tmp_path: Path) -> None:
    with stead_server(GRAPHS_CONFIG, tmp_path / "data", {"BG_JOB_TIMEOUT_SECS": "1"}) as server:
        base = server.url
        tid = httpx.post(f"{base}/threads", json={}).json()["thread_id"]
        started = time.monotonic()
        body = httpx.post(
            f"{base}/threads/{tid}/runs/wait",
            json={"assistant_id": "slow", "input": {"seconds": 30}},
            timeout=30,
        ).json()
        assert time.monotonic() - started < 15
        runs = httpx.get(f"{base}/threads/{tid}/runs").json()
        assert runs[0]["status"] == "timeout"
        assert httpx.get(f"{base}/threads/{tid}").json()["status"] == "error"
        assert body["__error__"]["error"] == "TimeoutError"
