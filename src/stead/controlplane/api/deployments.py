"""/v2/deployments: the deployments of the caller's workspace, and their source uploads."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response

from stead.api.responses import json_response
from stead.controlplane.api.deps import CallerTenant, Services, public_base_url
from stead.controlplane.api.models import (
    DeploymentCreate,
    DeploymentPatch,
    UploadUrlRequest,
    dumped,
)
from stead.controlplane.services import statuses
from stead.controlplane.storage.deployments import DeploymentFilter
from stead.errors import BadRequest

router = APIRouter()

_MAX_BULK_DELETE = 100


@router.get("/v2/deployments")
async def list_deployments(
    services: Services,
    tenant: CallerTenant,
    limit: int = Query(20, ge=1, le=100),
    offset: int = Query(0, ge=0),
    name: str | None = None,
    name_contains: str | None = None,
    status: str | None = None,
    deployment_ids: str | None = None,
) -> dict[str, Any]:
    where = DeploymentFilter(
        name=name,
        name_contains=name_contains,
        statuses=csv(status, statuses.DEPLOYMENT_STATUSES, "status"),
        ids=csv(deployment_ids),
    )
    resources = await services.deployments.page(tenant.id, where, limit, offset)
    return {"resources": resources, "offset": offset + len(resources)}


@router.post("/v2/deployments", status_code=201)
async def create_deployment(
    body: DeploymentCreate, services: Services, tenant: CallerTenant
) -> dict[str, Any]:
    return await services.deployments.create(tenant.id, dumped(body))


@router.delete("/v2/deployments")
async def delete_deployments(
    services: Services, tenant: CallerTenant, deployment_ids: str = Query(...)
) -> Response:
    ids = csv(deployment_ids)
    if not ids or len(ids) > _MAX_BULK_DELETE:
        raise BadRequest(f"deployment_ids must name 1 to {_MAX_BULK_DELETE} deployments.")
    result = await services.deployments.delete_many(tenant.id, list(ids))
    return json_response(result, 207 if result["failed"] else 200)


@router.get("/v2/deployments/{deployment_id}")
async def get_deployment(
    deployment_id: str, services: Services, tenant: CallerTenant
) -> dict[str, Any]:
    return await services.deployments.get(tenant.id, deployment_id)


@router.patch("/v2/deployments/{deployment_id}")
async def patch_deployment(
    deployment_id: str, body: DeploymentPatch, services: Services, tenant: CallerTenant
) -> dict[str, Any]:
    return await services.deployments.patch(tenant.id, deployment_id, dumped(body))


@router.delete("/v2/deployments/{deployment_id}", status_code=204)
async def delete_deployment(
    deployment_id: str,
    services: Services,
    tenant: CallerTenant,
    delete_tracing_project: bool = False,
) -> Response:
    await services.deployments.delete(tenant.id, deployment_id)
    return Response(status_code=204)


@router.post("/v2/deployments/{deployment_id}/upload-url")
async def upload_url(
    deployment_id: str,
    request: Request,
    services: Services,
    tenant: CallerTenant,
    body: UploadUrlRequest | None = None,
) -> dict[str, Any]:
    return await services.uploads.upload_url(tenant.id, deployment_id, public_base_url(request))


@router.post("/v2/deployments/{deployment_id}/push-token")
async def push_token(deployment_id: str, services: Services, tenant: CallerTenant) -> None:
    await services.deployments.get(tenant.id, deployment_id)
    raise BadRequest(
        "Push tokens are only available for 'internal_docker' source deployments, which Stead "
        "does not host: push to your own registry and deploy the image as external_docker."
    )


@router.put("/v2/uploads/{token}", status_code=200)
async def receive_upload(token: str, request: Request, services: Services) -> Response:
    """The upload URL's target: its token is the credential, as a signed URL's signature is."""
    await services.uploads.receive(token, request.stream())
    return Response(status_code=200)


def csv(
    value: str | None, allowed: tuple[str, ...] | None = None, name: str = ""
) -> tuple[str, ...]:
    items = tuple(item.strip() for item in (value or "").split(",") if item.strip())
    unknown = [item for item in items if allowed is not None and item not in allowed]
    if unknown:
        raise BadRequest(f"{name} must be among {', '.join(allowed or ())}; got {unknown[0]}.")
    return items
