"""Request bodies of the Agent Server API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stead.api.unknown_fields import note_unknown_fields

StreamMode = Literal[
    "values",
    "messages",
    "messages-tuple",
    "updates",
    "events",
    "debug",
    "custom",
    "tasks",
    "checkpoints",
]
SortOrder = Literal["asc", "desc"]

# Offsets and versions reach SQL as 64-bit integers: a larger number is a bad request rather than
# an overflow in the database driver.
MAX_SQL_INTEGER = 2**63 - 1
Offset = Annotated[int, Field(ge=0, le=MAX_SQL_INTEGER)]


def _fits_json_storage(data: Any) -> Any:
    """Bodies end up stored as JSON, which holds integers of 64 bits at most (orjson's limit)."""
    pending = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, int) and not -(2**63) <= value < 2**64:
            raise ValueError(f"integer {value} does not fit in 64 bits")
    return data


class StoredJson(BaseModel):
    @model_validator(mode="before")
    @classmethod
    def _integers_fit(cls, data: Any) -> Any:
        return _fits_json_storage(data)


class BodyPart(StoredJson):
    """An object inside a request body. Unknown fields are ignored, as the official server
    ignores them: official SDKs send some (the JS SDK's batch runs carry `assistantId`)."""

    model_config = ConfigDict(extra="ignore")


class Body(BodyPart):
    """A request body. Its unknown fields, and those of the objects in it, are named in a
    warning, so that a misspelt option dropped from a request is still noticed."""

    @model_validator(mode="before")
    @classmethod
    def _note_unknown_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            note_unknown_fields(cls, data)
        return data


class AssistantCreate(Body):
    graph_id: str
    assistant_id: str | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    name: str | None = None
    description: str | None = None


class AssistantPatch(Body):
    graph_id: str | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    name: str | None = None
    description: str | None = None


class AssistantSearch(Body):
    metadata: dict[str, Any] | None = None
    graph_id: str | None = None
    name: str | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: Offset = 0
    sort_by: Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"] = "created_at"
    sort_order: SortOrder = "desc"
    select: list[str] | None = None


class AssistantCount(Body):
    metadata: dict[str, Any] | None = None
    graph_id: str | None = None
    name: str | None = None


class AssistantVersions(Body):
    metadata: dict[str, Any] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: Offset = 0


class AssistantLatest(Body):
    version: int = Field(ge=1, le=MAX_SQL_INTEGER)


ThreadTTLStrategy = Literal["delete", "keep_latest"]
TTLMinutes = Annotated[float, Field(gt=0)]


class ThreadTTLBody(BodyPart):
    ttl: TTLMinutes
    strategy: ThreadTTLStrategy = "delete"


class ThreadCreate(Body):
    thread_id: str | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    supersteps: list[dict[str, Any]] | None = None
    ttl: ThreadTTLBody | TTLMinutes | None = None


class ThreadPatch(Body):
    metadata: dict[str, Any] | None = None
    ttl: ThreadTTLBody | TTLMinutes | None = None


class ThreadPrune(Body):
    thread_ids: list[str]
    strategy: ThreadTTLStrategy = "delete"


ThreadStatus = Literal["idle", "busy", "interrupted", "error"]


class ThreadSearch(Body):
    ids: list[str] | None = None
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    status: ThreadStatus | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: Offset = 0
    sort_by: Literal["thread_id", "status", "created_at", "updated_at", "state_updated_at"] = (
        "updated_at"
    )
    sort_order: SortOrder = "desc"
    select: list[str] | None = None
    extract: dict[str, str] | None = None


class ThreadCount(Body):
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    status: ThreadStatus | None = None


class CheckpointRef(BodyPart):
    checkpoint_id: str | None = None
    checkpoint_ns: str | None = ""
    checkpoint_map: dict[str, Any] | None = None
    thread_id: str | None = None


class CheckpointConfig(Body):
    """A checkpoint as a RunnableConfig, the form the JS SDK and Studio send."""

    configurable: CheckpointRef


class ThreadStateAtCheckpoint(Body):
    checkpoint: CheckpointRef
    subgraphs: bool = False


class ThreadStateUpdate(Body):
    values: Any = None
    as_node: str | None = None
    checkpoint: CheckpointRef | None = None
    checkpoint_id: str | None = None


class ThreadHistory(Body):
    limit: int = Field(10, ge=1, le=1000)
    # Tried in order: a CheckpointRef ignores unknown keys, so it would also take a config.
    before: CheckpointConfig | CheckpointRef | str | None = Field(None, union_mode="left_to_right")
    metadata: dict[str, Any] | None = None
    checkpoint: CheckpointRef | None = None


class Command(BodyPart):
    update: Any = None
    resume: Any = None
    goto: Any = None


class RunCreate(Body):
    assistant_id: str
    input: Any = None
    command: Command | None = None
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    checkpoint: CheckpointRef | None = None
    checkpoint_id: str | None = None
    checkpoint_during: bool | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    webhook: str | None = None
    feedback_keys: list[str] | None = None
    stream_mode: StreamMode | list[StreamMode] | None = None
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    multitask_strategy: Literal["reject", "interrupt", "rollback", "enqueue"] = "enqueue"
    if_not_exists: Literal["reject", "create"] = "reject"
    on_disconnect: Literal["cancel", "continue"] = "continue"
    on_completion: Literal["delete", "keep"] = "delete"
    after_seconds: float | None = Field(None, ge=0)
    durability: Literal["sync", "async", "exit"] | None = None
    strict_resume: bool | None = None
    langsmith_tracer: dict[str, Any] | None = None


class RunCancelMany(Body):
    thread_id: str | None = None
    run_ids: list[str] | None = None
    status: Literal["pending", "running", "all"] | None = None


class StorePut(Body):
    namespace: list[str]
    key: str
    value: dict[str, Any]
    index: Literal[False] | list[str] | None = None
    ttl: float | None = None


class StoreDelete(Body):
    namespace: list[str] | None = None
    key: str


class StoreSearch(Body):
    namespace_prefix: list[str] | None = None
    filter: dict[str, Any] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: Offset = 0
    query: str | None = None
    refresh_ttl: bool | None = None


class StoreNamespaces(Body):
    prefix: list[str] | None = None
    suffix: list[str] | None = None
    max_depth: int | None = Field(None, ge=1, le=MAX_SQL_INTEGER)
    limit: int = Field(100, ge=1, le=1000)
    offset: Offset = 0


class CronCreate(Body):
    """A cron body: when to run, plus the run body it stores as its payload."""

    schedule: str
    assistant_id: str
    timezone: str | None = None
    end_time: datetime | None = None
    enabled: bool = True
    on_run_completed: Literal["delete", "keep"] = "delete"
    input: Any = None
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    checkpoint_during: bool | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    webhook: str | None = None
    multitask_strategy: Literal["reject", "interrupt", "rollback", "enqueue"] = "enqueue"
    stream_mode: StreamMode | list[StreamMode] | None = None
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    durability: Literal["sync", "async", "exit"] | None = None


class CronPatch(Body):
    """Only the fields sent change; `end_time: null` clears the end time."""

    schedule: str | None = None
    timezone: str | None = None
    end_time: datetime | None = None
    enabled: bool | None = None
    on_run_completed: Literal["delete", "keep"] | None = None
    input: Any = None
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    webhook: str | None = None
    stream_mode: StreamMode | list[StreamMode] | None = None
    stream_subgraphs: bool | None = None
    stream_resumable: bool | None = None
    durability: Literal["sync", "async", "exit"] | None = None


class CronSearch(Body):
    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: Offset = 0
    sort_by: Literal[
        "cron_id",
        "assistant_id",
        "thread_id",
        "next_run_date",
        "end_time",
        "created_at",
        "updated_at",
    ] = "created_at"
    sort_order: SortOrder = "desc"
    select: list[str] | None = None


class CronCount(Body):
    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None
