"""Pooled PostgreSQL connections are replaced once they have moved TRANSFERRED_BYTES_LIMIT.

libpq grows a connection's buffers to the largest message it sends or receives and keeps them at
that size until the connection closes: every pooled connection that once carried a 20 MiB
checkpoint or run input holds 20 MiB or more, for as long as the pool keeps it (bench/README.md).
libpq does not tell its buffers' sizes, but they can be no larger than what the connection sent
and received in all, which the kernel counts (TCP_INFO). A connection past the limit is replaced:
ordinary runs move a few KiB per checkout, so a connection serves thousands of them first. Where
the kernel does not count (a Unix socket, another system), connections are kept.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import psycopg

TRANSFERRED_BYTES_LIMIT = 4 * 2**20

# struct tcp_info (linux/tcp.h), since Linux 4.1: u64 tcpi_bytes_acked (what the peer
# acknowledged receiving) and u64 tcpi_bytes_received, one after the other from this offset.
_TCP_INFO_BYTES_ACKED = 120
_TCP_INFO_SIZE = 256


def transferred_too_much(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Whether `conn` has moved more than TRANSFERRED_BYTES_LIMIT."""
    try:
        fd = conn.pgconn.socket
    except psycopg.OperationalError:
        # Closed or lost: its pool deals with it as with any dead connection.
        return False
    transferred = bytes_transferred(fd)
    return transferred is not None and transferred > TRANSFERRED_BYTES_LIMIT


def bytes_transferred(fd: int) -> int | None:
    """What the TCP socket `fd` has sent and received since it connected; None where that is
    unknown."""
    tcp_info = getattr(socket, "TCP_INFO", None)
    if tcp_info is None:
        return None
    # The socket object borrows libpq's descriptor: detach() gives it back unclosed. Its family
    # is given, not asked: asking costs two more system calls per check, once per checkout.
    # The family given does not matter to getsockopt; on a Unix socket TCP_INFO fails.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0, fileno=fd)
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, tcp_info, _TCP_INFO_SIZE)
    except OSError:
        return None
    finally:
        sock.detach()
    if len(info) < _TCP_INFO_BYTES_ACKED + 16:
        return None
    sent, received = struct.unpack_from("=QQ", info, _TCP_INFO_BYTES_ACKED)
    return int(sent + received)
