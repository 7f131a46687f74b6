"""What routes are given: the services, the caller's tenant, or the calling listener."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Request

from stead.controlplane.services.container import ControlPlaneServices
from stead.controlplane.services.tenants import Tenant

API_HOST_PREFIX = "/api-host"


def services(request: Request) -> ControlPlaneServices:
    found: ControlPlaneServices = request.app.state.services
    return found


Services = Annotated[ControlPlaneServices, Depends(services)]


async def tenant(
    request: Request,
    x_api_key: Annotated[str | None, Header()] = None,
    x_tenant_id: Annotated[str | None, Header()] = None,
) -> Tenant:
    return await services(request).keys.tenant_for(x_api_key, x_tenant_id)


CallerTenant = Annotated[Tenant, Depends(tenant)]


async def listener(
    request: Request,
    listener_id: str,
    authorization: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """The listener whose enrollment key (`Authorization: Bearer KEY`) the request carries."""
    return await services(request).data_plane.listener(listener_id, bearer_token(authorization))


CallingListener = Annotated[dict[str, Any], Depends(listener)]


def bearer_token(authorization: str | None) -> str | None:
    return (authorization or "").removeprefix("Bearer ").strip() or None


def public_base_url(request: Request) -> str:
    """The control plane's URL as the caller reached it, with /api-host when it used that."""
    base = str(request.base_url).rstrip("/")
    prefixed = request.url.path.startswith(API_HOST_PREFIX + "/")
    return base + API_HOST_PREFIX if prefixed else base
