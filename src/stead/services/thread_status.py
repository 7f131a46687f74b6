"""What a thread's status becomes when one of its runs ends, whoever ends it.

The executor, a cancel and the lease reaper all end runs; they all settle the thread here, so a
thread is never left `busy` by a path that forgot it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from stead.storage import Database, Transaction

_UNCHANGED: Any = object()


async def end_attempt(
    db: Database,
    run_id: str,
    thread_id: str,
    attempt: int,
    status: str,
    now: datetime,
    *,
    error: Any,
    state: dict[str, Any] | None,
) -> bool | None:
    """Record the status an attempt ended with and settle its thread (`settle_thread`), in one
    transaction: whether other runs are pending or running on the thread, or None when the
    attempt no longer held the run (it was taken over) and nothing changed."""
    failed = status in ("error", "timeout")
    status_when_free = _status_when_free(failed, state)
    if status_when_free is not None and db.dialect.ends_attempts_in_one_call:
        async with db.autocommit() as tx:
            return await tx.runs.end_attempt_settling_thread(
                run_id, attempt, status, now, error=error, state=state, when_free=status_when_free
            )
    async with db.transaction() as tx:
        if not await tx.runs.finish_attempt(run_id, attempt, status, now):
            return None
        return await settle_thread(
            tx, thread_id, run_id, now, failed=failed, error=error, state=state
        )


async def settle_thread(
    tx: Transaction,
    thread_id: str,
    ended_run_id: str,
    now: datetime,
    *,
    failed: bool = False,
    error: Any = _UNCHANGED,
    state: dict[str, Any] | None = None,
) -> bool:
    """Busy while other runs wait; otherwise error, or what the state says, or as it was.
    Whether other runs are pending or running on the thread."""
    changes, status_when_free = _settling(now, failed, error, state)
    if status_when_free is None:
        thread = await tx.threads.get(thread_id)
        if thread is None:
            return False
        status_when_free = "interrupted" if thread["interrupts"] else "idle"
    return await tx.threads.settle(thread_id, ended_run_id, status_when_free, **changes)


def _settling(
    now: datetime, failed: bool, error: Any, state: dict[str, Any] | None
) -> tuple[dict[str, Any], str | None]:
    """The thread's changes, and its status once no other run is active on it
    (`_status_when_free`)."""
    changes: dict[str, Any] = {"updated_at": now}
    if error is not _UNCHANGED:
        changes["error"] = error
    if state is not None:
        changes.update(state, state_updated_at=now)
        changes.pop("status", None)
    return changes, _status_when_free(failed, state)


def _status_when_free(failed: bool, state: dict[str, Any] | None) -> str | None:
    """Error, or what the state says; None when only the thread's row tells (its interrupts)."""
    if failed:
        return "error"
    return state.get("status") if state is not None else None
