"""The uvicorn server of `fraudpipe serve`: one worker in this process, or several worker processes.

Several workers (``--workers N``, only with the state in Redis): uvicorn's process manager binds
the port once and starts N worker processes that accept on it; each builds its app with
``worker_app`` from the configuration the parent puts in ``FRAUDPIPE_SERVE_CONFIG``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from fastapi import FastAPI

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
    import uvicorn

    if config.workers > 1:
        if customize is not None:
            raise ValueError("customize needs one worker: the workers build their apps in their own processes")
        os.environ[CONFIG_ENV] = config.model_dump_json()
        uvicorn.run(
            "fraudpipe.serve.server:worker_app",
            factory=True,
            host=config.host,
            port=config.port,
            workers=config.workers,
            lifespan="on",
            log_level=config.log_level,
            access_log=config.access_log,
            server_header=False,
            timeout_graceful_shutdown=10,
            **server_options(config),  # http protocol (with the header timeout), keep-alive, connection limit
            loop=config.loop,
        )
        return 0

    failed: list[str] = []
    server: uvicorn.Server | None = None

    def on_fatal(message: str) -> None:
        failed.append(message)
        if server is not None:
            server.should_exit = True

    app = create_app(config, on_fatal)
    if customize is not None:
        customize(app)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            workers=1,
            lifespan="on",
            log_level=config.log_level,
            access_log=config.access_log,
            server_header=False,
            timeout_graceful_shutdown=10,
            **server_options(config),  # http protocol (with the header timeout), keep-alive, connection limit
            loop=config.loop,
        )
    )
    server.run()
    return 1 if failed else 0
