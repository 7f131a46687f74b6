"""Time-to-live policies: `checkpointer.ttl` for threads and `store.ttl` for store items.

Both sections come from langgraph.json (minutes, fractions allowed). `STEAD_TTL_SWEEP_SECONDS`
overrides both sweep intervals, so that tests can sweep every fraction of a second.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from langgraph.store.base import TTLConfig

from stead.config import ConfigError, Settings
from stead.errors import Unprocessable

THREAD_TTL_STRATEGIES = ("delete", "keep_latest")
DEFAULT_SWEEP_INTERVAL_MINUTES = 5.0
DEFAULT_SWEEP_LIMIT = 1000
SWEEP_SECONDS_ENV = "STEAD_TTL_SWEEP_SECONDS"


@dataclass(frozen=True)
class ThreadTTL:
    """A thread lives `minutes` after its last activity; then `strategy` applies."""

    minutes: float
    strategy: str = "delete"

    @classmethod
    def of(cls, thread: dict[str, Any]) -> ThreadTTL | None:
        if thread.get("ttl_minutes") is None:
            return None
        return cls(thread["ttl_minutes"], thread.get("ttl_strategy") or "delete")

    def columns(self, last_activity: datetime) -> dict[str, Any]:
        """The thread columns that hold this TTL, counted from `last_activity`."""
        try:
            expires_at = last_activity + timedelta(minutes=self.minutes)
        except OverflowError:
            raise Unprocessable(f"ttl of {self.minutes} minutes ends after year 9999") from None
        return {
            "ttl_minutes": self.minutes,
            "ttl_strategy": self.strategy,
            "expires_at": expires_at,
        }


NO_TTL_COLUMNS: dict[str, Any] = {"ttl_minutes": None, "ttl_strategy": None, "expires_at": None}


def ttl_json(thread: dict[str, Any]) -> dict[str, Any] | None:
    """The `ttl` field of `GET /threads/{id}?include=ttl`, or None for a thread without one."""
    ttl = ThreadTTL.of(thread)
    if ttl is None:
        return None
    return {
        "strategy": ttl.strategy,
        "ttl_minutes": ttl.minutes,
        "expires_at": thread.get("expires_at"),
    }


@dataclass(frozen=True)
class ThreadTTLPolicy:
    default: ThreadTTL | None
    sweep_interval_seconds: float
    sweep_limit: int


@dataclass(frozen=True)
class StoreTTLPolicy:
    default_minutes: float | None
    refresh_on_read: bool
    sweep_interval_seconds: float

    def langgraph_config(self) -> TTLConfig:
        # LangGraph's SQLite store refreshes only when its config allows reads to refresh, so it
        # always does; StoreService applies `refresh_on_read` when a request does not say.
        return TTLConfig(refresh_on_read=True, default_ttl=self.default_minutes)


def thread_ttl_policy(settings: Settings) -> ThreadTTLPolicy:
    section = _ttl_section(settings.checkpointer, "checkpointer.ttl")
    strategy = section.get("strategy", "delete")
    if strategy not in THREAD_TTL_STRATEGIES:
        raise ConfigError(
            f"checkpointer.ttl.strategy must be one of {', '.join(THREAD_TTL_STRATEGIES)}, "
            f"got {strategy!r}"
        )
    default_minutes = _positive(section, "default_ttl", "checkpointer.ttl")
    sweep_limit = section.get("sweep_limit", DEFAULT_SWEEP_LIMIT)
    if isinstance(sweep_limit, bool) or not isinstance(sweep_limit, int) or sweep_limit < 1:
        raise ConfigError(
            f"checkpointer.ttl.sweep_limit must be a positive integer, got {sweep_limit!r}"
        )
    return ThreadTTLPolicy(
        default=ThreadTTL(default_minutes, strategy) if default_minutes is not None else None,
        sweep_interval_seconds=_sweep_seconds(section, "checkpointer.ttl"),
        sweep_limit=sweep_limit,
    )


def store_ttl_policy(settings: Settings) -> StoreTTLPolicy:
    section = _ttl_section(settings.store, "store.ttl")
    refresh_on_read = section.get("refresh_on_read", True)
    if not isinstance(refresh_on_read, bool):
        raise ConfigError(
            f"store.ttl.refresh_on_read must be true or false, got {refresh_on_read!r}"
        )
    return StoreTTLPolicy(
        default_minutes=_positive(section, "default_ttl", "store.ttl"),
        refresh_on_read=refresh_on_read,
        sweep_interval_seconds=_sweep_seconds(section, "store.ttl"),
    )


def _ttl_section(parent: dict[str, Any], name: str) -> dict[str, Any]:
    section = parent.get("ttl") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{name} must be an object")
    return section


def _positive(section: dict[str, Any], key: str, name: str) -> float | None:
    value = section.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{name}.{key} must be a positive number of minutes, got {value!r}")
    return float(value)


def _sweep_seconds(section: dict[str, Any], name: str) -> float:
    override = os.environ.get(SWEEP_SECONDS_ENV)
    if override:
        try:
            seconds = float(override)
        except ValueError:
            raise ConfigError(f"{SWEEP_SECONDS_ENV} must be a number, got {override!r}") from None
        if seconds <= 0:
            raise ConfigError(f"{SWEEP_SECONDS_ENV} must be positive, got {override!r}")
        return seconds
    minutes = _positive(section, "sweep_interval_minutes", name)
    return 60.0 * (minutes if minutes is not None else DEFAULT_SWEEP_INTERVAL_MINUTES)
