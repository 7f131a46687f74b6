"""What the API shows of stored rows: secrets masked, and a deployment whose listener (or whose
own server) stopped reporting shown as UNKNOWN."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from stead.controlplane.services import statuses
from stead.controlplane.services.secrets import SecretBox, masked


def is_online(last_heartbeat_at: datetime | None, now: datetime, timeout: timedelta) -> bool:
    return last_heartbeat_at is not None and now - last_heartbeat_at <= timeout


def listener_view(row: dict[str, Any], now: datetime, timeout: timedelta) -> dict[str, Any]:
    heartbeat = row["heartbeat"] or {}
    return {
        "id": row["id"],
        "tenant_id": row["tenant_id"],
        "compute_type": row["compute_type"],
        "compute_id": row["compute_id"],
        "compute_config": row["compute_config"],
        "version": row["version"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        # Stead's additions: whether it reports, and what it said last.
        "status": "ONLINE" if is_online(row["last_heartbeat_at"], now, timeout) else "OFFLINE",
        "last_heartbeat_at": row["last_heartbeat_at"],
        "backend": heartbeat.get("backend"),
    }


def deployment_view(
    row: dict[str, Any],
    latest_revision: dict[str, Any] | None,
    box: SecretBox,
    reporter_online: bool,
) -> dict[str, Any]:
    """`reporter_online`: its listener's (or its own server's) heartbeats are recent."""
    status = row["status"]
    if status == statuses.READY and not reporter_online:
        status = statuses.UNKNOWN
    return {
        "id": row["id"],
        "tenant_id": row["tenant_id"],
        "name": row["name"],
        "source": row["source"],
        "source_config": row["source_config"],
        "source_revision_config": (latest_revision or {}).get("source_revision_config") or {},
        "secrets": masked(box.open(row["secrets"])),
        "secret_references": row["secret_references"],
        "status": status,
        "latest_revision_id": row["latest_revision_id"],
        "active_revision_id": row["active_revision_id"],
        "image_version": row["image_version"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        # Stead's additions: who keeps it running, and what a self-reporting server said last.
        "managed_by": row["managed_by"],
        "last_heartbeat_at": row["last_heartbeat_at"],
        "health": (row["heartbeat"] or {}).get("health"),
    }


def revision_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "deployment_id": row["deployment_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "source": row["source"],
        "source_revision_config": row["source_revision_config"],
        "resource_spec": row["resource_spec"],
        "status": row["status"],
        "status_message": row["status_message"],
    }
