"""Slow and too many clients: read timeouts and a connection limit for `fraudpipe serve`.

uvicorn closes a kept-alive connection left idle (``timeout_keep_alive``) and answers 503 beyond
``limit_concurrency`` connections or requests in flight, but it has no timeout for reading a
request: a client that opens a connection and sends its headers a byte at a time, or declares a
Content-Length it never sends, holds a connection (and, counted against the limit, locks others
out) for ever. Two timeouts close that:

- the request line and headers must arrive within ``header_timeout`` seconds of the connection's
  opening, or of the first byte after a kept-alive answer: ``HeadTimeout``, mixed into uvicorn's
  HTTP protocols (one class per parser, importable by name so that worker processes load them), answers
  408 and closes the connection (closes it silently when not a byte of a request came);
- the body must arrive within ``body_timeout`` seconds of the headers: ``BodyTimeout``, an ASGI
  middleware around ``receive``, answers 408 (JSON, the body field named) and closes the connection.

A client that hangs up before its answer is not a server error: ``metrics.MetricsMiddleware`` counts
it with status 499 (nginx's "client closed request"), without a traceback.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from fraudpipe.serve.config import ServeConfig

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools not installed: h11 only, as uvicorn's "auto"
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

_TIMEOUT_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
    b"connection: close\r\n\r\n%s"
)


class HeadTimeout:
    """Mixin for a uvicorn HTTP protocol: a request's line and headers within ``seconds``."""

    seconds: float = 10.0  # set for the process by ``configure``
    _head_timer: asyncio.TimerHandle | None = None
    _head_bytes = False
    # Set by the uvicorn protocol this is mixed into (its request cycle: a class per parser).
    cycle: Any
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm_head()

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        if self._head_timer is None and (cycle is None or cycle.response_complete):
            self._arm_head()  # the first bytes of the next request on a kept-alive connection
        self._head_bytes = True
        super().data_received(data)  # type: ignore[misc]
        if self.cycle is not cycle:  # its headers are complete: the request is the app's
            self._disarm_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm_head(self) -> None:
        self._disarm_head()
        self._head_bytes = False
        self._head_timer = self.loop.call_later(self.seconds, self._head_timed_out)

    def _disarm_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_bytes:
            text = f"request line and headers not received within {self.seconds:g} s (--header-timeout)\n".encode()
            self.transport.write(_TIMEOUT_408 % (len(text), text))
        self.transport.close()


class H11WithHeadTimeout(HeadTimeout, H11Protocol):
    """uvicorn's h11 protocol with ``HeadTimeout``."""


if HttpToolsProtocol is not None:

    class HttpToolsWithHeadTimeout(HeadTimeout, HttpToolsProtocol):
        """uvicorn's httptools protocol with ``HeadTimeout``."""


def protocol(http: str) -> type[asyncio.Protocol]:
    """The protocol class for ``--http`` (auto: httptools when installed, as uvicorn's)."""
    if http == "h11" or (http == "auto" and HttpToolsProtocol is None):
        return H11WithHeadTimeout
    return HttpToolsWithHeadTimeout


def configure(config: ServeConfig) -> None:
    """Set this process's header timeout (the protocol classes are uvicorn's to instantiate)."""
    HeadTimeout.seconds = config.header_timeout


def server_options(config: ServeConfig) -> dict[str, Any]:
    """uvicorn's settings for slow and too many clients (one worker or several)."""
    configure(config)
    return {
        "http": protocol(config.http),
        "timeout_keep_alive": config.keep_alive_timeout,
        "limit_concurrency": config.limit_concurrency,
    }


class _BodyTimedOut(Exception):
    pass


class BodyTimeout:
    """ASGI middleware: a request's body within ``seconds`` of its headers, else 408 and the connection closed.

    One timer per wait for the body (``loop.call_at``, cancelled when the body part arrives), not
    ``asyncio.timeout_at``: the same cancellation of the waiting task, at a sixth of its cost (a
    score request pays about 1 µs for this middleware instead of 6)."""

    def __init__(self, app: Any, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        complete, started, expired = False, False, False

        def expire(task: asyncio.Task) -> None:
            nonlocal expired
            expired = True
            task.cancel()

        async def receiving() -> dict[str, Any]:
            nonlocal complete
            if complete:
                return await receive()
            task = asyncio.current_task()
            assert task is not None  # an ASGI app runs in a task
            timer = loop.call_at(deadline, expire, task)
            try:
                message = await receive()
            except asyncio.CancelledError:
                if not expired:
                    raise
                task.uncancel()
                raise _BodyTimedOut from None
            finally:
                timer.cancel()
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def sending(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receiving, sending)
        except _BodyTimedOut:
            if not started:
                await _send_408(send, self.seconds)


async def _send_408(send: Callable, seconds: float) -> None:
    message = f"not received within {seconds:g} s of the headers (--body-timeout)"
    body = json.dumps(
        {"detail": f"body: {message}", "errors": [{"field": "body", "message": message}]}, separators=(",", ":")
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    headers.append((b"connection", b"close"))  # the rest of the body would be read as the next request
    await send({"type": "http.response.start", "status": 408, "headers": headers})
    await send({"type": "http.response.body", "body": body})
