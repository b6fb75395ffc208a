"""The uvicorn server of `fraudpipe serve`: one worker in this process, or several worker processes.

Several workers (``--workers N``, only with the state in Redis): uvicorn's process manager starts N
worker processes; each builds its app with ``worker_app`` from the configuration the parent puts in
``FRAUDPIPE_SERVE_CONFIG``. On Linux each worker listens on a socket of its own, bound to the port
with SO_REUSEPORT (``listeners.OwnListeners``), so the kernel spreads new connections over the workers by a
hash of their addresses. On one shared socket (uvicorn's way, kept elsewhere) whichever worker
wakes first accepts: a load generator's 16 keep-alive connections all went to one worker in a run
of the benchmark, which then answered as one worker did.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from fraudpipe.listeners import OwnListeners, own_listeners_work
from fraudpipe.serve.app import create_app
from fraudpipe.serve.config import ServeConfig
from fraudpipe.serve.limits import server_options

CONFIG_ENV = "FRAUDPIPE_SERVE_CONFIG"  # the parent's configuration, for the worker processes (JSON)


def worker_app() -> FastAPI:
    """The app of one of several worker processes (uvicorn's factory): the parent's configuration from
    ``FRAUDPIPE_SERVE_CONFIG``. A worker that cannot load stops the whole server (its parent), since
    uvicorn would otherwise start it again and again."""

    def on_fatal(message: str) -> None:
        os.kill(os.getppid(), signal.SIGTERM)

    config = ServeConfig.model_validate_json(os.environ[CONFIG_ENV], strict=False)
    return create_app(config, on_fatal)


def run(config: ServeConfig, customize: Callable[[FastAPI], None] | None = None) -> int:
    """Serve until stopped (SIGINT/SIGTERM); exit status 1 when loading failed. ``customize`` may add
    routes to the app (the benchmark's reference endpoints), on the same server set-up; one worker only."""
    if config.workers > 1:
        if customize is not None:
            raise ValueError("customize needs one worker: the workers build their apps in their own processes")
        os.environ[CONFIG_ENV] = config.model_dump_json()
        return _run_workers(_uvicorn_config(config, "fraudpipe.serve.server:worker_app", factory=True))

    failed: list[str] = []
    server: uvicorn.Server | None = None

    def on_fatal(message: str) -> None:
        failed.append(message)
        if server is not None:
            server.should_exit = True

    app = create_app(config, on_fatal)
    if customize is not None:
        customize(app)
    server = uvicorn.Server(_uvicorn_config(config, app))
    server.run()
    return 1 if failed else 0


def _uvicorn_config(config: ServeConfig, app: FastAPI | str, factory: bool = False) -> uvicorn.Config:
    """One worker serving ``app``, or (``factory``: an import string) ``config.workers`` of them."""
    return uvicorn.Config(
        app,
        factory=factory,
        host=config.host,
        port=config.port,
        workers=config.workers if factory else 1,
        lifespan="on",
        log_level=config.log_level,
        access_log=config.access_log,
        server_header=False,
        timeout_graceful_shutdown=10,
        **server_options(config),  # http protocol (with the header timeout), keep-alive, connection limit
        loop=config.loop,
    )


def _run_workers(config: uvicorn.Config) -> int:
    """uvicorn's process manager (what ``uvicorn.run`` starts for several workers): each worker on its
    own socket (``OwnListeners``) where the kernel spreads connections over them, else on one shared."""
    if not own_listeners_work():
        listeners: list[socket.socket] = [config.bind_socket()]
    else:
        try:
            listeners = OwnListeners(config.host, config.port)
        except OSError as exc:
            print(f"serve failed: --port {config.port}: cannot bind {config.host}: {exc.strerror}", file=sys.stderr)
            return 1
        logging.getLogger("uvicorn.error").info(
            "Uvicorn running on http://%s:%d, each of %d workers on its own socket (SO_REUSEPORT)",
            config.host,
            listeners.port,
            config.workers,
        )
    with contextlib.suppress(KeyboardInterrupt):
        Multiprocess(config, sockets=listeners).run()
    return 0
