"""What the backends share: a deployment's environment, its stable port, the /ok gate."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from stead.sockets import bind_socket

HOST = "127.0.0.1"
# The official names of a self-hosted deployment's own database and Redis, and Stead's.
_DATASTORE_ALIASES = {"POSTGRES_URI_CUSTOM": "DATABASE_URI", "REDIS_URI_CUSTOM": "REDIS_URI"}


def deployment_environment(deployment: dict[str, Any], revision: dict[str, Any]) -> dict[str, str]:
    """The revision's secrets, and the variables the control plane sets on every deployment."""
    env = {_DATASTORE_ALIASES.get(name, name): value for name, value in revision["env"].items()}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "STEAD_ENV_FILE_OPTIONAL": "true",
            "LANGSMITH_HOST_PROJECT_ID": deployment["id"],
            "LANGSMITH_HOST_PROJECT_NAME": deployment["name"],
            "LANGSMITH_DEPLOYMENT_NAME": deployment["name"],
            "LANGSMITH_HOST_REVISION_ID": revision["id"],
        }
    )
    return env


def stable_port(folder: Path) -> int:
    """The deployment's port: chosen once, kept across revisions, so that its URL stays."""
    path = folder / "port"
    if path.exists():
        return int(path.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    path.write_text(str(port))
    return port


def free_port() -> int:
    sock = bind_socket(HOST, 0)
    try:
        return int(sock.getsockname()[1])
    finally:
        sock.close()


def wait_for_ok(url: str, alive: Callable[[], bool], timeout: float) -> str | None:
    """None once `url`/ok answers 200; else why it did not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            return "the server exited during start-up (its last lines are in the deploy logs)"
        try:
            if httpx.get(f"{url}/ok", timeout=2.0).status_code == 200:
                return None
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    return f"the server did not answer /ok within {timeout:.0f} s"
