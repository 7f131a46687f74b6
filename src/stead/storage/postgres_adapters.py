"""Where psycopg's default adaptation copies a large value on its way, adapters that do not.

- json and jsonb read on Stead's engine: psycopg's loader copies each value into bytes before
  decoding it (the standard library's `json.loads` cannot read a memoryview). orjson can: it is
  handed the result's buffer as it is. A worker claiming a run with a 20 MiB input held 20 MiB
  less (bench/README.md).
- bytea sent by LangGraph's savers (a checkpoint's blobs, a task's writes): psycopg's compiled
  dumper copies a bytes value into a buffer of its own, then libpq copies it into its output
  buffer. Stead's dumper gives libpq the bytes as they are: one run with a 20 MiB input peaked at
  5.0 bodies on PostgreSQL + Redis, API process and worker together, instead of 6.0.

The savers keep psycopg's json adaptation: orjson reads integers past 64 bits as floats, which
the standard library keeps whole, and LangGraph's checkpoints are theirs to read back.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.abc import Buffer
from psycopg.adapt import AdaptersMap, Dumper, Loader
from psycopg.pq import Format

from stead import serde


class _JsonInPlaceLoader(Loader):
    """A json or jsonb value decoded by orjson where the result holds it."""

    def load(self, data: Buffer) -> Any:
        return serde.loads(data)


def read_json_in_place(adapters: AdaptersMap) -> None:
    for type_name in ("json", "jsonb"):
        adapters.register_loader(type_name, _JsonInPlaceLoader)


class _BytesAsTheyAreDumper(Dumper):
    """bytes to bytea, handed to libpq uncopied. Registering psycopg's own pure-Python dumper
    would not do: an adapters map swaps a psycopg class for its compiled namesake."""

    format = Format.BINARY
    oid = psycopg.adapters.types["bytea"].oid

    def dump(self, obj: Buffer) -> Buffer:
        return obj


def savers_adapters() -> AdaptersMap:
    """psycopg's global adapters, with bytes sent to bytea as they are."""
    adapters = AdaptersMap(psycopg.adapters)
    adapters.register_dumper(bytes, _BytesAsTheyAreDumper)
    return adapters
