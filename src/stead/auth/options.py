"""The `auth` section of langgraph.json, read once at start."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from stead.auth.handlers import CustomAuth
from stead.config import ConfigError, Settings

# Probes and scrapers reach these without a credential unless `auth.open_paths` says otherwise.
DEFAULT_OPEN_PATHS = ("/ok", "/health", "/ready", "/metrics")
_KNOWN_KEYS = {"path", "api_keys", "open_paths", "openapi", "disable_studio_auth", "cache"}


@dataclass(frozen=True)
class AuthOptions:
    custom: CustomAuth | None = None
    api_keys: bool = False
    # Without trailing slashes, so that `/ok` and `/ok/` are one path.
    open_paths: frozenset[str] = frozenset(DEFAULT_OPEN_PATHS)
    openapi: dict[str, Any] = field(default_factory=dict)

    def is_open(self, path: str) -> bool:
        """Whether `path` (below any mount prefix) is reached without a credential."""
        return path.rstrip("/") in self.open_paths

    @property
    def enabled(self) -> bool:
        return self.api_keys or (self.custom is not None and self.custom.authenticates)

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthOptions:
        section = settings.auth
        unknown = set(section) - _KNOWN_KEYS
        if unknown:
            raise ConfigError(f"auth: unknown key(s) {', '.join(sorted(unknown))}")
        path = section.get("path")
        custom = CustomAuth.load(path, settings.project_dir) if path else None
        open_paths = section.get("open_paths", list(DEFAULT_OPEN_PATHS))
        if not isinstance(open_paths, list) or not all(isinstance(p, str) for p in open_paths):
            raise ConfigError("auth.open_paths must be a list of paths")
        openapi = section.get("openapi") or {}
        if not isinstance(openapi, dict):
            raise ConfigError("auth.openapi must be an object")
        return cls(
            custom=custom,
            api_keys=_api_keys_enabled(section),
            open_paths=frozenset(path.rstrip("/") for path in open_paths),
            openapi=openapi,
        )


def _api_keys_enabled(section: dict[str, Any]) -> bool:
    """`auth.api_keys: true`, or STEAD_AUTH_API_KEYS=true for deployments configured by env."""
    from_env = os.environ.get("STEAD_AUTH_API_KEYS", "").strip().lower()
    if from_env:
        return from_env in ("1", "true", "yes")
    value = section.get("api_keys", False)
    if not isinstance(value, bool):
        raise ConfigError("auth.api_keys must be true or false")
    return value
