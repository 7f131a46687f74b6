"""langgraph.json plus the environment, read once into one Settings object."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from stead.observability.logs import LOG_LEVELS
from stead.observability.tracing import tracing_requested


class ConfigError(Exception):
    """A configuration problem the user must fix; printed as one line."""


@dataclass(frozen=True)
class ControlPlaneLink:
    """A server that reports to a control plane itself (the seed's ECS task, no listener)."""

    url: str
    license_key: str
    # The deployment it appears as: every replica of one deployment reports the same name.
    deployment_name: str
    # Where clients reach it, as the control plane shows; None: http://<host>:<port>.
    public_url: str | None


@dataclass(frozen=True)
class Settings:
    config_path: Path
    graphs: dict[str, str]
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    dependencies: list[str] = field(default_factory=list)
    store: dict[str, Any] = field(default_factory=dict)
    checkpointer: dict[str, Any] = field(default_factory=dict)
    http: dict[str, Any] = field(default_factory=dict)
    webhooks: dict[str, Any] = field(default_factory=dict)
    auth: dict[str, Any] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 8000
    n_jobs_per_worker: int = 10
    shutdown_grace_seconds: float = 180.0
    resumable_stream_ttl_seconds: float = 120.0
    # How many of a thread's latest protocol events are kept for replay (`since`).
    thread_stream_events_kept: int = 10_000
    run_lease_seconds: float = 30.0
    run_max_attempts: int = 3
    run_timeout_seconds: float = 86400.0
    cron_scheduler_sleep_seconds: float = 5.0
    # A PostgreSQL URI (`postgres://` or `postgresql://`); None keeps the embedded SQLite files.
    database_uri: str | None = None
    # A Redis URI shared by API processes and workers; None keeps the in-process broker.
    redis_uri: str | None = None
    redis_key_prefix: str = "stead:"
    # Pooled Redis connections per process (publishes wait for one when all are busy); the
    # streams a process follows share one more.
    redis_max_connections: int = 16
    # Request bodies above this are refused with 413.
    max_request_body_bytes: int = 25 * 1024 * 1024
    log_level: str = "INFO"
    # One JSON object per log line instead of plain text.
    log_json: bool = False
    # The seed's DEPLOYMENT_TYPE: how this server is deployed.
    deployment_type: str = "standalone"
    # With self_hosted_data_plane: the control plane this server reports to on its own.
    control_plane: ControlPlaneLink | None = None
    # OpenTelemetry traces (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_ENABLED=true).
    tracing: bool = False

    @property
    def project_dir(self) -> Path:
        return self.config_path.parent

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL of Stead's own tables."""
        if self.postgres_uri is not None:
            return "postgresql+psycopg://" + self.postgres_uri.split("://", 1)[1]
        return f"sqlite+aiosqlite:///{self.database_path}"

    @property
    def database_path(self) -> Path:
        """The embedded runtime's SQLite file of Stead's own tables."""
        return self.data_dir / "stead.sqlite"

    @property
    def postgres_uri(self) -> str | None:
        """The PostgreSQL URI in the libpq form that psycopg (and LangGraph's savers) take."""
        if self.database_uri is None:
            return None
        return "postgresql://" + self.database_uri.split("://", 1)[1]

    @property
    def checkpoints_path(self) -> Path:
        return self.data_dir / "checkpoints.sqlite"

    @property
    def store_path(self) -> Path:
        return self.data_dir / "store.sqlite"


def load_settings(
    config_path: str | Path = "langgraph.json",
    *,
    data_dir: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
) -> Settings:
    path = Path(config_path).resolve()
    raw = read_config_file(path)
    graphs = parse_graphs(raw.get("graphs"), path)
    env = _parse_env(raw.get("env"), path.parent, missing_ok=_env_flag("STEAD_ENV_FILE_OPTIONAL"))
    deps = raw.get("dependencies") or []
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise ConfigError(f"{path}: 'dependencies' must be a list of strings")
    sections = {key: _object_section(raw, key, path) for key in _OBJECT_SECTIONS}
    return Settings(
        config_path=path,
        graphs=graphs,
        data_dir=Path(data_dir).resolve() if data_dir else path.parent / ".stead",
        env=env,
        dependencies=deps,
        **sections,
        host=host,
        port=port,
        n_jobs_per_worker=_env_int("N_JOBS_PER_WORKER", 10),
        shutdown_grace_seconds=_env_float("BG_JOB_SHUTDOWN_GRACE_PERIOD_SECS", 180.0),
        resumable_stream_ttl_seconds=_env_float("RESUMABLE_STREAM_TTL_SECONDS", 120.0),
        thread_stream_events_kept=_env_int("THREAD_STREAM_EVENTS_KEPT", 10_000),
        run_lease_seconds=_env_float("BG_JOB_LEASE_SECS", 30.0),
        run_max_attempts=_env_int("BG_JOB_MAX_RETRIES", 3),
        run_timeout_seconds=_env_float("BG_JOB_TIMEOUT_SECS", 86400.0),
        cron_scheduler_sleep_seconds=_env_float("CRON_SCHEDULER_SLEEP_TIME", 5.0),
        database_uri=database_uri_from_environment(),
        redis_uri=os.environ.get("REDIS_URI") or os.environ.get("REDIS_URL") or None,
        redis_key_prefix=os.environ.get("REDIS_KEY_PREFIX", "stead:"),
        redis_max_connections=_redis_max_connections(),
        max_request_body_bytes=_env_int("HTTP_MAX_REQUEST_BODY_BYTES", 25 * 1024 * 1024),
        log_level=_log_level(),
        log_json=_env_flag("LOG_JSON"),
        deployment_type=_deployment_type(),
        control_plane=_control_plane_link(path.parent),
        tracing=tracing_requested(),
    )


DEPLOYMENT_TYPES = ("standalone", "self_hosted_data_plane")


def _deployment_type() -> str:
    value = os.environ.get("DEPLOYMENT_TYPE") or "standalone"
    if value not in DEPLOYMENT_TYPES:
        raise ConfigError(
            f"DEPLOYMENT_TYPE must be one of {', '.join(DEPLOYMENT_TYPES)}, got {value!r}"
        )
    return value


def _control_plane_link(project_dir: Path) -> ControlPlaneLink | None:
    if _deployment_type() != "self_hosted_data_plane":
        return None
    values = {
        name: (os.environ.get(name) or "").strip() for name in ("CONTROL_PLANE_URL", "LICENSE_KEY")
    }
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise ConfigError(f"DEPLOYMENT_TYPE=self_hosted_data_plane needs {' and '.join(missing)}")
    return ControlPlaneLink(
        url=values["CONTROL_PLANE_URL"].rstrip("/"),
        license_key=values["LICENSE_KEY"],
        deployment_name=os.environ.get("STEAD_DEPLOYMENT_NAME") or project_dir.name,
        public_url=os.environ.get("STEAD_PUBLIC_URL") or None,
    )


def _log_level() -> str:
    level = (os.environ.get("LOG_LEVEL") or "INFO").upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    return level


def _env_flag(name: str) -> bool:
    value = (os.environ.get(name) or "false").strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value in ("true", "1", "yes")


# The official server's name first, then the aliases it and the seed's deployments use.
_DATABASE_URI_VARIABLES = ("DATABASE_URI", "POSTGRES_URI", "POSTGRES_URL", "DATABASE_URL")
_POSTGRES_SCHEMES = ("postgres", "postgresql", "postgresql+psycopg")


def database_uri_from_environment() -> str | None:
    for name in _DATABASE_URI_VARIABLES:
        value = os.environ.get(name)
        if value:
            scheme = value.split("://", 1)[0] if "://" in value else ""
            if scheme not in _POSTGRES_SCHEMES:
                raise ConfigError(f"{name} must be a postgres:// or postgresql:// URI")
            return value
    return None


# langgraph.json sections that are objects, read as they are; their services validate them.
_OBJECT_SECTIONS = ("store", "checkpointer", "http", "webhooks", "auth")


def _object_section(raw: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    section = raw.get(key) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: '{key}' must be an object")
    return section


def read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return raw


def parse_graphs(graphs: Any, path: Path) -> dict[str, str]:
    if not isinstance(graphs, dict) or not graphs:
        raise ConfigError(f"{path}: 'graphs' must be a non-empty object of graph_id: 'file.py:var'")
    parsed: dict[str, str] = {}
    for graph_id, spec in graphs.items():
        if isinstance(spec, dict):
            spec = spec.get("path")
        if not isinstance(spec, str) or ":" not in spec:
            raise ConfigError(f"{path}: graph '{graph_id}' must be 'path/to/file.py:variable'")
        parsed[graph_id] = spec
    return parsed


def _parse_env(env: Any, base: Path, *, missing_ok: bool) -> dict[str, str]:
    """The `env` of langgraph.json. Images keep the env file out (it holds secrets): there
    STEAD_ENV_FILE_OPTIONAL lets the container's environment stand in for a missing one."""
    if env is None:
        return {}
    if isinstance(env, dict):
        return {str(k): str(v) for k, v in env.items()}
    if isinstance(env, str):
        env_file = base / env
        if not env_file.is_file():
            if missing_ok:
                return {}
            raise ConfigError(f"env file not found: {env_file}")
        return {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    raise ConfigError("'env' must be an object or the path of a .env file")


# The cancel listener and a worker's wait for work each hold a pooled connection while they wait.
MIN_REDIS_CONNECTIONS = 4


def _redis_max_connections() -> int:
    value = _env_int("REDIS_MAX_CONNECTIONS", 16)
    if value < MIN_REDIS_CONNECTIONS:
        raise ConfigError(
            f"REDIS_MAX_CONNECTIONS must be at least {MIN_REDIS_CONNECTIONS}, got {value}"
        )
    return value


def _env_int(name: str, default: int) -> int:
    return int(_env_number(name, default, int, "an integer"))


def _env_float(name: str, default: float) -> float:
    return float(_env_number(name, default, float, "a number"))


def _env_number(name: str, default: float, parse: type, kind: str) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(parse(value))
    except ValueError:
        raise ConfigError(f"{name} must be {kind}, got {value!r}") from None
