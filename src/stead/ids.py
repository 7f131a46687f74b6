"""Identifier rules of the Agent Server API."""

from __future__ import annotations

import functools
import uuid

import uuid_utils

# The namespace the official server derives system assistant ids from, so clients that
# hard-code them keep working.
_SYSTEM_ASSISTANT_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")


def new_time_ordered_id() -> str:
    """UUIDv7, for threads, runs and crons: ids sort by creation time."""
    return str(uuid_utils.uuid7())


def new_random_id() -> str:
    """UUIDv4, for assistants created through the API and copied threads."""
    return str(uuid.uuid4())


# Asked for on every run that names its graph; only the deployment's graph ids reach it.
@functools.lru_cache(maxsize=256)
def system_assistant_id(graph_id: str) -> str:
    return str(uuid.uuid5(_SYSTEM_ASSISTANT_NAMESPACE, graph_id))


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
