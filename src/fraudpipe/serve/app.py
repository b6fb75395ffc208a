"""The FastAPI app of `fraudpipe serve`: its lifespan, its routes and their dependencies.

The model and the state load once, in the lifespan, in a thread: until they are loaded /healthz
answers, /readyz says 503 and the /v1 routes answer 503 with Retry-After. A failed load ends the
server with one line on stderr. The handlers are ``async def`` (each request's work is well
under a millisecond of CPU: a thread pool would cost more than it saves) and parse their bodies
from bytes with pydantic; responses are JSON bytes built directly. Every malformed request gets a
4xx whose body names the field (``schema.problems``), never a 500; a body not sent as
``application/json`` gets 415.

Routes: POST /v1/score, /v1/score/batch, /v1/labels, /v1/admin/snapshot, /v1/admin/period,
/v1/admin/model (these need the API key when its variable is set); GET /healthz, /readyz, /metrics, and
the OpenAPI schema at /openapi.json (/docs renders it). Signals: SIGUSR1 writes a snapshot, SIGHUP
reloads the models (``serve.swap``).

The answers and body parsing are in ``responses``; the uvicorn server that runs this app in
``server``.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request, Response, Security
from fastapi.security import APIKeyHeader
from pydantic import BaseModel

from fraudpipe.errors import PipelineError
from fraudpipe.serve.config import ServeConfig
from fraudpipe.serve.limits import BodyTimeout, configure
from fraudpipe.serve.metrics import Metrics, MetricsMiddleware
from fraudpipe.serve.models import Live
from fraudpipe.serve.responses import (
    ERRORS,
    Answer,
    add_body_schemas,
    answer_error,
    error_response,
    json_response,
    parse_body,
    refused_answer,
    require_json,
    score_out,
)
from fraudpipe.serve.schema import (
    BatchErrorOut,
    ErrorOut,
    LabelIn,
    LabelOut,
    PeriodIn,
    Problem,
    ScoreBatchIn,
    ScoreBatchOut,
    ScoreOut,
    TransactionIn,
)
from fraudpipe.serve.service import Refused, Service, describe, store_name
from fraudpipe.serve.stores.base import StoreUnavailable
from fraudpipe.serve.swap import ModelIn, Swapper

API_KEY_HEADER = "X-API-Key"
ROUTES = frozenset(
    {
        "/v1/score",
        "/v1/score/batch",
        "/v1/labels",
        "/v1/admin/snapshot",
        "/v1/admin/period",
        "/v1/admin/model",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/docs",
    }
)


def _size(service: Service) -> dict[str, int]:
    """The store's counts for /metrics; none while a shared store is unreachable (the gauges read 0)."""
    try:
        return service.store.size()
    except StoreUnavailable:
        return {}


class _Holder:
    service: Service | None = None
    swapper: Swapper | None = None
    failure: str | None = None


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
    holder = _Holder()
    api_key = config.api_key()  # a ConfigError now, before anything starts
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
        task = asyncio.create_task(_load())
        try:
            yield
        finally:
            task.cancel()
            if holder.swapper is not None:
                holder.swapper.stop()
            if holder.service is not None:
                holder.service.close()

    async def _load() -> None:
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
        holder.service = service
        metrics.loaded(
            service.version,
            service.release,
            service.threshold,
            service.fast_path,
            lambda: _size(service),
            service.journal_entries,
        )
        _show(metrics, service.live)
        metrics.capped(service.capacity.caps)
        holder.swapper = Swapper(service, _swapped)
        holder.swapper.start()
        print(describe(service, config), flush=True)

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

    def _service() -> Service:
        if holder.service is None:
            raise Answer(503, holder.failure or "loading: the model and the state are not ready yet (see /readyz)")
        return holder.service

    # FastAPI's API key scheme reads the header (and documents it in the OpenAPI schema); the
    # answer to a missing or wrong key is ours, in the same shape as every other error.
    header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description=f"the key in {config.api_key_env}")

    # async: no thread per request; the default, not Annotated: this module's annotations are strings
    # that FastAPI resolves in the module's namespace, where ``header`` is not.
    async def _authorised(given: str | None = Security(header)) -> None:
        if api_key is not None and (given is None or not hmac.compare_digest(given.encode("latin-1"), api_key)):
            raise Answer(
                401, f"missing or wrong API key: send it in the X-API-Key header ({config.api_key_env} is set)"
            )

    #: The /v1 routes' dependency: none when no key is set (nothing to check, nothing to document).
    secured: dict[str, Any] = {"dependencies": [Depends(_authorised)]} if api_key is not None else {}

    async def _body(request: Request) -> bytes:
        limit = config.max_body_bytes
        declared = request.headers.get("content-length", "")
        too_large = Answer(
            413,
            f"body: larger than {limit} bytes (--max-body-bytes)",
            [Problem(field="body", message=f"larger than {limit} bytes")],
        )
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise too_large
        return body

    async def _prepare(request: Request, model: type[BaseModel]) -> tuple[Service, Any]:
        service = _service()
        require_json(request)
        return service, parse_body(model, await _body(request))

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
    app.add_exception_handler(Answer, answer_error)  # raised by the API key's dependency
    app.state.holder = holder  # the loaded Service (None while loading), for routes added by ``run(customize=...)``

    def _doc(
        body: type[BaseModel] | None, ok: type[BaseModel] | None, *statuses: int, error: type[BaseModel] = ErrorOut
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "response_model": ok,
            "responses": {s: {"model": error, "description": ERRORS[s]} for s in statuses},
        }
        if body is not None:
            ref = {"$ref": f"#/components/schemas/{body.__name__}"}
            out["openapi_extra"] = {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}
        return out

    @app.post(
        "/v1/score",
        summary="Score one transaction, then add it to the history",
        **_doc(TransactionIn, ScoreOut, 400, 401, 409, 413, 415, 422, 503),
        **secured,
    )
    async def score(request: Request) -> Response:
        try:
            service, tx = await _prepare(request, TransactionIn)
            try:
                scored, retry = service.score(tx)
            except Refused as exc:
                raise refused_answer(exc) from None
        except Answer as answer:
            return error_response(answer)
        if retry:
            metrics.retries.inc()
            return json_response(200, score_out(tx, scored, service), {"Idempotent-Replayed": "true"})
        metrics.scored(scored.score, scored.alert)
        return json_response(200, score_out(tx, scored, service))

    @app.post(
        "/v1/score/batch",
        summary="Score transactions in order, each as if sent alone",
        **_doc(ScoreBatchIn, ScoreBatchOut, 400, 401, 409, 413, 415, 422, 503, error=BatchErrorOut),
        **secured,
    )
    async def score_batch(request: Request) -> Response:
        results: list[dict[str, Any]] = []
        try:
            service, batch = await _prepare(request, ScoreBatchIn)
            n = len(batch.transactions)
            if n > config.max_batch:
                message = f"at most {config.max_batch} transactions per call (--max-batch), got {n}"
                raise Answer(422, f"transactions: {message}", [Problem(field="transactions", message=message)])
            for i, tx in enumerate(batch.transactions):
                try:
                    scored, retry = service.score(tx)
                except Refused as exc:
                    raise refused_answer(exc, f"transactions[{i}].", results=results) from None
                if retry:
                    metrics.retries.inc()
                else:
                    metrics.scored(scored.score, scored.alert)
                results.append(score_out(tx, scored, service))
        except Answer as answer:
            return error_response(answer)
        return json_response(200, {"results": results})

    @app.post(
        "/v1/labels",
        summary="Fraud feedback: counts in terminal risk features once older than the delay",
        **_doc(LabelIn, LabelOut, 400, 401, 404, 413, 415, 422, 503),
        **secured,
    )
    async def labels(request: Request) -> Response:
        try:
            service, label = await _prepare(request, LabelIn)
            try:
                service.label(label)
            except Refused as exc:
                raise refused_answer(exc) from None
        except Answer as answer:
            return error_response(answer)
        metrics.labels.labels(tx_fraud=str(label.tx_fraud)).inc()
        return json_response(200, {"transaction_id": label.transaction_id, "tx_fraud": label.tx_fraud})

    @app.post(
        "/v1/admin/snapshot",
        summary="Write a snapshot of the state and truncate the journal (also on SIGUSR1)",
        **_doc(None, None, 401, 503),
        **secured,
    )
    async def snapshot() -> Response:
        try:
            service = _service()
            try:  # written in the background: other requests are answered meanwhile
                return json_response(200, await asyncio.wrap_future(service.start_snapshot()))
            except (PipelineError, OSError) as exc:
                raise Answer(503, f"snapshot failed: {exc}") from None
        except Answer as answer:
            return error_response(answer)

    @app.get("/healthz", summary="The process is up")
    async def healthz() -> Response:
        return json_response(200, {"status": "ok"})

    @app.get("/readyz", summary="200 once the model and the state are loaded, else 503")
    async def readyz() -> Response:
        service = holder.service
        if service is None:
            status = "failed" if holder.failure else "loading"
            return json_response(503, {"status": status, "detail": holder.failure or "loading the model and the state"})
        try:
            size = service.store.size()
        except StoreUnavailable as exc:
            return json_response(503, {"status": "store unavailable", "detail": str(exc)})
        live = service.live  # the models serving now (a swap replaces them)
        release = live.champion.source.release
        return json_response(
            200,
            {
                "status": "ready",
                "model_version": live.champion.version,
                "model_registry_version": live.champion.release,  # fraud-model@v1.2.0, or null: from a path
                "model_reference": release.reference if release else None,
                "model_commit": release.commit if release else None,
                "shadow_model_version": None if live.shadow is None else live.shadow.version,
                "shadow_registry_version": None if live.shadow is None else live.shadow.release,
                "model_generation": live.generation,
                "store": store,
                "workers": config.workers,
                "pid": os.getpid(),
                **size,
                "journal_entries": service.journal_entries(),
            },
        )

    @app.get("/metrics", summary="Prometheus text format")
    async def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/v1/admin/period",
        summary="Move the clock to a new period: the stream resumes at `start`; what is held stays held",
        **_doc(PeriodIn, None, 400, 401, 413, 415, 422, 503),
        **secured,
    )
    async def period(request: Request) -> Response:
        try:
            service, move = await _prepare(request, PeriodIn)
            try:
                done = service.start_period(move)
            except Refused as exc:
                raise refused_answer(exc) from None
        except Answer as answer:
            return error_response(answer)
        print(
            f"fraudpipe serve: the clock moved to a new period: {done['start']} (newest transaction before: "
            f"{done['previous_newest']}); {done['transactions']:,} transactions held",
            flush=True,
        )
        return json_response(200, done)

    @app.post(
        "/v1/admin/model",
        summary="Swap the models: a new champion, a challenger in the shadow (null drops it), or promote it",
        **_doc(ModelIn, None, 400, 401, 409, 413, 415, 422, 503),
        **secured,
    )
    async def swap_model(request: Request) -> Response:
        try:
            _, body = await _prepare(request, ModelIn)
            assert holder.swapper is not None  # set with the service
            try:
                return json_response(200, await holder.swapper.request(body))
            except Refused as exc:
                raise refused_answer(exc) from None
        except Answer as answer:
            return error_response(answer)

    add_body_schemas(app, (TransactionIn, ScoreBatchIn, LabelIn, PeriodIn, ModelIn))
    return app
