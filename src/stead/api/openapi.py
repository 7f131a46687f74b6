"""What the OpenAPI document promises about responses: bodies, status codes, media types.

Routes return their own `Response` objects, so FastAPI cannot infer any of this; each route states
it here instead (bodies are described in stead.api.resources), and the schemathesis fuzz test
holds the server to it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

_ERROR_DESCRIPTIONS = {
    400: "Bad Request",
    404: "Not Found",
    409: "Conflict",
    422: "Validation Error",
    424: "The graph could not be built",
}


class ErrorBody(BaseModel):
    """Every error, validation errors included, is `{"detail": "<message>"}` as on the official
    server (not FastAPI's list of validation problems)."""

    detail: str


def returns(body: Any, description: str = "Successful Response") -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry documenting a route's 200 body. Only the document uses `body`: the
    route's own Response goes out as it is, unvalidated."""
    return {200: {"model": body, "description": description}}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry documenting the error statuses a route can answer."""
    return {code: {"model": ErrorBody, "description": _ERROR_DESCRIPTIONS[code]} for code in codes}


# `/metrics`: Prometheus text, or the official server's JSON summary with `?format=json`.
METRICS_BODY: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Prometheus metrics",
        "content": {
            "text/plain": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}


# With `response_class=Response` (no media type) FastAPI documents no JSON body for 200 and puts
# error bodies under application/json; this then documents the stream itself.
EVENT_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-Sent Events",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}
