"""ASGI middleware every request passes: its id and log line, the last word on errors, and
a cap on its body."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stead import serde
from stead.observability.logs import log_context
from stead.observability.metrics import METRICS

logger = logging.getLogger("stead.api")
access_log = logging.getLogger("stead.access")

REQUEST_ID_SCOPE_KEY = "stead.request_id"
# A client's own id is kept when it is short and plain, so it cannot forge log lines.
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Path parameters a request line repeats as fields, to find every line about one resource.
_LOGGED_PATH_IDS = ("thread_id", "run_id", "assistant_id", "cron_id")


class RequestLogMiddleware:
    """Every response says which request it answers (`x-request-id`), taking the client's id
    when it sent a usable one; log lines written meanwhile carry it too. Once the response is
    sent, one line says what was asked, how it was answered and how long that took, and the
    request is counted in the metrics under its route's template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = sent if _CLIENT_REQUEST_ID.fullmatch(sent) else str(uuid.uuid4())
        scope[REQUEST_ID_SCOPE_KEY] = request_id
        started = time.perf_counter()
        # What the client sees if the app fails before it answers: the server's 500.
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with log_context({"request_id": request_id}):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                seconds = time.perf_counter() - started
                _log_request(scope, status, seconds)
                METRICS.observe_request(scope["method"], _route_template(scope), status, seconds)


def _route_template(scope: Scope) -> str:
    """The route's template (`/threads/{thread_id}`), never the raw path: one series per route."""
    route = scope.get("route")
    return getattr(route, "path", None) or "<unmatched>"


def _log_request(scope: Scope, status: int, seconds: float) -> None:
    level = logging.ERROR if status >= 500 else logging.WARNING if status >= 400 else logging.INFO
    if not access_log.isEnabledFor(level):
        return
    method, path = scope["method"], scope["path"]
    latency_ms = round(seconds * 1000)
    route = scope.get("route")
    params = scope.get("path_params") or {}
    fields = {
        "method": method,
        "path": path,
        "route": getattr(route, "path", None),
        "status": status,
        "latency_ms": latency_ms,
        **{key: params[key] for key in _LOGGED_PATH_IDS if key in params},
    }
    access_log.log(level, "%s %s %d %dms", method, path, status, latency_ms, extra=fields)


class UnhandledErrorMiddleware:
    """An error no handler answered is a JSON 500, logged with its traceback, and the
    connection stays open. (Starlette's own last resort answers in plain text and re-raises,
    and uvicorn then closes the client's keep-alive connection.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if started:
                # Half a response cannot be taken back: uvicorn logs it and drops the connection.
                raise
            logger.exception("unhandled error in %s %s", scope["method"], scope["path"])
            body = serde.dumps({"detail": "Internal Server Error"})
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": body})


class BodyTooLarge(HTTPException):
    """An HTTPException so that FastAPI, which turns other errors met while reading a body
    into 400, passes it on to the error handlers as 413."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, _too_large(max_bytes))


class BodySizeLimitMiddleware:
    """Refuse request bodies over `max_bytes` with 413, by their Content-Length when they
    declare one and by counting when they are chunked, before a route reads them whole."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self._max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_bytes:
            await self._refuse(send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max_bytes:
                    raise BodyTooLarge(self._max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = serde.dumps({"detail": _too_large(self._max_bytes)})
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _too_large(max_bytes: int) -> str:
    return f"Request body exceeds {max_bytes} bytes"
