"""Start a Stead control plane and its listeners for tests, as users do: `stead control-plane`,
`stead control-plane apikey create`, `stead license issue`, `POST /v2/listeners`, then
`stead listener`. Everything listens on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

from stead.controlplane.services import statuses
from tests.support.servers import (
    HOST,
    REPO_ROOT,
    StartedServer,
    free_port,
    start_ready,
    wait_ready,
)

OFFICIAL_CLI = REPO_ROOT / ".venvs" / "official" / "bin" / "langgraph"


def stead(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stead", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


@dataclass
class ControlPlane:
    data_dir: Path
    port: int
    encryption_key: str
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        """Launch and wait until ready; a port another process took meanwhile is traded for a
        new one."""

        def launch(port: int) -> StartedServer:
            self.port = port
            self.launch()
            return self._started()

        start_ready(launch, self.port, 30, "control plane", trade_port=True)

    def launch(self) -> None:
        """Start the process without waiting for it (replicas starting together)."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "stead", "control-plane"),
                    *("--port", str(self.port), "--data-dir", str(self.data_dir)),
                ],
                env={**os.environ, **self.env, "STEAD_ENCRYPTION_KEY": self.encryption_key},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_ready(self) -> None:
        wait_ready(self._started(), timeout=30, name="control plane")

    def _started(self) -> StartedServer:
        assert self.process is not None
        return StartedServer(self.url, self.process, self.data_dir, self.log_path, self.port)

    def stop(self, kill: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(15)

    def api_key(self, tenant: str) -> str:
        """A key of `tenant` (created with the tenant on first use)."""
        if tenant not in self.keys:
            done = stead(
                "control-plane", "apikey", "create", "--tenant", tenant,
                "--data-dir", str(self.data_dir), env=self.env,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            self.keys[tenant] = done.stdout.strip().splitlines()[-1]
        return self.keys[tenant]

    def client(self, tenant: str = "acme", prefix: str = "/api-host") -> httpx.Client:
        return httpx.Client(
            base_url=self.url + prefix, headers={"X-Api-Key": self.api_key(tenant)}, timeout=30
        )

    def license(self, subject: str = "acme", *extra: str) -> str:
        done = stead(
            "license", "issue", "--subject", subject, "--scope", "data-plane",
            "--data-dir", str(self.data_dir), *extra,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    def create_listener(self, compute_id: str, tenant: str = "acme") -> dict[str, Any]:
        with self.client(tenant) as client:
            response = client.post(
                "/v2/listeners", json={"compute_id": compute_id, "compute_type": "process"}
            )
        assert response.status_code == 201, response.text
        return dict(response.json())


def new_control_plane(
    root: Path, env: Mapping[str, str] | None = None, encryption_key: str | None = None
) -> ControlPlane:
    """A control plane not started yet; replicas share `encryption_key` (and a database)."""
    root.mkdir(parents=True, exist_ok=True)
    return ControlPlane(
        data_dir=root / "control-plane",
        port=free_port(),
        encryption_key=encryption_key or Fernet.generate_key().decode(),
        log_path=root / "control-plane.log",
        env=dict(env or {}),
    )


@contextmanager
def control_plane(root: Path, env: Mapping[str, str] | None = None) -> Iterator[ControlPlane]:
    plane = new_control_plane(root, env)
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@dataclass
class Listener:
    listener_id: str
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, kill: bool = False) -> int | None:
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
        return self.process.wait(30)


def start_listener(
    plane: ControlPlane,
    listener_id: str,
    data_dir: Path,
    license_key: str | None = None,
    env: Mapping[str, str] | None = None,
    backend: str = "process",
) -> Listener:
    log_path = data_dir.with_suffix(".log")
    listener_env = {
        **os.environ,
        "CONTROL_PLANE_URL": plane.url,
        "LICENSE_KEY": license_key if license_key is not None else plane.license(),
        "LISTENER_ID": listener_id,
        "DEPLOYMENT_TYPE": "self_hosted_data_plane",
        "STEAD_LISTENER_POLL_SECONDS": "0.5",
        "STEAD_LISTENER_HEARTBEAT_SECONDS": "1",
        **(env or {}),
    }
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stead",
                "listener",
                "--backend",
                backend,
                "--data-dir",
                str(data_dir),
            ],
            env=listener_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Listener(listener_id, data_dir, log_path, process)


@contextmanager
def running_listener(
    plane: ControlPlane, listener_id: str, data_dir: Path, **options: Any
) -> Iterator[Listener]:
    """A listener; on leaving, it stops and so do the deployments it started."""
    listener = start_listener(plane, listener_id, data_dir, **options)
    try:
        yield listener
    finally:
        listener.stop()
        stop_deployments(data_dir)


def stop_deployments(listener_data_dir: Path) -> None:
    """Stop every deployment process a listener left running (they outlive it by design)."""
    for state_file in (listener_data_dir / "deployments").glob("*/state.json"):
        for process in json.loads(state_file.read_text())["processes"]:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(process["pid"], signal.SIGKILL)


def official_cli(
    *args: str, cwd: Path, plane: ControlPlane, tenant: str = "acme", timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """The official `langgraph` CLI (langgraph-cli 0.4.40) against the control plane."""
    env = {
        **os.environ,
        "LANGGRAPH_HOST_URL": f"{plane.url}/api-host",
        "LANGGRAPH_HOST_API_KEY": plane.api_key(tenant),
        "NO_COLOR": "1",
    }
    return subprocess.run(
        [str(OFFICIAL_CLI), *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def wait_for(predicate: Any, timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_deployed(
    client: httpx.Client, deployment_id: str, revision_id: str, timeout: float = 240
) -> dict[str, Any]:
    """The deployment once `revision_id` is its active revision; fails at once, with the
    revision and its status message, when the rollout fails instead."""

    def deployed() -> dict[str, Any] | None:
        path = f"/v2/deployments/{deployment_id}/revisions/{revision_id}"
        revision = client.get(path).json()
        assert revision["status"] not in statuses.FAILED, revision
        found = client.get(f"/v2/deployments/{deployment_id}").json()
        return found if found["active_revision_id"] == revision_id else None

    return dict(wait_for(deployed, timeout=timeout, what=f"revision {revision_id} DEPLOYED"))
