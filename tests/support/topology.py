"""The production topology for tests and benchmarks: one PostgreSQL (migrated) and one Redis,
API-only `stead run` replicas (`N_JOBS_PER_WORKER=0`) and `stead worker` processes, all on
127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.postgres import migrated_postgres
from tests.support.servers import StartedServer, stead_server
from tests.support.services import Redis, redis_server
from tests.support.worker import WorkerProcess, stead_worker_process


@dataclass
class Services:
    database_uri: str
    redis: Redis

    @property
    def env(self) -> dict[str, str]:
        return {"DATABASE_URI": self.database_uri, "REDIS_URI": self.redis.url}


@contextmanager
def production_services(config: Path, max_connections: int = 100) -> Iterator[Services]:
    """A migrated PostgreSQL and a Redis, removed afterwards."""
    with migrated_postgres(config, max_connections) as database_uri, redis_server() as redis:
        yield Services(database_uri, redis)


@contextmanager
def api_replicas(
    config: Path, env: Mapping[str, str], count: int = 2
) -> Iterator[list[StartedServer]]:
    """`count` API-only `stead run` processes: they queue runs and stream, workers execute."""
    api_env = {**env, "N_JOBS_PER_WORKER": "0"}
    with ExitStack() as stack:
        yield [stack.enter_context(stead_server(config, env=api_env)) for _ in range(count)]


@dataclass
class Cluster:
    """Services, API replicas and workers; a worker can be killed and replaced in place."""

    config: Path
    services: Services
    apis: list[StartedServer]
    worker_env: dict[str, str]
    log_dir: Path
    stack: ExitStack
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [api.url for api in self.apis]

    @property
    def pids(self) -> list[int]:
        """The server processes: API replicas and live workers."""
        workers = [w.process.pid for w in self.workers if w.process.poll() is None]
        return [api.process.pid for api in self.apis] + workers

    def start_worker(self) -> WorkerProcess:
        log = self.log_dir / f"worker-{len(list(self.log_dir.glob('worker-*')))}.log"
        worker = self.stack.enter_context(
            stead_worker_process(self.config, env=self.worker_env, log_path=log)
        )
        self.workers.append(worker)
        return worker

    def kill_worker(self, worker: WorkerProcess) -> None:
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait(timeout=10)
        self.workers.remove(worker)

    def log_paths(self) -> list[Path]:
        """Where every process writes its log: the API replicas' and the workers'."""
        return [api.log_path for api in self.apis] + sorted(self.log_dir.glob("worker-*.log"))


@contextmanager
def cluster(
    config: Path,
    log_dir: Path,
    *,
    workers: int = 2,
    env: Mapping[str, str] | None = None,
    worker_env: Mapping[str, str] | None = None,
    max_connections: int = 100,
) -> Iterator[Cluster]:
    """Two API replicas and `workers` workers on fresh services; `env` goes to every process,
    `worker_env` to the workers on top of it."""
    os.makedirs(log_dir, exist_ok=True)
    with ExitStack() as stack:
        services = stack.enter_context(production_services(config, max_connections))
        shared = {**services.env, **(env or {})}
        apis = stack.enter_context(api_replicas(config, shared))
        built = Cluster(config, services, apis, {**shared, **(worker_env or {})}, log_dir, stack)
        for _ in range(workers):
            built.start_worker()
        try:
            yield built
        finally:
            # An API replica logs into a folder of its own, removed when it stops: keep a copy
            # beside the workers' logs for whoever reads them after a failure.
            for index, api in enumerate(apis):
                shutil.copyfile(api.log_path, log_dir / f"api-{index}.log")
