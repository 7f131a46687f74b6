"""Stead's own image (deploy/docker/Dockerfile), run alone as `docker run -v stead-data:/data`
would run it: the example graphs served from the embedded database in the /data volume."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from langgraph_sdk import get_sync_client

from tests.containers.conftest import FIGURES
from tests.support.docker import Docker, wait_until_healthy
from tests.support.servers import HOST, free_port


def test_runs_as_a_user_with_no_compiler_and_no_build_leftovers(
    docker: Docker, stead_image: str
) -> None:
    checks = (
        "id -u; "
        "for tool in gcc cc make; do command -v $tool || true; done; "
        "for left in /src /wheels /opt/stead/.cache; do test -e $left && echo $left; done; "
        "find / -xdev -name pip -path '*/.cache/*' 2>/dev/null; true"
    )
    out = docker(
        "run", "--rm", "--network", "host", "--entrypoint", "sh", stead_image, "-c", checks
    )
    assert out.split() == ["10001"], out
    config = docker(
        "image", "inspect", "-f", "{{json .Config.Entrypoint}} {{.Config.User}}", stead_image
    )
    assert config.split() == ['["stead"]', "10001:10001"]
    assert "/data:{}" in docker(
        "image",
        "inspect",
        "-f",
        "{{range $k, $v := .Config.Volumes}}{{$k}}:{{$v}}{{end}}",
        stead_image,
    )


@pytest.fixture
def container(docker: Docker, stead_image: str) -> Iterator[tuple[str, str]]:
    """The image's default command on loopback (the host's network is shared): `run` with the
    port from PORT, as the image's HEALTHCHECK reads it, and the data in a named volume."""
    port = free_port()
    name = f"stead-alone-{port}"
    docker(
        "run", "-d", "--name", name, "--network", "host", "-e", f"PORT={port}",
        "-v", f"{name}-data:/data", "--health-interval", "1s", stead_image, "run", "--host", HOST,
    )  # fmt: skip
    try:
        FIGURES["Stead container start to healthy"] = f"{wait_until_healthy(docker, name):.1f} s"
        yield name, f"http://{HOST}:{port}"
    finally:
        docker("rm", "-f", "-v", name)
        docker("volume", "rm", f"{name}-data")


def test_serves_the_examples_and_keeps_threads_across_a_restart(
    docker: Docker, container: tuple[str, str]
) -> None:
    name, url = container
    client = get_sync_client(url=url, api_key=None)
    thread = client.threads.create(metadata={"kept": "yes"})
    chunks = list(
        client.runs.stream(
            thread["thread_id"],
            "chat",
            input={"messages": [{"role": "user", "content": "hello"}]},
            stream_mode="values",
        )
    )
    assert chunks[-1].data["messages"][-1]["content"] == "You said: hello"

    started = time.monotonic()
    docker("restart", name)
    wait_until_healthy(docker, name)
    FIGURES["Stead container restart to healthy"] = f"{time.monotonic() - started:.1f} s"

    client = get_sync_client(url=url, api_key=None)
    assert client.threads.get(thread["thread_id"])["metadata"]["kept"] == "yes"
    state = client.threads.get_state(thread["thread_id"])
    assert [m["content"] for m in state["values"]["messages"]] == ["hello", "You said: hello"]


def test_backs_up_while_serving_and_carries_the_postgresql_client(
    docker: Docker, container: tuple[str, str]
) -> None:
    name, url = container
    get_sync_client(url=url, api_key=None).threads.create(metadata={"backed": "up"})
    archive = docker("exec", name, "stead", "backup", "--output", "/data/backup.tar.gz")
    assert archive.strip().splitlines()[-1] == "/data/backup.tar.gz"
    listing = docker("exec", name, "tar", "tzf", "/data/backup.tar.gz")
    assert listing.split() == [
        "manifest.json",
        "stead.sqlite",
        "checkpoints.sqlite",
        "store.sqlite",
    ]
    # `stead backup` on PostgreSQL (the chart's CronJob) runs pg_dump from the image.
    assert docker("exec", name, "pg_dump", "--version").startswith("pg_dump (PostgreSQL) 15")
