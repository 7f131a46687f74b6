"""deploy/compose as shipped, with an override that only moves every service onto the host's
network (this machine forbids traffic to container bridge addresses): loopback listeners on free
ports, everything else (images, healthchecks, depends_on, volumes, env) as users get it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient

from tests.containers.conftest import FIGURES, ProjectImage
from tests.support.docker import REPO, Docker, DockerCommandError
from tests.support.servers import HOST, free_port

COMPOSE = REPO / "deploy" / "compose"
PASSWORD = "compose-test-password"


@dataclass
class Stack:
    docker: Docker
    project: str
    files: list[Path]
    env_file: Path
    url: str

    def __call__(self, *args: str, timeout: float = 300) -> str:
        files = [arg for file in self.files for arg in ("-f", str(file))]
        return self.docker.compose(
            "-p", self.project, "--env-file", str(self.env_file), *files, *args, timeout=timeout
        )

    def up(self, *args: str) -> float:
        started = time.monotonic()
        try:
            self("up", "-d", "--wait", *args)
        except DockerCommandError as exc:
            raise AssertionError(f"{exc}\n{self('logs', '--tail', '30')}") from None
        return time.monotonic() - started

    def client(self) -> SyncLangGraphClient:
        return get_sync_client(url=self.url, api_key=None)

    def containers(self, service: str) -> list[str]:
        labels = [
            f"label=com.docker.compose.project={self.project}",
            f"label=com.docker.compose.service={service}",
        ]
        return self.docker(
            "ps", "-q", *(arg for label in labels for arg in ("--filter", label))
        ).split()

    def volumes(self) -> list[str]:
        label = f"label=com.docker.compose.project={self.project}"
        return self.docker("volume", "ls", "-q", "--filter", label).split()


def _stack(
    docker: Docker, tmp_path: Path, compose_file: str, override: Callable[[int], str], image: str
) -> Iterator[Stack]:
    port = free_port()
    env_file = tmp_path / ".env"
    env_file.write_text(f"POSTGRES_PASSWORD={PASSWORD}\nSTEAD_IMAGE={image}\n")
    override_file = tmp_path / "host-network.yml"
    override_file.write_text(override(port))
    project = f"stead-test-{port}"
    stack = Stack(
        docker, project, [COMPOSE / compose_file, override_file], env_file, f"http://{HOST}:{port}"
    )
    try:
        yield stack
    finally:
        stack("down", "-v", "--timeout", "5")


def _production_override(api_port: int) -> str:
    postgres, redis = free_port(), free_port()
    return f"""
x-env: &env
  POSTGRES_URL: postgresql://stead:{PASSWORD}@{HOST}:{postgres}/stead
  REDIS_URL: redis://{HOST}:{redis}
services:
  postgres:
    network_mode: host
    command: ["postgres", "-c", "listen_addresses={HOST}", "-p", "{postgres}"]
    healthcheck:
      test: ["CMD", "pg_isready", "-h", "{HOST}", "-p", "{postgres}", "-U", "stead", "-d", "stead"]
      interval: 1s
  redis:
    network_mode: host
    command: ["redis-server", "--bind", "{HOST}", "--port", "{redis}", "--save", ""]
    healthcheck:
      test: ["CMD", "redis-cli", "-p", "{redis}", "ping"]
      interval: 1s
  migrate:
    network_mode: host
    environment: *env
  api:
    network_mode: host
    command: ["run", "--host", "{HOST}"]
    ports: !reset []
    environment:
      <<: *env
      PORT: "{api_port}"
    healthcheck:
      interval: 1s
  worker:
    network_mode: host
    # Replicas share the host's ports: each probe takes a free one, which a healthcheck cannot
    # know, so here it only checks that the worker process is alive.
    command: ["worker", "--host", "{HOST}", "--port", "0"]
    environment:
      <<: *env
      # A killed worker's run is taken over within seconds instead of the default 30.
      BG_JOB_LEASE_SECS: "5"
    healthcheck:
      test: ["CMD-SHELL", "kill -0 1"]
      interval: 1s
  backup:
    network_mode: host
    environment: *env
"""


def _embedded_override(port: int) -> str:
    return f"""
services:
  stead:
    network_mode: host
    command: ["run", "--host", "{HOST}"]
    ports: !reset []
    environment:
      PORT: "{port}"
    healthcheck:
      interval: 1s
"""


@pytest.fixture
def production(docker: Docker, project_image: ProjectImage, tmp_path: Path) -> Iterator[Stack]:
    yield from _stack(
        docker, tmp_path, "docker-compose.yml", _production_override, project_image.tag
    )


@pytest.fixture
def embedded(docker: Docker, stead_image: str, tmp_path: Path) -> Iterator[Stack]:
    yield from _stack(
        docker, tmp_path, "docker-compose.embedded.yml", _embedded_override, stead_image
    )


def test_a_run_whose_worker_is_killed_finishes_on_another_replica_without_repeating_steps(
    production: Stack,
) -> None:
    FIGURES["compose up --wait (PostgreSQL, Redis, migrate, API, 2 workers)"] = (
        f"{production.up('--scale', 'worker=2'):.1f} s"
    )
    client = production.client()
    thread = client.threads.create()
    run = client.runs.create(thread["thread_id"], "steps", input={"pause": 2})
    _wait_for(
        lambda: len(client.threads.get_state(thread["thread_id"])["values"].get("done", [])) >= 1
    )

    first = _worker_logging(production, f"run {run['run_id']} attempt 1 started")
    production.docker("kill", first)

    output = client.runs.join(thread["thread_id"], run["run_id"])
    assert output["done"] == ["one", "two", "three", "four"]
    assert client.runs.get(thread["thread_id"], run["run_id"])["status"] == "success"
    second = _worker_logging(production, f"run {run['run_id']} attempt 2 started")
    assert second != first


def test_down_keeps_the_data_and_down_v_deletes_it(production: Stack) -> None:
    production.up()
    client = production.client()
    thread = client.threads.create(metadata={"kept": "yes"})
    production("down")
    production.up()
    assert client.threads.get(thread["thread_id"])["metadata"]["kept"] == "yes"

    production("down", "-v")
    assert production.volumes() == []
    production.up()
    with pytest.raises(httpx.HTTPStatusError) as missing:
        client.threads.get(thread["thread_id"])
    assert missing.value.response.status_code == 404


def test_the_backup_service_and_the_restore_drill(production: Stack) -> None:
    """The README's drill: back up, lose the database volume, restore, serve again."""
    production.up()
    thread = production.client().threads.create(metadata={"kept": "by the backup"})
    stead = ("run", "--rm", "--entrypoint", "stead", "backup")
    archive = production(*stead, "backup", "--output-dir", "/backups").strip().splitlines()[-1]
    assert archive.startswith("/backups/stead-backup-")

    production("down")
    production.docker("volume", "rm", f"{production.project}_postgres_data")
    restored = production(*stead, "restore", archive)
    assert "restored the backup of" in restored
    production.up()
    found = production.client().threads.get(thread["thread_id"])
    assert found["metadata"]["kept"] == "by the backup"


def test_the_embedded_compose_file_keeps_threads_across_down_and_up(embedded: Stack) -> None:
    embedded.up()
    client = embedded.client()
    thread = client.threads.create(metadata={"kept": "yes"})
    output = client.runs.wait(
        thread["thread_id"], "chat", input={"messages": [{"role": "user", "content": "hi"}]}
    )
    assert output["messages"][-1]["content"] == "You said: hi"
    embedded("down")
    embedded.up()
    state = embedded.client().threads.get_state(thread["thread_id"])
    assert [m["content"] for m in state["values"]["messages"]] == ["hi", "You said: hi"]


def _worker_logging(stack: Stack, line: str) -> str:
    """The worker container whose log has this line."""
    found = [c for c in stack.containers("worker") if line in stack.docker.logs(c)]
    assert len(found) == 1, f"{len(found)} workers logged {line!r}"
    return found[0]


def _wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
