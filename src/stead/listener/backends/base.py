"""What the reconciler asks of a backend."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

# A log line for the revision being rolled out: (message, level).
LogLine = Callable[[str, str], None]


class RolloutFailed(Exception):
    """A revision could not be built or started; `status` is BUILD_FAILED or DEPLOY_FAILED."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Running:
    deployment_id: str
    revision_id: str
    url: str
    healthy: bool


class Backend(Protocol):
    name: str

    def needs_build(self, revision: dict[str, Any]) -> bool: ...

    def build(self, deployment: dict[str, Any], revision: dict[str, Any], log: LogLine) -> None:
        """Prepare what the revision runs; idempotent. Raises RolloutFailed."""

    def deploy(self, deployment: dict[str, Any], revision: dict[str, Any], log: LogLine) -> str:
        """Replace what the deployment runs with the revision; return its URL. When the new
        revision fails, the previous one keeps (or goes back to) serving. Raises RolloutFailed."""
        ...

    def current_revision(self, deployment_id: str) -> str | None:
        """The revision the deployment runs here (from local state: what runs is adopted)."""

    def supervise(self) -> None:
        """Restart crashed processes of what runs, from local state alone (no control plane)."""

    def remove(self, deployment_id: str) -> None:
        """Stop the deployment and delete its data."""

    def running(self) -> list[Running]: ...
