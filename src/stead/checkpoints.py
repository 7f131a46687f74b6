"""Checkpoint operations the server needs beyond what every LangGraph saver implements."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple


async def copy_thread(saver: BaseCheckpointSaver, source: str, target: str) -> None:
    """Copy every checkpoint and pending write of one thread to another."""
    try:
        await saver.acopy_thread(source, target)
    except NotImplementedError:
        await _put_all(saver, await _list_thread(saver, source), target)


async def delete_run_checkpoints(saver: BaseCheckpointSaver, thread_id: str, run_id: str) -> None:
    """Remove the checkpoints a run wrote, leaving the thread as it was before the run."""
    try:
        await saver.adelete_for_runs([run_id])
    except NotImplementedError:
        found = await _list_thread(saver, thread_id)
        kept = [item for item in found if item.metadata.get("run_id") != run_id]
        if len(kept) == len(found):
            return
        await saver.adelete_thread(thread_id)
        await _put_all(saver, kept, thread_id)


async def _list_thread(saver: BaseCheckpointSaver, thread_id: str) -> list[CheckpointTuple]:
    """All checkpoints of a thread, in every namespace, oldest first."""
    found = [item async for item in saver.alist({"configurable": {"thread_id": thread_id}})]
    return list(reversed(found))


async def _put_all(
    saver: BaseCheckpointSaver, items: list[CheckpointTuple], thread_id: str
) -> None:
    for item in items:  # oldest first, so parents exist before their children
        configurable = item.config["configurable"]
        parent = (item.parent_config or {}).get("configurable", {}).get("checkpoint_id")
        put_config: RunnableConfig = {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": configurable.get("checkpoint_ns", ""),
                **({"checkpoint_id": parent} if parent else {}),
            }
        }
        saved = await saver.aput(
            put_config, item.checkpoint, item.metadata, item.checkpoint["channel_versions"]
        )
        writes: defaultdict[str, list[tuple[str, Any]]] = defaultdict(list)
        for task_id, channel, value in item.pending_writes or ():
            writes[task_id].append((channel, value))
        for task_id, task_writes in writes.items():
            await saver.aput_writes(saved, task_writes, task_id)
