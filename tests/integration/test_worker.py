"""`stead worker`: executes runs that an API-only `stead run` accepted, and answers probes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import GRAPHS_CONFIG
from tests.support.runs import running_slow_run
from tests.support.servers import free_port, stead_server
from tests.support.worker import stead_worker


def test_worker_executes_runs_the_api_only_server_accepted(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with stead_server(GRAPHS_CONFIG, data_dir, env={"N_JOBS_PER_WORKER": "0"}) as api:
        tid = httpx.post(f"{api.url}/threads", json={}).json()["thread_id"]
        run = httpx.post(
            f"{api.url}/threads/{tid}/runs", json={"assistant_id": "echo", "input": {"text": "w"}}
        ).json()
        time.sleep(0.5)
        # Nobody executes runs on an API-only server.
        assert httpx.get(f"{api.url}/threads/{tid}/runs/{run['run_id']}").json()["status"] == (
            "pending"
        )
        with stead_worker(GRAPHS_CONFIG, data_dir) as worker:
            assert httpx.get(f"{worker}/ok").json() == {"ok": True, "services": {}}
            assert httpx.get(f"{worker}/threads").status_code == 404
            deadline = time.monotonic() + 20
            status = "pending"
            while time.monotonic() < deadline and status != "success":
                time.sleep(0.1)
                status = httpx.get(f"{api.url}/threads/{tid}/runs/{run['run_id']}").json()["status"]
            assert status == "success"
        assert httpx.get(f"{api.url}/threads/{tid}/state").json()["values"] == {"text": "w"}


def test_worker_without_job_slots_is_a_one_line_error() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stead",
            "worker",
            "--config",
            str(GRAPHS_CONFIG),
            "--port",
            str(free_port()),
        ],
        env={**os.environ, "N_JOBS_PER_WORKER": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith("stead: error:")
    assert "N_JOBS_PER_WORKER" in result.stderr


def test_a_cancel_flagged_before_the_worker_listened_stops_the_run_at_its_first_renewal(
    tmp_path: Path,
) -> None:
    """A cancel whose signal came before the worker listened for it is on the run's row: the
    attempt's first lease renewal, a second after the claim, reads it (not a third of the lease,
    10 s, later)."""
    data_dir = tmp_path / "data"
    with stead_server(GRAPHS_CONFIG, data_dir) as server:
        _, run_id, url = running_slow_run(server.url)
        with sqlite3.connect(data_dir / "stead.sqlite") as conn:
            conn.execute("UPDATE run SET cancel_action = 'interrupt' WHERE run_id = ?", (run_id,))
        flagged_at = time.monotonic()
        while httpx.get(url).json()["status"] == "running":
            assert time.monotonic() - flagged_at < 5, "the flag was not read at the first renewal"
            time.sleep(0.05)
        assert httpx.get(url).json()["status"] == "interrupted"


def test_cancel_reaches_a_worker_through_the_database(tmp_path: Path) -> None:
    """No broker joins these two processes: the worker sees the cancel flag when renewing."""
    data_dir = tmp_path / "data"
    env = {"N_JOBS_PER_WORKER": "0", "BG_JOB_LEASE_SECS": "1.5"}
    with (
        stead_server(GRAPHS_CONFIG, data_dir, env=env) as api,
        stead_worker(GRAPHS_CONFIG, data_dir, env={"BG_JOB_LEASE_SECS": "1.5"}),
    ):
        base = api.url
        tid, _, url = running_slow_run(base)
        deadline = time.monotonic() + 20
        assert httpx.post(f"{url}/cancel").status_code == 202
        while httpx.get(url).json()["status"] == "running":
            assert time.monotonic() < deadline, "the cancel never reached the worker"
            time.sleep(0.05)
        assert httpx.get(url).json()["status"] == "interrupted"
        assert httpx.get(f"{base}/threads/{tid}").json()["status"] != "busy"
