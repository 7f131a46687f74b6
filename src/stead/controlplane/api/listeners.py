"""/v2/listeners: the data planes registered in the caller's workspace."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response

from stead.controlplane.api.deps import CallerTenant, Services
from stead.controlplane.api.models import ListenerCreate, ListenerPatch, dumped

router = APIRouter()


@router.get("/v2/listeners")
async def list_listeners(
    services: Services,
    tenant: CallerTenant,
    limit: int = Query(20, ge=1, le=100),
    offset: int = Query(0, ge=0),
) -> dict[str, Any]:
    resources = await services.listeners.page(tenant.id, limit, offset)
    return {"resources": resources, "offset": offset + len(resources)}


@router.post("/v2/listeners", status_code=201)
async def create_listener(
    body: ListenerCreate, services: Services, tenant: CallerTenant
) -> dict[str, Any]:
    return await services.listeners.create(tenant.id, dumped(body))


@router.get("/v2/listeners/{listener_id}")
async def get_listener(
    listener_id: str, services: Services, tenant: CallerTenant
) -> dict[str, Any]:
    return await services.listeners.get(tenant.id, listener_id)


@router.patch("/v2/listeners/{listener_id}")
async def patch_listener(
    listener_id: str, body: ListenerPatch, services: Services, tenant: CallerTenant
) -> dict[str, Any]:
    return await services.listeners.patch(tenant.id, listener_id, dumped(body))


@router.delete("/v2/listeners/{listener_id}", status_code=204)
async def delete_listener(listener_id: str, services: Services, tenant: CallerTenant) -> Response:
    await services.listeners.delete(tenant.id, listener_id)
    return Response(status_code=204)
