"""Checkpoint writes fenced by the run's attempt: a stale attempt cannot write checkpoints.

A worker whose lease was taken over notices it at its next renewal; until then LangGraph could
still write checkpoints for it. The executor names the attempt it runs (`writing_as`); the
savers refuse a write once the run's row no longer holds that attempt as `running`.
This module holds what both backends share, and the SQLite saver; PostgreSQL's is in
stead.storage.postgres_savers.
"""

from __future__ import annotations

import contextlib
import inspect
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from stead.storage.sqlite_inline import InlineConnection

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


def current_writer() -> RunAttempt | None:
    """The attempt whose checkpoints are being written, if inside `writing_as`."""
    return _writer.get()


F = TypeVar("F", bound=Callable[..., Any])


def _signature_kept(method: F) -> F:
    """LangGraph reads the signature of a saver's `aput_writes` at the start of every run
    (whether it takes `task_path`); kept on the function, `inspect` need not rebuild it."""
    method.__signature__ = inspect.signature(method)  # type: ignore[attr-defined]
    return method


class FencedSqliteSaver(AsyncSqliteSaver):
    """Checkpoints are in their own file, so no transaction can span the check and the write:
    the check runs just before each write. A takeover between the two lets one write through,
    which SQLite deployments (one machine, usually one process) accept.

    The check reads Stead's database attached to the checkpoint connection (`attach_runs`):
    one call on the saver's own connection, rather than a transaction queued behind every other
    statement on the single connection of Stead's tables.

    A write that bound a large value reopens the connection (see stead.storage.sqlite_inline).
    """

    def __init__(self, conn: InlineConnection) -> None:
        super().__init__(conn)
        self._inline = conn

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        await self._check_attempt()
        saved = await super().aput(config, checkpoint, metadata, new_versions)
        await self._inline.reopen_if_large_values_bound(self.lock)
        return saved

    @_signature_kept
    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self._check_attempt()
        await super().aput_writes(config, writes, task_id, task_path)
        await self._inline.reopen_if_large_values_bound(self.lock)

    async def _check_attempt(self) -> None:
        writer = current_writer()
        if writer is None:
            return
        rows = await self.conn.execute_fetchall(
            _SQLITE_HOLDS_ATTEMPT_SQL, (writer.run_id, writer.attempt)
        )
        if not list(rows):
            raise lease_lost(writer)


def attach_runs(database: Path) -> Callable[[sqlite3.Connection], None]:
    """Set-up of a checkpoint connection: Stead's database (its `run` table) readable on it."""

    def attach(conn: sqlite3.Connection) -> None:
        conn.execute(f"ATTACH DATABASE ? AS {_SQLITE_RUNS_SCHEMA}", (str(database),))

    return attach


def lease_lost(writer: RunAttempt) -> LeaseLost:
    return LeaseLost(f"run {writer.run_id} attempt {writer.attempt} was taken over")
