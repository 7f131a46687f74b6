"""Authentication for every request but the open paths, before any route runs: streams, waits
and custom routes cannot be reached around it."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from stead import serde
from stead.auth.api_keys import ApiKeys
from stead.auth.options import AuthOptions
from stead.auth.user import AuthUser
from stead.errors import ApiError, AuthError
from stead.storage.database import (
    DATABASE_UNAVAILABLE_DETAIL,
    database_errors,
    is_database_unavailable,
)

USER_SCOPE_KEY = "stead.user"


class AuthenticationMiddleware:
    def __init__(self, app: ASGIApp, options: AuthOptions, api_keys: Callable[[], ApiKeys]) -> None:
        self.app = app
        self._options = options
        # A getter: the keys live in the database, which opens when the app starts.
        self._api_keys = api_keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self._is_open(scope):
            await self.app(scope, receive, send)
            return
        # A WebSocket handshake is authenticated as the GET request it is, with its headers.
        request = Request({**scope, "type": "http", "method": "GET"})
        try:
            scope[USER_SCOPE_KEY] = await self._authenticate(request)
        except ApiError as exc:
            refuse = _refuse_socket if scope["type"] == "websocket" else _refuse
            await refuse(exc, scope, receive, send)
            return
        except database_errors() as exc:
            # The app's error handlers sit inside this middleware; answer as they would.
            if not is_database_unavailable(exc):
                raise
            await _refuse(AuthError(503, DATABASE_UNAVAILABLE_DETAIL), scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _is_open(self, scope: Scope) -> bool:
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        if self._options.is_open(path):
            return True
        # CORS preflights carry no credentials; the CORS middleware answers them.
        return scope.get("method") == "OPTIONS" and any(
            name == b"access-control-request-method" for name, _ in scope["headers"]
        )

    async def _authenticate(self, request: Request) -> AuthUser:
        user: AuthUser | None = None
        if self._options.api_keys:
            secret = request.headers.get("x-api-key")
            user = await self._api_keys().user_for(secret) if secret else None
            if user is None:
                raise AuthError(401, "Missing or invalid API key (x-api-key header)")
        custom = self._options.custom
        if custom is not None and custom.authenticates:
            user = await custom.authenticate(request)
        assert user is not None
        return user


async def _refuse(exc: ApiError, scope: Scope, receive: Receive, send: Send) -> None:
    headers = [(b"content-type", b"application/json")]
    headers += [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
    await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": serde.dumps({"detail": exc.detail})})


async def _refuse_socket(exc: ApiError, scope: Scope, receive: Receive, send: Send) -> None:
    """Accept, then close with 4000 + the status: a browser cannot read a refused upgrade's."""
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": 4000 + exc.status_code, "reason": exc.detail})
