"""An image of a user's project built by `stead build` on the seed's layout: requirements.txt,
a local package, graphs under src/, secrets in an env file that stays out of the image."""

from __future__ import annotations

from langgraph_sdk import get_sync_client

from tests.containers.conftest import FIGURES, ProjectImage
from tests.support.docker import Docker, wait_until_healthy
from tests.support.servers import HOST, free_port


def test_the_env_file_and_local_data_stay_out_of_the_image(
    docker: Docker, project_image: ProjectImage
) -> None:
    listing = docker(
        "run", "--rm", "--network", "host", "--entrypoint", "ls", project_image.tag, "-a",
        "/deps/my-project",
    ).split()  # fmt: skip
    assert {"langgraph.json", "requirements.txt", "src", "libs"} <= set(listing)
    assert ".env" not in listing
    assert ".stead" not in listing


def test_serves_the_project_with_its_requirements_and_the_env_files_variables(
    docker: Docker, project_image: ProjectImage
) -> None:
    port = free_port()
    name = f"stead-project-{port}"
    docker(
        "run", "-d", "--name", name, "--network", "host", "-e", f"PORT={port}",
        "--env-file", str(project_image.directory / ".env"), "--health-interval", "1s",
        project_image.tag, "run", "--host", HOST,
    )  # fmt: skip
    try:
        FIGURES["project container start to healthy"] = f"{wait_until_healthy(docker, name):.1f} s"
        client = get_sync_client(url=f"http://{HOST}:{port}", api_key=None)
        output = client.runs.wait(None, "hello", input={"name": "ada"})
        assert output["text"] == "hello, ada; tabulate 0.9.0; from-the-env-file"
    finally:
        docker("rm", "-f", "-v", name)
