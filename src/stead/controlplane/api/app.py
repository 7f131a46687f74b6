"""The control plane's ASGI app: the Deployments API at / and at /api-host, the data-plane paths,
and /ok."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request, Response

from stead.api.responses import json_response
from stead.controlplane.api import console, data_plane, deployments, listeners, revisions
from stead.controlplane.api.deps import API_HOST_PREFIX
from stead.controlplane.services.container import ControlPlaneServices
from stead.errors import ApiError
from stead.storage.database import (
    DATABASE_UNAVAILABLE_DETAIL,
    database_errors,
    is_database_unavailable,
)

logger = logging.getLogger("stead.controlplane")


def create_control_plane_app(services: ControlPlaneServices) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await services.db.migrate()
        try:
            yield
        finally:
            await services.db.close()

    app = FastAPI(
        title="Stead control plane",
        description="The LangSmith Deployments control plane API, self-hosted.",
        lifespan=lifespan,
    )
    app.state.services = services
    for prefix in ("", API_HOST_PREFIX):
        for module in (deployments, revisions, listeners):
            app.include_router(module.router, prefix=prefix)
    app.include_router(data_plane.router)
    app.include_router(data_plane.servers_router)
    app.include_router(data_plane.keys_router)
    app.add_api_route("/ok", _ok, methods=["GET"])
    app.include_router(console.router)
    app.mount("/console", console.console_files(), name="console")
    app.add_exception_handler(ApiError, _api_error)
    for error in database_errors():
        app.add_exception_handler(error, _database_error)
    return app


async def _ok(request: Request) -> Response:
    services: ControlPlaneServices = request.app.state.services
    await services.db.ping()
    return json_response({"ok": True})


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return json_response({"detail": exc.detail}, exc.status_code, headers=exc.headers or None)


async def _database_error(_request: Request, exc: Exception) -> Response:
    if not is_database_unavailable(exc):
        logger.exception("database error", exc_info=exc)
        return json_response({"detail": "Internal Server Error"}, 500)
    return json_response({"detail": DATABASE_UNAVAILABLE_DETAIL}, 503)
