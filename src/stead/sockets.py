"""Listening sockets for the processes Stead serves from."""

from __future__ import annotations

import errno
import socket


class PortInUseError(Exception):
    pass


def bind_socket(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A listening-ready socket on host:port, or PortInUseError in one line. With `reuse_port`,
    other processes that ask the same may bind it too, and the kernel balances between them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only disables Nagle on accepted sockets of that protocol,
    # and without it every response waits out the client's 40 ms delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(f"port {port} on {host} is already in use") from None
        raise PortInUseError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock
