"""A custom app for `http.app`: its own routes, one that tries to shadow /ok, and an inbox
that relative webhook URLs can post to."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request


@contextlib.asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": "set by the custom app's lifespan"}


app = FastAPI(lifespan=lifespan)
inbox: list[Any] = []


@app.get("/custom/hello")
async def hello(request: Request) -> dict[str, Any]:
    return {"hello": "from the custom app", "greeting": request.state.greeting}


@app.get("/ok")
async def shadow_ok() -> dict[str, Any]:
    return {"shadowed": True}


@app.get("/info")
async def shadow_info() -> dict[str, Any]:
    return {"custom_info": True}


@app.post("/custom/inbox")
async def receive(request: Request) -> dict[str, Any]:
    inbox.append({"headers": dict(request.headers), "body": await request.json()})
    return {"received": len(inbox)}


@app.get("/custom/inbox")
async def read_inbox() -> list[Any]:
    return inbox
