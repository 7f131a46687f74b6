"""Threads and their state: the checkpoints LangGraph keeps for them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.pregel import Pregel
from langgraph.types import Command, StateUpdate
from langgraph_sdk.runtime import AccessContext

from stead import serde
from stead.auth.user import AuthUser
from stead.broker import Broker
from stead.checkpoints import copy_thread, keep_latest_checkpoint, thread_storage
from stead.errors import ApiError, BadRequest, Conflict, FailedDependency, NotFound
from stead.graphs import GraphFactoryError, GraphRegistry
from stead.ids import new_random_id, new_time_ordered_id
from stead.services.assistants import now_utc
from stead.services.state import (
    EMPTY_STATE,
    graph_rejections,
    snapshot_to_state,
    thread_config,
    thread_fields_from_snapshot,
)
from stead.services.streams import state_update_event
from stead.services.ttl import NO_TTL_COLUMNS, ThreadTTL
from stead.storage import Database, Page
from stead.storage.access import UNRESTRICTED, Access


class ThreadService:
    def __init__(
        self,
        db: Database,
        graphs: GraphRegistry,
        checkpointer: BaseCheckpointSaver,
        broker: Broker,
        *,
        default_ttl: ThreadTTL | None = None,
    ) -> None:
        self._db = db
        self._graphs = graphs
        self._checkpointer = checkpointer
        self._broker = broker
        self._default_ttl = default_ttl

    async def create(
        self,
        *,
        thread_id: str | None,
        metadata: dict[str, Any] | None,
        if_exists: str,
        supersteps: list[dict[str, Any]] | None,
        ttl: ThreadTTL | None = None,
        access: Access = UNRESTRICTED,
        user: AuthUser | None = None,
    ) -> dict[str, Any]:
        metadata = metadata or {}
        if supersteps and metadata.get("graph_id") not in self._graphs.graph_ids:
            raise BadRequest("Supersteps require metadata.graph_id naming a graph of this server")
        record = new_thread_record(
            thread_id or new_time_ordered_id(), metadata, ttl or self._default_ttl
        )
        if thread_id is None:
            # A new time-ordered id is nobody's yet: nothing to look up, one statement to run.
            async with self._db.autocommit(access) as tx:
                await tx.threads.insert(record)
        else:
            async with self._db.transaction(access) as tx:
                existing = await tx.threads.get(thread_id)
                if existing is not None and if_exists == "do_nothing":
                    return existing
                if existing is not None or await tx.threads.exists(thread_id):
                    raise Conflict(f"Thread with ID {thread_id} already exists")
                await tx.threads.insert(record)
        if supersteps:
            try:
                return await self._apply_supersteps(record, supersteps, user)
            except ApiError:
                # The graph refused the supersteps: no thread is left half-built.
                await self._delete(record["thread_id"], UNRESTRICTED)
                raise
        return record

    async def get(self, thread_id: str, access: Access = UNRESTRICTED) -> dict[str, Any]:
        async with self._db.autocommit(access) as tx:
            found = await tx.threads.get(thread_id)
        if found is None:
            raise NotFound(f"Thread with ID {thread_id} not found")
        return found

    async def patch(
        self,
        thread_id: str,
        metadata: dict[str, Any] | None,
        ttl: ThreadTTL | None = None,
        access: Access = UNRESTRICTED,
    ) -> dict[str, Any]:
        async with self._db.transaction(access) as tx:
            current = await tx.threads.get(thread_id)
            if current is None:
                raise NotFound(f"Thread with ID {thread_id} not found")
            now = now_utc()
            changes = {"metadata": {**current["metadata"], **(metadata or {})}, "updated_at": now}
            if ttl is not None:
                changes.update(ttl.columns(now))
            await tx.threads.update(thread_id, **changes)
        return {**current, **changes}

    async def delete(self, thread_id: str, access: Access = UNRESTRICTED) -> None:
        if not await self._delete(thread_id, access):
            raise NotFound(f"Thread with ID {thread_id} not found")

    async def _delete(self, thread_id: str, access: Access) -> bool:
        """Delete a thread with its runs, crons and checkpoints; False if there was none."""
        async with self._db.transaction(access) as tx:
            active = await tx.runs.active_for_thread(thread_id)
            if not await tx.threads.delete(thread_id):
                return False
        for run in active:
            await self._broker.signal_cancel(run["run_id"], "interrupt")
        await self._checkpointer.adelete_thread(thread_id)
        return True

    async def prune(
        self, thread_ids: list[str], strategy: str, access: Access = UNRESTRICTED
    ) -> int:
        """Delete threads, or keep only their latest checkpoints; returns how many were pruned.

        Missing threads are skipped. `keep_latest` also skips busy threads: pruning under a
        running graph would pull checkpoints from under it.
        """
        pruned = 0
        for thread_id in dict.fromkeys(thread_ids):
            if strategy == "delete":
                pruned += await self._delete(thread_id, access)
            else:
                pruned += await self._keep_latest(thread_id, access)
        return pruned

    async def _keep_latest(self, thread_id: str, access: Access) -> bool:
        async with self._db.transaction(access) as tx:
            if await tx.threads.get(thread_id) is None or await tx.runs.has_active(thread_id):
                return False
        await keep_latest_checkpoint(self._checkpointer, thread_id)
        return True

    async def sweep_expired(self, limit: int) -> int:
        """Apply the TTL strategy of up to `limit` expired idle threads; returns how many."""
        now = now_utc()
        async with self._db.transaction() as tx:
            expired = await tx.threads.expired(now, limit)
        swept = 0
        for thread in expired:
            swept += await self._expire(thread["thread_id"], now)
        return swept

    async def _expire(self, thread_id: str, now: datetime) -> bool:
        """Delete an expired thread or keep its latest checkpoint, unless it came back to life."""
        async with self._db.transaction() as tx:
            thread = await tx.threads.get(thread_id)
            if thread is None or not _has_expired(thread, now):
                return False
            if await tx.runs.has_active(thread_id):
                return False
            keep_latest = thread["ttl_strategy"] == "keep_latest"
            if not keep_latest:
                await tx.threads.delete(thread_id)
        if keep_latest:
            await keep_latest_checkpoint(self._checkpointer, thread_id)
            async with self._db.transaction() as tx:
                await tx.threads.clear_expiry(thread_id, now)
        else:
            await self._checkpointer.adelete_thread(thread_id)
        return True

    async def storage(self, thread_id: str, access: Access = UNRESTRICTED) -> dict[str, Any]:
        await self.get(thread_id, access)
        return await thread_storage(self._checkpointer, thread_id)

    async def search(self, access: Access = UNRESTRICTED, **filters: Any) -> Page:
        async with self._db.autocommit(access) as tx:
            return await tx.threads.search(**filters)

    async def count(self, access: Access = UNRESTRICTED, **filters: Any) -> int:
        async with self._db.autocommit(access) as tx:
            return await tx.threads.count(**filters)

    async def copy(self, thread_id: str, access: Access = UNRESTRICTED) -> dict[str, Any]:
        source = await self.get(thread_id, access)
        now = now_utc()
        record = {**source, "thread_id": new_random_id(), "created_at": now, "updated_at": now}
        ttl = ThreadTTL.of(source)
        if ttl is not None:
            record.update(ttl.columns(now))
        await copy_thread(self._checkpointer, thread_id, record["thread_id"])
        async with self._db.transaction() as tx:
            await tx.threads.insert(record)
        return record

    async def state(
        self,
        thread_id: str,
        checkpoint: dict[str, Any] | None = None,
        subgraphs: bool = False,
        access: Access = UNRESTRICTED,
        user: AuthUser | None = None,
    ) -> dict[str, Any]:
        thread = await self.get(thread_id, access)
        async with self._graph_of(thread, "threads.read", user, required=False) as graph:
            if graph is None:
                return dict(EMPTY_STATE)
            with graph_rejections():
                snapshot = await graph.aget_state(
                    thread_config(thread_id, checkpoint), subgraphs=subgraphs
                )
        if (
            checkpoint
            and checkpoint.get("checkpoint_id")
            and not snapshot.values
            and snapshot.config is None
        ):
            raise NotFound(f"Checkpoint {checkpoint['checkpoint_id']} not found")
        return snapshot_to_state(snapshot)

    async def history(
        self,
        thread_id: str,
        *,
        limit: int,
        before: dict[str, Any] | None,
        metadata: dict[str, Any] | None,
        checkpoint: dict[str, Any] | None,
        access: Access = UNRESTRICTED,
        user: AuthUser | None = None,
    ) -> list[dict[str, Any]]:
        thread = await self.get(thread_id, access)
        async with self._graph_of(thread, "threads.read", user, required=False) as graph:
            if graph is None:
                return []
            with graph_rejections():
                return [
                    snapshot_to_state(snapshot)
                    async for snapshot in graph.aget_state_history(
                        thread_config(thread_id, checkpoint),
                        limit=limit,
                        before=_before_config(thread_id, before),
                        filter=metadata or None,
                    )
                ]

    async def update_state(
        self,
        thread_id: str,
        *,
        values: Any,
        as_node: str | None,
        checkpoint: dict[str, Any] | None,
        access: Access = UNRESTRICTED,
        user: AuthUser | None = None,
    ) -> dict[str, Any]:
        thread = await self.get(thread_id, access)
        async with self._db.transaction() as tx:
            if await tx.runs.has_active(thread_id):
                raise Conflict(
                    "Thread is busy with a run; wait for it to finish before updating its state"
                )
        async with self._graph_of(thread, "threads.update", user, required=True) as graph:
            assert graph is not None
            with graph_rejections():
                config = await graph.aupdate_state(
                    thread_config(thread_id, checkpoint), values, as_node=as_node
                )
                snapshot = await graph.aget_state(thread_config(thread_id))
        await self._record_state(thread_id, snapshot)
        await self._broker.publish_to_thread(
            thread_id, state_update_event(thread_id, snapshot_to_state(snapshot))
        )
        configurable = config["configurable"]
        return {
            "checkpoint": configurable,
            "configurable": configurable,
            "checkpoint_id": configurable.get("checkpoint_id"),
        }

    async def _apply_supersteps(
        self, thread: dict[str, Any], supersteps: list[dict[str, Any]], user: AuthUser | None
    ) -> dict[str, Any]:
        steps = [
            [
                StateUpdate(_update_values(update), update.get("as_node"))
                for update in step.get("updates", [])
            ]
            for step in supersteps
        ]
        async with self._graph_of(thread, "threads.update", user, required=True) as graph:
            assert graph is not None
            with graph_rejections():
                await graph.abulk_update_state(thread_config(thread["thread_id"]), steps)
                snapshot = await graph.aget_state(thread_config(thread["thread_id"]))
        await self._record_state(thread["thread_id"], snapshot)
        return await self.get(thread["thread_id"])

    async def _record_state(self, thread_id: str, snapshot: Any) -> None:
        now = now_utc()
        async with self._db.transaction() as tx:
            await tx.threads.update(
                thread_id,
                **thread_fields_from_snapshot(snapshot),
                updated_at=now,
                state_updated_at=now,
            )

    @contextlib.asynccontextmanager
    async def _graph_of(
        self,
        thread: dict[str, Any],
        access_context: AccessContext,
        user: AuthUser | None,
        *,
        required: bool,
    ) -> AsyncIterator[Pregel | None]:
        graph_id = thread["metadata"].get("graph_id")
        if graph_id is None or self._graphs.get_spec(graph_id) is None:
            if required:
                raise BadRequest(
                    f"Thread {thread['thread_id']} has no graph: run it once, "
                    "or create it with metadata.graph_id"
                )
            yield None
            return
        try:
            async with self._graphs.graph(
                graph_id,
                serde.to_jsonable(thread["config"]),
                access_context=access_context,
                user=user,
            ) as graph:
                yield graph
        except GraphFactoryError as exc:
            raise FailedDependency(str(exc)) from exc


def _before_config(thread_id: str, before: dict[str, Any] | None) -> RunnableConfig | None:
    """A `before` without a checkpoint id limits nothing (the official server ignores it too)."""
    if before is None or not before.get("checkpoint_id"):
        return None
    return thread_config(thread_id, before)


def _has_expired(thread: dict[str, Any], now: datetime) -> bool:
    return thread["expires_at"] is not None and thread["expires_at"] <= now


def _update_values(update: dict[str, Any]) -> Any:
    if update.get("command"):
        return Command(**update["command"])
    return update.get("values")


def new_thread_record(
    thread_id: str, metadata: dict[str, Any], ttl: ThreadTTL | None = None
) -> dict[str, Any]:
    now = now_utc()
    return {
        **(ttl.columns(now) if ttl is not None else NO_TTL_COLUMNS),
        "thread_id": thread_id,
        "metadata": metadata,
        "config": {},
        "status": "idle",
        "values": None,
        "interrupts": {},
        "error": None,
        "created_at": now,
        "updated_at": now,
        "state_updated_at": now,
    }
