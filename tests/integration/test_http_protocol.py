"""The server's HTTP protocol holds a loop turn's writes and sends them together
(stead.http_protocol): responses must still arrive whole, in order, and before a close."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import httpx


def _raw_exchange(url: str, request: bytes) -> bytes:
    """Send `request` bytes on a new connection; everything the server sends until it closes."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def _post(path: str, body: dict[str, object], *, close: bool = False) -> bytes:
    payload = json.dumps(body).encode()
    headers = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
    ]
    if close:
        headers.append("Connection: close")
    return "\r\n".join(headers).encode() + b"\r\n\r\n" + payload


def _responses(raw: bytes) -> list[tuple[bytes, bytes]]:
    """(status line and headers, body) of each Content-Length response in `raw`."""
    found = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        found.append((head, rest[:length]))
        raw = rest[length:]
    return found


def test_a_response_before_a_close_arrives_whole(url: str) -> None:
    raw = _raw_exchange(
        url, _post("/runs/wait", {"assistant_id": "echo", "input": {"text": "x"}}, close=True)
    )
    [(head, body)] = _responses(raw)
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body) == {"text": "x"}


def test_pipelined_requests_get_their_responses_in_order(url: str) -> None:
    requests = [
        _post("/runs/wait", {"assistant_id": "echo", "input": {"text": str(n)}}) for n in range(3)
    ]
    requests.append(_post("/threads/search", {"limit": 1}, close=True))
    responses = _responses(_raw_exchange(url, b"".join(requests)))
    assert [json.loads(body) for _, body in responses[:3]] == [{"text": str(n)} for n in range(3)]
    assert isinstance(json.loads(responses[3][1]), list)


def test_a_large_body_arrives_intact(url: str) -> None:
    text = "".join(chr(ord("a") + n % 26) for n in range(3 * 1024 * 1024))
    answer = httpx.post(
        f"{url}/runs/wait", json={"assistant_id": "echo", "input": {"text": text}}, timeout=120
    )
    assert answer.status_code == 200
    assert answer.json() == {"text": text}
