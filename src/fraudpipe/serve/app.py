"""The FastAPI app of `fraudpipe serve`: its lifespan, its middleware, and the load of its ``Service``.

The model and the state load once, in the lifespan, in a thread: until they are loaded /healthz
answers, /readyz says 503 and the /v1 routes answer 503 with Retry-After. A failed load ends the
server with one line on stderr. A failed journal commit (``serve.commits``) drops the loaded
service and loads it again from the journal, as a restart would (503 meanwhile), since its state
holds transactions the journal does not. The handlers are ``async def`` (each request's work is
well under a millisecond of CPU: a thread pool would cost more than it saves); they are in
``routes``, the answers and body parsing in ``responses``, the uvicorn server that runs this app
in ``server``. The OpenAPI schema is at /openapi.json (/docs renders it). Signals: SIGUSR1 writes a
snapshot, SIGHUP reloads the models (``serve.swap``).
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import asynccontextmanager

from fastapi import FastAPI

from fraudpipe.errors import PipelineError
from fraudpipe.serve.config import ServeConfig
from fraudpipe.serve.limits import BodyTimeout, configure
from fraudpipe.serve.metrics import Metrics, MetricsMiddleware
from fraudpipe.serve.models import Live
from fraudpipe.serve.responses import Answer, add_body_schemas, answer_error
from fraudpipe.serve.routes import ROUTES, Holder, add_routes
from fraudpipe.serve.schema import LabelIn, PeriodIn, ScoreBatchIn, TransactionIn
from fraudpipe.serve.service import Service
from fraudpipe.serve.startup import describe, store_name
from fraudpipe.serve.stores.base import StoreUnavailable
from fraudpipe.serve.swap import ModelIn, Swapper

YOUNG_GC_THRESHOLD = 20_000  # allocations between two collections of the youngest generation (default 700)


def _size(service: Service) -> dict[str, int]:
    """The store's counts for /metrics; none while a shared store is unreachable (the gauges read 0)."""
    try:
        return service.store.size()
    except StoreUnavailable:
        return {}


def _show(metrics: Metrics, live: Live) -> None:
    """The models serving, in /metrics."""
    champion, shadow = live.champion, live.shadow
    metrics.serving(
        champion.version,
        champion.release,
        champion.threshold,
        champion.fast_path,
        None if shadow is None else (shadow.version, shadow.release),
    )


def create_app(config: ServeConfig, on_fatal: Callable[[str], None] | None = None) -> FastAPI:
    """The app for one worker. ``on_fatal`` is called with the one-line reason when loading fails."""
    metrics = Metrics()
    holder = Holder()
    config.api_key()  # a ConfigError now, before anything starts
    store = store_name(config)
    workers = f"{config.workers} worker{'s' if config.workers > 1 else ''}"

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        print(
            f"fraudpipe serve: starting {workers} with the {store} on http://{config.host}:{config.port}"
            f"{f' (worker pid {os.getpid()})' if config.workers > 1 else ''}; "
            f"loading model {config.model} and state ...",
            flush=True,
        )
        loop = asyncio.get_running_loop()
        if threading.current_thread() is threading.main_thread():
            loop.add_signal_handler(
                signal.SIGUSR1, _snapshot_on_signal
            )  # before loading: a signal then must not kill it
            loop.add_signal_handler(signal.SIGHUP, _reload_on_signal)
        holder.loading = asyncio.create_task(_load())
        try:
            yield
        finally:
            if holder.loading is not None:
                holder.loading.cancel()
            if holder.swapper is not None:
                holder.swapper.stop()
            if holder.service is not None:
                holder.service.close()

    async def _load(failed: Service | None = None) -> None:
        if failed is not None:  # its journal commit failed: close it, then load again from the journal
            await asyncio.to_thread(failed.close)
        try:
            service = await asyncio.to_thread(Service.open, config)
        except (PipelineError, OSError) as exc:
            _fail(f"serve failed: {' '.join(str(exc).split())}")
            return
        except Exception:  # a bug: keep its traceback
            traceback.print_exc()
            _fail("serve failed: an unexpected error while loading (traceback above)")
            return
        gc.freeze()  # the loaded state is long-lived: keep the collector from walking it again and again
        # Requests awaiting their commit keep their objects alive, so at the default threshold (700)
        # the young generation was collected every 14 requests at saturation and its survivors set
        # off older collections (one full one of 158 ms): 20 to 55 µs of GC per request. At 20,000,
        # about 1 µs (one young collection, 7 ms, in 5,000 requests).
        gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])
        service.group_commits(metrics.committed, lambda reason: _reload(service, reason))
        holder.service = service
        _show(metrics, service.live)
        metrics.loaded(lambda: _size(service), service.journal_entries)
        metrics.capped(service.capacity.caps)
        if holder.swapper is not None:  # a reload after a failed commit: the new service gets its own
            holder.swapper.stop()
        holder.swapper = Swapper(service, _swapped)
        holder.swapper.start()
        print(describe(service, config), flush=True)

    def _reload(failed: Service, reason: str) -> None:
        if holder.service is not failed:
            return
        holder.service = None
        print(f"fraudpipe serve: {reason}: loading the state again from the journal", file=sys.stderr, flush=True)
        holder.loading = asyncio.ensure_future(_load(failed))

    def _fail(message: str) -> None:
        holder.failure = message
        print(message, file=sys.stderr, flush=True)
        if on_fatal is not None:
            on_fatal(message)

    def _swapped(live: Live) -> None:
        _show(metrics, live)
        metrics.swaps.inc()

    reloads: set[asyncio.Task] = set()  # the SIGHUP reloads running (a reference keeps each task alive)

    def _reload_on_signal() -> None:
        if holder.swapper is None:
            print("fraudpipe serve: SIGHUP ignored: the models are not loaded yet", file=sys.stderr, flush=True)
            return
        task = asyncio.get_running_loop().create_task(holder.swapper.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    def _snapshot_on_signal() -> None:
        if holder.service is None:
            print(
                "fraudpipe serve: SIGUSR1 ignored: the model and the state are not loaded yet",
                file=sys.stderr,
                flush=True,
            )
            return
        holder.service.start_snapshot().add_done_callback(_report_snapshot)  # written in the background

    app = FastAPI(
        title="fraudpipe",
        version="1",
        lifespan=lifespan,
        telemetry={
            "tracing": False,
            "metrics": False,
            "logs": False,
        },  # /metrics is ours: no per-request OpenTelemetry checks
        description="Real-time fraud scoring with the features the model was trained on. "
        f"{workers.capitalize()}, {store}.",
    )
    configure(config)  # this process's header timeout (a worker's too)
    app.add_middleware(BodyTimeout, seconds=config.body_timeout)  # inside the metrics: its 408s are counted
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=ROUTES)
    app.add_exception_handler(Answer, answer_error)
    app.state.holder = holder  # the loaded Service (None while loading), for routes added by ``run(customize=...)``
    add_routes(app, config, holder, metrics, store)
    add_body_schemas(app, (TransactionIn, ScoreBatchIn, LabelIn, PeriodIn, ModelIn))
    return app


def _report_snapshot(future: Future) -> None:
    try:
        done = future.result()
    except (PipelineError, OSError) as exc:
        print(f"fraudpipe serve: snapshot failed: {exc}", file=sys.stderr, flush=True)
        return
    if "aof_rewrite" in done:  # the state is in Redis
        print(
            f"fraudpipe serve: SIGUSR1: Redis append-only file rewrite: {done['aof_rewrite']} "
            f"({done['transactions']:,} transactions)",
            flush=True,
        )
        return
    print(
        f"fraudpipe serve: SIGUSR1: snapshot {done['snapshot']} ({done['transactions']:,} transactions, "
        f"{done['seconds']} s); journal truncated through entry {done['journal_seq']}",
        flush=True,
    )
