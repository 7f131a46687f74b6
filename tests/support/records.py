"""Rows of Stead's tables, as the services would store them, for tests that use the storage
layer directly."""

from __future__ import annotations

from typing import Any

from stead.services.assistants import now_utc


def assistant_record(assistant_id: str, **fields: Any) -> dict[str, Any]:
    """An assistant of the `echo` graph."""
    now = now_utc()
    return {
        "assistant_id": assistant_id,
        "graph_id": "echo",
        "config": {},
        "context": {},
        "metadata": {},
        "name": "echo",
        "description": None,
        "version": 1,
        "created_at": now,
        "updated_at": now,
        **fields,
    }


def run_record(run_id: str, thread_id: str, assistant_id: str, **fields: Any) -> dict[str, Any]:
    """A pending run of `assistant_id` on `thread_id`, created now."""
    now = now_utc()
    return {
        "run_id": run_id,
        "thread_id": thread_id,
        "assistant_id": assistant_id,
        "status": "pending",
        "metadata": {},
        "kwargs": {},
        "multitask_strategy": "enqueue",
        "attempt": 0,
        "cancel_action": None,
        "created_at": now,
        "updated_at": now,
        **fields,
    }
