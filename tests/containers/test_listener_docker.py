"""`stead listener --backend docker` on the private engine: an external_docker deployment of a
project image runs as a container with the control plane's secrets; a revision whose container
does not start fails and the previous container serves again; a new listener adopts the running
container; deleting the deployment removes its container and its data volume."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_sync_client

from tests.containers.conftest import ProjectImage
from tests.support.controlplane import (
    ControlPlane,
    Listener,
    control_plane,
    start_listener,
    wait_for,
)
from tests.support.docker import Docker


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with control_plane(tmp_path_factory.mktemp("cp")) as started:
        yield started


def docker_listener(plane: ControlPlane, docker: Docker, listener_id: str, data: Path) -> Listener:
    env = {key: docker.env[key] for key in ("DOCKER_HOST", "DOCKER_CONFIG")}
    env["STEAD_LISTENER_DEPLOY_TIMEOUT"] = "90"
    return start_listener(plane, listener_id, data, env=env, backend="docker")


def containers(docker: Docker, deployment_id: str) -> list[str]:
    label = f"label=dev.stead.deployment={deployment_id}"
    return docker("ps", "--all", "--filter", label, "--format", "{{.ID}} {{.State}}").split("\n")[
        :-1
    ]


def revision_status(client: httpx.Client, deployment: dict[str, Any], revision_id: str) -> str:
    path = f"/v2/deployments/{deployment['id']}/revisions/{revision_id}"
    return str(client.get(path).json()["status"])


def hello(url: str) -> str:
    output = get_sync_client(url=url).runs.wait(None, "hello", input={"name": "ada"})
    return str(output["text"])


def test_an_image_deployment_runs_fails_over_is_adopted_and_is_deleted(
    plane: ControlPlane,
    docker: Docker,
    project_image: ProjectImage,
    tmp_path: Path,
) -> None:
    registered = plane.create_listener("docker-host")
    data = tmp_path / "listener"
    listener = docker_listener(plane, docker, registered["id"], data)
    try:
        with plane.client() as client:
            created = client.post(
                "/v2/deployments",
                json={
                    "name": "image-agent",
                    "source": "external_docker",
                    "source_revision_config": {"image_uri": project_image.tag},
                    "secrets": [{"name": "GREETING_SECRET", "value": "from-the-control-plane"}],
                },
            ).json()
            first = created["latest_revision_id"]
            wait_for(lambda: revision_status(client, created, first) == "DEPLOYED", 180, "deploy")
            url = client.get(f"/v2/deployments/{created['id']}").json()["source_config"][
                "custom_url"
            ]
            assert hello(url) == "hello, ada; tabulate 0.9.0; from-the-control-plane"
            (serving,) = containers(docker, created["id"])

            # A revision whose server does not start (its LOG_LEVEL is not a level): it fails,
            # and the previous container serves again.
            patched = client.patch(
                f"/v2/deployments/{created['id']}",
                json={"secrets": [{"name": "LOG_LEVEL", "value": "LOUD"}]},
            ).json()
            broken = patched["latest_revision_id"]
            wait_for(
                lambda: revision_status(client, created, broken) == "DEPLOY_FAILED", 180, "failure"
            )
            assert containers(docker, created["id"]) == [serving]
            wait_for(lambda: _answers(url), 60, "the previous container to serve again")
            assert hello(url).endswith("from-the-control-plane")

            # SIGKILL the listener: the container keeps serving; a new listener adopts it.
            listener.stop(kill=True)
            assert hello(url).endswith("from-the-control-plane")
            listener = docker_listener(plane, docker, registered["id"], data)
            wait_for(
                lambda: (
                    client.get(f"/v2/listeners/{registered['id']}").json()["status"] == "ONLINE"
                ),
                what="the new listener",
            )
            assert containers(docker, created["id"]) == [serving]

            assert client.delete(f"/v2/deployments/{created['id']}").status_code == 204
            wait_for(
                lambda: client.get(f"/v2/deployments/{created['id']}").status_code == 404,
                60,
                "the deletion",
            )
        assert containers(docker, created["id"]) == []
        volumes = docker("volume", "ls", "--format", "{{.Name}}").split()
        assert f"stead-{created['id']}-data" not in volumes
    finally:
        listener.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ok", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
