"""TCP_NODELAY on the server's sockets, so that no response waits on Nagle's algorithm.

A response written in more than one piece (headers, then the body; SSE events) waits for the
client's delayed ACK (about 40 ms on Linux) between pieces when the connection has Nagle's
algorithm on. asyncio turns it off on the connections it accepts only when the listening socket
was created with `proto=IPPROTO_TCP`, and `uvicorn --workers N` (and `--fd`, gunicorn's
workers, ...) hand it a socket created with `proto=0`: every multi-write response then waits
about 40 ms. uvloop always turns it off.

The ASGI scope does not reach the socket, so `ensure_nodelay(scope)` finds it: on the first
request a process serves on a local TCP port, it looks through the process's open file
descriptors for the listening socket of `scope["server"]` and the connection of
`scope["client"]`, and sets TCP_NODELAY on both. Connections accepted later inherit the option
from the listening socket (Linux, BSD and macOS copy it to accepted sockets). Each port is
looked at once per process; nothing happens for Unix sockets or when the descriptors cannot be
listed (then run uvicorn with uvloop, `--loop uvloop`, which sets it itself).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

__all__ = ["ensure_nodelay", "nodelay_of_connection"]

_done: set[int] = set()
_FD_DIRS = ("/proc/self/fd", "/dev/fd")


def _open_fds() -> list[int]:
    for directory in _FD_DIRS:
        try:
            return [int(name) for name in os.listdir(directory) if name.isdigit()]
        except OSError:
            continue
    return []


def _tcp_sockets() -> list[socket.socket]:
    """A duplicate of every open TCP socket of this process; the caller closes them."""
    found: list[socket.socket] = []
    for fd in _open_fds():
        try:
            dup = os.dup(fd)
        except OSError:
            continue
        try:
            sock = socket.socket(fileno=dup)
        except OSError:  # not a socket
            os.close(dup)
            continue
        if sock.type == socket.SOCK_STREAM and sock.family in (socket.AF_INET, socket.AF_INET6):
            found.append(sock)
        else:
            sock.close()
    return found


def _sockets_on_port(port: int) -> list[socket.socket]:
    """A duplicate of every open TCP socket of this process bound to `port`; the caller closes
    them."""
    found: list[socket.socket] = []
    for sock in _tcp_sockets():
        try:
            name = sock.getsockname()
        except OSError:
            name = None
        if isinstance(name, tuple) and name[1] == port:
            found.append(sock)
        else:
            sock.close()
    return found


def _address(scope: Mapping[str, Any], key: str) -> tuple[str, int] | None:
    value = scope.get(key)
    if not value or len(value) < 2 or not isinstance(value[1], int):
        return None
    return str(value[0]), value[1]


def _matches(name: Any, address: tuple[str, int]) -> bool:
    # IPv4 names are (host, port); IPv6 ones (host, port, flowinfo, scope_id).
    return isinstance(name, tuple) and len(name) >= 2 and (str(name[0]), name[1]) == address


def ensure_nodelay(scope: Mapping[str, Any]) -> None:
    """Turn Nagle's algorithm off for the server socket serving `scope` (once per port)."""
    server = _address(scope, "server")
    if server is None or server[1] in _done:
        return
    _done.add(server[1])
    client = _address(scope, "client")
    for sock in _sockets_on_port(server[1]):
        try:
            listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
            if listening or (client is not None and _matches(sock.getpeername(), client)):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            continue
        finally:
            sock.close()


def nodelay_of_connection(scope: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """TCP_NODELAY of the connection serving `scope` and of its listening socket (None: unseen).

    For tests and benches: reads the options the way `ensure_nodelay` finds the sockets.
    """
    server = _address(scope, "server")
    client = _address(scope, "client")
    connection: int | None = None
    listener: int | None = None
    if server is None:
        return None, None
    for sock in _sockets_on_port(server[1]):
        try:
            value = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                listener = value
            elif client is not None and _matches(sock.getpeername(), client):
                connection = value
        except OSError:
            continue
        finally:
            sock.close()
    return connection, listener
