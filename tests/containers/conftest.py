"""The container tier: a private docker engine, the stand-in base images, Stead's image built
from deploy/docker/Dockerfile and an image of a seed-layout project built by `stead build`, all
once per session. `make test-containers` runs it (`make test` calls that)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stead import __version__
from tests.support.docker import REPO, Docker, build_standin_images, private_docker

PROJECT = Path(__file__).parent / "project"
STEAD_IMAGE = f"stead:{__version__}"
PROJECT_IMAGE = "stead-test-project:latest"
# Lines for the closing note and the README: how long each build took, how big each image is.
FIGURES: dict[str, str] = {}


@pytest.fixture(scope="session")
def docker() -> Iterator[Docker]:
    with private_docker() as engine:
        started = time.monotonic()
        build_standin_images(engine)
        FIGURES["stand-in base images"] = f"{time.monotonic() - started:.0f} s"
        yield engine
    print("\n# container tier figures: " + "; ".join(f"{k}: {v}" for k, v in FIGURES.items()))


@pytest.fixture(scope="session")
def stead_image(docker: Docker) -> str:
    """Built twice: cold, then again with every layer cached (the warm figure)."""
    for kind in ("cold", "warm"):
        started = time.monotonic()
        docker(
            "build", "--network", "host", "-f", "deploy/docker/Dockerfile", "-t", STEAD_IMAGE,
            str(REPO), timeout=900,
        )  # fmt: skip
        FIGURES[f"Stead image build, {kind}"] = f"{time.monotonic() - started:.1f} s"
    FIGURES["Stead image size"] = image_size(docker, STEAD_IMAGE)
    return STEAD_IMAGE


@dataclass
class ProjectImage:
    tag: str
    directory: Path  # the copy it was built from, with its .env


@pytest.fixture(scope="session")
def project_image(
    docker: Docker, stead_image: str, tmp_path_factory: pytest.TempPathFactory
) -> ProjectImage:
    """The seed-layout project with an env file holding a secret, built by `stead build`."""
    directory = tmp_path_factory.mktemp("images") / "my-project"
    shutil.copytree(PROJECT, directory, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (directory / ".env").write_text("GREETING_SECRET=from-the-env-file\n")
    (directory / ".stead").mkdir()
    (directory / ".stead" / "stead.sqlite").write_text("a developer's local data")
    started = time.monotonic()
    built = subprocess.run(
        [
            sys.executable, "-m", "stead", "build", "-t", PROJECT_IMAGE,
            "-c", str(directory / "langgraph.json"), "--base-image", stead_image,
            "--", "--network", "host",
        ],
        env=docker.env,
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    FIGURES["project image build (stead build)"] = f"{time.monotonic() - started:.1f} s"
    FIGURES["project image size"] = image_size(docker, PROJECT_IMAGE)
    return ProjectImage(PROJECT_IMAGE, directory)


def image_size(docker: Docker, image: str) -> str:
    return f"{int(docker('image', 'inspect', '-f', '{{.Size}}', image)) / 1e6:.0f} MB"
