"""127.0.0.1 TCP proxies: one cuts the first response short, the way a flaky network would;
one fails over between replicas, the way a load balancer does."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Self

from tests.support.servers import HOST


class _LoopbackProxy:
    """Listens on a free 127.0.0.1 port while the `async with` block lasts; `_handle` serves
    each connection."""

    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://{HOST}:{port}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._handle, HOST, 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        raise NotImplementedError


class CuttingProxy(_LoopbackProxy):
    """Forwards every connection to `target_port`. On the first one only, the response is cut
    `extra_bytes` after the end of the first SSE event of its body, and both sides are closed."""

    def __init__(self, target_port: int, extra_bytes: int = 10) -> None:
        self._target_port = target_port
        self._extra_bytes = extra_bytes
        self.connections = 0
        self.cut_response = b""

    async def _handle(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        first = self.connections == 1
        server_in, server_out = await asyncio.open_connection(HOST, self._target_port)
        directions = {
            asyncio.create_task(_pipe(client_in, server_out)),
            asyncio.create_task(
                self._cut(server_in, client_out) if first else _pipe(server_in, client_out)
            ),
        }
        try:
            await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in directions:
                task.cancel()
            for writer in (client_out, server_out):
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()

    async def _cut(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        received = b""
        while (cut_at := self._cut_position(received)) is None:
            chunk = await source.read(65536)
            if not chunk:
                break
            received += chunk
        self.cut_response = received[:cut_at]
        sink.write(self.cut_response)
        await sink.drain()

    def _cut_position(self, received: bytes) -> int | None:
        body = received.find(b"\r\n\r\n") + 4
        if body < 4:
            return None
        first_event_end = received.find(b"\r\n\r\n", body)
        if first_event_end < 0 or len(received) < first_event_end + 4 + self._extra_bytes:
            return None
        return first_event_end + 4 + self._extra_bytes


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    while chunk := await source.read(65536):
        sink.write(chunk)
        await sink.drain()


class FailoverProxy(_LoopbackProxy):
    """Forwards each connection to the first of `target_ports` that accepts it, the way a load
    balancer in front of several replicas stops sending to one that stopped listening."""

    def __init__(self, *target_ports: int) -> None:
        self._target_ports = target_ports
        self.connections_by_port: dict[int, int] = dict.fromkeys(target_ports, 0)
        self._clients: dict[asyncio.StreamWriter, asyncio.Task[Any]] = {}

    async def __aexit__(self, *exc_info: object) -> None:
        await super().__aexit__(*exc_info)
        # Connections still open end here, not cancelled when the test's event loop closes.
        for client_out in list(self._clients):
            client_out.close()
        if self._clients:
            await asyncio.wait(self._clients.values(), timeout=5)

    async def _handle(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients[client_out] = task
        try:
            await self._forward(client_in, client_out)
        finally:
            del self._clients[client_out]

    async def _forward(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        for port in self._target_ports:
            try:
                server_in, server_out = await asyncio.open_connection(HOST, port)
            except OSError:
                continue
            self.connections_by_port[port] += 1
            break
        else:
            client_out.close()
            return
        await _splice(client_in, client_out, server_in, server_out)


class SeverableProxy(_LoopbackProxy):
    """Forwards to one port until `sever()`: then every connection through it is cut and new
    ones are refused, the way a network partition between one process and Redis would, until
    `restore()`."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._severed = False
        self._open: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def sever(self) -> None:
        self._severed = True
        for writer in list(self._open):
            writer.close()

    def restore(self) -> None:
        self._severed = False

    async def __aexit__(self, *exc_info: object) -> None:
        self.sever()
        await super().__aexit__(*exc_info)

    async def _handle(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        if self._severed:
            client_out.close()
            return
        server_in, server_out = await asyncio.open_connection(HOST, self._target_port)
        self._open |= {client_out, server_out}
        try:
            await _splice(client_in, client_out, server_in, server_out)
        finally:
            self._open -= {client_out, server_out}


async def _splice(
    client_in: asyncio.StreamReader,
    client_out: asyncio.StreamWriter,
    server_in: asyncio.StreamReader,
    server_out: asyncio.StreamWriter,
) -> None:
    """Forward both ways until either side closes, then close both."""
    directions = {
        asyncio.create_task(_pipe(client_in, server_out)),
        asyncio.create_task(_pipe(server_in, client_out)),
    }
    try:
        await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for direction in directions:
            direction.cancel()
        await asyncio.gather(*directions, return_exceptions=True)
        for writer in (client_out, server_out):
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
