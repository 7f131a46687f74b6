"""The listener's configuration, from the environment the seed names (CONTROL_PLANE_URL,
LICENSE_KEY, LISTENER_ID, DEPLOYMENT_TYPE) and its flags."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from stead.config import ConfigError

BACKENDS = ("process", "docker", "kubernetes")
DEFAULT_DATA_DIR = Path(".stead-listener")


@dataclass(frozen=True)
class ListenerSettings:
    control_plane_url: str
    license_key: str
    listener_id: str
    backend: str
    data_dir: Path
    poll_seconds: float = 2.0
    heartbeat_seconds: float = 5.0
    # How long a new revision's server may take to answer /ok before its rollout fails.
    deploy_timeout_seconds: float = 120.0
    # The kubernetes backend: the namespaces it watches (the first is the default), Stead's
    # chart and the helm binary that renders it.
    k8s_namespaces: tuple[str, ...] = ("default",)
    helm_chart: Path = Path("/opt/stead/chart")
    helm: str = "helm"


def load_listener_settings(backend: str, data_dir: Path | None) -> ListenerSettings:
    deployment_type = os.environ.get("DEPLOYMENT_TYPE") or "self_hosted_data_plane"
    if deployment_type != "self_hosted_data_plane":
        raise ConfigError(
            "stead listener runs in a self_hosted_data_plane; "
            f"DEPLOYMENT_TYPE is {deployment_type!r}"
        )
    if backend not in BACKENDS:
        raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return ListenerSettings(
        control_plane_url=_required("CONTROL_PLANE_URL").rstrip("/"),
        license_key=_required("LICENSE_KEY"),
        listener_id=_required("LISTENER_ID"),
        backend=backend,
        data_dir=(data_dir or DEFAULT_DATA_DIR).resolve(),
        poll_seconds=_seconds("STEAD_LISTENER_POLL_SECONDS", 2.0),
        heartbeat_seconds=_seconds("STEAD_LISTENER_HEARTBEAT_SECONDS", 5.0),
        deploy_timeout_seconds=_seconds("STEAD_LISTENER_DEPLOY_TIMEOUT", 120.0),
        k8s_namespaces=_namespaces(os.environ.get("STEAD_K8S_NAMESPACES") or "default"),
        helm_chart=Path(os.environ.get("STEAD_HELM_CHART") or "/opt/stead/chart"),
        helm=os.environ.get("STEAD_HELM") or "helm",
    )


def _namespaces(value: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    if not names:
        raise ConfigError("STEAD_K8S_NAMESPACES must name at least one namespace")
    return names


def _required(name: str) -> str:
    value = (os.environ.get(name) or "").strip()
    if not value:
        raise ConfigError(f"{name} is not set")
    return value


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value
