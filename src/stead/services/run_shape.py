"""The Run resource as clients see it, in API responses and webhook bodies alike."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RUN_FIELDS = (
    "run_id",
    "thread_id",
    "assistant_id",
    "created_at",
    "updated_at",
    "status",
    "metadata",
    "kwargs",
    "multitask_strategy",
)


def run_json(run: Mapping[str, Any]) -> dict[str, Any]:
    # LangSmith tracing sessions do not exist here; clients still expect the key.
    return {**{key: run[key] for key in RUN_FIELDS}, "langsmith_session_name": None}
