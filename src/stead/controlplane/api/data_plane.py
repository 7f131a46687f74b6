"""/v1/data-plane: what listeners call, authenticated by their enrollment key. Stead's own paths
(the official listener protocol is not public); `stead listener` is their client."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Response
from fastapi.responses import FileResponse

from stead.controlplane.api.deps import CallingListener, Services, bearer_token
from stead.controlplane.api.models import Heartbeat, LogBatch, ServerReport, StatusReport, dumped
from stead.errors import NotFound

router = APIRouter(prefix="/v1/data-plane/listeners/{listener_id}")
servers_router = APIRouter(prefix="/v1/data-plane/servers")
keys_router = APIRouter(prefix="/v1/data-plane/keys")


@keys_router.post("/check")
async def check_key(
    services: Services, authorization: Annotated[str | None, Header()] = None
) -> dict[str, Any]:
    """Whether this control plane accepts the enrollment key, changing nothing (`stead doctor`)."""
    return await services.data_plane.check_key(bearer_token(authorization))


@servers_router.post("/heartbeat")
async def server_heartbeat(
    body: ServerReport,
    services: Services,
    authorization: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """A server started with DEPLOYMENT_TYPE=self_hosted_data_plane reporting on its own."""
    return await services.data_plane.server_report(bearer_token(authorization), dumped(body))


@router.get("/deployments")
async def desired_state(listener: CallingListener, services: Services) -> dict[str, Any]:
    return {"deployments": await services.data_plane.desired_state(listener)}


@router.post("/heartbeat", status_code=204)
async def heartbeat(body: Heartbeat, listener: CallingListener, services: Services) -> Response:
    await services.data_plane.heartbeat(listener, dumped(body))
    return Response(status_code=204)


@router.post("/revisions/{revision_id}/status", status_code=204)
async def report_status(
    revision_id: str, body: StatusReport, listener: CallingListener, services: Services
) -> Response:
    await services.data_plane.report_status(
        listener, revision_id, body.status, body.message, body.url
    )
    return Response(status_code=204)


@router.post("/revisions/{revision_id}/logs", status_code=204)
async def append_logs(
    revision_id: str, body: LogBatch, listener: CallingListener, services: Services
) -> Response:
    lines = [line.model_dump() for line in body.lines]
    await services.data_plane.append_logs(listener, revision_id, body.type, lines)
    return Response(status_code=204)


@router.get("/revisions/{revision_id}/source")
async def source_tarball(
    revision_id: str, listener: CallingListener, services: Services
) -> FileResponse:
    path = await services.data_plane.source_tarball(listener, revision_id)
    if not path.exists():
        raise NotFound(f"The source tarball of revision {revision_id} is gone.")
    return FileResponse(path, media_type="application/gzip")


@router.post("/deployments/{deployment_id}/deleted", status_code=204)
async def confirm_deleted(
    deployment_id: str, listener: CallingListener, services: Services
) -> Response:
    await services.data_plane.confirm_deleted(listener, deployment_id)
    return Response(status_code=204)
