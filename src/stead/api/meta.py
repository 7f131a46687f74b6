"""Liveness, readiness, metrics and server information."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from langgraph.version import __version__ as langgraph_version

from stead import __version__
from stead.api.openapi import METRICS_BODY, returns
from stead.api.resources import Ok, Readiness, ServerInfo
from stead.api.responses import json_response
from stead.observability.metrics import CONTENT_TYPE, METRICS
from stead.services.health import Health

# What `stead worker` serves too, for its orchestrator and Prometheus.
probe_router = APIRouter(tags=["meta"])

# What a live process answers to its liveness probes.
ALIVE = {"ok": True, "services": {}}


def _health(request: Request) -> Health:
    """The runtime's health checks (the runtime is not imported here: http_options, which
    the runtime imports, keeps this router's liveness route)."""
    health: Health = request.app.state.runtime.health
    return health


@probe_router.get("/ok", responses=returns(Ok))
@probe_router.get("/health", responses=returns(Ok))
async def ok(request: Request, check_db: str = "") -> Response:
    """Liveness: load balancers probe `/`, the SDKs and the official charts probe `/ok`;
    `?check_db=1` also asks the database, as on the official server (any other value does not)."""
    if check_db in ("1", "true") and not await _health(request).database_answers():
        return json_response({"ok": False, "services": {"database": "unavailable"}}, 503)
    return json_response(ALIVE)


@probe_router.get(
    "/ready",
    responses={
        **returns(Readiness),
        503: {"model": Readiness, "description": "Not ready: the failed checks say why"},
    },
)
async def ready(request: Request) -> Response:
    """Readiness: 200 once the database answers with a current schema, Redis answers (when
    configured) and the graphs are loaded; else 503 naming what failed."""
    checks = await _health(request).readiness()
    ready = all(state == "ok" for state in checks.values())
    return json_response({"ready": ready, "checks": checks}, 200 if ready else 503)


@probe_router.get("/metrics", response_class=Response, responses=METRICS_BODY)
async def metrics(request: Request, format: str = "prometheus") -> Response:
    """Prometheus text, or the official server's JSON summary with `?format=json` (any other
    value gives the text, as on the official server)."""
    queue = await _health(request).refresh_metrics()
    if format == "json":
        return json_response(METRICS.render_json(queue))
    return Response(METRICS.render(), media_type=CONTENT_TYPE)


router = APIRouter(tags=["meta"])
router.add_api_route("/", ok, methods=["GET"], responses=returns(Ok))
# The probes' routes themselves: FastAPI matches an included router's routes through a layer of
# its own per request (6 µs of a probe's 158).
router.routes.extend(probe_router.routes)


@router.get("/info", responses=returns(ServerInfo))
async def info() -> Response:
    return json_response(
        {
            "version": __version__,
            "langgraph_py_version": langgraph_version,
            "flags": {
                "assistants": True,
                "crons": True,
                "langsmith": False,
                "langsmith_tracing_replicas": False,
                "langsmith_tracing_session_on_runs": False,
            },
            "host": {
                "kind": "self-hosted",
                "project_id": None,
                "host_revision_id": None,
                "revision_id": None,
                "tenant_id": None,
            },
        }
    )
