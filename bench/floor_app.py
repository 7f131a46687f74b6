"""The floor under issue 16's table: the bench's graph run in-process behind the least
HTTP server that answers bench/compare.py's requests.

uvicorn with httptools and uvloop, as Stead serves, and Starlette's router; each `runs/wait`
awaits `graph.ainvoke` and answers its values. Nothing else: no queue, no stored run, no
checkpoint, no stream, no log line, threads in a dict. No server that keeps its runs can go
below these figures; they show how much of a run's cost is HTTP and LangGraph themselves.

    uvicorn floor_app:app   (run from bench/, with tests/graphs on PYTHONPATH)
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import orjson
from agent import echo  # tests/graphs, on PYTHONPATH
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# The graphs bench/compare.py runs: tests/graphs/agent.py's one-node `echo`.
GRAPHS = {"echo": echo}
THREADS: dict[str, dict[str, Any]] = {}


def _json(value: Any) -> Response:
    return Response(orjson.dumps(value), media_type="application/json")


async def _run(request: Request) -> Any:
    body = orjson.loads(await request.body())
    return await GRAPHS[body["assistant_id"]].ainvoke(body.get("input"))


async def stateless_wait(request: Request) -> Response:
    return _json(await _run(request))


async def thread_wait(request: Request) -> Response:
    thread = THREADS[request.path_params["thread_id"]]
    thread["values"] = await _run(request)
    return _json(thread["values"])


async def create_thread(request: Request) -> Response:
    body = orjson.loads(await request.body())
    thread_id = str(uuid.uuid4())
    THREADS[thread_id] = {"thread_id": thread_id, "metadata": body.get("metadata") or {}}
    return _json(THREADS[thread_id])


async def count_threads(_request: Request) -> Response:
    return _json(len(THREADS))


async def search_threads(request: Request) -> Response:
    """The newest `limit` threads (dicts keep the order they were created in)."""
    limit = orjson.loads(await request.body()).get("limit", 10)
    return _json(list(itertools.islice(reversed(THREADS.values()), limit)))


async def ok(_request: Request) -> Response:
    return _json({"ok": True})


app = Starlette(
    routes=[
        Route("/ok", ok),
        Route("/runs/wait", stateless_wait, methods=["POST"]),
        Route("/threads", create_thread, methods=["POST"]),
        Route("/threads/count", count_threads, methods=["POST"]),
        Route("/threads/search", search_threads, methods=["POST"]),
        Route("/threads/{thread_id}/runs/wait", thread_wait, methods=["POST"]),
    ]
)
