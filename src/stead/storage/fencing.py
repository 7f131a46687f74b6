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
from dataclasses import dataclass


@dataclass(frozen=True)
class RunAttempt:
    run_id: str
    attempt: int


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
def writing_as(run_id: str, attempt: int) -> Iterator[None]:
    """Checkpoints written inside (by this task and the tasks it starts) are fenced."""
    token = _writer.set(RunAttempt(run_id, attempt))
    _attempts_writing.count += 1
    try:
        yield
    finally:
        _attempts_writing.count -= 1
        _writer.reset(token)


def current_writer() -> RunAttempt | None:
    """The attempt whose checkpoints are being written, if inside `writing_as`."""
    return _writer.get()


def attempts_writing() -> int:
    """How many run attempts of this process are inside `writing_as` now."""
    return _attempts_writing.count


def lease_lost(writer: RunAttempt) -> LeaseLost:
    return LeaseLost(f"run {writer.run_id} attempt {writer.attempt} was taken over")
