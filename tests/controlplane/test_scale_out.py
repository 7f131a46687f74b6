"""A deployment with a PostgreSQL and a Redis of its own (the POSTGRES_URI_CUSTOM and
REDIS_URI_CUSTOM secrets) on the process backend: its API replicas share one port, its queue
workers execute the runs, a crashed replica comes back, and a new revision starts beside the old
one, so that the deployment's URL never stops answering and no queued run is lost."""

from __future__ import annotations

import io
import json
import os
import signal
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_sync_client

from tests.support.controlplane import (
    ControlPlane,
    Listener,
    control_plane,
    running_listener,
    wait_deployed,
    wait_for,
)
from tests.support.services import postgres_server, redis_server

PROJECT = Path(__file__).parent / "project"


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with control_plane(tmp_path_factory.mktemp("cp")) as started:
        yield started


@pytest.fixture(scope="module")
def listener(plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Listener]:
    registered = plane.create_listener("scaled-host")
    data_dir = tmp_path_factory.mktemp("listener") / "data"
    with running_listener(plane, registered["id"], data_dir) as started:
        yield started


@pytest.fixture(scope="module")
def datastores() -> Iterator[list[dict[str, str]]]:
    with postgres_server() as pg, redis_server() as redis:
        yield [
            {"name": "POSTGRES_URI_CUSTOM", "value": pg.url()},
            {"name": "REDIS_URI_CUSTOM", "value": redis.url},
        ]


def source_tarball(version: str) -> bytes:
    """The sample project with CODE_VERSION set to `version`, as `langgraph deploy` packs it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in PROJECT.rglob("*"):
            if path.is_dir() or "__pycache__" in path.parts:
                continue
            data = path.read_bytes().replace(
                b'CODE_VERSION = "v1"', f'CODE_VERSION = "{version}"'.encode()
            )
            info = tarfile.TarInfo(str(path.relative_to(PROJECT)))
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def roll_out(client: httpx.Client, deployment_id: str, version: str) -> str:
    """Upload the project at `version` as a new revision; its id."""
    given = client.post(f"/v2/deployments/{deployment_id}/upload-url", json={}).json()
    assert httpx.put(given["upload_url"], content=source_tarball(version)).status_code == 200
    revised = client.patch(
        f"/v2/deployments/{deployment_id}",
        json={
            "source_revision_config": {
                "source_tarball_path": given["object_path"],
                "langgraph_config_path": "langgraph.json",
            }
        },
    )
    assert revised.status_code == 200, revised.text
    return str(revised.json()["latest_revision_id"])


def processes(listener: Listener, deployment_id: str) -> list[dict[str, Any]]:
    state = listener.data_dir / "deployments" / deployment_id / "state.json"
    return list(json.loads(state.read_text())["processes"])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"


def died_at(pid: int) -> float:
    """The monotonic time at which the process `pid` is first seen gone, looked at every 5 ms."""
    deadline = time.monotonic() + 10
    while alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still alive 10 s after SIGKILL"
        time.sleep(0.005)
    return time.monotonic()


class Prober(threading.Thread):
    """Asks the deployment's URL for /ok on a new connection, again and again, counting
    failures with the time each failed request started, until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.answered = 0
        self.failures: list[str] = []
        self.failure_starts: list[float] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                status = httpx.get(f"{self.url}/ok", timeout=5).status_code
            except httpx.TransportError as exc:
                self.failures.append(repr(exc))
                self.failure_starts.append(started)
                continue
            if status == 200:
                self.answered += 1
            else:
                self.failures.append(f"status {status}")
                self.failure_starts.append(started)


@pytest.fixture(scope="module")
def scaled(
    plane: ControlPlane, listener: Listener, datastores: list[dict[str, str]]
) -> dict[str, Any]:
    """A deployment asking for two API replicas and one queue worker, deployed."""
    with plane.client() as client:
        created = client.post(
            "/v2/deployments",
            json={
                "name": "scaled",
                "source": "internal_source",
                "source_config": {"resource_spec": {"min_scale": 2, "queue_min_scale": 1}},
                "secrets": [*datastores, {"name": "GREETING", "value": "hi"}],
            },
        )
        assert created.status_code == 201, created.text
        deployment_id = created.json()["id"]
        revision_id = roll_out(client, deployment_id, "v1")
        return wait_deployed(client, deployment_id, revision_id)


def test_replicas_share_the_port_and_a_worker_executes_the_runs(
    listener: Listener, scaled: dict[str, Any]
) -> None:
    running = processes(listener, scaled["id"])
    commands = sorted(process["args"][3] for process in running)
    assert commands == ["run", "run", "worker"]
    port = str(scaled["source_config"]["custom_url"].rsplit(":", 1)[1])
    for process in running:
        assert alive(process["pid"])
        assert httpx.get(f"{process['probe']}/ok", timeout=5).status_code == 200
        if process["args"][3] == "run":
            assert process["args"][process["args"].index("--port") + 1] == port
            assert process["env"] == {"N_JOBS_PER_WORKER": "0"}
    client = get_sync_client(url=scaled["source_config"]["custom_url"])
    for n in range(6):
        output = client.runs.wait(None, "greeter", input={"name": f"user{n}"})
        assert output["greeting"] == f"hi, user{n} (v1)"


def test_a_killed_replica_is_restarted_and_the_url_keeps_answering(
    listener: Listener, scaled: dict[str, Any]
) -> None:
    url = scaled["source_config"]["custom_url"]
    victim = next(p for p in processes(listener, scaled["id"]) if p["args"][3] == "run")
    prober = Prober(url)
    prober.start()
    os.killpg(victim["pid"], signal.SIGKILL)
    gone_at = died_at(victim["pid"])
    answered_before = prober.answered

    def replaced() -> bool:
        pids = [p["pid"] for p in processes(listener, scaled["id"]) if p["args"][3] == "run"]
        return victim["pid"] not in pids and all(alive(pid) for pid in pids)

    wait_for(replaced, timeout=60, what="the killed replica restarted")
    prober.stopping.set()
    prober.join()
    assert prober.answered > answered_before
    # A request the killed replica held (or had queued to accept) dies with it, as on any
    # server; every request made once it is gone is answered by the other replica.
    assert len(prober.failures) <= 1, prober.failures
    assert all(start < gone_at for start in prober.failure_starts), prober.failures


def test_a_new_revision_starts_beside_the_old_one_without_a_gap_or_a_lost_run(
    plane: ControlPlane, listener: Listener, scaled: dict[str, Any]
) -> None:
    url = scaled["source_config"]["custom_url"]
    old = processes(listener, scaled["id"])
    sdk = get_sync_client(url=url)
    queued = []
    for n in range(6):
        thread_id = sdk.threads.create()["thread_id"]
        run = sdk.runs.create(thread_id, "greeter", input={"name": f"q{n}", "delay": 0.5})
        queued.append((thread_id, run["run_id"]))
    prober = Prober(url)
    prober.start()
    with plane.client() as client:
        revision_id = roll_out(client, scaled["id"], "v2")
        wait_deployed(client, scaled["id"], revision_id)
    prober.stopping.set()
    prober.join()
    assert prober.failures == []
    assert prober.answered > 20
    assert not any(alive(process["pid"]) for process in old)
    for thread_id, run_id in queued:
        sdk.runs.join(thread_id, run_id)
        assert sdk.runs.get(thread_id, run_id)["status"] == "success"
    assert sdk.runs.wait(None, "greeter", input={"name": "ada"})["greeting"] == "hi, ada (v2)"
