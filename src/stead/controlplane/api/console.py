"""The console: one page and its script, no build step. It calls the /v2 API with the user's key.
It is served at / and at the dashboard paths the official CLI prints (/o/{tenant}/host/...)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"

router = APIRouter(include_in_schema=False)


@router.get("/")
@router.get("/o/{tenant_id}/host/deployments/{deployment_id}")
async def console_page() -> FileResponse:
    return FileResponse(CONSOLE_DIR / "index.html", media_type="text/html")


def console_files() -> StaticFiles:
    return StaticFiles(directory=CONSOLE_DIR)
