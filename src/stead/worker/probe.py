"""The HTTP face of `stead worker`: only liveness, for the orchestrator's probes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from stead.config import Settings
from stead.graphs import GraphSpec
from stead.runtime import Runtime


def create_worker_app(settings: Settings, specs: dict[str, GraphSpec]) -> Starlette:
    """Runs the queue, the cron scheduler and the sweepers; serves `/ok` and nothing else."""
    runtime = Runtime(settings, specs)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    async def ok(_request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "services": {}})

    return Starlette(
        routes=[Route("/ok", ok), Route("/health", ok)],
        lifespan=lifespan,
    )
