"""Differential tests: the same request sequence against Stead and the official server.

Each test is a *scenario*: an async function that drives one server through a ``Recorder`` and
records what must agree — status codes, the key sets of JSON bodies (also of a few well-known
nested objects), some normalised values and SSE event-name sequences. The scenario runs against
both servers at once and the two recordings must be equal. Ids, timestamps and values that are ids
are normalised away (``normalise``); ``Run.kwargs`` is never compared (it mirrors server internals).

Intended differences are asserted explicitly, one test each, with the reason next to them.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.differential.conftest import Clients

# System assistants have deterministic ids: uuid5(this namespace, graph_id), on both servers.
SYSTEM_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")

HI = {"messages": [{"role": "user", "content": "hi"}]}

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_HEX32 = re.compile(r"\b[0-9a-f]{32}\b")  # interrupt ids
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?")


def system_assistant(graph_id: str) -> str:
    return str(uuid.uuid5(SYSTEM_NAMESPACE, graph_id))


# --------------------------------------------------------------------------------------------------
# Normalisation


def normalise(value: Any) -> Any:
    """``value`` with ids and timestamps replaced by placeholders, also inside strings and keys.

    ``updates|child:9fa52cc7-…`` becomes ``updates|child:<id>``; ``lc_run--<uuid7>`` becomes
    ``lc_run--<id>``; ``2026-11-24T06:41:08.18+00:00`` becomes ``<ts>``.
    """
    if isinstance(value, str):
        value = _UUID.sub("<id>", value)
        value = _HEX32.sub("<id>", value)
        return _TIMESTAMP.sub("<ts>", value)
    if isinstance(value, dict):
        return {normalise(k): normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    return value


def keys_of(value: Any) -> Any:
    """The shape of ``value`` one level deep: sorted keys of a dict, ``["[]", *keys]`` for a list
    (the union of its items' keys), else the type name (``NoneType``, ``int``, …)."""
    if isinstance(value, dict):
        return sorted(value)
    if isinstance(value, list):
        item_keys = {k for item in value if isinstance(item, dict) for k in item}
        return ["[]", *sorted(item_keys)]
    return type(value).__name__


def _at(value: Any, path: str) -> Any:
    """Follow a dotted path; a ``[]`` suffix maps over a list (``tasks[].interrupts``)."""
    current = [value]
    for part in path.split("."):
        many = part.endswith("[]")
        name = part.removesuffix("[]")
        nxt: list[Any] = []
        for item in current:
            child = item.get(name) if isinstance(item, dict) else None
            if many:
                nxt.extend(child if isinstance(child, list) else [])
            else:
                nxt.append(child)
        current = nxt
    if path.endswith("[]") or len(current) != 1:
        return current
    return current[0]


def keyset(body: Any, *nested: str) -> dict[str, Any]:
    """Key sets of ``body`` and of the objects at the ``nested`` paths."""
    return {"": keys_of(body), **{path: keys_of(_at(body, path)) for path in nested}}


# Well-known nested objects whose keys are compared too.
THREAD_STATE = ("checkpoint", "parent_checkpoint", "tasks[]", "interrupts[]")
STATE_UPDATE = ("checkpoint", "configurable")


# --------------------------------------------------------------------------------------------------
# Recording one server's side of a scenario


class Recorder:
    """Drives one server and records what the two servers must agree on."""

    def __init__(self, client: httpx.AsyncClient, name: str) -> None:
        self.client = client
        self.name = name
        self.log: list[tuple[str, str, Any]] = []
        # Values kept for server-specific assertions; never compared.
        self.kept: dict[str, Any] = {}

    def check(self, label: str, value: Any) -> None:
        """Record ``value`` (normalised) for comparison."""
        self.log.append((label, "value", normalise(value)))

    async def request(
        self,
        label: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Any = None,
        nested: tuple[str, ...] = (),
        body: bool = False,
    ) -> httpx.Response:
        """Send a request; record its status, the keys of its JSON body (and of ``nested`` paths)
        and, with ``body=True``, the whole normalised body."""
        kwargs: dict[str, Any] = {"params": params}
        if json is not None:
            kwargs["json"] = json
        response = await self.client.request(method, path, **kwargs)
        self.log.append((label, "status", response.status_code))
        if response.content.strip() and _is_json(response):
            data = response.json()
            self.log.append((label, "keys", keyset(data, *nested)))
            if body:
                self.log.append((label, "body", normalise(data)))
        return response

    async def stream(self, label: str, path: str, payload: dict[str, Any]) -> list[tuple[str, Any]]:
        """POST a run-creating stream; record the status, the headers that point at the run and the
        normalised sequence of event names. Returns the ``(event, data)`` list."""
        events: list[tuple[str, Any]] = []
        async with self.client.stream("POST", path, json=payload) as response:
            self.log.append((label, "status", response.status_code))
            if response.status_code == 200:
                headers = sorted(
                    h for h in ("location", "content-location") if h in response.headers
                )
                self.log.append((label, "run headers", headers))
                events = await _read_sse(response)
            else:
                await response.aread()
        self.log.append((label, "events", normalise([name for name, _ in events])))
        return events


def data(response: httpx.Response) -> Any:
    """The JSON body of ``response``, or None if it has none (e.g. a 500 ``Internal Server Error``)."""
    try:
        return response.json()
    except ValueError:
        return None


def field(value: Any, *path: str | int) -> Any:
    """``value[p0][p1]…`` for a response's JSON body (or any value); None where anything is missing,
    so that a scenario keeps recording after an unexpected answer."""
    current = data(value) if isinstance(value, httpx.Response) else value
    for part in path:
        if isinstance(part, int) and isinstance(current, list | tuple) and -len(current) <= part < len(current):
            current = current[part]
        elif isinstance(part, str) and isinstance(current, dict):
            current = current.get(part)
        else:
            return None
    return current


def items(value: Any) -> list[Any]:
    """The JSON list in ``value`` (a response or a value), or [] if it is not a list."""
    current = data(value) if isinstance(value, httpx.Response) else value
    return current if isinstance(current, list) else []


def _is_json(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").startswith("application/json")


async def _read_sse(response: httpx.Response) -> list[tuple[str, Any]]:
    events: list[tuple[str, Any]] = []
    name: str | None = None
    data: list[str] = []

    def flush() -> None:
        nonlocal name, data
        if name is not None:
            events.append((name, json.loads("\n".join(data)) if data else None))
        name, data = None, []

    async for line in response.aiter_lines():
        if not line:
            flush()
        elif line.startswith(":"):
            continue  # heartbeat comment
        elif line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").removeprefix(" "))
    flush()
    return events


Scenario = Callable[[Recorder], Awaitable[None]]


async def run_both(clients: Clients, scenario: Scenario) -> tuple[Recorder, Recorder]:
    """Run ``scenario`` against both servers concurrently."""
    stead = Recorder(clients.stead, "stead")
    official = Recorder(clients.official, "official")
    await asyncio.gather(scenario(stead), scenario(official))
    return stead, official


def differences(stead: Recorder, official: Recorder) -> list[str]:
    """Human-readable differences between the two recordings."""
    left = {(label, what): value for label, what, value in stead.log}
    right = {(label, what): value for label, what, value in official.log}
    lines = []
    for key in dict.fromkeys([*left, *right]):
        s, o = left.get(key, "<absent>"), right.get(key, "<absent>")
        if s != o:
            lines.append(f"{key[0]} [{key[1]}]:\n    stead:    {s!r}\n    official: {o!r}")
    return lines


async def compare(clients: Clients, scenario: Scenario) -> tuple[Recorder, Recorder]:
    """Run ``scenario`` on both servers and assert the recordings agree."""
    stead, official = await run_both(clients, scenario)
    diff = differences(stead, official)
    assert not diff, "Stead differs from the official server:\n" + "\n".join(diff)
    return stead, official


async def new_thread(rec: Recorder, **body: Any) -> str:
    response = await rec.client.post("/threads", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["thread_id"])


