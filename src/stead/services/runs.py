"""Runs: creating them under the multitask rules, cancelling, joining and reading results."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from langgraph.version import __version__ as langgraph_version

from stead import __version__, serde
from stead.auth.user import AuthUser, run_configurable
from stead.broker import Broker, StreamEvent, Subscription
from stead.broker.base import END, EVENTS_LOST
from stead.errors import BadRequest, Conflict, NotFound, Unprocessable
from stead.ids import new_time_ordered_id
from stead.observability.tracing import TRACE_CONTEXT_KEY, current_trace_context
from stead.protocol.events import PROTOCOL_RUN, publish_cancelled
from stead.services.assistants import AssistantService, merge_config_and_context, now_utc
from stead.services.streams import replay_after
from stead.services.thread_status import settle_thread
from stead.services.threads import new_thread_record
from stead.services.ttl import ThreadTTL
from stead.services.webhooks import WebhookPolicy
from stead.storage import Database, Transaction
from stead.storage.access import UNRESTRICTED, Access
from stead.storage.schema import ACTIVE_STATUSES

TERMINAL_STATUSES = ("success", "error", "timeout", "interrupted")
# How long a listener waits in silence before reading the run's row: a broker that drops keys
# under memory pressure may have dropped the run's END. A run found ended twice in a row (a
# late END has had a whole period to come) ends its listeners with EVENTS_LOST.
END_CHECK_SECONDS = 10.0
DEFAULT_RECURSION_LIMIT = int(os.environ.get("LANGGRAPH_DEFAULT_RECURSION_LIMIT", "10011"))
# Configurable keys the server owns; a client cannot override them.
_SERVER_CONFIGURABLE = (
    "run_id",
    "thread_id",
    "graph_id",
    "assistant_id",
    "user_id",
    "langgraph_auth_user",
    "langgraph_auth_user_id",
    "langgraph_auth_permissions",
)


class LocalWorker(Protocol):
    """The worker of this process, which can take a run the moment it is created: the run is
    stored already claimed (running, attempt 1, under its lease), which spares the claim's
    transaction and the queue's wake-up."""

    lease: timedelta

    async def reserve_slot(self) -> bool:
        """Hold a free slot for a run about to be created; False when none is free."""

    def release_slot(self) -> None:
        """Give back a slot reserved for a run that was not created."""

    def start_claimed(self, run: dict[str, Any]) -> None:
        """Execute a run created claimed, in its reserved slot."""


@dataclass(frozen=True)
class RunRequest:
    """A validated run-create body (see stead.api.models.RunCreate)."""

    assistant_id: str
    input: Any = None
    command: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None
    checkpoint_id: str | None = None
    interrupt_before: str | list[str] | None = None
    interrupt_after: str | list[str] | None = None
    webhook: str | None = None
    feedback_keys: list[str] | None = None
    stream_mode: list[str] | None = None
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    multitask_strategy: str = "enqueue"
    if_not_exists: str = "reject"
    on_completion: str = "delete"
    after_seconds: float | None = None
    durability: str | None = None
    checkpoint_during: bool | None = None
    # Request headers that `http.configurable_headers` copies into config.configurable.
    configurable_headers: dict[str, str] | None = None
    # Who asked for the run: the graph sees them in config.configurable.
    auth_user: AuthUser | None = None
    # Started through the thread streaming protocol: its worker writes the thread's event log.
    thread_protocol: bool = False


@dataclass(frozen=True)
class _NewRun:
    """A run being created: what its row is built from besides its assistant and thread."""

    request: RunRequest
    assistant_id: str
    run_id: str
    thread_id: str
    stateless: bool
    config: dict[str, Any]
    context: dict[str, Any]
    request_id: str | None


@dataclass(frozen=True)
class _Created:
    run: dict[str, Any]
    # The local worker holding a slot for the run, if it starts here.
    worker: LocalWorker | None
    # The thread's runs the new one displaced (by its multitask strategy), to be told.
    pending: list[dict[str, Any]]
    running: list[str]


class _AssistantChanged(Exception):
    """The cached assistant a run was built from is no longer current: nothing was stored."""


class RunService:
    def __init__(
        self,
        db: Database,
        broker: Broker,
        assistants: AssistantService,
        *,
        webhook_policy: WebhookPolicy | None = None,
        default_thread_ttl: ThreadTTL | None = None,
    ) -> None:
        self._db = db
        self._broker = broker
        self._assistants = assistants
        self._webhook_policy = webhook_policy or WebhookPolicy()
        self._default_thread_ttl = default_thread_ttl
        self._local_worker: LocalWorker | None = None

    def start_runs_on(self, worker: LocalWorker) -> None:
        """Runs whose caller waits on this process start on `worker` when it has a free slot."""
        self._local_worker = worker

    async def create(
        self,
        thread_id: str | None,
        request: RunRequest,
        *,
        run_id: str | None = None,
        request_id: str | None = None,
        access: Access = UNRESTRICTED,
        start_here: bool = False,
    ) -> dict[str, Any]:
        """Queue a run. Stream and wait callers subscribe to `run_id` first, then call this.

        `access` keeps it to a thread and an assistant the caller may see (else 404); a thread
        the run creates gets the run's metadata, so that its creator's filters find it.
        `start_here`: a run due now on a free thread goes straight to this process's worker
        when it has a free slot (the run returned then reads running)."""
        stateless = thread_id is None
        if stateless and request.command and request.command.get("resume") is not None:
            raise BadRequest("You must provide a thread_id when resuming.")
        assistant_id = self._assistants.resolve_id(request.assistant_id)
        if assistant_id is None:
            raise Unprocessable(
                f"Invalid assistant: '{request.assistant_id}' is neither an assistant ID nor one "
                f"of the graphs {self._assistants.graph_ids}"
            )
        config, context = merge_config_and_context(request.config, request.context)
        if request.webhook:
            await self.check_webhook(request.webhook)
        new_run = _NewRun(
            request,
            assistant_id,
            run_id or new_time_ordered_id(),
            thread_id or new_time_ordered_id(),
            stateless,
            config,
            context,
            request_id,
        )
        local = self._local_worker if start_here and not request.after_seconds else None
        cached = self._assistants.cache.get(assistant_id, access)
        created = None
        if cached is not None:
            try:
                created = await self._store_new(new_run, cached, access, local)
            except _AssistantChanged:
                self._assistants.cache.forget(assistant_id)
        if created is None:
            created = await self._store_new(new_run, None, access, local)
        run, worker = created.run, created.worker
        await self._notify_cancelled(created.pending, created.running, request.multitask_strategy)
        if worker is not None:
            worker.start_claimed(run)
        else:
            await self._broker.wake_workers(run["run_id"])
        return run

    async def _store_new(
        self,
        new_run: _NewRun,
        cached: dict[str, Any] | None,
        access: Access,
        local: LocalWorker | None,
    ) -> _Created:
        """Store the run, built from its assistant: the `cached` copy, in which case nothing is
        stored if it has changed since (_AssistantChanged), else read here."""
        request, run_id, thread_id = new_run.request, new_run.run_id, new_run.thread_id
        stateless = new_run.stateless
        now = now_utc()
        worker: LocalWorker | None = None  # holds a slot for this run once reserved
        # A stateless run reads its assistant and writes its run and new thread in one
        # statement: no transaction needed around them.
        block = self._db.autocommit(access) if stateless else self._db.transaction(access)
        try:
            async with block as tx:
                assistant = (
                    cached
                    if cached is not None
                    else await self._read_assistant(tx, new_run.assistant_id)
                )
                if stateless:
                    # Its id is new: nothing to read, no other run to make room for; the
                    # temporary thread is stored below, busy from the start.
                    thread = new_thread_record(thread_id, dict(request.metadata or {}))
                    pending: list[dict[str, Any]] = []
                    running: list[str] = []
                else:
                    thread = await self._thread_for_run(tx, thread_id, request)
                    pending, running = await self._make_room(
                        tx, thread_id, request.multitask_strategy
                    )
                if local is not None and await local.reserve_slot():
                    worker = local
                    free = stateless or await self._thread_is_free(
                        tx, thread_id, request, pending, running
                    )
                    if not free:
                        worker = None
                        local.release_slot()
                thread_metadata = {
                    **thread["metadata"],
                    "graph_id": thread["metadata"].get("graph_id", assistant["graph_id"]),
                    "assistant_id": thread["metadata"].get(
                        "assistant_id", assistant["assistant_id"]
                    ),
                }
                kwargs = _run_kwargs(
                    request,
                    assistant,
                    thread,
                    run_id,
                    new_run.config,
                    new_run.context,
                    stateless,
                    new_run.request_id,
                )
                run = _run_record(
                    request, assistant, thread_metadata, run_id, thread_id, kwargs, now
                )
                if worker is not None:
                    run.update(status="running", attempt=1, lease_expires_at=now + worker.lease)
                if not await self._store(tx, run, thread, thread_metadata, stateless, cached):
                    raise _AssistantChanged
        except BaseException:
            if worker is not None:
                worker.release_slot()
            raise
        return _Created(run, worker, pending, running)

    async def _read_assistant(self, tx: Transaction, assistant_id: str) -> dict[str, Any]:
        """The run's assistant, read and cached for the next runs."""
        assistant = await tx.assistants.get(assistant_id)
        if assistant is None:
            raise NotFound("Thread or assistant not found.")
        self._assistants.cache.remember(assistant)
        return assistant

    @staticmethod
    async def _thread_is_free(
        tx: Transaction,
        thread_id: str,
        request: RunRequest,
        pending: list[dict[str, Any]],
        running: list[str],
    ) -> bool:
        """Whether the thread has no other active run, so a new one may start at once (making
        room read the thread's runs, unless the strategy is `enqueue`)."""
        if request.multitask_strategy == "enqueue":
            return not await tx.runs.active_for_thread(thread_id)
        return not pending and not running

    @staticmethod
    async def _store(
        tx: Transaction,
        run: dict[str, Any],
        thread: dict[str, Any],
        thread_metadata: dict[str, Any],
        stateless: bool,
        cached_assistant: dict[str, Any] | None,
    ) -> bool:
        """The run, and its thread busy: a stateless run's new thread is stored so, first.
        Built from `cached_assistant`, nothing is stored, and False returned, if it changed."""
        now = run["updated_at"]
        if stateless:
            busy = {**thread, "status": "busy", "metadata": thread_metadata, "updated_at": now}
            return await tx.runs.insert_with_thread(busy, run, cached_assistant)
        if not await tx.runs.insert(run, cached_assistant):
            return False
        await tx.threads.update(
            run["thread_id"], status="busy", updated_at=now, metadata=thread_metadata
        )
        return True

    async def _thread_for_run(
        self, tx: Transaction, thread_id: str, request: RunRequest
    ) -> dict[str, Any]:
        """The run's thread, locked; created first with `if_not_exists: create`."""
        thread = await tx.threads.get_for_update(thread_id)
        if thread is not None:
            return thread
        # A client's id may be taken by a thread outside what the caller may see.
        if request.if_not_exists != "create" or await tx.threads.exists(thread_id):
            raise NotFound("Thread or assistant not found.")
        thread = new_thread_record(
            thread_id, dict(request.metadata or {}), ttl=self._default_thread_ttl
        )
        await tx.threads.insert(thread)
        return thread

    async def _make_room(
        self, tx: Transaction, thread_id: str, strategy: str
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Apply the multitask strategy to the thread's active runs before a new one joins it;
        returns the runs it cancelled, pending and running."""
        if strategy == "enqueue":
            # The new run queues behind the active ones: no need to read them.
            return [], []
        active = await tx.runs.active_for_thread(thread_id)
        if active and strategy == "reject":
            raise Conflict(
                "Thread is already running a task. Wait for it to finish or choose a "
                "different multitask strategy."
            )
        if not active:
            return [], []
        return await self._request_cancel(tx, [r["run_id"] for r in active], strategy)

    async def check_webhook(self, url: str) -> None:
        """Refuse (422) a webhook URL the deployment's policy does not allow."""
        await self._webhook_policy.check(url)

    async def get(
        self, thread_id: str, run_id: str, access: Access = UNRESTRICTED
    ) -> dict[str, Any]:
        async with self._db.autocommit(access) as tx:
            run = await tx.runs.get(run_id, thread_id)
        if run is None:
            raise NotFound("Run not found")
        return run

    async def find(self, run_id: str) -> dict[str, Any] | None:
        async with self._db.autocommit() as tx:
            return await tx.runs.get(run_id)

    async def list_for_thread(
        self,
        thread_id: str,
        *,
        status: str | None,
        limit: int,
        offset: int,
        access: Access = UNRESTRICTED,
    ) -> list[dict[str, Any]]:
        async with self._db.autocommit(access) as tx:
            if await tx.threads.get(thread_id) is None:
                raise NotFound(f"Thread with ID {thread_id} not found")
            return await tx.runs.list_for_thread(
                thread_id, status=status, limit=limit, offset=offset
            )

    async def delete(self, thread_id: str, run_id: str, access: Access = UNRESTRICTED) -> None:
        async with self._db.transaction(access) as tx:
            run = await tx.runs.get(run_id, thread_id)
            if run is None:
                raise NotFound("Run not found")
            if run["status"] in ACTIVE_STATUSES:
                raise Conflict("Run is still active; cancel it before deleting it")
            await tx.runs.delete(run_id)

    async def cancel(self, runs: list[dict[str, Any]], action: str) -> None:
        """Cancel active runs: pending ones at once, running ones through their worker."""
        async with self._db.transaction() as tx:
            pending, running = await self._request_cancel(tx, [r["run_id"] for r in runs], action)
        await self._notify_cancelled(pending, running, action)

    async def _request_cancel(
        self, tx: Transaction, run_ids: list[str], action: str
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Cancel what is pending now and flag what is running; the status is read afresh here,
        because a worker may have claimed a run since the caller saw it."""
        pending, running = [], []
        for run_id in run_ids:
            run = await tx.runs.get_for_update(run_id)
            if run is None:
                continue
            if run["status"] == "pending":
                await self._cancel_pending(tx, run, action)
                pending.append(run)
            elif run["status"] == "running":
                await tx.runs.request_cancel(run_id, action, now_utc())
                running.append(run_id)
        return pending, running

    async def _notify_cancelled(
        self, pending: list[dict[str, Any]], running: list[str], action: str
    ) -> None:
        for run in pending:
            await self._broker.publish(run["run_id"], END)
        await publish_cancelled(self._broker, pending)
        for run_id in running:
            await self._broker.signal_cancel(run_id, action)

    async def _cancel_pending(self, tx: Transaction, run: dict[str, Any], action: str) -> None:
        if action == "rollback":
            await tx.runs.delete(run["run_id"])
        else:
            await tx.runs.set_status(run["run_id"], "interrupted", now_utc())
        await settle_thread(tx, run["thread_id"], run["run_id"], now_utc())

    async def active_runs(
        self,
        *,
        thread_id: str | None,
        run_ids: list[str] | None,
        status: str | None,
        access: Access = UNRESTRICTED,
    ) -> list[dict[str, Any]]:
        async with self._db.autocommit(access) as tx:
            if run_ids is not None:
                found = [await tx.runs.get(run_id, thread_id) for run_id in run_ids]
                return [r for r in found if r is not None and r["status"] in ACTIVE_STATUSES]
            return await tx.runs.active(status)

    async def result(self, run: dict[str, Any], subscription: Subscription) -> dict[str, Any]:
        """The body of /wait and /join: the run's final values, its interrupt or its error."""
        last_values: bytes | None = None
        error: Any = None
        # `run` was read after subscribing: if it was not finished then, its end event will come.
        if run["status"] not in TERMINAL_STATUSES:
            async for event in self._until_end(run, subscription):
                if event is EVENTS_LOST:
                    # The database holds the outcome that the lost events carried.
                    run = await self.find(run["run_id"]) or run
                    last_values = error = None
                elif event.event == "values":
                    last_values = event.data
                elif event.event == "error":
                    error = serde.loads(event.data)
        if error is not None:
            return {"__error__": error}
        if last_values is not None:
            return _values_body(last_values)
        thread = await self._thread(run["thread_id"])
        if run["status"] in ("error", "timeout") and thread.get("error"):
            return {"__error__": thread["error"]}
        return thread.get("values") or {}

    async def events(
        self, run: dict[str, Any], subscription: Subscription, modes: list[str] | None = None
    ) -> AsyncIterator[StreamEvent]:
        """A run's events until it ends, kept ones first when the subscription replays; empty if
        it had ended when read after subscribing and nothing of it was kept."""
        if run["status"] in TERMINAL_STATUSES and not subscription.replaying:
            return
        async for event in self._until_end(run, subscription):
            if event is EVENTS_LOST or modes is None or event.event.split("|")[0] in modes:
                yield event

    async def _until_end(
        self, run: dict[str, Any], subscription: Subscription
    ) -> AsyncIterator[StreamEvent]:
        """The subscription's events up to END or, should the run end without its END coming,
        up to EVENTS_LOST."""
        ended_unheard = False
        while True:
            event = await subscription.next(END_CHECK_SECONDS)
            if event is None:
                if ended_unheard:
                    yield EVENTS_LOST
                    return
                ended_unheard = await self._has_ended(run["run_id"])
                continue
            if event.is_end:
                return
            ended_unheard = False
            yield event

    async def _has_ended(self, run_id: str) -> bool:
        found = await self.find(run_id)
        return found is None or found["status"] in TERMINAL_STATUSES

    async def _thread(self, thread_id: str) -> dict[str, Any]:
        async with self._db.autocommit() as tx:
            return await tx.threads.get(thread_id) or {}


def _followed(run: dict[str, Any]) -> dict[str, Any]:
    """A run as a request waiting on it sees it: its fields but its kwargs (the input)."""
    return {key: value for key, value in run.items() if key != "kwargs"}


def _values_body(data: bytes) -> Any:
    """The run's last values, encoded as they came (no decoding and encoding a large state
    again), unless interrupts are there to complete."""
    if b'"__interrupt__"' not in data:
        return serde.Encoded(data)
    return _with_response_schemas(serde.loads(data))


def _with_response_schemas(values: Any) -> Any:
    """/wait bodies list every interrupt field, `response_schema` included, as the official does."""
    if isinstance(values, dict) and isinstance(values.get("__interrupt__"), list):
        values["__interrupt__"] = [
            {**item, "response_schema": item.get("response_schema")}
            if isinstance(item, dict)
            else item
            for item in values["__interrupt__"]
        ]
    return values


def _run_record(
    request: RunRequest,
    assistant: dict[str, Any],
    thread_metadata: dict[str, Any],
    run_id: str,
    thread_id: str,
    kwargs: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """A new run's row, pending. It inherits the thread's metadata as the run leaves it
    (graph_id included from the first run on), as on the official server."""
    metadata = {
        **assistant["metadata"],
        **thread_metadata,
        **(request.metadata or {}),
        "assistant_id": assistant["assistant_id"],
    }
    return {
        "run_id": run_id,
        "thread_id": thread_id,
        "assistant_id": assistant["assistant_id"],
        "status": "pending",
        "metadata": metadata,
        "kwargs": kwargs,
        "multitask_strategy": request.multitask_strategy,
        "attempt": 0,
        "cancel_action": None,
        "created_at": _due(now, request.after_seconds),
        "updated_at": now,
        "lease_expires_at": None,
    }


def _due(now: datetime, after_seconds: float | None) -> datetime:
    try:
        return now + timedelta(seconds=after_seconds or 0)
    except OverflowError:
        # Python's datetimes end at year 9999; a delay past that is the client's mistake.
        raise Unprocessable(f"after_seconds of {after_seconds} ends after year 9999") from None


def _run_kwargs(
    request: RunRequest,
    assistant: dict[str, Any],
    thread: dict[str, Any],
    run_id: str,
    config: dict[str, Any],
    context: dict[str, Any],
    stateless: bool,
    request_id: str | None,
) -> dict[str, Any]:
    """Everything the worker needs to execute the run, stored on the run row."""
    user_id = request.auth_user.identity if request.auth_user else ""
    merged_config = _merge_config(assistant["config"], thread["config"], config)
    configurable = merged_config["configurable"]
    configurable.update(request.configurable_headers or {})
    for key in _SERVER_CONFIGURABLE:
        configurable.pop(key, None)
    configurable.update(
        run_id=run_id,
        thread_id=thread["thread_id"],
        graph_id=assistant["graph_id"],
        assistant_id=assistant["assistant_id"],
        user_id=user_id,
    )
    if request.auth_user is not None:
        configurable.update(run_configurable(request.auth_user))
    if request_id:
        configurable["langgraph_request_id"] = request_id
    checkpoint = dict(request.checkpoint or {})
    if request.checkpoint_id:
        checkpoint.setdefault("checkpoint_id", request.checkpoint_id)
    configurable.update({k: v for k, v in checkpoint.items() if v is not None and k != "thread_id"})
    merged_config.setdefault("recursion_limit", DEFAULT_RECURSION_LIMIT)
    merged_config["metadata"] = {
        **merged_config.get("metadata", {}),
        **(request.metadata or {}),
        "graph_id": assistant["graph_id"],
        "assistant_id": assistant["assistant_id"],
        "run_id": run_id,
        "thread_id": thread["thread_id"],
        "user_id": user_id,
        "langgraph_version": langgraph_version,
        "langgraph_api_version": __version__,
        "langgraph_host": "self-hosted",
    }
    protocol = {PROTOCOL_RUN: True} if request.thread_protocol else {}
    trace_context = current_trace_context()
    return {
        **protocol,
        **({TRACE_CONTEXT_KEY: trace_context} if trace_context else {}),
        "input": request.input,
        "command": request.command,
        "config": merged_config,
        "context": {**assistant["context"], **context},
        "stream_mode": request.stream_mode or ["values"],
        "interrupt_before": request.interrupt_before,
        "interrupt_after": request.interrupt_after,
        "webhook": request.webhook,
        "feedback_keys": request.feedback_keys,
        "temporary": stateless and request.on_completion == "delete",
        "subgraphs": request.stream_subgraphs,
        "resumable": request.stream_resumable,
        "checkpoint_during": request.checkpoint_during
        if request.checkpoint_during is not None
        else True,
        "durability": request.durability or _durability_from(request.checkpoint_during),
    }


def _durability_from(checkpoint_during: bool | None) -> str:
    return "exit" if checkpoint_during is False else "async"


def _merge_config(*configs: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {"configurable": {}}
    for config in configs:
        for key, value in (config or {}).items():
            if key == "configurable":
                merged["configurable"].update(value or {})
            elif key == "metadata":
                merged["metadata"] = {**merged.get("metadata", {}), **(value or {})}
            elif key == "tags":
                merged["tags"] = [*merged.get("tags", []), *(value or [])]
            else:
                merged[key] = value
    return merged


class RunStreams:
    """Runs seen from a client that waits on them: create-and-listen, join, cancel-and-wait."""

    def __init__(self, runs: RunService, broker: Broker) -> None:
        self._runs = runs
        self._broker = broker

    @contextlib.asynccontextmanager
    async def create_and_subscribe(
        self,
        thread_id: str | None,
        request: RunRequest,
        request_id: str | None,
        access: Access = UNRESTRICTED,
    ) -> AsyncIterator[tuple[dict[str, Any], Subscription]]:
        """Subscribe before the run exists, so that not one of its events is missed."""
        run_id = new_time_ordered_id()
        async with self._broker.subscribe(run_id, new_run=True) as subscription:
            run = await self._runs.create(
                thread_id,
                request,
                run_id=run_id,
                request_id=request_id,
                access=access,
                start_here=True,
            )
            # This frame lasts as long as the run: it keeps neither the run's input nor its
            # request, which the stored row and the run's executor hold (on PostgreSQL + Redis
            # the API held a large input, parsed, for the whole run).
            followed = _followed(run)
            del run, request
            yield followed, subscription

    @contextlib.asynccontextmanager
    async def join(
        self,
        thread_id: str,
        run_id: str,
        last_event_id: str | None = None,
        access: Access = UNRESTRICTED,
    ) -> AsyncIterator[tuple[dict[str, Any], Subscription]]:
        """With `last_event_id`, a resumable run's kept events after it come before live ones."""
        after = replay_after(last_event_id)
        async with self._broker.subscribe(run_id, after=after) as subscription:
            run = await self._runs.get(thread_id, run_id, access)
            yield run, subscription

    async def cancel(
        self, thread_id: str, run_id: str, action: str, wait: bool, access: Access = UNRESTRICTED
    ) -> Any:
        async with self.join(thread_id, run_id, access=access) as (run, subscription):
            if run["status"] not in ACTIVE_STATUSES:
                raise NotFound("No matching runs to cancel. The run may already be finished.")
            await self._runs.cancel([run], action)
            return await self._runs.result(run, subscription) if wait else None

    async def cancel_if_active(self, run_id: str) -> None:
        """What a disconnect does when the client asked for on_disconnect=cancel."""
        run = await self._runs.find(run_id)
        if run is not None and run["status"] in ACTIVE_STATUSES:
            await self._runs.cancel([run], "interrupt")
