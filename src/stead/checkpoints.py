"""Checkpoint operations the server needs beyond what every LangGraph saver implements."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver


async def copy_thread(saver: BaseCheckpointSaver, source: str, target: str) -> None:
    """Copy every checkpoint and pending write of one thread to another."""
    try:
        await saver.acopy_thread(source, target)
        return
    except NotImplementedError:
        pass
    found = [item async for item in saver.alist({"configurable": {"thread_id": source}})]
    for item in reversed(found):  # oldest first, so parents exist before their children
        configurable = item.config["configurable"]
        parent = (item.parent_config or {}).get("configurable", {}).get("checkpoint_id")
        put_config: RunnableConfig = {
            "configurable": {
                "thread_id": target,
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
