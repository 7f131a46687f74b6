"""A run's large checkpoint writes on PostgreSQL, sent by COPY in pieces.

A statement's parameter goes whole into libpq's output buffer, which grows to the power of two
above the largest message (32 MiB for a 20 MiB value) and holds it while the write lasts: one
body more at a worker's peak (bench/README.md). COPY takes the rows as pieces, each of them
flushed as it comes, so the buffer stays at a piece's size. The rows land in a temporary table of
the connection, emptied as the transaction commits, and one INSERT ... SELECT per table puts them
where LangGraph's saver puts them, by its conflict rules.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncCursor

_Piece = bytes | bytearray | memoryview

# Pieces smaller than this are gathered before they are sent; larger ones go as they are, and
# psycopg cuts them to its own size (128 KiB) and flushes as it goes.
_GATHERED_BYTES = 64 * 1024
# A jsonb value's text is encoded this much at a time, never whole.
_TEXT_PIECE_CHARS = 2**20
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_TRAILER = struct.pack("!h", -1)
_NULL = struct.pack("!i", -1)
_JSONB_VERSION = 1

BLOB_COLUMNS = ("thread_id", "checkpoint_ns", "channel", "version", "type", "blob")
CHECKPOINT_COLUMNS = (
    "thread_id",
    "checkpoint_ns",
    "checkpoint_id",
    "parent_checkpoint_id",
    "checkpoint",
    "metadata",
)
WRITE_COLUMNS = (
    "thread_id",
    "checkpoint_ns",
    "checkpoint_id",
    "task_id",
    "task_path",
    "idx",
    "channel",
    "type",
    "blob",
)
# LangGraph's conflict rules (langgraph.checkpoint.postgres.base), table by table.
BLOBS_KEPT = "ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING"
CHECKPOINT_REPLACED = (
    "ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id)"
    " DO UPDATE SET checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata"
)
_WRITE_KEY = "ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)"
WRITES_REPLACED = (
    f"{_WRITE_KEY} DO UPDATE SET channel = EXCLUDED.channel, type = EXCLUDED.type,"
    " blob = EXCLUDED.blob"
)
WRITES_KEPT = f"{_WRITE_KEY} DO NOTHING"


@dataclass(frozen=True)
class JsonbValue:
    """A jsonb column's value as psycopg's Jsonb dumper sends it: the standard library's
    `json.dumps`, whose text is ASCII, so its length is its size in bytes."""

    text: str

    @classmethod
    def of(cls, value: Any) -> JsonbValue:
        return cls(json.dumps(value))


async def insert_rows(
    cur: AsyncCursor[Any],
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    conflict: str,
) -> None:
    """`rows` into `table` by COPY through the connection's temporary copy of it, then
    `INSERT ... SELECT` with `conflict`, inside the caller's transaction."""
    staged = f"stead_copied_{table}"
    listed = ", ".join(columns)
    await cur.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {staged} (LIKE {table}) ON COMMIT DELETE ROWS"
    )
    async with cur.copy(f"COPY {staged} ({listed}) FROM STDIN (FORMAT BINARY)") as copy:
        for piece in _gathered(_copy_pieces(rows)):
            await copy.write(piece)
    await cur.execute(f"INSERT INTO {table} ({listed}) SELECT {listed} FROM {staged} {conflict}")


def _copy_pieces(rows: Sequence[Sequence[Any]]) -> Iterator[_Piece]:
    """PostgreSQL's binary COPY format, a large value as views of it or pieces of its text."""
    yield _SIGNATURE
    for row in rows:
        yield struct.pack("!h", len(row))
        for value in row:
            yield from _field(value)
    yield _TRAILER


def _field(value: Any) -> Iterator[_Piece]:
    if value is None:
        yield _NULL
    elif isinstance(value, JsonbValue):
        text = value.text
        yield struct.pack("!ib", len(text) + 1, _JSONB_VERSION)
        for start in range(0, len(text), _TEXT_PIECE_CHARS):
            yield text[start : start + _TEXT_PIECE_CHARS].encode("ascii")
    elif isinstance(value, bytes):
        yield struct.pack("!i", len(value))
        yield memoryview(value)
    elif isinstance(value, int):
        yield struct.pack("!ii", 4, value)
    elif isinstance(value, str):
        encoded = value.encode()
        yield struct.pack("!i", len(encoded))
        yield encoded
    else:
        raise TypeError(f"no COPY field for {type(value).__name__}")


def _gathered(pieces: Iterator[_Piece]) -> Iterator[_Piece]:
    """Small pieces joined, so that each write to the COPY carries some weight."""
    small = bytearray()
    for piece in pieces:
        if len(piece) < _GATHERED_BYTES:
            small += piece
            if len(small) < _GATHERED_BYTES:
                continue
            piece, small = small, bytearray()
        elif small:
            yield small
            small = bytearray()
        yield piece
    if small:
        yield small
