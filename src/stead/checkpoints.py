"""Checkpoint operations the server needs beyond what every LangGraph saver implements."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
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


async def keep_latest_checkpoint(saver: BaseCheckpointSaver, thread_id: str) -> None:
    """Drop every checkpoint of a thread but the latest of each namespace (with its writes)."""
    try:
        await saver.aprune([thread_id], strategy="keep_latest")
    except NotImplementedError:
        found = await _list_thread(saver, thread_id)
        latest = {item.config["configurable"].get("checkpoint_ns", ""): item for item in found}
        if len(latest) == len(found):
            return
        await saver.adelete_thread(thread_id)
        # The parents are gone, so the kept checkpoints must not point at them.
        kept = [item._replace(parent_config=None) for item in latest.values()]
        await _put_all(saver, kept, thread_id)


async def thread_storage(saver: BaseCheckpointSaver, thread_id: str) -> dict[str, Any]:
    """Bytes a thread's checkpoints take, as the saver's serializer writes them.

    Checkpoints count without their channel values, plus their metadata; each channel value
    counts once per version, as a saver that stores values apart from checkpoints keeps them.
    """
    checkpoints = _Tally()
    writes = _Tally()
    channels: dict[str, _Tally] = {}
    seen_versions: set[tuple[str, str, Any]] = set()
    async for item in saver.alist({"configurable": {"thread_id": thread_id}}):
        namespace = item.config["configurable"].get("checkpoint_ns", "")
        values = item.checkpoint.get("channel_values", {})
        header = {**item.checkpoint, "channel_values": {}}
        checkpoints.add(_size(saver, header) + _size(saver, item.metadata))
        for channel, value in values.items():
            version = (namespace, channel, item.checkpoint["channel_versions"].get(channel))
            if version not in seen_versions:
                seen_versions.add(version)
                channels.setdefault(channel, _Tally()).add(_size(saver, value))
        for _task_id, _channel, value in item.pending_writes or ():
            writes.add(_size(saver, value))
    channel_bytes = sum(tally.bytes for tally in channels.values())
    return {
        "thread_id": thread_id,
        "total_bytes": checkpoints.bytes + channel_bytes + writes.bytes,
        "checkpoints": checkpoints.json(),
        "channel_values": {
            "count": sum(tally.count for tally in channels.values()),
            "bytes": channel_bytes,
            "by_channel": {
                channel: {"versions": tally.count, "bytes": tally.bytes}
                for channel, tally in channels.items()
            },
        },
        "pending_writes": writes.json(),
    }


@dataclass
class _Tally:
    count: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.count += 1
        self.bytes += size

    def json(self) -> dict[str, int]:
        return {"count": self.count, "bytes": self.bytes}


def _size(saver: BaseCheckpointSaver, value: Any) -> int:
    return len(saver.serde.dumps_typed(value)[1])


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
