"""Listeners: one per data plane (a cluster, a host), registered by a tenant and then run there as
`stead listener` with the listener's id and an enrollment key."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from stead.controlplane.services.views import listener_view
from stead.controlplane.storage import ControlPlaneDatabase, ControlPlaneTransaction
from stead.errors import BadRequest, Conflict, NotFound
from stead.ids import new_random_id
from stead.services.assistants import now_utc

# The official API knows only "k8s"; Stead's listeners also run processes and containers.
COMPUTE_TYPES = ("k8s", "process", "docker")


class Listeners:
    def __init__(self, db: ControlPlaneDatabase, heartbeat_timeout: timedelta) -> None:
        self._db = db
        self._heartbeat_timeout = heartbeat_timeout

    async def create(self, tenant_id: str, request: dict[str, Any]) -> dict[str, Any]:
        compute_type = request.get("compute_type") or "k8s"
        if compute_type not in COMPUTE_TYPES:
            raise BadRequest(f"compute_type must be one of {', '.join(COMPUTE_TYPES)}.")
        now = now_utc()
        record = {
            "id": new_random_id(),
            "tenant_id": tenant_id,
            "compute_type": compute_type,
            "compute_id": request["compute_id"],
            "compute_config": request.get("compute_config") or {"k8s_namespaces": []},
            "version": request.get("version"),
            "created_at": now,
            "updated_at": now,
            "last_heartbeat_at": None,
            "heartbeat": None,
        }
        async with self._db.transaction() as tx:
            if await tx.listeners.find_by_compute_id(tenant_id, record["compute_id"]):
                raise Conflict(
                    f"Listener with compute_id {record['compute_id']} already exists in this "
                    "workspace."
                )
            await tx.listeners.insert(record)
        return listener_view(record, now, self._heartbeat_timeout)

    async def page(self, tenant_id: str, limit: int, offset: int) -> list[dict[str, Any]]:
        async with self._db.transaction() as tx:
            rows = await tx.listeners.select(tenant_id, limit, offset)
        now = now_utc()
        return [listener_view(row, now, self._heartbeat_timeout) for row in rows]

    async def get(self, tenant_id: str, listener_id: str) -> dict[str, Any]:
        async with self._db.transaction() as tx:
            row = await _listener(tx, tenant_id, listener_id)
        return listener_view(row, now_utc(), self._heartbeat_timeout)

    async def patch(
        self, tenant_id: str, listener_id: str, change: dict[str, Any]
    ) -> dict[str, Any]:
        values = {k: v for k, v in change.items() if k in ("version", "compute_config") and v}
        async with self._db.transaction() as tx:
            await _listener(tx, tenant_id, listener_id)
            await tx.listeners.update(listener_id, {**values, "updated_at": now_utc()})
            row = await _listener(tx, tenant_id, listener_id)
        return listener_view(row, now_utc(), self._heartbeat_timeout)

    async def delete(self, tenant_id: str, listener_id: str) -> None:
        async with self._db.transaction() as tx:
            await _listener(tx, tenant_id, listener_id)
            placed = await tx.deployments.count_on_listener(listener_id)
            if placed:
                raise Conflict(
                    f"Listener ID {listener_id} still runs {placed} deployment(s); delete them "
                    "first."
                )
            await tx.listeners.delete(listener_id)


async def _listener(
    tx: ControlPlaneTransaction, tenant_id: str, listener_id: str
) -> dict[str, Any]:
    found = await tx.listeners.get(tenant_id, listener_id)
    if found is None:
        raise NotFound(f"Listener ID {listener_id} not found.")
    return found
