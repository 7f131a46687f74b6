"""The docker backend: external_docker revisions run as containers of their image on the docker
engine that DOCKER_HOST names (or the local one), with host networking on the deployment's port
(PORT) and address (STEAD_HOST: 127.0.0.1). Images of other servers must honour PORT.

Each container carries labels saying which deployment and revision it runs, so a new listener
finds and adopts them; `--restart unless-stopped` lets the engine restart crashed ones. A rollout
pulls the image, stops the old container (kept), starts the new one and gates it on /ok; when it
fails, the new container is removed and the old one started again. The deployment's data lives in
a named volume mounted at /data, which outlives its revisions."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from stead.listener.backends.base import LogLine, RolloutFailed, Running
from stead.listener.backends.common import HOST, deployment_environment, stable_port, wait_for_ok

BUILD_FAILED = "BUILD_FAILED"
DEPLOY_FAILED = "DEPLOY_FAILED"
_LABEL_DEPLOYMENT = "dev.stead.deployment"
_LABEL_REVISION = "dev.stead.revision"
_LABEL_PORT = "dev.stead.port"
_STOP_GRACE_SECONDS = 30
_PULL_TIMEOUT_SECONDS = 900


class DockerBackend:
    name = "docker"

    def __init__(self, data_dir: Path, deploy_timeout: float) -> None:
        self._root = data_dir / "deployments"
        self._deploy_timeout = deploy_timeout

    def needs_build(self, revision: dict[str, Any]) -> bool:
        return revision["source"] != "external_docker"

    def build(self, deployment: dict[str, Any], revision: dict[str, Any], log: LogLine) -> None:
        raise RolloutFailed(
            BUILD_FAILED,
            f"the docker backend runs images (external_docker); a {revision['source']} revision "
            "needs a listener with --backend process",
        )

    def deploy(self, deployment: dict[str, Any], revision: dict[str, Any], log: LogLine) -> str:
        port = stable_port(self._root / deployment["id"])
        url = f"http://{HOST}:{port}"
        containers = self._containers(deployment["id"])
        current = next((c for c in containers if c["running"]), None)
        if current and current["revision"] == revision["id"]:
            return url
        image = revision["source_revision_config"]["image_uri"]
        self._pull(image, log)
        if current:
            log(f"stopping revision {current['revision']}", "INFO")
            _docker("stop", "--time", str(_STOP_GRACE_SECONDS), current["name"])
        name = _container_name(deployment["id"], revision["id"])
        _docker("rm", "--force", name, check=False)
        env = deployment_environment(deployment, revision)
        _docker(
            *self._run_arguments(deployment["id"], revision["id"], port, name, env, image), env=env
        )
        failure = wait_for_ok(url, lambda: _is_running(name), self._deploy_timeout)
        if failure is None:
            for old in containers:
                if old["name"] != name:
                    _docker("rm", "--force", old["name"], check=False)
            log(f"revision {revision['id']} serves on {url} (container {name})", "INFO")
            return url
        for line in _docker("logs", "--tail", "40", name, check=False, merge=True).splitlines():
            log(line, "ERROR")
        _docker("rm", "--force", name, check=False)
        if current:
            log(f"starting revision {current['revision']} again", "WARNING")
            _docker("start", current["name"])
        raise RolloutFailed(DEPLOY_FAILED, failure)

    def current_revision(self, deployment_id: str) -> str | None:
        running = [c for c in self._containers(deployment_id) if c["running"]]
        return running[0]["revision"] if running else None

    def supervise(self) -> None:
        """The engine restarts crashed containers; this starts those it gave up on (or that
        stopped with the engine), keeping a rollout's stopped predecessor stopped."""
        by_deployment: dict[str, list[dict[str, Any]]] = {}
        for container in self._containers(None):
            by_deployment.setdefault(container["deployment"], []).append(container)
        for containers in by_deployment.values():
            if len(containers) == 1 and not containers[0]["running"]:
                _docker("start", containers[0]["name"], check=False)

    def remove(self, deployment_id: str) -> None:
        for container in self._containers(deployment_id):
            _docker("rm", "--force", container["name"], check=False)
        _docker("volume", "rm", "--force", _volume_name(deployment_id), check=False)
        shutil.rmtree(self._root / deployment_id, ignore_errors=True)

    def running(self) -> list[Running]:
        return [
            Running(c["deployment"], c["revision"], f"http://{HOST}:{c['port']}", c["running"])
            for c in self._containers(None)
            if c["running"]
        ]

    def _pull(self, image: str, log: LogLine) -> None:
        if _docker("image", "inspect", image, check=False, quiet=True) != "":
            log(f"image {image} is present", "INFO")
            return
        try:
            _docker("pull", image, timeout=_PULL_TIMEOUT_SECONDS)
        except RolloutFailed as failed:
            raise RolloutFailed(
                DEPLOY_FAILED, f"the image {image} cannot be pulled: {failed}"
            ) from None
        log(f"pulled {image}", "INFO")

    def _run_arguments(
        self,
        deployment_id: str,
        revision_id: str,
        port: int,
        name: str,
        env: dict[str, str],
        image: str,
    ) -> list[str]:
        # Values come through the docker CLI's environment, so no secret is on a command line.
        variables = [argument for key in sorted(env) for argument in ("--env", key)]
        return [
            "run", "--detach", "--name", name, "--network", "host",
            "--restart", "unless-stopped",
            "--label", f"{_LABEL_DEPLOYMENT}={deployment_id}",
            "--label", f"{_LABEL_REVISION}={revision_id}",
            "--label", f"{_LABEL_PORT}={port}",
            "--env", f"PORT={port}", "--env", f"STEAD_HOST={HOST}",
            "--volume", f"{_volume_name(deployment_id)}:/data",
            *variables, image,
        ]  # fmt: skip

    def _containers(self, deployment_id: str | None) -> list[dict[str, Any]]:
        label = _LABEL_DEPLOYMENT + (f"={deployment_id}" if deployment_id else "")
        fields = [
            "{{.Names}}",
            *(f'{{{{.Label "{key}"}}}}' for key in (_LABEL_DEPLOYMENT, _LABEL_REVISION)),
            f'{{{{.Label "{_LABEL_PORT}"}}}}',
            "{{.State}}",
        ]
        template = "\t".join(fields)
        listed = _docker("ps", "--all", "--filter", f"label={label}", "--format", template)
        containers = []
        for line in listed.splitlines():
            name, deployment, revision, port, container_state = line.split("\t")
            containers.append(
                {
                    "name": name,
                    "deployment": deployment,
                    "revision": revision,
                    "port": port,
                    "running": container_state in ("running", "restarting"),
                }
            )
        return containers


def _container_name(deployment_id: str, revision_id: str) -> str:
    return f"stead-{deployment_id}-{revision_id}"


def _volume_name(deployment_id: str) -> str:
    return f"stead-{deployment_id}-data"


def _is_running(name: str) -> bool:
    state = _docker("inspect", "--format", "{{.State.Status}}", name, check=False).strip()
    return state in ("running", "created")


def _docker(
    *args: str,
    env: dict[str, str] | None = None,
    check: bool = True,
    merge: bool = False,
    quiet: bool = False,
    timeout: float = 120,
) -> str:
    """`docker ARGS`'s output; RolloutFailed (with its last error line) when it fails and
    `check`; "" when it fails and not `check` and `quiet`."""
    done = subprocess.run(
        ["docker", *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge else subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        if check:
            last = (done.stderr or done.stdout or "").strip().splitlines()[-1:] or ["no output"]
            raise RolloutFailed(DEPLOY_FAILED, f"docker {args[0]}: {last[0]}")
        if quiet:
            return ""
    return done.stdout
