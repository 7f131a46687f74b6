"""Start servers for tests and benchmarks: Stead itself and the official LangGraph server.

Everything listens on 127.0.0.1 only.

- ``stead_server(config)`` runs ``python -m stead run`` with the current interpreter.
- ``official_server(graphs_dir)`` runs the official in-memory server (``langgraph-api``) with plain
  uvicorn from a separate virtualenv (see ``official_venv``), for side-by-side comparisons.
- ``floor_server()`` runs bench/floor_app.py, the floor under the benchmarks' figures.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.install_lock import install_lock

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"

OFFICIAL_PACKAGES = ("langgraph-cli[inmem]==0.4.40", "langgraph-api==0.16.7")

# langgraph.json keys that the official CLI passes to the server as JSON environment variables.
_CONFIG_ENV_KEYS = {
    "store": "LANGGRAPH_STORE",
    "checkpointer": "LANGGRAPH_CHECKPOINTER",
    "auth": "LANGGRAPH_AUTH",
    "encryption": "LANGGRAPH_ENCRYPTION",
    "http": "LANGGRAPH_HTTP",
    "webhooks": "LANGGRAPH_WEBHOOKS",
    "ui": "LANGGRAPH_UI",
    "ui_config": "LANGGRAPH_UI_CONFIG",
    "priority": "LANGGRAPH_PRIORITY",
}


class ServerStartError(RuntimeError):
    """A server did not come up; the message carries the tail of its log."""


class PortTaken(ServerStartError):
    """The server exited because another process holds its port."""


# A port taken by another test's server between `free_port` and the bind is retried this often.
START_ATTEMPTS = 3


@dataclass
class StartedServer:
    """A running server: its base URL, its process and (for Stead) its data directory."""

    url: str
    process: subprocess.Popen[bytes]
    data_dir: Path | None
    log_path: Path
    port: int

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_containing(self, text: str, timeout: float = 10.0) -> str:
        """The log once it holds ``text``: the server may write after the client saw the effect."""
        deadline = time.monotonic() + timeout
        while text not in (log := self.log()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never reached the log:\n{log[-2000:]}")
            time.sleep(0.05)
        return log

    def terminate(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Returns the exit code."""
        return _stop(self.process, timeout)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def listens_on(pid: int, port: int) -> bool:
    """Whether process `pid` holds the listening TCP socket of `port`. A port from `free_port`
    may be taken by another test's server before the one it was meant for binds it, and that
    server answers `/ok` as well."""
    return _holds_any(pid, _listening_sockets(port))


def pid_listening(port: int) -> int:
    """The process with the listening TCP socket of `port`."""
    sockets = _listening_sockets(port)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if _holds_any(int(pid), sockets):
            return int(pid)
    raise RuntimeError(f"no process listens on port {port}")


def _listening_sockets(port: int) -> set[str]:
    """The listening TCP sockets of 127.0.0.1:`port`, as a process's fds name them (/proc)."""
    sockets = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == "0A" and int(local.split(":")[1], 16) == port:
            sockets.add(f"socket:[{inode}]")
    return sockets


def _holds_any(pid: int, sockets: set[str]) -> bool:
    try:
        return any(
            os.readlink(f"/proc/{pid}/fd/{fd}") in sockets for fd in os.listdir(f"/proc/{pid}/fd")
        )
    except OSError:  # the process is gone, or not ours to read
        return False


def official_venv() -> Path:
    """The official venv: ``$STEAD_OFFICIAL_VENV``, else ``<repo>/.venvs/official``."""
    configured = os.environ.get("STEAD_OFFICIAL_VENV")
    return Path(configured) if configured else REPO_ROOT / ".venvs" / "official"


def ensure_official_venv() -> Path:
    """Return the official venv, creating it (pinned versions) if it has no ``bin/uvicorn``.

    A venv named by ``$STEAD_OFFICIAL_VENV`` is used as is and never modified.
    """
    venv = official_venv()
    uvicorn = venv / "bin" / "uvicorn"
    if uvicorn.exists():
        return venv
    if os.environ.get("STEAD_OFFICIAL_VENV"):
        raise ServerStartError(f"STEAD_OFFICIAL_VENV={venv} has no bin/uvicorn")
    with install_lock(venv):
        if not uvicorn.exists():
            _install_official(venv)
    return venv


def _install_official(venv: Path) -> None:
    uvicorn = venv / "bin" / "uvicorn"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    subprocess.run([*pip, "--quiet", *OFFICIAL_PACKAGES], check=True)
    if not uvicorn.exists():
        raise ServerStartError(f"installing {OFFICIAL_PACKAGES} did not produce {uvicorn}")


def official_env(graphs_dir: Path) -> dict[str, str]:
    """Environment for the official in-memory server, built from ``graphs_dir/langgraph.json``."""
    config = json.loads((graphs_dir / "langgraph.json").read_text())
    env = dict(os.environ)
    env.update(_config_env_file(graphs_dir, config.get("env")))
    env.update(
        LANGGRAPH_RUNTIME_EDITION="inmem",
        REDIS_URI="fake",
        DATABASE_URI=":memory:",
        MIGRATIONS_PATH="__inmem",
        N_JOBS_PER_WORKER="10",
        LANGSMITH_TRACING="false",
        LANGSMITH_LANGGRAPH_API_VARIANT="local_dev",
        LANGGRAPH_DISABLE_FILE_PERSISTENCE="true",
        LANGGRAPH_ALLOW_BLOCKING="true",
        LANGGRAPH_NO_VERSION_CHECK="true",
        # Plain lines, as Stead writes them (its console renderer colours them by default).
        LOG_COLOR="false",
        LANGSERVE_GRAPHS=json.dumps(config["graphs"]),
    )
    for key, var in _CONFIG_ENV_KEYS.items():
        if key in config:
            env[var] = json.dumps(config[key])
    env["PYTHONPATH"] = pythonpath_first(graphs_dir, env)
    return env


@contextmanager
def official_server(graphs_dir: Path, timeout: float = 60.0) -> Iterator[str]:
    """Run the official in-memory server on ``graphs_dir`` with uvicorn; yield its base URL."""
    venv = ensure_official_venv()
    # The in-memory server saves its threads and runs in `.langgraph_api` of its working folder
    # when it stops and loads them when it starts, despite LANGGRAPH_DISABLE_FILE_PERSISTENCE.
    # Each runs on a copy of the graphs: it starts empty (or every run of a benchmark measures
    # it holding the data of all the runs before), and two at once never share that folder.
    with tempfile.TemporaryDirectory(prefix="stead-official-graphs-") as tmp:
        graphs = Path(tmp) / "graphs"
        ignored = shutil.ignore_patterns(".langgraph_api", "__pycache__")
        shutil.copytree(graphs_dir.resolve(), graphs, ignore=ignored)
        with uvicorn_server(
            venv / "bin" / "uvicorn",
            "langgraph_api.server:app",
            # Its own logging set-up, as its queue entrypoint and `langgraph dev` apply it (the
            # file ships in its wheel): without one, its INFO lines (requests, runs) go nowhere.
            ["--log-config", str(next(venv.glob("lib/python*/site-packages/logging.json")))],
            cwd=graphs,
            env=official_env(graphs),
            name="official server",
            timeout=timeout,
        ) as url:
            yield url


@contextmanager
def floor_server(timeout: float = 30.0) -> Iterator[str]:
    """Run bench/floor_app.py (the graphs in-process behind the least HTTP server) with this
    interpreter's uvicorn; yield its base URL."""
    graphs_dir = REPO_ROOT / "tests" / "graphs"
    env = {**os.environ, "PYTHONPATH": pythonpath_first(graphs_dir, os.environ)}
    with uvicorn_server(
        Path(sys.executable).parent / "uvicorn",
        "floor_app:app",
        ["--log-level", "warning", "--loop", "uvloop", "--http", "httptools"],
        cwd=REPO_ROOT / "bench",
        env=env,
        name="floor server",
        timeout=timeout,
    ) as url:
        yield url


@contextmanager
def uvicorn_server(
    uvicorn: Path,
    app: str,
    options: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    name: str,
    timeout: float,
) -> Iterator[str]:
    """Serve the ASGI ``app`` with the ``uvicorn`` command on a free port of 127.0.0.1, without
    access log; yield its base URL once its ``/ok`` answers."""
    with tempfile.TemporaryDirectory(prefix="stead-uvicorn-") as tmp:
        log_path = Path(tmp) / "server.log"

        def launch(port: int) -> StartedServer:
            cmd = [str(uvicorn), app, "--host", HOST, "--port", str(port), "--no-access-log"]
            process = _popen([*cmd, *options], log_path, env, cwd)
            return StartedServer(f"http://{HOST}:{port}", process, None, log_path, port)

        server = start_ready(launch, None, timeout, name, trade_port=True)
        try:
            yield server.url
        finally:
            server.terminate(timeout=15.0)


@contextmanager
def stead_server(
    config: Path,
    data_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    *,
    port: int | None = None,
    timeout: float = 30.0,
    source: Path | None = None,
) -> Iterator[StartedServer]:
    """Run ``python -m stead run`` on ``config``; yield a ``StartedServer``.

    ``source`` is the ``src`` folder to run Stead from (default: this checkout's), for
    benchmarks of another revision.

    Pass the same ``data_dir`` (and ``port``) again to restart on the same data. The process may
    be stopped inside the block (``server.terminate()`` or a signal); leaving the block stops it
    otherwise.
    """
    with tempfile.TemporaryDirectory(prefix="stead-server-") as tmp:
        data = data_dir if data_dir is not None else Path(tmp) / "data"
        data.mkdir(parents=True, exist_ok=True)
        log_path = Path(tmp) / "server.log"

        def launch(port: int) -> StartedServer:
            cmd = [sys.executable, "-m", "stead", "run", "--config", str(config)]
            cmd += ["--host", HOST, "--port", str(port), "--data-dir", str(data)]
            process = _popen(cmd, log_path, stead_env(env, source))
            return StartedServer(f"http://{HOST}:{port}", process, data, log_path, port)

        server = start_ready(launch, port, timeout, "stead", trade_port=port is None)
        try:
            yield server
        finally:
            server.terminate(timeout=15.0)


def stead_env(extra: Mapping[str, str] | None, source: Path | None = None) -> dict[str, str]:
    """The caller's environment plus ``extra``, with ``source`` (default ``<repo>/src``) first on
    ``PYTHONPATH``."""
    env = {**os.environ, **(extra or {})}
    env["PYTHONPATH"] = pythonpath_first(source or REPO_ROOT / "src", env)
    return env


def pythonpath_first(path: Path, env: Mapping[str, str]) -> str:
    """``env``'s ``PYTHONPATH`` with ``path`` in front of it."""
    return os.pathsep.join([str(path), *filter(None, [env.get("PYTHONPATH")])])


def _config_env_file(graphs_dir: Path, value: object) -> dict[str, str]:
    """``env`` of langgraph.json: a dict, or the path of a ``.env`` file (KEY=VALUE lines)."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if not isinstance(value, str):
        return {}
    result: dict[str, str] = {}
    for raw in (graphs_dir / value).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, val = line.removeprefix("export ").partition("=")
        result[key.strip()] = val.strip().strip("'\"")
    return result


def start_ready(
    launch: Callable[[int], StartedServer],
    port: int | None,
    timeout: float,
    name: str,
    *,
    trade_port: bool,
) -> StartedServer:
    """`launch` on `port` (a free one when None) and wait until it is ready. When another
    process took the port before the server bound it (the server exits saying so), start again
    on a free port if `trade_port`, up to `START_ATTEMPTS` times."""
    for attempt in range(START_ATTEMPTS):
        server = launch(port or free_port())
        try:
            wait_ready(server, timeout, name)
            return server
        except PortTaken:
            if not trade_port or attempt == START_ATTEMPTS - 1:
                raise
            port = None
    raise AssertionError("unreachable")


def wait_ready(server: StartedServer, timeout: float, name: str) -> None:
    """Until the server answers `/ok` on a socket of its own: a port from `free_port` may be
    taken by another test's server before this one binds it, and that one answers too."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            code = server.process.poll()
            if code is not None:
                error = PortTaken if _port_was_taken(server) else ServerStartError
                raise error(f"{name} exited with {code} early:\n{_tail(server)}")
            try:
                answered = client.get(f"{server.url}/ok").status_code == 200
            except httpx.HTTPError:
                answered = False
            if answered and listens_on(server.process.pid, server.port):
                return
            time.sleep(0.1)
    server.terminate(timeout=5.0)
    raise ServerStartError(f"{name} not ready after {timeout:.0f} s:\n{_tail(server)}")


def _port_was_taken(server: StartedServer) -> bool:
    """Stead's last line says `port N on HOST is already in use`; uvicorn's bind error says
    `address already in use`, a line or two before its last."""
    return "already in use" in _tail(server, lines=3)


def _popen(
    cmd: list[str], log_path: Path, env: Mapping[str, str], cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """The server's process, its output in `log_path` (written anew)."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            cmd,
            cwd=cwd,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _tail(server: StartedServer, lines: int = 60) -> str:
    try:
        return "\n".join(server.log().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen[bytes], timeout: float) -> int | None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5.0)
    return process.returncode
