"""The ASGI application: routes, error handlers and the runtime's lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import psycopg
import sqlalchemy as sa
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from psycopg_pool import PoolTimeout
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException

from stead import __version__
from stead.api import assistants, crons, meta, runs, store, thread_streams, threads
from stead.api.responses import json_response
from stead.config import Settings
from stead.errors import ApiError
from stead.graphs import GraphSpec
from stead.http_options import HttpOptions
from stead.runtime import Runtime

logger = logging.getLogger("stead.api")

# Raised while the database is unreachable (down, restarting, pools exhausted): worth a retry.
_DATABASE_UNAVAILABLE = (
    sa.exc.DBAPIError,
    sa.exc.TimeoutError,
    psycopg.OperationalError,
    PoolTimeout,
)


def create_app(settings: Settings, specs: dict[str, GraphSpec]) -> Starlette:
    options = HttpOptions.from_settings(settings)
    runtime = Runtime(settings, specs)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Mapping[str, Any]]:
        await runtime.start()
        app.state.runtime = runtime
        try:
            async with options.custom_app_lifespan() as state:
                yield state
        finally:
            await runtime.stop()

    app = FastAPI(
        title="Stead Agent Server",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    for module in (meta, assistants, threads, thread_streams, crons, runs, store):
        app.include_router(options.served(module.router))
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for error in _DATABASE_UNAVAILABLE:
        app.add_exception_handler(error, _database_unavailable)
    return options.install(app)


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return json_response({"detail": exc.detail}, exc.status_code)


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
    if isinstance(exc, sa.exc.DBAPIError) and not _is_connection_error(exc):
        raise exc
    logger.warning("%s %s: database unavailable (%s)", request.method, request.url.path, exc)
    return json_response({"detail": "Database unavailable; retry shortly"}, 503)


def _is_connection_error(exc: sa.exc.DBAPIError) -> bool:
    return exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError)


def _describe(exc: RequestValidationError) -> str:
    problems = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        if error.get("type") == "json_invalid":
            return "Invalid JSON in request body"
        problems.append(f"{location or 'body'}: {error.get('msg')}")
    return "; ".join(problems)
