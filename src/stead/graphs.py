"""Load the graphs named in langgraph.json and hand out runnable copies of them."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import os
import sys
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from langgraph.store.base import BaseStore

from stead.config import Settings
from stead.ids import system_assistant_id


class GraphLoadError(Exception):
    """A graph named in langgraph.json could not be imported; printed as one line."""


class GraphFactoryError(Exception):
    """A graph factory failed or returned something that is not a graph."""


@dataclass(frozen=True)
class GraphSpec:
    graph_id: str
    spec: str
    target: Any

    @property
    def assistant_id(self) -> str:
        return system_assistant_id(self.graph_id)

    @property
    def is_factory(self) -> bool:
        return not isinstance(self.target, (Pregel, StateGraph)) and callable(self.target)


class GraphRegistry:
    """The graphs of one deployment, with the server's checkpointer and store injected."""

    def __init__(
        self, specs: dict[str, GraphSpec], checkpointer: BaseCheckpointSaver, store: BaseStore
    ) -> None:
        self._specs = specs
        self._checkpointer = checkpointer
        self._store = store
        self._compiled: dict[str, Pregel] = {}

    @property
    def graph_ids(self) -> list[str]:
        return list(self._specs)

    def get_spec(self, graph_id: str) -> GraphSpec | None:
        return self._specs.get(graph_id)

    @contextlib.asynccontextmanager
    async def graph(
        self, graph_id: str, config: RunnableConfig | None = None
    ) -> AsyncIterator[Pregel]:
        """A graph ready to run: compiled, with this server's checkpointer and store."""
        spec = self._specs[graph_id]
        if not spec.is_factory:
            yield self._static_graph(spec)
            return
        async with contextlib.AsyncExitStack() as stack:
            built = await _call_factory(spec, config or {}, stack)
            yield self._attach(built)

    def _static_graph(self, spec: GraphSpec) -> Pregel:
        graph = self._compiled.get(spec.graph_id)
        if graph is None:
            graph = self._attach(spec.target)
            self._compiled[spec.graph_id] = graph
        return graph

    def _attach(self, target: Any) -> Pregel:
        if isinstance(target, StateGraph):
            return target.compile(checkpointer=self._checkpointer, store=self._store)
        if isinstance(target, Pregel):
            return target.copy(update={"checkpointer": self._checkpointer, "store": self._store})
        raise GraphFactoryError(f"expected a graph, got {type(target).__name__}")


async def _call_factory(
    spec: GraphSpec, config: RunnableConfig, stack: contextlib.AsyncExitStack
) -> Any:
    factory = spec.target
    try:
        takes_config = len(inspect.signature(factory).parameters) > 0
        result = factory(config) if takes_config else factory()
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, contextlib.AbstractAsyncContextManager):
            result = await stack.enter_async_context(result)
        elif isinstance(result, contextlib.AbstractContextManager):
            result = stack.enter_context(result)
    except Exception as exc:
        raise GraphFactoryError(f"graph factory '{spec.graph_id}' failed: {exc!r}") from exc
    return result


def load_graph_specs(settings: Settings) -> dict[str, GraphSpec]:
    """Import every graph of langgraph.json, after applying its env and dependencies."""
    for key, value in settings.env.items():
        os.environ.setdefault(key, value)
    for dep in settings.dependencies:
        path = (settings.project_dir / dep).resolve()
        if path.is_dir() and str(path) not in sys.path:
            sys.path.insert(0, str(path))
    if str(settings.project_dir) not in sys.path:
        sys.path.insert(0, str(settings.project_dir))
    return {
        graph_id: GraphSpec(graph_id, spec, _import_target(graph_id, spec, settings.project_dir))
        for graph_id, spec in settings.graphs.items()
    }


def _import_target(graph_id: str, spec: str, base: Path) -> Any:
    location, _, attribute = spec.rpartition(":")
    try:
        module = import_module_at(location, base)
    except Exception as exc:
        raise GraphLoadError(f"graph '{graph_id}' ({spec}) failed to import: {exc!r}") from None
    if not hasattr(module, attribute):
        raise GraphLoadError(f"graph '{graph_id}' ({spec}): module has no attribute '{attribute}'")
    target = getattr(module, attribute)
    if not isinstance(target, (Pregel, StateGraph)) and not callable(target):
        raise GraphLoadError(f"graph '{graph_id}' ({spec}) is not a graph or a graph factory")
    return target


def import_module_at(location: str, base: Path) -> ModuleType:
    """Import `package.module` or `./path/file.py` (relative to `base`)."""
    if not location.endswith(".py"):
        return importlib.import_module(location)
    path = (base / location).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    name = f"stead_graphs.{path.stem}_{zlib.crc32(str(path).encode()):08x}"
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
