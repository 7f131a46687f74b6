"""The resources as the server returns them, for the OpenAPI document only.

Routes build their bodies as plain dicts and send them with orjson; these models describe those
bodies (the official server's shapes where Stead matches them) and are never used to validate or
serialize a response. Free-form parts (metadata, config, values, kwargs) stay open objects.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, NotRequired

from pydantic import BaseModel, create_model
from typing_extensions import TypedDict

from stead.api.models import ThreadStatus, ThreadTTLStrategy

RunStatus = Literal["pending", "running", "error", "success", "timeout", "interrupted"]
MultitaskStrategy = Literal["reject", "interrupt", "rollback", "enqueue"]


class AssistantVersion(BaseModel):
    """One saved version: an assistant's fields as they were, without `updated_at`."""

    assistant_id: str
    graph_id: str
    config: dict[str, Any]
    context: dict[str, Any]
    metadata: dict[str, Any]
    name: str
    description: str | None
    version: int
    created_at: datetime


class Assistant(AssistantVersion):
    updated_at: datetime


# langchain's drawing leaves out what a node or edge does not have, so those keys are optional
# but never null. (typing_extensions: pydantic needs its TypedDict before Python 3.12.)
class GraphNode(TypedDict):
    # Nodes whose ids are UUIDs are numbered instead.
    id: str | int
    type: NotRequired[str]
    data: NotRequired[Any]
    metadata: NotRequired[dict[str, Any]]


class GraphEdge(TypedDict):
    source: str | int
    target: str | int
    data: NotRequired[Any]
    conditional: NotRequired[bool]


class GraphDrawing(BaseModel):
    nodes: list[GraphNode]
    edges: list[GraphEdge]


class GraphSchemas(BaseModel):
    """JSON schemas of a graph's parts; null where the graph's types cannot be described."""

    input_schema: dict[str, Any] | None
    output_schema: dict[str, Any] | None
    state_schema: dict[str, Any] | None
    config_schema: dict[str, Any] | None
    context_schema: dict[str, Any] | None


class AssistantSchemas(GraphSchemas):
    graph_id: str


class Interrupt(BaseModel):
    id: str
    value: Any = None


class ThreadError(BaseModel):
    """Why the thread's last run failed or stopped: the exception's class name and message."""

    error: str
    message: str


class ThreadTTLInfo(BaseModel):
    strategy: ThreadTTLStrategy
    ttl_minutes: float
    expires_at: datetime | None


class Thread(BaseModel):
    thread_id: str
    created_at: datetime
    updated_at: datetime
    state_updated_at: datetime
    metadata: dict[str, Any]
    config: dict[str, Any]
    status: ThreadStatus
    # The latest checkpoint's values; null until the first run or state update.
    values: dict[str, Any] | None
    interrupts: dict[str, list[Interrupt]]
    error: ThreadError | None
    # Only with `?include=ttl`, for a thread that has a TTL.
    ttl: ThreadTTLInfo | None = None


class Checkpoint(BaseModel):
    thread_id: str | None
    checkpoint_ns: str
    checkpoint_id: str
    checkpoint_map: dict[str, Any] | None = None


class ThreadTask(BaseModel):
    id: str
    name: str
    path: list[Any]
    error: str | None
    interrupts: list[Interrupt]
    checkpoint: Checkpoint | None
    # A subgraph's own state with `?subgraphs=true`, else its config (or null).
    state: ThreadState | dict[str, Any] | None
    result: Any = None


class ThreadState(BaseModel):
    """A checkpoint of the thread's graph; every field null or empty before the first one."""

    values: dict[str, Any] | list[Any]
    next: list[str]
    tasks: list[ThreadTask]
    metadata: dict[str, Any] | None
    created_at: datetime | None
    checkpoint: Checkpoint | None
    parent_checkpoint: Checkpoint | None
    interrupts: list[Interrupt]
    checkpoint_id: str | None
    parent_checkpoint_id: str | None


# ThreadTask and ThreadState refer to each other.
ThreadTask.model_rebuild()


class ThreadStateUpdated(BaseModel):
    """Where `POST /threads/{id}/state` left the thread: the new checkpoint's configurable."""

    checkpoint: dict[str, Any]
    configurable: dict[str, Any]
    checkpoint_id: str | None


class ByteCount(BaseModel):
    count: int
    bytes: int


class ChannelBytes(BaseModel):
    versions: int
    bytes: int


class ChannelValuesBytes(ByteCount):
    by_channel: dict[str, ChannelBytes]


class ThreadStorage(BaseModel):
    thread_id: str
    total_bytes: int
    checkpoints: ByteCount
    channel_values: ChannelValuesBytes
    pending_writes: ByteCount


class ThreadsPruned(BaseModel):
    pruned_count: int


class Run(BaseModel):
    run_id: str
    thread_id: str
    assistant_id: str
    created_at: datetime
    updated_at: datetime
    status: RunStatus
    metadata: dict[str, Any]
    kwargs: dict[str, Any]
    multitask_strategy: MultitaskStrategy
    # LangSmith sessions do not exist here; the key is always null.
    langsmith_session_name: str | None


class Cron(BaseModel):
    cron_id: str
    assistant_id: str
    thread_id: str | None
    user_id: str | None
    end_time: datetime | None
    schedule: str
    timezone: str | None
    # The run body every scheduled run is made from.
    payload: dict[str, Any]
    next_run_date: datetime | None
    metadata: dict[str, Any]
    on_run_completed: Literal["delete", "keep"] | None
    enabled: bool
    created_at: datetime
    updated_at: datetime


class Item(BaseModel):
    namespace: list[str]
    key: str
    value: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class SearchItem(Item):
    # The similarity to the query; null without a query or an index.
    score: float | None = None


class SearchItems(BaseModel):
    items: list[SearchItem]


class Namespaces(BaseModel):
    namespaces: list[list[str]]


class Ok(BaseModel):
    ok: bool
    services: dict[str, Any]


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, str]


class ServerInfo(BaseModel):
    version: str
    langgraph_py_version: str
    flags: dict[str, bool]
    host: dict[str, str | None]


def search_results(model: type[BaseModel], **extra: Any) -> Any:
    """A search's body, which `select` may cut down: a list of objects with any subset of
    `model`'s fields (plus `extra`), each still of its own type; a field that is not nullable
    is never null, merely absent."""
    annotations = {name: field.annotation for name, field in model.model_fields.items()}
    fields: dict[str, Any] = {
        name: (annotation, None) for name, annotation in {**annotations, **extra}.items()
    }
    selection = create_model(f"{model.__name__}Selection", **fields)
    return list[selection]  # type: ignore[valid-type]


AssistantSearchResults = search_results(Assistant)
# `extract` adds the values found at the requested paths, by alias.
ThreadSearchResults = search_results(Thread, extracted=dict[str, Any])
RunListResults = search_results(Run)
CronSearchResults = search_results(Cron)


class ProtocolAnswer(BaseModel):
    """The answer to a thread protocol command: `success` with its `result` and `meta`, or the
    error envelope with its `error` code and `message` (`id` is null for a malformed command)."""

    type: Literal["success", "error"]
    id: int | None
    result: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None
    error: str | None = None
    message: str | None = None
