"""Start `stead worker` processes for tests and benchmarks (probe on a free 127.0.0.1 port)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.servers import HOST, free_port, stead_env


@contextmanager
def stead_worker(
    config: Path,
    data_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    source: Path | None = None,
) -> Iterator[str]:
    """Run `python -m stead worker` (from the `src` folder `source`, default this checkout's);
    yield its probe URL; stop it with SIGTERM afterwards."""
    port = free_port()
    command = [sys.executable, "-m", "stead", "worker", "--config", str(config)]
    command += ["--host", HOST, "--port", str(port)]
    if data_dir is not None:
        command += ["--data-dir", str(data_dir)]
    process = subprocess.Popen(
        command,
        env=stead_env(env, source),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/ok").status_code == 200:
                    break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"stead worker did not start (exit {process.poll()})"
                    ) from None
                time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class WorkerProcess:
    url: str
    process: subprocess.Popen[bytes]


@contextmanager
def stead_worker_process(
    config: Path, env: Mapping[str, str] | None = None, log_path: Path | None = None
) -> Iterator[WorkerProcess]:
    """Like `stead_worker`, but exposes the process so a test can signal (or SIGKILL) it; its
    output goes to `log_path` when given."""
    port = free_port()
    command = [sys.executable, "-m", "stead", "worker", "--config", str(config)]
    command += ["--host", HOST, "--port", str(port)]
    with contextlib.ExitStack() as log_stack:
        log = log_stack.enter_context(log_path.open("ab")) if log_path else subprocess.DEVNULL
        process = subprocess.Popen(
            command,
            env=stead_env(env),
            stdout=log,
            stderr=subprocess.STDOUT if log_path else subprocess.DEVNULL,
            start_new_session=True,
        )
    worker = WorkerProcess(f"http://{HOST}:{port}", process)
    try:
        _wait_for_probe(worker)
        yield worker
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_probe(worker: WorkerProcess, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{worker.url}/ok").status_code == 200:
                return
        except httpx.TransportError:
            if worker.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"stead worker did not start (exit {worker.process.poll()})"
                ) from None
            time.sleep(0.1)
