"""A run's checkpoint writes on PostgreSQL, each one statement that carries its fencing check.

LangGraph's saver sends a write as a pipeline of statements, and psycopg waits on the event loop
and flushes the socket for each statement of a pipeline; with the fencing check in front, a
checkpoint was four sends and a pipeline sync. Here the check (`stead_hold_attempt`, migration
0007) is a WITH that every INSERT of the statement reads, so that a refused check writes nothing,
and the rows are those LangGraph's own statements write (same tables, columns and conflict
rules; a test compares them): one send, one answer. The values are serialised by LangGraph's own
`_dump_blobs` and `_dump_writes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.base import WRITES_IDX_MAP, Checkpoint
from langgraph.checkpoint.serde.types import _DeltaSnapshot

from stead.storage.fencing import RunAttempt

# Writes at least this large go by COPY, in pieces (stead.storage.postgres_large_writes): sent as
# one statement, a 20 MiB run's writes peaked 8 to 10 bodies higher (API and worker together,
# bench/README.md), and a large write has no use for the round trips saved.
LARGE_VALUE_BYTES = 2**20

_HELD = "held AS (SELECT stead_hold_attempt(%(run_id)s::text, %(attempt)s::integer))"

PUT_CHECKPOINT_SQL = f"""
    WITH {_HELD},
    blobs AS (
        INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
        SELECT %(thread_id)s, %(checkpoint_ns)s, b.channel, b.version, b.type, b.blob
        FROM held, unnest(%(channels)s::text[], %(versions)s::text[], %(types)s::text[],
                          %(blobs)s::bytea[]) AS b(channel, version, type, blob)
        ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING
    )
    INSERT INTO checkpoints
        (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata)
    SELECT %(thread_id)s, %(checkpoint_ns)s, %(checkpoint_id)s, %(parent_checkpoint_id)s,
           %(checkpoint)s, %(metadata)s
    FROM held
    ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id)
    DO UPDATE SET checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata
"""

_PUT_WRITES_SQL = f"""
    WITH {_HELD}
    INSERT INTO checkpoint_writes
        (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob)
    SELECT %(thread_id)s, %(checkpoint_ns)s, %(checkpoint_id)s, %(task_id)s, %(task_path)s,
           w.idx, w.channel, w.type, w.blob
    FROM held, unnest(%(indexes)s::integer[], %(channels)s::text[], %(types)s::text[],
                      %(blobs)s::bytea[]) AS w(idx, channel, type, blob)
    ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
"""
# As LangGraph's saver: writes to its special channels (an error, an interrupt…) replace the
# task's earlier ones; others are kept as first written.
PUT_WRITES_REPLACING_SQL = (
    _PUT_WRITES_SQL
    + "DO UPDATE SET channel = EXCLUDED.channel, type = EXCLUDED.type, blob = EXCLUDED.blob"
)
PUT_WRITES_KEEPING_SQL = _PUT_WRITES_SQL + "DO NOTHING"


@dataclass(frozen=True)
class SplitCheckpoint:
    """A checkpoint as LangGraph's PostgreSQL saver stores it: primitive channel values inline
    in the checkpoint's row, the others (and delta snapshots, marked `True` inline) as blobs."""

    inline: dict[str, Any]
    blob_values: dict[str, Any]


def split_checkpoint(checkpoint: Checkpoint) -> SplitCheckpoint:
    inline: dict[str, Any] = {**checkpoint, "channel_values": {}}
    blob_values: dict[str, Any] = {}
    for channel, value in checkpoint["channel_values"].items():
        if isinstance(value, _DeltaSnapshot):
            blob_values[channel] = value
            inline["channel_values"][channel] = True
        elif value is None or isinstance(value, (str, int, float, bool)):
            inline["channel_values"][channel] = value
        else:
            blob_values[channel] = value
    return SplitCheckpoint(inline, blob_values)


def attempt_parameters(writer: RunAttempt) -> dict[str, Any]:
    return {"run_id": writer.run_id, "attempt": writer.attempt}


def blob_parameters(rows: Sequence[tuple[str, str, str, str, str, bytes | None]]) -> dict[str, Any]:
    """`_dump_blobs`' rows (thread, namespace, channel, version, type, blob) as the arrays of
    `PUT_CHECKPOINT_SQL`."""
    return {
        "channels": [row[2] for row in rows],
        "versions": [row[3] for row in rows],
        "types": [row[4] for row in rows],
        "blobs": [row[5] for row in rows],
    }


def write_parameters(
    rows: Sequence[tuple[str, str, str, str, str, int, str, str, bytes]], replacing: bool
) -> dict[str, Any]:
    """`_dump_writes`' rows as the arrays of the writes' statement (`kept_writes`)."""
    kept = kept_writes(rows, replacing)
    return {
        "indexes": [row[5] for row in kept],
        "channels": [row[6] for row in kept],
        "types": [row[7] for row in kept],
        "blobs": [row[8] for row in kept],
    }


def kept_writes(rows: Sequence[tuple[Any, ...]], replacing: bool) -> list[tuple[Any, ...]]:
    """`_dump_writes`' rows as one statement writes them: where writes replace, a later write
    of the same index wins, as it did when LangGraph's saver sent them one by one (one statement
    may not update a row twice)."""
    return list({row[5]: row for row in rows}.values()) if replacing else list(rows)


def is_large(split: SplitCheckpoint, blobs: Sequence[tuple[Any, ...]]) -> bool:
    """Whether a checkpoint carries a large value, inline or as a blob."""
    inline = split.inline["channel_values"].values()
    return any(isinstance(v, (str, bytes)) and len(v) >= LARGE_VALUE_BYTES for v in inline) or (
        sum(len(row[5] or b"") for row in blobs) >= LARGE_VALUE_BYTES
    )


def are_large(rows: Sequence[tuple[Any, ...]]) -> bool:
    return sum(len(row[8]) for row in rows) >= LARGE_VALUE_BYTES


def replaces_writes(writes: Sequence[tuple[str, Any]]) -> bool:
    return all(channel in WRITES_IDX_MAP for channel, _ in writes)
