"""JSON encoding of everything a graph can put in its state or stream."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import orjson
from langgraph.types import Command, Interrupt, Send
from pydantic import BaseModel

# Dataclasses pass through to _default so that Interrupt keeps its API shape.
_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_PASSTHROUGH_DATACLASS


class Encoded:
    """JSON already encoded: `dumps` puts it in its output as it is, and returns it uncopied
    when it is the whole (the last values of a large state are sent without a copy)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def _default(obj: Any) -> Any:
    if isinstance(obj, Encoded):
        return orjson.Fragment(obj.data)
    if isinstance(obj, BaseModel):
        return obj.model_dump()
    if isinstance(obj, Interrupt):
        encoded = {"value": obj.value, "id": obj.id}
        if isinstance(obj.response_schema, dict):
            encoded["response_schema"] = obj.response_schema
        return encoded
    if isinstance(obj, Send):
        return {"node": obj.node, "arg": obj.arg}
    if isinstance(obj, Command):
        return {k: v for k, v in dataclasses.asdict(obj).items() if v is not None and v != ()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", errors="replace")
    if hasattr(obj, "to_json"):
        return obj.to_json()
    # Last resort: a readable string beats failing a whole stream on one odd value.
    return repr(obj)


def dumps(obj: Any) -> bytes:
    if isinstance(obj, Encoded):
        return obj.data
    return orjson.dumps(obj, default=_default, option=_OPTIONS)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    return orjson.loads(data)


def to_jsonable(obj: Any) -> Any:
    """Plain dicts, lists and scalars only: what the database and HTTP layers store."""
    return orjson.loads(dumps(obj))
