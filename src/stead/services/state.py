"""LangGraph state snapshots in the shape of the Agent Server API."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.errors import InvalidUpdateError
from langgraph.types import StateSnapshot

from stead import serde
from stead.errors import ApiError, BadRequest, Unprocessable
from stead.storage.database import driver_errors

EMPTY_STATE: dict[str, Any] = {
    "values": {},
    "next": [],
    "tasks": [],
    "metadata": None,
    "created_at": None,
    "checkpoint": None,
    "parent_checkpoint": None,
    "interrupts": [],
    "checkpoint_id": None,
    "parent_checkpoint_id": None,
}


@contextlib.contextmanager
def graph_rejections() -> Iterator[None]:
    """Turn what a graph's own code raises while its state is read or updated into an answer:
    a reducer refusing a value (a message with an unknown role, say) is 422 with its message,
    an update naming no node of the graph is 400."""
    try:
        yield
    except ApiError:
        raise
    except driver_errors():  # the storage's failures stay server errors
        raise
    except InvalidUpdateError as exc:
        raise BadRequest(str(exc)) from exc
    except Exception as exc:
        raise Unprocessable(str(exc) or type(exc).__name__) from exc


def checkpoint_ref(config: RunnableConfig | None) -> dict[str, Any] | None:
    if not config:
        return None
    configurable = config.get("configurable", {})
    if "checkpoint_id" not in configurable:
        return None
    ref = {
        "thread_id": configurable.get("thread_id"),
        "checkpoint_ns": configurable.get("checkpoint_ns", ""),
        "checkpoint_id": configurable["checkpoint_id"],
    }
    if configurable.get("checkpoint_map"):
        ref["checkpoint_map"] = configurable["checkpoint_map"]
    return ref


def snapshot_to_state(snapshot: StateSnapshot) -> dict[str, Any]:
    if snapshot.config is None or not snapshot.config.get("configurable", {}).get("checkpoint_id"):
        return dict(EMPTY_STATE)
    checkpoint = checkpoint_ref(snapshot.config)
    parent = checkpoint_ref(snapshot.parent_config)
    return serde.to_jsonable(
        {
            "values": snapshot.values,
            "next": list(snapshot.next),
            "tasks": [_task(task) for task in snapshot.tasks],
            "metadata": snapshot.metadata,
            "created_at": snapshot.created_at,
            "checkpoint": checkpoint,
            "parent_checkpoint": parent,
            "interrupts": list(snapshot.interrupts),
            "checkpoint_id": checkpoint["checkpoint_id"] if checkpoint else None,
            "parent_checkpoint_id": parent["checkpoint_id"] if parent else None,
        }
    )


def _task(task: Any) -> dict[str, Any]:
    state: Any = task.state
    checkpoint = None
    if isinstance(state, StateSnapshot):
        state = snapshot_to_state(state)
    elif isinstance(state, dict) and "configurable" in state:
        checkpoint = checkpoint_ref(cast(RunnableConfig, state))
    return {
        "id": task.id,
        "name": task.name,
        "path": list(task.path),
        "error": repr(task.error) if task.error is not None else None,
        "interrupts": list(task.interrupts),
        "checkpoint": checkpoint,
        "state": state,
        "result": task.result,
    }


def interrupts_by_task(snapshot: StateSnapshot) -> dict[str, list[Any]]:
    """The thread's `interrupts` field: pending interrupts keyed by the task that raised them."""
    return {
        task.id: serde.to_jsonable(list(task.interrupts))
        for task in snapshot.tasks
        if task.interrupts
    }


def thread_fields_from_snapshot(snapshot: StateSnapshot) -> dict[str, Any]:
    """What a thread row records of its latest checkpoint."""
    return {
        "values": serde.to_jsonable(snapshot.values),
        "interrupts": interrupts_by_task(snapshot),
        "status": "interrupted" if snapshot.next else "idle",
    }


def thread_config(thread_id: str, checkpoint: dict[str, Any] | None = None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    for key, value in (checkpoint or {}).items():
        if value is not None and key != "thread_id":
            configurable[key] = value
    return {"configurable": configurable}
