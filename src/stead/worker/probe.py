"""The HTTP face of `stead worker`: liveness, readiness and metrics, for its orchestrator and
Prometheus."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from stead.api import meta
from stead.config import Settings
from stead.graphs import GraphSpec
from stead.observability.tracing import FASTAPI_TELEMETRY
from stead.runtime import Runtime


def create_worker_app(settings: Settings, specs: dict[str, GraphSpec]) -> FastAPI:
    """Runs the queue, the cron scheduler and the sweepers; serves `/ok`, `/health`, `/ready`
    and `/metrics` and nothing else."""
    runtime = Runtime(settings, specs)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        telemetry=FASTAPI_TELEMETRY,
    )
    app.state.runtime = runtime
    app.include_router(meta.probe_router)
    return app
