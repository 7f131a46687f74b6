"""Load the graphs named in langgraph.json and hand out runnable copies of them."""

from __future__ import annotations

import ast
import contextlib
import copy
import importlib
import importlib.util
import inspect
import os
import sys
import types
import typing
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from langgraph.store.base import BaseStore
from langgraph_sdk.auth.types import BaseUser
from langgraph_sdk.runtime import AccessContext, ServerRuntime, _ExecutionRuntime, _ReadRuntime

from stead.config import Settings
from stead.ids import system_assistant_id


class GraphLoadError(Exception):
    """A graph named in langgraph.json could not be imported; printed as one line."""


class GraphFactoryError(Exception):
    """A graph factory failed or returned something that is not a graph."""


FactoryArgument = Literal["config", "runtime"]


@dataclass(frozen=True)
class FactorySignature:
    """What each parameter of a graph factory receives: the config or the ServerRuntime."""

    parameters: tuple[tuple[inspect.Parameter, FactoryArgument], ...]

    def call(self, factory: Any, config: RunnableConfig, runtime: ServerRuntime) -> Any:
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for parameter, argument in self.parameters:
            value = runtime if argument == "runtime" else config
            if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.VAR_POSITIONAL):
                args.append(value)
            else:
                kwargs[parameter.name] = value
        return factory(*args, **kwargs)


@dataclass(frozen=True)
class GraphSpec:
    graph_id: str
    spec: str
    target: Any
    factory: FactorySignature | None = None

    @property
    def assistant_id(self) -> str:
        return system_assistant_id(self.graph_id)


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
        self,
        graph_id: str,
        config: RunnableConfig | None = None,
        *,
        access_context: AccessContext,
        user: BaseUser | None = None,
        run_context: Any = None,
    ) -> AsyncIterator[Pregel]:
        """A graph ready to run: compiled, with this server's checkpointer and store.

        A factory is told why it is called (`access_context`), for whom, and, when the graph
        will execute a run, that run's context."""
        spec = self._specs[graph_id]
        if spec.factory is None:
            yield self._static_graph(spec)
            return
        runtime = self._server_runtime(access_context, user, run_context)
        async with contextlib.AsyncExitStack() as stack:
            built = await _call_factory(spec, spec.factory, config or {}, runtime, stack)
            yield self._attach(built)

    def _server_runtime(
        self, access_context: AccessContext, user: BaseUser | None, run_context: Any
    ) -> ServerRuntime:
        if access_context == "threads.create_run":
            # A copy: the factory may change it, and the run passes its own to the graph.
            context = copy.copy(run_context)
            return _ExecutionRuntime(
                access_context=access_context, user=user, store=self._store, context=context
            )
        return _ReadRuntime(access_context=access_context, user=user, store=self._store)

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
    spec: GraphSpec,
    signature: FactorySignature,
    config: RunnableConfig,
    runtime: ServerRuntime,
    stack: contextlib.AsyncExitStack,
) -> Any:
    try:
        result = signature.call(spec.target, config, runtime)
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
        graph_id: _graph_spec(graph_id, spec, _import_target(graph_id, spec, settings.project_dir))
        for graph_id, spec in settings.graphs.items()
    }


def _graph_spec(graph_id: str, spec: str, target: Any) -> GraphSpec:
    if isinstance(target, (Pregel, StateGraph)):
        return GraphSpec(graph_id, spec, target)
    try:
        signature = classify_factory(target)
    except ValueError as exc:
        raise GraphLoadError(f"graph '{graph_id}' ({spec}): {exc}") from None
    return GraphSpec(graph_id, spec, target, signature)


def classify_factory(factory: Any) -> FactorySignature:
    """Which of a factory's (at most two) parameters takes the ServerRuntime: the one annotated
    `ServerRuntime` (or one of its variants); any other takes the config."""
    try:
        parameters = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot read the factory's signature: {exc}") from None
    if len(parameters) > 2:
        names = [parameter.name for parameter in parameters]
        raise ValueError(
            f"a graph factory takes at most two parameters, config and runtime, got {names}"
        )
    takes_runtime = [_is_runtime_annotation(p.annotation, factory) for p in parameters]
    if len(parameters) == 2 and takes_runtime.count(True) != 1:
        raise ValueError(
            "a graph factory with two parameters needs exactly one annotated ServerRuntime "
            "(the other receives the config)"
        )
    return FactorySignature(
        tuple(
            (parameter, "runtime" if runtime else "config")
            for parameter, runtime in zip(parameters, takes_runtime, strict=True)
        )
    )


_RUNTIME_TYPES: dict[str, Any] = {
    "ServerRuntime": ServerRuntime,
    "_ExecutionRuntime": _ExecutionRuntime,
    "_ReadRuntime": _ReadRuntime,
}


def _is_runtime_annotation(annotation: Any, factory: Any) -> bool:
    if annotation is inspect.Parameter.empty:
        return False
    if not isinstance(annotation, str):
        return _is_runtime_type(annotation)
    module_globals = getattr(inspect.unwrap(factory), "__globals__", {})
    try:
        resolved = eval(annotation, dict(module_globals), dict(_RUNTIME_TYPES))
    except Exception:
        # Names imported only under TYPE_CHECKING do not resolve: read the annotation's text.
        return _names_runtime(annotation)
    return _is_runtime_type(resolved)


def _is_runtime_type(annotation: Any) -> bool:
    origin = typing.get_origin(annotation) or annotation
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return bool(members) and all(_is_runtime_type(member) for member in members)
    return any(origin is runtime_type for runtime_type in _RUNTIME_TYPES.values())


def _names_runtime(annotation: str) -> bool:
    """Whether annotation text such as `ServerRuntime[MyContext] | None` names the runtime."""
    try:
        expression = ast.parse(annotation, mode="eval").body
    except SyntaxError:
        return False
    return _names_runtime_node(expression)


def _names_runtime_node(node: ast.expr) -> bool:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        sides = [side for side in (node.left, node.right) if not _is_none(side)]
        return bool(sides) and all(_names_runtime_node(side) for side in sides)
    if isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Attribute):
        return node.attr in _RUNTIME_TYPES
    return isinstance(node, ast.Name) and node.id in _RUNTIME_TYPES


def _is_none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


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
