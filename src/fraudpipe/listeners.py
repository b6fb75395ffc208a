"""Listening sockets of their own for the worker processes of `fraudpipe serve --workers N`.

A ground module, light on purpose: a worker process imports it while it starts (``OwnListeners``
pickled), before uvicorn's health check thread answers its parent, which kills a worker that stays
silent for 5 s; ``fraudpipe.serve`` takes seconds to import.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from typing import Any

from uvicorn.config import STARTUP_FAILURE


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with SO_REUSEPORT (not listening yet)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _own_listener(host: str, port: int) -> list[socket.socket]:
    """Run in a worker process as it starts: its own socket in the port's SO_REUSEPORT group (uvicorn
    makes it listen). A failure ends the worker as a failed start, which stops uvicorn's parent."""
    try:
        return [reuse_port_socket(host, port)]
    except OSError as exc:
        print(f"serve failed: worker {os.getpid()} cannot bind {host}:{port}: {exc.strerror}", file=sys.stderr)
        sys.exit(STARTUP_FAILURE)


class OwnListeners(list[socket.socket]):
    """The ``sockets`` uvicorn's process manager hands every worker it starts (at start, on SIGHUP, after
    a crash), sent pickled to the spawned process: there it arrives as a socket of that worker's own
    (``_own_listener``). In the parent it holds the port: a socket bound in the group, never listening,
    which the kernel gives no connection to."""

    def __init__(self, host: str, port: int) -> None:
        probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with probe:  # without SO_REUSEPORT: fails when any server listens there, even another such group
            probe.bind((host, port))
            port = port or probe.getsockname()[1]
        super().__init__([reuse_port_socket(host, port)])
        self.host, self.port = host, port

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str, int]]:
        return _own_listener, (self.host, self.port)


def own_listeners_work() -> bool:
    """Whether the kernel spreads connections over the sockets sharing a port: Linux's SO_REUSEPORT (on
    macOS and BSD the sockets share the port, but one of them gets its connections)."""
    return sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")
