"""The control plane's configuration: flags and environment, read once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from stead.config import ConfigError, database_uri_from_environment

DEFAULT_DATA_DIR = Path(".stead-control-plane")
DEFAULT_PORT = 1985  # the official host-backend's port


@dataclass(frozen=True)
class ControlPlaneSettings:
    data_dir: Path
    # PostgreSQL when set; else a SQLite file in the data folder.
    database_uri: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    # A listener (or self-reporting server) silent for longer counts as offline.
    heartbeat_timeout: timedelta = timedelta(seconds=30)

    @property
    def database_url(self) -> str:
        if self.database_uri is not None:
            return "postgresql+psycopg://" + self.database_uri.split("://", 1)[1]
        return f"sqlite+aiosqlite:///{self.data_dir / 'control-plane.sqlite'}"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"


def load_control_plane_settings(
    data_dir: Path | None = None, host: str = "127.0.0.1", port: int = DEFAULT_PORT
) -> ControlPlaneSettings:
    return ControlPlaneSettings(
        data_dir=(data_dir or DEFAULT_DATA_DIR).resolve(),
        database_uri=_database_uri(),
        host=host,
        port=port,
        heartbeat_timeout=timedelta(seconds=_seconds("CONTROL_PLANE_HEARTBEAT_TIMEOUT", 30.0)),
    )


def _database_uri() -> str | None:
    """CONTROL_PLANE_DATABASE_URI, else the server's names (when the control plane runs alone)."""
    value = os.environ.get("CONTROL_PLANE_DATABASE_URI")
    if value:
        if not value.startswith(("postgres://", "postgresql://", "postgresql+psycopg://")):
            raise ConfigError("CONTROL_PLANE_DATABASE_URI must be a postgres:// URI")
        return value
    return database_uri_from_environment()


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
