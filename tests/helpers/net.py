"""Loopback ports for the tests' real servers."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port nobody listens on right now (also useful for "connection refused" tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
