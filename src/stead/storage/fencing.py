"""Checkpoint writes fenced by the run's attempt: a stale attempt cannot write checkpoints.

A worker whose lease was taken over notices it at its next renewal; until then LangGraph could
still write checkpoints for it. The executor names the attempt it runs (`writing_as`); the
savers refuse a write once the run's row no longer holds that attempt as `running`.
This module holds what both backends share; the savers are in stead.storage.sqlite_savers and
stead.storage.postgres_savers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RunAttempt:
    run_id: str
    attempt: int
    # Threads this attempt created and has written no checkpoint to yet: they hold none.
    new_threads: set[str] = field(default_factory=set, compare=False)


_writer: ContextVar[RunAttempt | None] = ContextVar("stead_checkpoint_writer", default=None)


class _Tally:
    def __init__(self) -> None:
        self.count = 0


_attempts_writing = _Tally()


class LeaseLost(Exception):
    """Another attempt took the run over: this one must stop and record nothing."""


class CheckpointsUnavailable(Exception):
    """The checkpoint database is unreachable: the run can continue from its last checkpoint."""


@contextlib.contextmanager
def writing_as(run_id: str, attempt: int, *, new_thread_id: str | None = None) -> Iterator[None]:
    """Checkpoints written inside (by this task and the tasks it starts) are fenced.
    `new_thread_id`: a thread made with the run, so holding no checkpoint before its first
    attempt writes one."""
    new_threads = {new_thread_id} if new_thread_id is not None else set()
    token = _writer.set(RunAttempt(run_id, attempt, new_threads))
    _attempts_writing.count += 1
    try:
        yield
    finally:
        _attempts_writing.count -= 1
        _writer.reset(token)


def current_writer() -> RunAttempt | None:
    """The attempt whose checkpoints are being written, if inside `writing_as`."""
    return _writer.get()


def holds_no_checkpoints(thread_id: str) -> bool:
    """Whether the attempt being written made `thread_id` and has written nothing to it yet."""
    writer = _writer.get()
    return writer is not None and thread_id in writer.new_threads


def note_checkpoint_write(thread_id: str) -> None:
    """Called as a write to `thread_id` starts: from then on its checkpoints are read."""
    writer = _writer.get()
    if writer is not None:
        writer.new_threads.discard(thread_id)


def attempts_writing() -> int:
    """How many run attempts of this process are inside `writing_as` now."""
    return _attempts_writing.count


def lease_lost(writer: RunAttempt) -> LeaseLost:
    return LeaseLost(f"run {writer.run_id} attempt {writer.attempt} was taken over")
