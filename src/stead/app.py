"""The ASGI application: routes, error handlers and the runtime's lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException

from stead import __version__
from stead.api import (
    assistants,
    crons,
    meta,
    runs,
    store,
    thread_protocol,
    thread_streams,
    threads,
)
from stead.api.middleware import (
    BodySizeLimitMiddleware,
    RequestLogMiddleware,
    UnhandledErrorMiddleware,
)
from stead.api.responses import json_response
from stead.api.unknown_fields import UnknownFieldsWarningMiddleware
from stead.auth.middleware import AuthenticationMiddleware
from stead.auth.openapi import with_security
from stead.config import Settings
from stead.errors import ApiError
from stead.graphs import GraphSpec
from stead.http_options import HttpOptions
from stead.observability.tracing import FASTAPI_TELEMETRY
from stead.runtime import Runtime
from stead.services.control_plane_report import reporter_for
from stead.storage.database import (
    DATABASE_UNAVAILABLE_DETAIL,
    database_errors,
    is_database_unavailable,
)

logger = logging.getLogger("stead.api")


# Busiest first: FastAPI tries each route in turn, some 10 µs apiece, and a run's requests came
# after fifty others. No two routes of different modules match the same request, so the order
# decides nothing else; crons comes before runs, whose `/threads/{id}/runs/{run_id}` would
# otherwise be the route a PUT on `/threads/{id}/runs/crons` is refused by (405 and its Allow).
# tests/integration/test_route_order.py checks both.
ROUTERS = (crons, runs, threads, thread_streams, assistants, store, thread_protocol, meta)


def create_app(settings: Settings, specs: dict[str, GraphSpec]) -> Starlette:
    options = HttpOptions.from_settings(settings)
    runtime = Runtime(settings, specs)

    # Only API processes report to a control plane: they are what a deployment's URL reaches.
    reporter = reporter_for(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Mapping[str, Any]]:
        await runtime.start()
        app.state.runtime = runtime
        if reporter is not None:
            reporter.start(runtime.health)
        try:
            async with options.custom_app_lifespan() as state:
                yield state
        finally:
            if reporter is not None:
                await reporter.stop()
            await runtime.stop()

    app = FastAPI(
        title="Stead Agent Server",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        telemetry=FASTAPI_TELEMETRY,
    )
    for module in ROUTERS:
        # The routes themselves, not the router: FastAPI matches an included router's routes
        # through a layer of its own per request, a fifth of a search's CPU.
        app.router.routes.extend(options.served(module.router).routes)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for error in database_errors():
        app.add_exception_handler(error, _database_unavailable)
    app.add_middleware(UnknownFieldsWarningMiddleware)
    if runtime.auth.enabled:
        app.add_middleware(
            AuthenticationMiddleware, options=runtime.auth, api_keys=lambda: runtime.api_keys
        )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_body_bytes)
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(RequestLogMiddleware)
    app.openapi = lambda: with_security(app, runtime.auth)  # type: ignore[method-assign]
    return options.install(app)


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return json_response({"detail": exc.detail}, exc.status_code, headers=exc.headers or None)


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return json_response({"detail": _describe(exc)}, 422)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    # FastAPI answers 400 for a body that is not UTF-8; it is invalid JSON like any other, and
    # the official server answers 422 for that.
    if isinstance(exc.__cause__, UnicodeDecodeError):
        return json_response({"detail": "Invalid JSON in request body"}, 422)
    return json_response({"detail": exc.detail}, exc.status_code, headers=dict(exc.headers or {}))


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    if not is_database_unavailable(exc):
        raise exc
    logger.warning("%s %s: database unavailable (%s)", request.method, request.url.path, exc)
    return json_response({"detail": DATABASE_UNAVAILABLE_DETAIL}, 503)


def _describe(exc: RequestValidationError) -> str:
    problems = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        if error.get("type") == "json_invalid":
            return "Invalid JSON in request body"
        problems.append(f"{location or 'body'}: {error.get('msg')}")
    return "; ".join(problems)
