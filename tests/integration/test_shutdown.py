"""Stopping `stead run` with clients still connected: open streams, joins and waits end as soon
as the server stops listening (not after the grace period), the runs in progress go back to the
queue, an SDK client carries on with another replica, a connection made just before the signal
is still answered, and a second signal exits at once."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from socket import create_connection
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import websockets
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import StreamPart

from tests.conftest import GRAPHS_CONFIG
from tests.support.postgres import migrated_postgres, session_runtime_env
from tests.support.protocol import EVERY_CHANNEL, socket
from tests.support.proxy import FailoverProxy
from tests.support.runs import running_slow_run
from tests.support.servers import StartedServer, free_port, stead_server
from tests.support.services import redis_server
from tests.support.sse import SseEvent, parse_events

GRACE_SECS = 10
# Well under the grace period: the responses end when the server stops listening.
PROMPT_SECS = 3


@dataclass
class OpenResponse:
    """A long-lived response read in the background: how and when it ended."""

    body: bytes = b""
    ended_at: float | None = None
    error: Exception | None = None
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    def events(self) -> list[SseEvent]:
        return parse_events(self.body.rpartition(b"\r\n\r\n")[0] + b"\r\n\r\n")


@asynccontextmanager
async def open_response(
    http: httpx.AsyncClient, method: str, path: str, **kwargs: Any
) -> AsyncIterator[OpenResponse]:
    response = OpenResponse()

    async def read() -> None:
        try:
            async with http.stream(method, path, **kwargs) as answer:
                assert answer.status_code == 200, await answer.aread()
                response.opened.set()
                async for chunk in answer.aiter_raw():
                    response.body += chunk
        except httpx.HTTPError as exc:
            response.error = exc
        finally:
            response.ended_at = time.monotonic()

    task = asyncio.create_task(read())
    try:
        await asyncio.wait_for(response.opened.wait(), timeout=20)
        yield response
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _wait_until(condition: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.05)


async def _run_status(http: httpx.AsyncClient, thread_id: str, run_id: str) -> str:
    return str((await http.get(f"/threads/{thread_id}/runs/{run_id}")).json()["status"])


async def _new_thread(http: httpx.AsyncClient) -> str:
    return str((await http.post("/threads", json={})).json()["thread_id"])


def _run_id(response: OpenResponse) -> str:
    metadata = response.events()[0]
    assert metadata.event == "metadata", response.body
    return str(metadata.data["run_id"])


async def _wait_for_exit(server: StartedServer, timeout: float) -> int:
    return await asyncio.to_thread(server.process.wait, timeout)


@dataclass
class Clients:
    """One client on each kind of long-lived response, all waiting when the server stops."""

    thread_stream: OpenResponse
    run_stream: OpenResponse
    wait: OpenResponse
    join: OpenResponse
    # (thread_id, run_id) of the runs streamed and waited for
    streamed: tuple[str, str]
    waited: tuple[str, str]

    @property
    def responses(self) -> tuple[OpenResponse, ...]:
        return (self.thread_stream, self.run_stream, self.wait, self.join)


async def _open_clients(http: httpx.AsyncClient, stack: AsyncExitStack) -> Clients:
    watched, streamed, waited = [await _new_thread(http) for _ in range(3)]
    slow = {"assistant_id": "slow", "input": {"seconds": GRACE_SECS + 20}}
    thread_stream = await stack.enter_async_context(
        open_response(http, "GET", f"/threads/{watched}/stream")
    )
    streaming = {**slow, "stream_mode": "values", "on_disconnect": "cancel"}
    run_stream = await stack.enter_async_context(
        open_response(http, "POST", f"/threads/{streamed}/runs/stream", json=streaming)
    )
    wait = await stack.enter_async_context(
        open_response(http, "POST", f"/threads/{waited}/runs/wait", json=slow)
    )
    await _wait_until(lambda: _has_events(run_stream))
    streamed_run = _run_id(run_stream)
    join = await stack.enter_async_context(
        open_response(http, "GET", f"/threads/{streamed}/runs/{streamed_run}/join")
    )
    waited_run = (await http.get(f"/threads/{waited}/runs")).json()[0]["run_id"]
    await _wait_until(lambda: _running(http, waited, waited_run))
    return Clients(
        thread_stream, run_stream, wait, join, (streamed, streamed_run), (waited, waited_run)
    )


async def test_sigint_ends_streams_joins_and_waits_at_once_and_requeues_the_runs(
    tmp_path: Path,
) -> None:
    with ExitStack() as stack:
        env = {
            **session_runtime_env(stack, GRAPHS_CONFIG),
            "BG_JOB_SHUTDOWN_GRACE_PERIOD_SECS": str(GRACE_SECS),
        }
        data_dir = tmp_path / "data"
        server = stack.enter_context(stead_server(GRAPHS_CONFIG, data_dir, env))
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=60) as http,
            AsyncExitStack() as responses,
        ):
            clients = await _open_clients(http, responses)
            stopped_at = time.monotonic()
            server.process.send_signal(signal.SIGINT)
            await _wait_until(lambda: _all_ended(*clients.responses), timeout=20)
        for response in clients.responses:
            assert response.ended_at is not None
            assert response.ended_at - stopped_at < PROMPT_SECS
        # Streams end cleanly, without an `end` event: the run did not end.
        assert clients.thread_stream.error is None and clients.run_stream.error is None
        assert [event.event for event in clients.run_stream.events()] == ["metadata", "values"]
        # A join or a wait is cut short before its JSON: the SDKs then ask its Location again.
        for cut in (clients.wait, clients.join):
            assert isinstance(cut.error, httpx.RemoteProtocolError), cut.error
            assert cut.body.strip() == b""
        assert await _wait_for_exit(server, timeout=GRACE_SECS + 15) == 0
        _assert_no_errors(server.log())
        assert "returned to the queue" in server.log()
        restarted = stack.enter_context(stead_server(GRAPHS_CONFIG, data_dir, env))
        async with httpx.AsyncClient(base_url=restarted.url, timeout=30) as http:
            # Back in the queue, not cancelled by `on_disconnect: cancel`: no client left.
            for thread_id, run_id in (clients.streamed, clients.waited):
                assert await _run_status(http, thread_id, run_id) in ("pending", "running")


async def test_sigint_ends_thread_event_streams_and_closes_sockets_at_once(tmp_path: Path) -> None:
    env = {"BG_JOB_SHUTDOWN_GRACE_PERIOD_SECS": str(GRACE_SECS)}
    with stead_server(GRAPHS_CONFIG, tmp_path / "data", env) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            thread_id = await _new_thread(http)
            path = f"/threads/{thread_id}/stream/events"
            async with (
                open_response(http, "POST", path, json={"channels": EVERY_CHANNEL}) as events,
                socket(server.url, thread_id) as ws,
            ):
                subscribed = await ws.send("subscription.subscribe", {"channels": ["values"]})
                assert subscribed["type"] == "success"
                stopped_at = time.monotonic()
                server.process.send_signal(signal.SIGINT)
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.connection.recv(), PROMPT_SECS)
                await _wait_until(lambda: _all_ended(events), timeout=PROMPT_SECS)
            # Nothing else to wait for: no run is in progress.
            assert await _wait_for_exit(server, timeout=PROMPT_SECS) == 0
        _assert_no_errors(server.log())
    assert time.monotonic() - stopped_at < PROMPT_SECS
    assert events.error is None
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012


def _assert_no_errors(log: str) -> None:
    assert "Traceback" not in log, log
    assert "[error" not in log and "[critical" not in log, log


async def _has_events(response: OpenResponse) -> bool:
    return len(response.events()) >= 2


async def _running(http: httpx.AsyncClient, thread_id: str, run_id: str) -> bool:
    return await _run_status(http, thread_id, run_id) == "running"


async def _all_ended(*responses: OpenResponse) -> bool:
    return all(response.ended_at is not None for response in responses)


async def test_an_sdk_client_of_a_stopped_replica_follows_its_run_to_another() -> None:
    """PostgreSQL + Redis, two replicas behind a load balancer: stopping the one that runs the
    run ends its streams; the SDK reconnects through the balancer to the other replica, which
    takes the run from the queue once the first hands it back, and sees it to the end."""
    with ExitStack() as stack:
        env = {
            "DATABASE_URI": stack.enter_context(migrated_postgres(GRAPHS_CONFIG)),
            "REDIS_URI": stack.enter_context(redis_server()).url,
            "BG_JOB_SHUTDOWN_GRACE_PERIOD_SECS": "2",
        }
        first = stack.enter_context(stead_server(GRAPHS_CONFIG, env=env))
        second_port = free_port()

        async def stop_first_once_second_is_up() -> None:
            second = stead_server(GRAPHS_CONFIG, env=env, port=second_port)
            await asyncio.to_thread(stack.enter_context, second)
            first.process.send_signal(signal.SIGINT)

        async with FailoverProxy(first.port, second_port) as balancer:
            client = get_client(url=balancer.url, api_key=None)
            try:
                # The join, cut short by the stopping replica, is asked again of the other one.
                with pytest.warns(UserWarning, match="attempting reconnect to Location"):
                    thread_id, parts, result = await _stream_and_join(
                        client, stop_first_once_second_is_up
                    )
                run = await client.runs.get(thread_id, parts[0].data["run_id"])
            finally:
                await client.http.client.aclose()
        assert await _wait_for_exit(first, timeout=15) == 0
        _assert_no_errors(first.log())
    assert balancer.connections_by_port[second_port] >= 2
    assert run["status"] == "success"
    # The second attempt, on the second replica, ran the run to its end.
    assert [part.data["attempt"] for part in parts if part.event == "metadata"] == [1, 2]
    assert parts[-1].data == {**SDK_RUN_INPUT, "done": True}
    assert result == {**SDK_RUN_INPUT, "done": True}


SDK_RUN_INPUT = {"seconds": 12}


async def _stream_and_join(
    client: LangGraphClient, once_running: Callable[[], Awaitable[None]]
) -> tuple[str, list[StreamPart], Any]:
    """A resumable run streamed to its end, and joined meanwhile; `once_running` runs while
    both wait on the run."""
    thread_id = (await client.threads.create())["thread_id"]
    parts = []
    joined: asyncio.Task[Any] | None = None
    async for part in client.runs.stream(
        thread_id, "slow", input=SDK_RUN_INPUT, stream_mode="values", stream_resumable=True
    ):
        parts.append(part)
        if joined is None and part.event == "values":
            run_id = parts[0].data["run_id"]
            joined = asyncio.create_task(client.runs.join(thread_id, run_id))
            await once_running()
    assert joined is not None
    return thread_id, parts, await asyncio.wait_for(joined, timeout=30)


def test_a_connection_made_before_the_signal_has_its_request_answered_then_closed(
    tmp_path: Path,
) -> None:
    """During a rollout, a replica being stopped has connections its clients opened a moment ago,
    their requests still on the way; uvicorn alone closed them unanswered."""
    with stead_server(GRAPHS_CONFIG, tmp_path / "data") as server:
        parts = urlsplit(server.url)
        with create_connection((parts.hostname, parts.port), timeout=10) as connection:
            server.process.send_signal(signal.SIGTERM)
            server.log_containing("stopping: open streams end now")
            time.sleep(0.2)
            connection.sendall(b"GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            received = b""
            while chunk := connection.recv(65536):
                received += chunk
        assert received.startswith(b"HTTP/1.1 200 OK\r\n"), received
        assert b"\r\nconnection: close\r\n" in received.lower()
        assert server.process.wait(timeout=PROMPT_SECS) == 0


def test_a_connection_that_never_asks_does_not_hold_the_stop_up(tmp_path: Path) -> None:
    with stead_server(GRAPHS_CONFIG, tmp_path / "data") as server:
        parts = urlsplit(server.url)
        with create_connection((parts.hostname, parts.port), timeout=10) as connection:
            stopped_at = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            assert connection.recv(65536) == b""
            assert server.process.wait(timeout=PROMPT_SECS) == 0
        assert time.monotonic() - stopped_at < PROMPT_SECS


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_a_second_signal_exits_at_once(tmp_path: Path, stop_signal: signal.Signals) -> None:
    env = {"BG_JOB_SHUTDOWN_GRACE_PERIOD_SECS": "60"}
    with stead_server(GRAPHS_CONFIG, tmp_path / "data", env) as server:
        running_slow_run(server.url, seconds=120)
        server.process.send_signal(stop_signal)
        # The graceful shutdown now waits for the run, for up to a minute.
        server.log_containing("waiting up to 60s for 1 run(s)")
        time.sleep(0.5)
        assert server.process.poll() is None
        forced_at = time.monotonic()
        server.process.send_signal(stop_signal)
        exit_code = server.process.wait(timeout=10)
        assert time.monotonic() - forced_at < 2
        assert f"{stop_signal.name} during shutdown: exiting now" in server.log()
    assert exit_code == 128 + stop_signal
