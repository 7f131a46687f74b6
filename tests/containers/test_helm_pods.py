"""The Helm chart's pods really start: the rendered migration, API and worker containers (image,
args, environment with its Secret references resolved from the rendered Secret, probes, the
read-only root with its /tmp volume, the non-root user, no capabilities) run on the private docker
engine against the PostgreSQL and Redis stand-ins, and a run completes through the API.

No Kubernetes API server can run here, so docker plays the kubelet for these three containers.
On the host network each listens on 127.0.0.1 and a free port instead of 0.0.0.0:8000/8080."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from langgraph_sdk import get_sync_client

from tests.support.docker import POSTGRES_IMAGE, REDIS_IMAGE, Docker
from tests.support.k8s import helm
from tests.support.servers import HOST, REPO_ROOT, free_port

CHART = REPO_ROOT / "deploy" / "helm" / "stead"
PASSWORD = "chart-test-password"


@pytest.fixture
def stores(docker: Docker) -> Iterator[tuple[str, str]]:
    """PostgreSQL and Redis stand-ins on loopback: their URIs, given to the chart as external."""
    pg_port, redis_port = free_port(), free_port()
    names = [f"chart-postgres-{pg_port}", f"chart-redis-{redis_port}"]
    docker(
        "run", "-d", "--name", names[0], "--network", "host", "-e", "POSTGRES_USER=stead",
        "-e", f"POSTGRES_PASSWORD={PASSWORD}", "-e", "POSTGRES_DB=stead", POSTGRES_IMAGE,
        "postgres", "-c", f"listen_addresses={HOST}", "-p", str(pg_port),
    )  # fmt: skip
    docker(
        "run", "-d", "--name", names[1], "--network", "host", REDIS_IMAGE,
        "redis-server", "--bind", HOST, "--port", str(redis_port), "--save", "",
    )  # fmt: skip
    try:
        _wait_for_postgres(docker, names[0], pg_port)
        yield (
            f"postgresql://stead:{PASSWORD}@{HOST}:{pg_port}/stead",
            f"redis://{HOST}:{redis_port}/0",
        )
    finally:
        docker("rm", "-f", "-v", *names)


def test_the_rendered_pods_start_and_serve_a_run(
    docker: Docker, stead_image: str, stores: tuple[str, str]
) -> None:
    database, redis = stores
    docs = _render(stead_image, database, redis)
    secret = next(doc for doc in docs if doc["kind"] == "Secret")["stringData"]
    pods = {
        doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]: doc["spec"][
            "template"
        ]["spec"]
        for doc in docs
        if doc["kind"] == "Deployment"
    }
    migrate = pods["api"]["initContainers"][0]
    assert docker.run_to_exit(_docker_run(migrate, secret, f"chart-migrate-{free_port()}")) == 0

    started: list[str] = []
    try:
        urls = {}
        for component in ("api", "queue"):
            container = pods[component]["containers"][0]
            port = free_port()
            name = f"chart-{component}-{port}"
            docker(*_docker_run(container, secret, name, port=port, detach=True))
            started.append(name)
            urls[component] = f"http://{HOST}:{port}"
            for probe in ("livenessProbe", "readinessProbe"):
                _wait_for_probe(docker, name, urls[component] + container[probe]["httpGet"]["path"])

        client = get_sync_client(url=urls["api"], api_key=None)
        thread = client.threads.create()
        run = client.runs.create(
            thread["thread_id"], "chat", input={"messages": [{"role": "user", "content": "hi"}]}
        )
        output = client.runs.join(thread["thread_id"], run["run_id"])
        assert output["messages"][-1]["content"] == "You said: hi"
        # The API executes nothing (N_JOBS_PER_WORKER=0): the worker ran it.
        assert f"run {run['run_id']} attempt 1 started" in docker.logs(started[1])
    finally:
        if started:
            docker("rm", "-f", *started)


def _render(image: str, database: str, redis: str) -> list[dict[str, Any]]:
    repository, tag = image.split(":")
    done = helm(
        "template", "stead", str(CHART),
        "--set", f"dataPlane.image.repository={repository}", "--set", f"dataPlane.image.tag={tag}",
        "--set", "postgres.enabled=false", "--set", f"postgres.external.uri={database}",
        "--set", "redis.enabled=false", "--set", f"redis.external.uri={redis}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _docker_run(
    container: dict[str, Any],
    secret: dict[str, str],
    name: str,
    *,
    port: int | None = None,
    detach: bool = False,
) -> list[str]:
    """`docker run` of a rendered container, as the kubelet would start it."""
    env = {**secret}  # envFrom: the chart's Secret
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        else:
            env[entry["name"]] = secret[entry["valueFrom"]["secretKeyRef"]["key"]]
    security = container["securityContext"]
    command = ["run", "--name", name, "--network", "host", "--user", "10001:10001"]
    command += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
    if security["readOnlyRootFilesystem"]:
        command += ["--read-only"]
    command += [f"--tmpfs={mount['mountPath']}" for mount in container.get("volumeMounts", [])]
    command += [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
    command += ["-d"] if detach else ["--rm"]
    command += [container["image"]]
    return command + _on_loopback(container["args"], port)


def _on_loopback(args: list[str], port: int | None) -> list[str]:
    replaced = [HOST if arg == "0.0.0.0" else arg for arg in args]
    if port is not None:
        replaced[replaced.index("--port") + 1] = str(port)
    return replaced


def _wait_for_probe(docker: Docker, name: str, url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} never answered 200:\n{docker.logs(name, tail='40')}")


def _wait_for_postgres(docker: Docker, name: str, port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if docker.run_to_exit(["exec", name, "pg_isready", "-h", HOST, "-p", str(port)]) == 0:
            return
        time.sleep(0.3)
    raise AssertionError(docker.logs(name, tail="40"))
