"""The thread streaming protocol: `POST /threads/{id}/commands`, and the thread's events on
`POST /threads/{id}/stream/events` (server-sent events) or a WebSocket on the same path."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response, WebSocket, WebSocketDisconnect
from pydantic import ValidationError
from starlette.requests import HTTPConnection

from stead import serde
from stead.api.authorization import on_thread
from stead.api.deps import AuthzDep, RuntimeDep, request_id, require_uuid
from stead.api.models import RunCreate
from stead.api.openapi import EVENT_STREAM, ErrorBody, errors, returns
from stead.api.resources import ProtocolAnswer
from stead.api.responses import json_response, sse_frame, sse_response
from stead.api.routing import DirectRoute
from stead.api.runs import authorized_run
from stead.auth.middleware import USER_SCOPE_KEY
from stead.auth.policy import Authorizer
from stead.broker import StreamEvent, ThreadEvent
from stead.errors import ApiError, BadRequest
from stead.protocol.filters import EventFilter, event_filter, replay_point
from stead.runtime import Runtime
from stead.services.runs import RunRequest
from stead.services.thread_protocol import (
    INVALID_ARGUMENT,
    NO_SUCH_SUBSCRIPTION,
    NOT_SUPPORTED,
    UNKNOWN_COMMAND,
    CommandError,
    filtered,
)
from stead.storage.access import Access

router = APIRouter(
    tags=["thread protocol"], responses=errors(400, 404, 422), route_class=DirectRoute
)

Envelope = dict[str, Any]


@router.post(
    "/threads/{thread_id}/commands",
    responses={
        **returns(ProtocolAnswer),
        400: {
            "model": ProtocolAnswer | ErrorBody,
            "description": "A malformed command (the envelope) or a body that is not JSON",
        },
    },
)
async def run_command(
    thread_id: str, request: Request, rt: RuntimeDep, authz: AuthzDep
) -> Response:
    require_uuid(thread_id, "thread")
    try:
        command = serde.loads(await request.body())
    except ValueError:
        raise BadRequest("Invalid JSON body") from None
    if not _is_command(command):
        return json_response(_malformed(_command_id(command)), status_code=400)
    commands = _Commands(rt, authz, thread_id, request, subscriptions=None)
    return json_response(await commands.answer(command))


@router.post("/threads/{thread_id}/stream/events", response_class=Response, responses=EVENT_STREAM)
async def stream_thread_events(
    thread_id: str, request: Request, rt: RuntimeDep, authz: AuthzDep
) -> Response:
    access = await on_thread(authz, "read", thread_id)
    try:
        params = serde.loads(await request.body())
    except ValueError:
        raise BadRequest("Invalid JSON body") from None
    if not isinstance(params, dict):
        raise BadRequest("The body must be an object")
    wanted, since = event_filter(params), replay_point(params)
    stack = contextlib.AsyncExitStack()
    feed = await stack.enter_async_context(rt.thread_protocol.follow(thread_id, since, access))

    async def frames() -> AsyncIterator[bytes | StreamEvent]:
        # One chunk per batch: a socket write per event costs more than the event itself.
        async for batch in filtered(feed, wanted):
            yield b"".join(sse_frame(_sse_event(event)) for event in batch)
        if feed.lost:
            yield StreamEvent("error", serde.dumps(_stream_lost()))

    return sse_response(frames(), {}, stack.aclose)


@router.websocket("/threads/{thread_id}/stream/events")
async def thread_events_socket(websocket: WebSocket, thread_id: str) -> None:
    rt: Runtime = websocket.app.state.runtime
    authz = Authorizer(rt.auth.custom, websocket.scope.get(USER_SCOPE_KEY))
    await websocket.accept()
    try:
        access = await on_thread(authz, "read", thread_id)
        await rt.thread_protocol.check_followable(thread_id, access)
    except ApiError as exc:
        # A browser cannot read a refused upgrade's status, so it comes as 4000 + status.
        await websocket.close(code=4000 + exc.status_code, reason=exc.detail[:120])
        return
    session = _SocketSession(websocket, rt, access)
    commands = _Commands(rt, authz, thread_id, websocket, subscriptions=session)
    try:
        while True:
            try:
                command = serde.loads(await websocket.receive_text())
            except ValueError:
                await session.send(_malformed(None, "Frames must be JSON command envelopes."))
                continue
            if not _is_command(command):
                await session.send(_malformed(_command_id(command)))
                continue
            await session.send(await commands.answer(command))
            session.answered()
    except WebSocketDisconnect:
        pass
    finally:
        await session.close()


class _SocketSession:
    """The subscriptions of one WebSocket, each pumping its filtered events onto the socket."""

    def __init__(self, websocket: WebSocket, rt: Runtime, access: Access) -> None:
        self._websocket = websocket
        self._rt = rt
        self._access = access
        self._pumps: dict[str, asyncio.Task[None]] = {}
        self._unanswered: list[asyncio.Event] = []
        self._sending = asyncio.Lock()

    async def send(self, message: Envelope | bytes) -> None:
        data = message if isinstance(message, bytes) else serde.dumps(message)
        async with self._sending:
            await self._websocket.send_text(data.decode())

    async def subscribe(self, thread_id: str, params: dict[str, Any]) -> Envelope:
        """Start delivering a subscription's events, once its answer has been sent."""
        wanted, since = event_filter(params), replay_point(params)
        subscription_id = str(uuid.uuid4())
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        answered = asyncio.Event()
        pump = asyncio.create_task(self._pump(thread_id, wanted, since, ready, answered))
        self._pumps[subscription_id] = pump
        self._unanswered.append(answered)
        return {"subscription_id": subscription_id, "replayed_events": await ready}

    def answered(self) -> None:
        """The answers to the commands so far are sent: their subscriptions may deliver."""
        for answered in self._unanswered:
            answered.set()
        self._unanswered.clear()

    def unsubscribe(self, subscription_id: str) -> bool:
        pump = self._pumps.pop(subscription_id, None)
        if pump is not None:
            pump.cancel()
        return pump is not None

    async def close(self) -> None:
        for pump in self._pumps.values():
            pump.cancel()
        for pump in self._pumps.values():
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await pump
        self._pumps.clear()

    async def _pump(
        self,
        thread_id: str,
        wanted: EventFilter,
        since: int | None,
        ready: asyncio.Future[int],
        answered: asyncio.Event,
    ) -> None:
        try:
            async with self._rt.thread_protocol.follow(thread_id, since, self._access) as feed:
                replayed = [event for event in feed.take_replayed() if wanted.wants(event)]
                ready.set_result(len(replayed))
                await answered.wait()
                for event in replayed:
                    await self.send(event.envelope())
                async for batch in filtered(feed, wanted):
                    for event in batch:
                        await self.send(event.envelope())
                if feed.lost:
                    await self.send(_stream_lost())
        except ApiError as exc:
            if ready.done():
                raise
            ready.set_exception(exc)


class _Commands:
    """Answers protocol commands with their success or error envelope."""

    def __init__(
        self,
        rt: Runtime,
        authz: Authorizer,
        thread_id: str,
        connection: HTTPConnection,
        subscriptions: _SocketSession | None,
    ) -> None:
        self._rt = rt
        self._connection = connection
        self._request_id = request_id(connection)
        self._authz = authz
        self._thread_id = thread_id
        self._subscriptions = subscriptions
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[Envelope]]] = {
            "run.start": self._start_run,
            "input.respond": self._respond,
            "agent.getTree": self._agent_tree,
            "subscription.subscribe": self._subscribe,
            "subscription.unsubscribe": self._unsubscribe,
            "subscription.reconnect": self._reconnect,
        }

    async def answer(self, command: dict[str, Any]) -> Envelope:
        command_id = command["id"]
        handler = self._handlers.get(command["method"])
        if handler is None:
            return _error(
                command_id, UNKNOWN_COMMAND, f"Unknown protocol command: {command['method']}"
            )
        params = command.get("params") or {}
        if not isinstance(params, dict):
            return _error(command_id, INVALID_ARGUMENT, "params must be an object")
        # Read before the command acts: a run it starts may have written events by the time it
        # returns, and a client resuming after this seq must get them.
        applied = await self._rt.thread_protocol.applied_through(self._thread_id)
        try:
            result = await handler(params)
        except CommandError as exc:
            return _error(command_id, exc.code, exc.message)
        except ApiError as exc:
            error = CommandError.from_api_error(exc)
            return _error(command_id, error.code, error.message)
        meta = {} if applied is None else {"applied_through_seq": applied}
        return {"type": "success", "id": command_id, "result": result, "meta": meta}

    async def _start_run(self, params: dict[str, Any]) -> Envelope:
        if not isinstance(params.get("assistant_id"), str):
            raise CommandError(INVALID_ARGUMENT, "run.start requires an assistant_id.")
        body = _run_body(params)
        run_request, access = await self._authorized(body)
        run = await self._rt.thread_protocol.start_run(
            self._thread_id, run_request, self._request_id, access
        )
        return {"run_id": run["run_id"]}

    async def _respond(self, params: dict[str, Any]) -> Envelope:
        responses = _responses(params)
        command = {key: params[key] for key in ("update", "goto") if params.get(key) is not None}
        body = _run_body({"assistant_id": "", "input": None, "command": command or None})
        run_request, access = await self._authorized(body)
        await self._rt.thread_protocol.respond(
            self._thread_id, responses, run_request, self._request_id, access
        )
        return {}

    async def _agent_tree(self, params: dict[str, Any]) -> Envelope:
        access = await on_thread(self._authz, "read", self._thread_id)
        return await self._rt.thread_protocol.agent_tree(self._thread_id, access)

    async def _subscribe(self, params: dict[str, Any]) -> Envelope:
        return await self._session().subscribe(self._thread_id, params)

    async def _unsubscribe(self, params: dict[str, Any]) -> Envelope:
        subscription_id = params.get("subscription_id")
        if not isinstance(subscription_id, str) or not self._session().unsubscribe(subscription_id):
            raise CommandError(NO_SUCH_SUBSCRIPTION, f"Unknown subscription: {subscription_id}")
        return {}

    async def _reconnect(self, params: dict[str, Any]) -> Envelope:
        self._session()
        raise CommandError(
            NOT_SUPPORTED, "Reconnect by subscribing again with `since`, the last seq you saw."
        )

    def _session(self) -> _SocketSession:
        if self._subscriptions is None:
            raise CommandError(
                NOT_SUPPORTED,
                "Subscriptions need a WebSocket; over HTTP, use POST .../stream/events.",
            )
        return self._subscriptions

    async def _authorized(self, body: RunCreate) -> tuple[RunRequest, Access]:
        return await authorized_run(self._rt, self._authz, self._thread_id, body, self._connection)


def _run_body(params: dict[str, Any]) -> RunCreate:
    """run.start's params as an ordinary run: created with the thread, queued behind its runs."""
    try:
        return RunCreate.model_validate(
            {
                "assistant_id": params["assistant_id"],
                "input": params.get("input"),
                "command": params.get("command"),
                "config": params.get("config"),
                "metadata": params.get("metadata"),
                "if_not_exists": "create",
                "multitask_strategy": "enqueue",
                "stream_subgraphs": True,
            }
        )
    except ValidationError as exc:
        raise CommandError(INVALID_ARGUMENT, _first_error(exc)) from None


def _responses(params: dict[str, Any]) -> dict[str, Any]:
    """input.respond's answers by interrupt id: one (`interrupt_id`, `response`) or a batch."""
    if isinstance(params.get("interrupt_id"), str):
        return {params["interrupt_id"]: params.get("response")}
    batch = params.get("responses")
    if isinstance(batch, list) and batch and all(_is_response(item) for item in batch):
        return {item["interrupt_id"]: item.get("response") for item in batch}
    raise CommandError(
        INVALID_ARGUMENT, "input.respond requires an interrupt_id and a response, or responses."
    )


def _is_response(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("interrupt_id"), str)


def _is_command(command: Any) -> bool:
    return (
        isinstance(command, dict)
        and isinstance(command.get("id"), int)
        and not isinstance(command.get("id"), bool)
        and isinstance(command.get("method"), str)
    )


def _sse_event(event: ThreadEvent) -> StreamEvent:
    return StreamEvent(event.method, event.envelope(), str(event.seq))


def _malformed(
    command_id: int | None,
    message: str = "Protocol commands must include an integer id and string method.",
) -> Envelope:
    return {"type": "error", "id": command_id, "error": INVALID_ARGUMENT, "message": message}


def _command_id(command: Any) -> int | None:
    """A malformed command's id, when it has a usable one, so the client can match the answer."""
    found = command.get("id") if isinstance(command, dict) else None
    return found if isinstance(found, int) and not isinstance(found, bool) else None


def _error(command_id: int, code: str, message: str) -> Envelope:
    return {"type": "error", "id": command_id, "error": code, "message": message}


def _stream_lost() -> Envelope:
    """Sent before a thread stream ends because its events could not be read; the SDK reports
    it and reconnects with `since`."""
    return _error_frame("The connection to the event broker was lost; reconnect with `since`.")


def _error_frame(message: str) -> Envelope:
    return {"type": "error", "id": None, "error": "unknown_error", "message": message}


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}"
