"""Real PostgreSQL and Redis servers for tests, started on free 127.0.0.1 ports and removed after.

PostgreSQL comes from the Debian packages (`initdb` refuses root, so it runs as `postgres`);
Redis from `redis-server`. Neither keeps anything after the context ends.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.install_lock import install_lock
from tests.support.servers import HOST, REPO_ROOT, free_port

PG_BIN = Path(os.environ.get("STEAD_PG_BIN", "/usr/lib/postgresql/15/bin"))


@dataclass
class Postgres:
    port: int
    data_dir: Path
    max_connections: int = 100

    def url(self, database: str = "stead") -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/{database}"

    def sqlalchemy_url(self, database: str = "stead") -> str:
        """The same database through SQLAlchemy's psycopg driver (Stead's `Database`, Alembic)."""
        return f"postgresql+psycopg://postgres@{HOST}:{self.port}/{database}"

    def stop(self) -> None:
        _as_postgres(PG_BIN / "pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def start(self) -> None:
        _as_postgres(
            PG_BIN / "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.data_dir.parent / "pg.log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.data_dir.parent} -c listen_addresses={HOST} -c fsync=off "
            f"-c max_connections={self.max_connections}",
            "start",
        )


@contextmanager
def postgres_server(
    databases: tuple[str, ...] = ("stead",), max_connections: int = 100
) -> Iterator[Postgres]:
    """A fresh PostgreSQL; raise `max_connections` (PostgreSQL's default is 100) for topologies
    whose processes' pools add up to more."""
    root = Path(tempfile.mkdtemp(prefix="stead-pg-"))
    shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    _as_postgres(
        PG_BIN / "initdb",
        "-D",
        str(data),
        "-U",
        "postgres",
        "-A",
        "trust",
        "--no-sync",
        "-E",
        "UTF8",
    )
    server = Postgres(free_port(), data, max_connections)
    server.start()
    try:
        for name in databases:
            _as_postgres(
                PG_BIN / "createdb", "-h", HOST, "-p", str(server.port), "-U", "postgres", name
            )
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Redis:
    port: int
    directory: Path
    options: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                HOST,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@contextmanager
def redis_server(*options: str) -> Iterator[Redis]:
    """A fresh Redis; `options` are more `redis-server` arguments, such as `--maxmemory 4mb`."""
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed (apt-get install -y redis-server)")
    directory = Path(tempfile.mkdtemp(prefix="stead-redis-"))
    server = Redis(free_port(), directory, options)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def _as_postgres(*command: object) -> None:
    subprocess.run(
        ["runuser", "-u", "postgres", "--", *map(str, command)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_for_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {HOST}:{port}")


# An S3-compatible server for the backup tests: moto's, in a venv of its own (it needs botocore,
# whose python-dateutil bound contradicts the kubernetes client's). MinIO's server is not in the
# registries these machines reach.
S3_VENV = REPO_ROOT / ".venvs" / "moto"
S3_SERVER_VERSION = "5.2.5"


@dataclass
class S3:
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """What `stead backup` and `stead restore` read to reach it."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "stead-test",
            "AWS_SECRET_ACCESS_KEY": "stead-test-secret",
            "AWS_REGION": "us-east-1",
        }


@contextmanager
def s3_server() -> Iterator[S3]:
    binary = S3_VENV / "bin" / "moto_server"
    with install_lock(S3_VENV):
        if not binary.exists():
            subprocess.run([sys.executable, "-m", "venv", str(S3_VENV)], check=True)
            pip = [str(S3_VENV / "bin" / "pip"), "install", "--quiet"]
            subprocess.run([*pip, f"moto[server]=={S3_SERVER_VERSION}"], check=True)
    server = S3(free_port())
    process = subprocess.Popen(
        [str(binary), "-H", HOST, "-p", str(server.port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(server.port, timeout=60)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)
