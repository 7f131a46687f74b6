"""Checkpoint writes fenced by the run's attempt: a stale attempt cannot write checkpoints.

A worker whose lease was taken over notices it at its next renewal; until then LangGraph could
still write checkpoints for it. The executor names the attempt it runs (`writing_as`); the
savers below refuse a write once the run's row no longer holds that attempt as `running`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg import AsyncCursor
from psycopg.rows import DictRow

# Share-locks the run's row, or raises ATTEMPT_TAKEN_OVER (migration 0007).
_HOLD_ATTEMPT_SQL = "SELECT stead_hold_attempt(%s::text, %s::integer)"
ATTEMPT_TAKEN_OVER = "SL001"
# The embedded runtime's run table, attached to the checkpoint connection under this name.
_SQLITE_RUNS_SCHEMA = "runs"
_SQLITE_HOLDS_ATTEMPT_SQL = (
    f"SELECT 1 FROM {_SQLITE_RUNS_SCHEMA}.run"
    " WHERE run_id = ? AND attempt = ? AND status = 'running'"
)


@dataclass(frozen=True)
class RunAttempt:
    run_id: str
    attempt: int


_writer: ContextVar[RunAttempt | None] = ContextVar("stead_checkpoint_writer", default=None)


class LeaseLost(Exception):
    """Another attempt took the run over: this one must stop and record nothing."""


class CheckpointsUnavailable(Exception):
    """The checkpoint database is unreachable: the run can continue from its last checkpoint."""


@contextlib.contextmanager
def writing_as(run_id: str, attempt: int) -> Iterator[None]:
    """Checkpoints written inside (by this task and the tasks it starts) are fenced."""
    token = _writer.set(RunAttempt(run_id, attempt))
    try:
        yield
    finally:
        _writer.reset(token)


class FencedPostgresSaver(AsyncPostgresSaver):
    """Every write of the saver goes through `_cursor(pipeline=True)`. Inside a run, that cursor
    runs in a transaction that first share-locks the run's row if it still holds the attempt;
    otherwise the check fails the transaction, and the writes queued behind it with it."""

    @contextlib.asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        writer = _writer.get()
        if writer is None:
            async with super()._cursor(pipeline=pipeline) as cur:
                yield cur
            return
        with _unreachable_is_unavailable(), _taken_over_is_lease_lost(writer):
            async with super()._cursor(pipeline=pipeline) as cur:
                if not pipeline:
                    yield cur
                    return
                async with cur.connection.transaction():
                    await cur.execute(_HOLD_ATTEMPT_SQL, (writer.run_id, writer.attempt))
                    yield cur


@contextlib.contextmanager
def _taken_over_is_lease_lost(writer: RunAttempt) -> Iterator[None]:
    # In a pipeline the check's error surfaces at whichever later call reads its result.
    try:
        yield
    except psycopg.Error as exc:
        if exc.sqlstate != ATTEMPT_TAKEN_OVER:
            raise
        raise _lease_lost(writer) from exc


@contextlib.contextmanager
def _unreachable_is_unavailable() -> Iterator[None]:
    # Only the run's own checkpoint traffic: an OperationalError from a node stays the node's.
    try:
        yield
    except psycopg.OperationalError as exc:  # PoolTimeout included
        raise CheckpointsUnavailable(str(exc)) from exc


class FencedSqliteSaver(AsyncSqliteSaver):
    """Checkpoints are in their own file, so no transaction can span the check and the write:
    the check runs just before each write. A takeover between the two lets one write through,
    which SQLite deployments (one machine, usually one process) accept.

    The check reads Stead's database attached to the checkpoint connection: one call on the
    saver's own connection, rather than a transaction queued behind every other statement on
    the single connection of Stead's tables."""

    async def attach_runs(self, database: Path) -> None:
        """Make Stead's database (its `run` table) readable on the checkpoint connection."""
        await self.conn.execute(f"ATTACH DATABASE ? AS {_SQLITE_RUNS_SCHEMA}", (str(database),))

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        await self._check_attempt()
        return await super().aput(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self._check_attempt()
        await super().aput_writes(config, writes, task_id, task_path)

    async def _check_attempt(self) -> None:
        writer = _writer.get()
        if writer is None:
            return
        rows = await self.conn.execute_fetchall(
            _SQLITE_HOLDS_ATTEMPT_SQL, (writer.run_id, writer.attempt)
        )
        if not list(rows):
            raise _lease_lost(writer)


def _lease_lost(writer: RunAttempt) -> LeaseLost:
    return LeaseLost(f"run {writer.run_id} attempt {writer.attempt} was taken over")
