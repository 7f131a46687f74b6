"""Liveness and server information."""

from __future__ import annotations

from fastapi import APIRouter, Response
from langgraph.version import __version__ as langgraph_version

from stead import __version__
from stead.api.openapi import returns
from stead.api.resources import Ok, ServerInfo
from stead.api.responses import json_response

router = APIRouter(tags=["meta"])


@router.get("/", responses=returns(Ok))
@router.get("/ok", responses=returns(Ok))
@router.get("/health", responses=returns(Ok))
async def ok() -> Response:
    """Liveness: load balancers probe `/`, the SDKs and the official charts probe `/ok`."""
    return json_response({"ok": True, "services": {}})


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
