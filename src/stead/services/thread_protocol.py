"""The thread streaming protocol's commands and event streams, over the ordinary runs.

A run the protocol starts is an ordinary run (REST state, history, cancel and join see it),
marked so that its worker writes the thread's protocol log. A thread's event stream follows
that log across its runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from stead import serde
from stead.broker import Broker, ThreadEvent, ThreadEventFeed
from stead.errors import ApiError, NotFound
from stead.protocol.filters import EventFilter
from stead.services.runs import RunRequest, RunService
from stead.services.threads import ThreadService
from stead.storage.access import UNRESTRICTED, Access

# The codes of the protocol's error envelope that Stead answers with.
INVALID_ARGUMENT = "invalid_argument"
UNKNOWN_COMMAND = "unknown_command"
UNKNOWN_ERROR = "unknown_error"
NO_SUCH_RUN = "no_such_run"
NO_SUCH_SUBSCRIPTION = "no_such_subscription"
NO_SUCH_INTERRUPT = "no_such_interrupt"
PERMISSION_DENIED = "permission_denied"
NOT_SUPPORTED = "not_supported"

_CODE_BY_STATUS = {
    400: INVALID_ARGUMENT,
    409: INVALID_ARGUMENT,
    422: INVALID_ARGUMENT,
    403: PERMISSION_DENIED,
    404: PERMISSION_DENIED,
}


class CommandError(Exception):
    """A command the protocol refuses: answered with its error envelope, not an HTTP error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @classmethod
    def from_api_error(cls, error: ApiError) -> CommandError:
        return cls(_CODE_BY_STATUS.get(error.status_code, UNKNOWN_ERROR), error.detail)


class ThreadProtocol:
    def __init__(self, threads: ThreadService, runs: RunService, broker: Broker) -> None:
        self._threads = threads
        self._runs = runs
        self._broker = broker

    async def start_run(
        self, thread_id: str, request: RunRequest, request_id: str | None, access: Access
    ) -> dict[str, Any]:
        """`run.start`: a run on the thread (created if new), queued behind its active ones.

        Input given to a thread that waits on an interrupt resumes it, as RemoteGraph expects.
        """
        if request.input is not None and await self._waits_on_interrupt(thread_id, access):
            request = dataclasses.replace(request, input=None, command={"resume": request.input})
        return await self._create(thread_id, request, request_id, access)

    async def respond(
        self,
        thread_id: str,
        responses: dict[str, Any],
        request: RunRequest,
        request_id: str | None,
        access: Access,
    ) -> dict[str, Any]:
        """`input.respond`: resume the interrupts named by id, on the thread's assistant."""
        try:
            thread = await self._threads.get(thread_id, access)
        except NotFound:
            thread = {}
        pending = _pending_interrupt_ids(thread)
        if not pending:
            raise CommandError(NO_SUCH_RUN, "No interrupted run is bound to this thread.")
        unknown = sorted(set(responses) - pending)
        if unknown:
            raise CommandError(NO_SUCH_INTERRUPT, f"No pending interrupt {', '.join(unknown)}")
        assistant_id = thread["metadata"].get("assistant_id")
        if assistant_id is None:
            raise CommandError(NO_SUCH_RUN, "No run has been started on this thread.")
        command = {**(request.command or {}), "resume": responses}
        request = dataclasses.replace(request, assistant_id=assistant_id, command=command)
        return await self._create(thread_id, request, request_id, access)

    async def applied_through(self, thread_id: str) -> int | None:
        """The thread's latest `seq` before a command acts: a client that resumes after it misses
        nothing the command causes. None when the broker cannot tell."""
        return await self._broker.last_thread_seq(thread_id)

    async def agent_tree(self, thread_id: str, access: Access) -> dict[str, Any]:
        """`agent.getTree`: the current run's graph and the subgraphs it started, with status."""
        await self._threads.get(thread_id, access)
        async with self._broker.follow_thread_events(thread_id) as feed:
            replayed = feed.take_replayed()
        lifecycle = [event for event in replayed if event.method == "lifecycle"]
        if not lifecycle:
            raise CommandError(NO_SUCH_RUN, "No run is bound to this thread.")
        return {"tree": _tree(lifecycle)}

    @contextlib.asynccontextmanager
    async def follow(
        self, thread_id: str, since: int | None, access: Access = UNRESTRICTED
    ) -> AsyncIterator[ThreadEventFeed]:
        """The thread's events, replayed from `since` (or its current run), then live."""
        async with self._broker.follow_thread_events(thread_id, since=since) as feed:
            # Following first loses nothing.
            await self.check_followable(thread_id, access)
            yield feed

    async def check_followable(self, thread_id: str, access: Access) -> None:
        """404 for a thread the caller may not see. Clients mint a thread's id and may listen
        before `run.start` creates it; where auth filters threads, only a visible one is (with
        no filter, every thread that exists is visible, so there is nothing to check)."""
        if access != UNRESTRICTED:
            await self._threads.get(thread_id, access)

    async def _create(
        self, thread_id: str, request: RunRequest, request_id: str | None, access: Access
    ) -> dict[str, Any]:
        request = dataclasses.replace(request, thread_protocol=True)
        try:
            return await self._runs.create(thread_id, request, request_id=request_id, access=access)
        except ApiError as exc:
            raise CommandError.from_api_error(exc) from exc

    async def _waits_on_interrupt(self, thread_id: str, access: Access) -> bool:
        try:
            thread = await self._threads.get(thread_id, access)
        except ApiError:
            return False
        return bool(_pending_interrupt_ids(thread))


async def filtered(feed: ThreadEventFeed, wanted: EventFilter) -> AsyncIterator[list[ThreadEvent]]:
    """The feed's events that `wanted` takes, in the batches they came in."""
    async for batch in feed.batches():
        taken = [event for event in batch if wanted.wants(event)]
        if taken:
            yield taken


def _pending_interrupt_ids(thread: dict[str, Any]) -> set[str]:
    return {
        item["id"]
        for items in (thread.get("interrupts") or {}).values()
        for item in items
        if isinstance(item, dict) and item.get("id")
    }


def _tree(lifecycle: list[ThreadEvent]) -> dict[str, Any]:
    nodes: dict[tuple[str, ...], dict[str, Any]] = {}
    for event in lifecycle:
        data = serde.loads(event.params)["data"]
        node = nodes.setdefault(
            event.namespace, {"namespace": list(event.namespace), "children": []}
        )
        node["status"] = data["event"]
        if data.get("graph_name"):
            node["graph_name"] = data["graph_name"]
    root = nodes.pop((), {"namespace": [], "status": "running", "children": []})
    for namespace, node in sorted(nodes.items()):
        parent = nodes.get(namespace[:-1], root)
        parent["children"].append(node)
    return root
