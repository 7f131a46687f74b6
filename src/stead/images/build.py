"""`stead build`: the project folder, less what must not go into an image, sent with its
Dockerfile to the local docker engine."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from stead.config import ConfigError

DOCKERFILE_NAME = ".stead-build.Dockerfile"
# Secrets, local data, caches and environments: never part of an image.
EXCLUDED_NAMES = frozenset(
    {".env", ".stead", ".git", ".venv", "venv", "__pycache__", "node_modules", ".mypy_cache"}
)
EXCLUDED_PREFIXES = (".env.",)


class DockerError(ConfigError):
    """The docker engine is missing, unreachable, or failed the build."""


def build_image(
    directory: Path, dockerfile: str, tag: str, docker_options: Sequence[str] = ()
) -> None:
    docker = _docker_command()
    _require_engine(docker)
    with tempfile.TemporaryFile() as context:
        write_context(directory, dockerfile, context)
        context.seek(0)
        command = [docker, "build", "-t", tag, "-f", DOCKERFILE_NAME, *docker_options, "-"]
        status = subprocess.run(command, stdin=context, check=False).returncode
    if status != 0:
        raise DockerError(f"docker build of {tag} failed (exit status {status})")


def write_context(directory: Path, dockerfile: str, out: IO[bytes]) -> None:
    """A tar of the project folder (less EXCLUDED_NAMES) with the Dockerfile at its root."""
    # GNU format: PAX would start with an extended header (tarfile writes float mtimes there),
    # and docker then takes the stream for a Dockerfile, not a context.
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path in sorted(_context_files(directory)):
            tar.add(path, arcname=path.relative_to(directory).as_posix(), recursive=False)
        data = dockerfile.encode()
        info = tarfile.TarInfo(DOCKERFILE_NAME)
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))


def _context_files(directory: Path) -> list[Path]:
    kept: list[Path] = []
    for root, folders, files in os.walk(directory):
        folders[:] = [f for f in folders if not _excluded(f)]
        base = Path(root)
        kept += [base / f for f in folders]
        kept += [base / f for f in files if not _excluded(f)]
    return kept


def _excluded(name: str) -> bool:
    if name in EXCLUDED_NAMES:
        return True
    return name.startswith(EXCLUDED_PREFIXES) and name != ".env.example"


def _docker_command() -> str:
    docker = shutil.which("docker")
    if docker is None:
        raise DockerError("no docker engine: the 'docker' command is not installed")
    return docker


def _require_engine(docker: str) -> None:
    probe = subprocess.run(
        [docker, "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["no answer"])[-1]
        raise DockerError(f"no docker engine answers: {reason}")
