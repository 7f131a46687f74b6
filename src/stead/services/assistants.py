"""Assistants: configured versions of a graph. One system assistant exists per graph."""

from __future__ import annotations

import contextlib
import typing
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from langgraph.pregel import Pregel
from pydantic import TypeAdapter, create_model

from stead import serde
from stead.auth.user import AuthUser
from stead.errors import BadRequest, Conflict, FailedDependency, NotFound
from stead.graphs import GraphFactoryError, GraphRegistry
from stead.ids import is_uuid, new_random_id, system_assistant_id
from stead.storage import Database, Page
from stead.storage.access import UNRESTRICTED, Access


def now_utc() -> datetime:
    return datetime.now(UTC)


def merge_config_and_context(
    config: dict[str, Any] | None, context: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Config and context are two views of the same settings: mirror one into the other."""
    config = dict(config or {})
    context = dict(context or {})
    configurable = dict(config.get("configurable") or {})
    if configurable and context:
        raise BadRequest(
            "Cannot specify both configurable and context. Prefer setting context alone."
        )
    if context:
        config["configurable"] = dict(context)
    elif configurable:
        context = dict(configurable)
    return config, context


# The JSON fields of an assistant's row, kept encoded in the cache so that no caller shares them.
_JSON_FIELDS = ("config", "context", "metadata")


class AssistantCache:
    """Assistants as last read, by id, for the runs created on them. A run built from one is
    inserted only if the assistant is unchanged, checked by the INSERT itself
    (`RunRepository.insert`): so a change made by another process is
    never missed, and a run costs no read of its assistant (bench/README.md). An entry found
    stale is forgotten by the caller; changes made here forget theirs at once."""

    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = capacity
        self._records: dict[str, tuple[dict[str, Any], dict[str, bytes]]] = {}

    def get(self, assistant_id: str, access: Access) -> dict[str, Any] | None:
        """The assistant as last read; None if it was not, or if `access` filters assistants
        (their read applies the filter)."""
        if access.assistants is not None:
            return None
        cached = self._records.get(assistant_id)
        if cached is None:
            return None
        scalars, encoded = cached
        return {**scalars, **{field: serde.loads(value) for field, value in encoded.items()}}

    def remember(self, record: dict[str, Any]) -> None:
        assistant_id = record["assistant_id"]
        self._records.pop(assistant_id, None)
        if len(self._records) >= self._capacity:
            # The oldest entry goes: dicts keep their insertion order.
            del self._records[next(iter(self._records))]
        scalars = {k: v for k, v in record.items() if k not in _JSON_FIELDS}
        encoded = {field: serde.dumps(record[field]) for field in _JSON_FIELDS}
        self._records[assistant_id] = (scalars, encoded)

    def forget(self, assistant_id: str) -> None:
        self._records.pop(assistant_id, None)


class AssistantService:
    def __init__(self, db: Database, graphs: GraphRegistry) -> None:
        self._db = db
        self._graphs = graphs
        self.cache = AssistantCache()

    async def ensure_system_assistants(self) -> None:
        """One assistant per graph; replicas starting together on a fresh database may race to
        create them, so an existing one is left as it is."""
        async with self._db.transaction() as tx:
            for graph_id in self._graphs.graph_ids:
                if await tx.assistants.get(system_assistant_id(graph_id)) is None:
                    now = now_utc()
                    await tx.assistants.insert_unless_present(
                        {
                            "assistant_id": system_assistant_id(graph_id),
                            "graph_id": graph_id,
                            "config": {},
                            "context": {},
                            "metadata": {"created_by": "system"},
                            "name": graph_id,
                            "description": None,
                            "version": 1,
                            "created_at": now,
                            "updated_at": now,
                        }
                    )

    async def create(
        self,
        *,
        graph_id: str,
        assistant_id: str | None,
        config: dict[str, Any] | None,
        context: dict[str, Any] | None,
        metadata: dict[str, Any] | None,
        if_exists: str,
        name: str | None,
        description: str | None,
        access: Access = UNRESTRICTED,
    ) -> dict[str, Any]:
        self._require_graph(graph_id)
        config, context = merge_config_and_context(config, context)
        assistant_id = assistant_id or new_random_id()
        now = now_utc()
        record = {
            "assistant_id": assistant_id,
            "graph_id": graph_id,
            "config": config,
            "context": context,
            "metadata": metadata or {},
            "name": name or "Untitled",
            "description": description,
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
        async with self._db.transaction(access) as tx:
            existing = await tx.assistants.get(assistant_id)
            if existing is not None and if_exists == "do_nothing":
                return existing
            if existing is not None or await tx.assistants.exists(assistant_id):
                raise Conflict(f"Assistant {assistant_id} already exists")
            await tx.assistants.insert(record)
        return record

    async def get(self, assistant_id: str, access: Access = UNRESTRICTED) -> dict[str, Any]:
        async with self._db.autocommit(access) as tx:
            found = await tx.assistants.get(assistant_id)
        if found is None:
            raise NotFound(f"Assistant with ID {assistant_id} not found")
        return found

    @property
    def graph_ids(self) -> list[str]:
        return sorted(self._graphs.graph_ids)

    def is_system(self, assistant_id: str) -> bool:
        """Whether this is the assistant the server made for one of its graphs."""
        return any(system_assistant_id(g) == assistant_id for g in self._graphs.graph_ids)

    def resolve_id(self, assistant_id_or_graph_id: str) -> str | None:
        """Run and cron bodies may name a graph instead of an assistant: it means the system one."""
        if is_uuid(assistant_id_or_graph_id):
            return assistant_id_or_graph_id
        if self._graphs.get_spec(assistant_id_or_graph_id) is None:
            return None
        return system_assistant_id(assistant_id_or_graph_id)

    async def resolve(
        self, assistant_id_or_graph_id: str, access: Access = UNRESTRICTED
    ) -> dict[str, Any]:
        assistant_id = self.resolve_id(assistant_id_or_graph_id)
        if assistant_id is None:
            raise NotFound(f"Assistant with ID {assistant_id_or_graph_id} not found")
        return await self.get(assistant_id, access)

    async def patch(
        self, assistant_id: str, changes: dict[str, Any], access: Access = UNRESTRICTED
    ) -> dict[str, Any]:
        if "graph_id" in changes:
            self._require_graph(changes["graph_id"])
        async with self._db.transaction(access) as tx:
            current = await tx.assistants.get(assistant_id)
            if current is None:
                raise NotFound(f"Assistant with ID {assistant_id} not found")
            record = dict(current)
            if "config" in changes or "context" in changes:
                record["config"], record["context"] = merge_config_and_context(
                    changes.get("config"), changes.get("context")
                )
            record["metadata"] = {**current["metadata"], **(changes.get("metadata") or {})}
            for field in ("graph_id", "name", "description"):
                if changes.get(field) is not None:
                    record[field] = changes[field]
            record["version"] = await tx.assistants.max_version(assistant_id) + 1
            record["updated_at"] = now_utc()
            await tx.assistants.save_version(record)
        self.cache.forget(assistant_id)
        return record

    async def delete(self, assistant_id: str, access: Access = UNRESTRICTED) -> None:
        async with self._db.transaction(access) as tx:
            if not await tx.assistants.delete(assistant_id):
                raise NotFound(f"Assistant with ID {assistant_id} not found")
        self.cache.forget(assistant_id)

    async def search(self, access: Access = UNRESTRICTED, **filters: Any) -> Page:
        async with self._db.autocommit(access) as tx:
            return await tx.assistants.search(**filters)

    async def count(self, access: Access = UNRESTRICTED, **filters: Any) -> int:
        async with self._db.autocommit(access) as tx:
            return await tx.assistants.count(**filters)

    async def versions(
        self,
        assistant_id: str,
        *,
        metadata: dict[str, Any] | None,
        limit: int,
        offset: int,
        access: Access = UNRESTRICTED,
    ) -> list[dict[str, Any]]:
        async with self._db.autocommit(access) as tx:
            if await tx.assistants.get(assistant_id) is None:
                raise NotFound(f"Assistant with ID {assistant_id} not found")
            return await tx.assistants.versions(
                assistant_id, metadata=metadata, limit=limit, offset=offset
            )

    async def set_latest(
        self, assistant_id: str, version: int, access: Access = UNRESTRICTED
    ) -> dict[str, Any]:
        async with self._db.transaction(access) as tx:
            if await tx.assistants.get(assistant_id) is None:
                raise NotFound(f"Assistant with ID {assistant_id} not found")
            chosen = await tx.assistants.get_version(assistant_id, version)
            if chosen is None:
                raise NotFound(f"Assistant {assistant_id} has no version {version}")
            await tx.assistants.set_current(assistant_id, chosen, now_utc())
            updated = await tx.assistants.get(assistant_id)
        self.cache.forget(assistant_id)
        assert updated is not None
        return updated

    async def draw(
        self,
        assistant_id: str,
        xray: bool | int,
        access: Access = UNRESTRICTED,
        user: AuthUser | None = None,
    ) -> dict[str, Any]:
        assistant = await self.resolve(assistant_id, access)
        async with self._built(assistant, user) as graph:
            drawing = (await graph.aget_graph(xray=xray)).to_json()
        return {
            "nodes": [_plain_node(node) for node in drawing["nodes"]],
            "edges": drawing["edges"],
        }

    async def schemas(
        self, assistant_id: str, access: Access = UNRESTRICTED, user: AuthUser | None = None
    ) -> dict[str, Any]:
        assistant = await self.get(assistant_id, access)
        async with self._built(assistant, user) as graph:
            title = f"{assistant['graph_id']}_state"
            return {"graph_id": assistant["graph_id"], **graph_schemas(graph, title)}

    async def subgraphs(
        self,
        assistant_id: str,
        namespace: str | None,
        recurse: bool,
        access: Access = UNRESTRICTED,
        user: AuthUser | None = None,
    ) -> dict[str, Any]:
        assistant = await self.get(assistant_id, access)
        async with self._built(assistant, user) as graph:
            return {
                ns: graph_schemas(subgraph)
                async for ns, subgraph in graph.aget_subgraphs(namespace=namespace, recurse=recurse)
            }

    @contextlib.asynccontextmanager
    async def _built(
        self, assistant: dict[str, Any], user: AuthUser | None
    ) -> AsyncIterator[Pregel]:
        """The assistant's graph, built for introspection (`assistants.read`)."""
        self._require_graph(assistant["graph_id"])
        try:
            async with self._graphs.graph(
                assistant["graph_id"],
                assistant["config"],
                access_context="assistants.read",
                user=user,
            ) as graph:
                yield graph
        except GraphFactoryError as exc:
            raise FailedDependency(str(exc)) from exc

    def _require_graph(self, graph_id: str) -> None:
        if self._graphs.get_spec(graph_id) is None:
            raise NotFound(
                f"Graph '{graph_id}' not found. Expected one of: {sorted(self._graphs.graph_ids)}"
            )


def _plain_node(node: dict[str, Any]) -> dict[str, Any]:
    if "data" in node and isinstance(node["data"], dict):
        return {**node, "data": {"name": node["data"].get("name", node["id"])}}
    return node


def graph_schemas(graph: Any, title: str = "LangGraphState") -> dict[str, Any]:
    return {
        "input_schema": _schema_or_none(graph.get_input_jsonschema),
        "output_schema": _schema_or_none(graph.get_output_jsonschema),
        "state_schema": _schema_or_none(lambda: state_jsonschema(graph, title)),
        "config_schema": _schema_or_none(_config_schema_of(graph)),
        "context_schema": _schema_or_none(graph.get_context_jsonschema),
    }


def state_jsonschema(graph: Any, title: str) -> dict[str, Any]:
    """The state's channels as an object schema, one optional property per channel.

    Built field by field so that one type pydantic cannot describe (e.g. a typing.TypedDict
    before Python 3.12) costs that field its type, not the whole schema.
    """
    builder = getattr(graph, "builder", None)
    hints = typing.get_type_hints(builder.state_schema) if builder is not None else {}
    channels = list(builder.channels) if builder is not None else list(graph.stream_channels_list)
    fields = {name: (_describable(hints.get(name, Any)) | None, None) for name in channels}
    return create_model(title, **fields).model_json_schema()  # type: ignore[call-overload]


def _describable(annotation: Any) -> Any:
    try:
        TypeAdapter(annotation).json_schema()
    except Exception:
        return Any
    return annotation


def _config_schema_of(graph: Pregel) -> Any:
    def config_schema() -> dict[str, Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return graph.get_config_jsonschema()

    return config_schema


def _schema_or_none(build: Any) -> dict[str, Any] | None:
    # Schema generation fails for some state types (e.g. typing.TypedDict before Python 3.12);
    # the official server reports those as null rather than failing the request.
    try:
        return build()
    except Exception:
        return None
