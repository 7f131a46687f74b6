"""What a thread's status becomes when one of its runs ends, whoever ends it.

The executor, a cancel and the lease reaper all end runs; they all settle the thread here, so a
thread is never left `busy` by a path that forgot it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from stead.storage import Transaction

_UNCHANGED: Any = object()


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
    changes: dict[str, Any] = {"updated_at": now}
    if error is not _UNCHANGED:
        changes["error"] = error
    if state is not None:
        changes.update(state, state_updated_at=now)
    if failed:
        status_when_free = "error"
        changes.pop("status", None)
    elif "status" in changes:
        status_when_free = changes.pop("status")
    else:
        thread = await tx.threads.get(thread_id)
        if thread is None:
            return False
        status_when_free = "interrupted" if thread["interrupts"] else "idle"
    return await tx.threads.settle(thread_id, ended_run_id, status_when_free, **changes)
