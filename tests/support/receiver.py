"""A real HTTP server on 127.0.0.1, in a thread, that records the webhooks it receives.

Paths choose its answer: `/flaky/...` fails with 503 twice before succeeding, `/slow/...`
answers only once `release` is set, anything else answers 200 at once.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.servers import HOST

FLAKY_FAILURES = 2
SLOW_LIMIT_SECONDS = 60.0


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict[str, str]
    body: Any
    status: int


class WebhookReceiver:
    def __init__(self) -> None:
        self.release = threading.Event()
        self._deliveries: list[Delivery] = []
        self._arrivals: list[str] = []
        self._attempts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((HOST, 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def arrived(self, path: str) -> int:
        """Requests to `path` that arrived, answered or not."""
        with self._lock:
            return self._arrivals.count(path)

    def deliveries(self, path: str) -> list[Delivery]:
        """Requests to `path` that were answered, in order."""
        with self._lock:
            return [d for d in self._deliveries if d.path == path]

    async def wait_for(self, path: str, count: int = 1, timeout: float = 20.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answered = self.deliveries(path)
            if len(answered) >= count:
                return answered
            await asyncio.sleep(0.02)
        raise AssertionError(f"{count} webhook(s) to {path} never arrived: {self.deliveries(path)}")

    def _answer(self, path: str) -> int:
        with self._lock:
            self._arrivals.append(path)
            self._attempts[path] += 1
            attempt = self._attempts[path]
        if path.startswith("/slow/"):
            self.release.wait(SLOW_LIMIT_SECONDS)
        if path.startswith("/flaky/") and attempt <= FLAKY_FAILURES:
            return 503
        return 200

    def _record(self, delivery: Delivery) -> None:
        with self._lock:
            self._deliveries.append(delivery)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = receiver._answer(self.path)
                headers = {name.lower(): value for name, value in self.headers.items()}
                receiver._record(Delivery(self.path, headers, json.loads(raw), status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
