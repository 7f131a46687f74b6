"""Stead's images, measured: size, cold and warm build, rebuild after a code change, and the time
from `docker run` to a healthy container (median of several starts).

    python bench/images.py [--starts 5]

Everything runs on a private docker engine started by the script, on the local stand-ins of
python:3.11-slim, as the container tier does (tests/support/docker.py); needs root, dockerd and
debootstrap (`make test-services` installs them). See bench/README.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.support.docker import (  # noqa: E402
    Docker,
    build_standin_images,
    private_docker,
    wait_until_healthy,
)
from tests.support.servers import HOST, free_port  # noqa: E402

STEAD_IMAGE = "stead:bench"
PROJECT = REPO_ROOT / "tests" / "containers" / "project"


def timed(action: object, *args: object) -> float:
    started = time.monotonic()
    action(*args)  # type: ignore[operator]
    return time.monotonic() - started


def build_stead(docker: Docker, context: Path) -> None:
    docker(
        "build", "--network", "host", "-f", "deploy/docker/Dockerfile", "-t", STEAD_IMAGE,
        str(context), timeout=900,
    )  # fmt: skip


def build_project(docker: Docker, directory: Path) -> None:
    command = [
        sys.executable, "-m", "stead", "build", "-t", "project:bench",
        "-c", str(directory / "langgraph.json"), "--base-image", STEAD_IMAGE,
        "--", "--network", "host",
    ]  # fmt: skip
    subprocess.run(command, env=docker.env, check=True, capture_output=True, timeout=900)


def size_mb(docker: Docker, image: str) -> float:
    return int(docker("image", "inspect", "-f", "{{.Size}}", image)) / 1e6


def seconds_to_healthy(docker: Docker, image: str) -> float:
    port = free_port()
    name = f"bench-{port}"
    started = time.monotonic()
    docker(
        "run", "-d", "--name", name, "--network", "host", "-e", f"PORT={port}",
        "--health-interval", "0.2s", image, "run", "--host", HOST,
    )  # fmt: skip
    try:
        wait_until_healthy(docker, name)
        return time.monotonic() - started
    finally:
        docker("rm", "-f", "-v", name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=5, help="container starts timed (5)")
    args = parser.parse_args()
    with private_docker() as docker, tempfile.TemporaryDirectory() as work:
        build_standin_images(docker)
        context = Path(work) / "stead"
        shutil.copytree(
            REPO_ROOT / "src", context / "src", ignore=shutil.ignore_patterns("__pycache__")
        )
        for name in ("pyproject.toml", "README.md", ".dockerignore"):
            shutil.copy(REPO_ROOT / name, context / name)
        shutil.copytree(REPO_ROOT / "examples", context / "examples")
        shutil.copytree(REPO_ROOT / "deploy", context / "deploy")
        figures = {"Stead image, cold build (s)": timed(build_stead, docker, context)}
        figures["Stead image, warm build (s)"] = timed(build_stead, docker, context)
        (context / "src" / "stead" / "graphs.py").write_text(
            (context / "src" / "stead" / "graphs.py").read_text() + "\n# a change\n"
        )
        figures["Stead image, rebuild after a code change (s)"] = timed(
            build_stead, docker, context
        )
        figures["Stead image size (MB)"] = size_mb(docker, STEAD_IMAGE)
        figures["base image (stand-in python:3.11-slim) size (MB)"] = size_mb(
            docker, "python:3.11-slim"
        )
        project = Path(work) / "my-project"
        shutil.copytree(PROJECT, project)
        figures["project image, stead build (s)"] = timed(build_project, docker, project)
        figures["project image, stead build again (s)"] = timed(build_project, docker, project)
        figures["project image size (MB)"] = size_mb(docker, "project:bench")
        starts = [seconds_to_healthy(docker, STEAD_IMAGE) for _ in range(args.starts)]
        figures[f"docker run to healthy, median of {args.starts} (s)"] = statistics.median(starts)
    for name, value in figures.items():
        print(f"{name:<55}{value:>8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
