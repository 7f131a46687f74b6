"""The process backend: each revision gets its own virtualenv, built from the uploaded source, and
runs as `stead run` (plus `stead worker` processes with a database of its own) on 127.0.0.1.

Layout under the listener's data folder, per deployment:
  deployments/<id>/data/                 the deployment's data: kept across revisions
  deployments/<id>/revisions/<rev>/      source/, venv/, .built
  deployments/<id>/state.json            what runs: revision, port, processes (readable by owner)
  deployments/<id>/server.log            the processes' output
Processes run in sessions of their own, so they outlive the listener; a new listener adopts them
from state.json."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from stead.config import ConfigError
from stead.images.project import read_image_project
from stead.listener.backends.base import LogLine, RolloutFailed, Running
from stead.listener.backends.common import (
    HOST,
    deployment_environment,
    free_port,
    stable_port,
    wait_for_ok,
)
from stead.listener.backends.processes import all_running, first_exited, start_missing, stop
from stead.listener.client import ControlPlaneClient
from stead.tarballs import extract_all

BUILD_FAILED = "BUILD_FAILED"
DEPLOY_FAILED = "DEPLOY_FAILED"
# Variables passed through from the listener's own environment; the rest comes from the revision.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")


class ProcessBackend:
    name = "process"

    def __init__(self, data_dir: Path, client: ControlPlaneClient, deploy_timeout: float) -> None:
        self._root = data_dir / "deployments"
        self._client = client
        self._deploy_timeout = deploy_timeout

    def needs_build(self, revision: dict[str, Any]) -> bool:
        return True

    def build(self, deployment: dict[str, Any], revision: dict[str, Any], log: LogLine) -> None:
        if revision["source"] != "internal_source":
            raise RolloutFailed(
                BUILD_FAILED,
                f"the process backend builds uploaded sources; a {revision['source']} revision "
                "needs a listener with --backend docker",
            )
        folder = self._revision_dir(deployment["id"], revision["id"])
        if (folder / ".built").exists():
            log(f"revision {revision['id']} is built already", "INFO")
            return
        shutil.rmtree(folder, ignore_errors=True)
        tarball = folder / "source.tar.gz"
        self._client.download_source(revision["id"], tarball)
        _extract(tarball, folder / "source", log)
        config = self._config_path(deployment, revision)
        _create_venv(folder / "venv", log)
        _install_dependencies(config, folder, log)
        (folder / ".built").touch()
        log("build finished", "INFO")

    def deploy(self, deployment: dict[str, Any], revision: dict[str, Any], log: LogLine) -> str:
        state = self._state(deployment["id"])
        if state and state["revision_id"] == revision["id"] and all_running(state):
            return str(state["url"])
        python = self._revision_dir(deployment["id"], revision["id"]) / "venv" / "bin" / "python"
        config = self._config_path(deployment, revision)
        env = _environment(deployment, revision)
        _check_graphs(python, config, env, log)
        scale = _scale(revision, env, log)
        if scale.shared:
            _migrate(python, config, env, log)
        # Old and new serve side by side only where they share a database and a port; the
        # embedded database belongs to one process, so the old one stops first.
        beside = state is not None and scale.shared and _shares_port(state)
        if state and not beside:
            log(f"stopping revision {state['revision_id']}", "INFO")
            stop(state)
        port = stable_port(self._root / deployment["id"])
        new = self._start(deployment, revision, (python, config), env, port, scale)
        failure = self._wait_ready(new)
        if failure is None:
            if state and beside:
                log(f"stopping revision {state['revision_id']}", "INFO")
                stop(state)
            self._write_state(deployment["id"], new)
            log(f"revision {revision['id']} serves on {new['url']}", "INFO")
            return str(new["url"])
        stop(new)
        for line in self._log_tail(deployment["id"]):
            log(line, "ERROR")
        if state and not beside:
            log(f"restarting revision {state['revision_id']}", "WARNING")
            self._write_state(deployment["id"], start_missing(state))
        raise RolloutFailed(DEPLOY_FAILED, failure)

    def current_revision(self, deployment_id: str) -> str | None:
        state = self._state(deployment_id)
        return state["revision_id"] if state else None

    def supervise(self) -> None:
        for state_file in self._root.glob("*/state.json"):
            state = json.loads(state_file.read_text())
            if not all_running(state):
                self._write_state(state["deployment_id"], start_missing(state))

    def remove(self, deployment_id: str) -> None:
        state = self._state(deployment_id)
        if state:
            stop(state)
        shutil.rmtree(self._root / deployment_id, ignore_errors=True)

    def running(self) -> list[Running]:
        found = []
        for state_file in self._root.glob("*/state.json"):
            state = json.loads(state_file.read_text())
            found.append(
                Running(
                    state["deployment_id"], state["revision_id"], state["url"], all_running(state)
                )
            )
        return found

    def _start(
        self,
        deployment: dict[str, Any],
        revision: dict[str, Any],
        project: tuple[Path, Path],
        env: dict[str, str],
        port: int,
        scale: Scale,
    ) -> dict[str, Any]:
        """Start the revision's API processes (sharing `port` when there are several) and its
        queue workers, each with a probe of its own."""
        python, config = project
        data = self._root / deployment["id"] / "data"
        data.mkdir(parents=True, exist_ok=True)
        common = [str(python), "-m", "stead", "-c", str(config), "--host", HOST]
        common += ["--data-dir", str(data)]
        probes = iter(_distinct_free_ports(scale.api + scale.workers))
        # With queue workers, the API processes leave the runs to them, as the official split.
        api_env = {"N_JOBS_PER_WORKER": "0"} if scale.workers else {}
        processes = []
        for _ in range(scale.api):
            args = [*common, "--port", str(port)]
            probe = port
            if scale.shared:
                probe = next(probes)
                args += ["--reuse-port", "--probe-port", str(probe)]
            processes.append(_process(_command(args, "run"), probe, api_env))
        for _ in range(scale.workers):
            probe = next(probes)
            processes.append(_process(_command([*common, "--port", str(probe)], "worker"), probe))
        state = {
            "deployment_id": deployment["id"],
            "revision_id": revision["id"],
            "port": port,
            "url": f"http://{HOST}:{port}",
            "log": str(self._root / deployment["id"] / "server.log"),
            "env": env,
            "processes": processes,
        }
        return start_missing(state)

    def _wait_ready(self, state: dict[str, Any]) -> str | None:
        """None once every process answers its probe; else why not."""
        deadline = time.monotonic() + self._deploy_timeout
        for process in state["processes"]:
            remaining = max(0.0, deadline - time.monotonic())
            failure = wait_for_ok(process["probe"], lambda: all_running(state), remaining)
            if failure is not None:
                which = first_exited(state)
                return f"{failure}: {which}" if which else failure
        return None

    def _config_path(self, deployment: dict[str, Any], revision: dict[str, Any]) -> Path:
        source = self._revision_dir(deployment["id"], revision["id"]) / "source"
        relative = (
            revision["source_revision_config"].get("langgraph_config_path") or "langgraph.json"
        )
        config = (source / relative).resolve()
        if not config.is_relative_to(source.resolve()) or not config.is_file():
            raise RolloutFailed(BUILD_FAILED, f"the source has no {relative}")
        return config

    def _revision_dir(self, deployment_id: str, revision_id: str) -> Path:
        return self._root / deployment_id / "revisions" / revision_id

    def _state(self, deployment_id: str) -> dict[str, Any] | None:
        path = self._root / deployment_id / "state.json"
        return json.loads(path.read_text()) if path.exists() else None

    def _write_state(self, deployment_id: str, state: dict[str, Any]) -> None:
        # It holds the deployment's secrets (its processes' environment): owner only.
        path = self._root / deployment_id / "state.json"
        partial = path.with_suffix(".partial")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            json.dump(state, out)
        partial.replace(path)

    def _log_tail(self, deployment_id: str, lines: int = 40) -> list[str]:
        path = self._root / deployment_id / "server.log"
        if not path.exists():
            return []
        return path.read_text(errors="replace").splitlines()[-lines:]


@dataclass(frozen=True)
class Scale:
    api: int
    workers: int
    shared: bool  # the processes share PostgreSQL and Redis


def _scale(revision: dict[str, Any], env: dict[str, str], log: LogLine) -> Scale:
    """The processes the resource spec asks for (min_scale API replicas, queue_min_scale
    workers); one process where the deployment has no database and Redis of its own."""
    spec = revision.get("resource_spec") or {}
    api = max(1, int(spec.get("min_scale") or 1))
    workers = max(0, int(spec.get("queue_min_scale") or 0))
    if env.get("DATABASE_URI") and env.get("REDIS_URI"):
        return Scale(api, workers, shared=True)
    if api > 1 or workers:
        log(
            f"resource_spec asks for {api} API replica(s) and {workers} queue worker(s); one "
            "process serves, as the embedded database belongs to one process: set the "
            "POSTGRES_URI_CUSTOM and REDIS_URI_CUSTOM secrets to scale out",
            "WARNING",
        )
    return Scale(1, 0, shared=False)


def _command(args: list[str], command: str) -> list[str]:
    """`args` (python -m stead, then options) with the stead command in place."""
    return [*args[:3], command, *args[3:]]


def _process(args: list[str], probe: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    return {"args": args, "pid": None, "probe": f"http://{HOST}:{probe}", "env": env or {}}


def _distinct_free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def _shares_port(state: dict[str, Any]) -> bool:
    """Whether the running API processes let others bind their port (--reuse-port)."""
    return all(
        "--reuse-port" in process["args"]
        for process in state["processes"]
        if "run" in process["args"]
    )


def _environment(deployment: dict[str, Any], revision: dict[str, Any]) -> dict[str, str]:
    inherited = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    return {**inherited, **deployment_environment(deployment, revision)}


def _extract(tarball: Path, target: Path, log: LogLine) -> None:
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            extract_all(archive, target)
    except (tarfile.TarError, OSError) as exc:
        raise RolloutFailed(BUILD_FAILED, f"the source tarball does not extract: {exc}") from None
    log(f"source extracted ({sum(1 for _ in target.rglob('*'))} files)", "INFO")


def _create_venv(venv: Path, log: LogLine) -> None:
    """A virtualenv that sees the listener's own packages (Stead and LangGraph) through a .pth
    file, so that a build installs only what the project adds."""
    _run([sys.executable, "-m", "venv", str(venv)], log, BUILD_FAILED, "creating the virtualenv")
    site = next((venv / "lib").glob("python3*/site-packages"))
    own = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    # addsitedir, not a plain path: it also reads those folders' .pth files (editable installs).
    lines = "".join(f"import site; site.addsitedir({folder!r})\n" for folder in own)
    (site / "_stead_listener.pth").write_text(lines)


def _install_dependencies(config: Path, folder: Path, log: LogLine) -> None:
    try:
        project = read_image_project(config)
    except ConfigError as exc:
        raise RolloutFailed(BUILD_FAILED, str(exc)) from None
    constraints = folder / "constraints.txt"
    # Pin what the listener runs with, so that no requirement replaces a library Stead needs.
    constraints.write_text(
        "".join(f"{d.metadata['Name']}=={d.version}\n" for d in metadata.distributions())
    )
    pip = [str(folder / "venv" / "bin" / "python"), "-m", "pip", "install", "--no-input"]
    pip += ["--disable-pip-version-check", "-c", str(constraints)]
    targets: list[str] = []
    for dependency in project.local:
        base = project.directory / dependency.relative
        if dependency.has_requirements:
            targets += ["-r", str(base / "requirements.txt")]
        if dependency.is_package:
            targets.append(str(base))
    targets += list(project.requirements)
    if targets:
        _run([*pip, *targets], log, BUILD_FAILED, "installing the dependencies")


def _migrate(python: Path, config: Path, env: dict[str, str], log: LogLine) -> None:
    """Bring the deployment's own database to this revision's schema before its processes start
    (`stead run` refuses to serve on one that is behind)."""
    command = [str(python), "-m", "stead", "migrate", "-c", str(config)]
    _run(command, log, DEPLOY_FAILED, "migrating the database", env=env)


def _check_graphs(python: Path, config: Path, env: dict[str, str], log: LogLine) -> None:
    """Import the graphs in the new environment before anything running is stopped."""
    command = [str(python), "-m", "stead", "check", "-c", str(config)]
    _run(command, log, DEPLOY_FAILED, "importing the graphs", env=env)


def _run(
    command: list[str],
    log: LogLine,
    failure: str,
    what: str,
    env: dict[str, str] | None = None,
) -> None:
    """Run a build step, its output going to the revision's log; RolloutFailed with its last
    line when it fails."""
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=1800
    )
    for line in (done.stdout + done.stderr).splitlines():
        log(line, "INFO" if done.returncode == 0 else "ERROR")
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RolloutFailed(failure, f"{what} failed: {last[0]}")
