"""The FastAPI app and its uvicorn server: `fraudpipe serve`.

The model and the state load once, in the lifespan, in a thread: until they are loaded /healthz
answers, /readyz says 503 and the /v1 routes answer 503 with Retry-After. A failed load ends the
server with one line on stderr. The handlers are ``async def`` (each request's work is well
under a millisecond of CPU: a thread pool would cost more than it saves) and parse their bodies
from bytes with pydantic; responses are JSON bytes built directly. Every malformed request gets a
4xx whose body names the field (``schema.problems``), never a 500; a body not sent as
``application/json`` gets 415.

Routes: POST /v1/score, /v1/score/batch, /v1/labels, /v1/admin/snapshot, /v1/admin/period (these
need the API key when its variable is set); GET /healthz, /readyz, /metrics, and the OpenAPI schema at
/openapi.json (/docs renders it).

Several workers (``--workers N``, only with the state in Redis): uvicorn's process manager binds
the port once and starts N worker processes that accept on it; each builds its app with
``worker_app`` from the configuration the parent puts in ``FRAUDPIPE_SERVE_CONFIG``.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import asynccontextmanager
from typing import Any, cast

from fastapi import Depends, FastAPI, Request, Response, Security
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from fraudpipe.errors import PipelineError
from fraudpipe.serve.config import ServeConfig
from fraudpipe.serve.limits import BodyTimeout, configure, server_options
from fraudpipe.serve.metrics import Metrics, MetricsMiddleware
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
    content_type_problem,
    duplicate_keys,
    one_line,
    problems,
)
from fraudpipe.serve.service import Refused, Service, describe, store_name
from fraudpipe.serve.stores.base import StoreUnavailable

CONFIG_ENV = "FRAUDPIPE_SERVE_CONFIG"  # the parent's configuration, for the worker processes (JSON)

API_KEY_HEADER = "X-API-Key"
ROUTES = frozenset(
    {
        "/v1/score",
        "/v1/score/batch",
        "/v1/labels",
        "/v1/admin/snapshot",
        "/v1/admin/period",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/docs",
    }
)
_ERRORS = {
    400: "The body is not JSON",
    401: "Missing or wrong API key (X-API-Key header)",
    404: "Unknown transaction_id",
    409: "transaction_id already used for another transaction",
    413: "Body larger than --max-body-bytes",
    415: "Content-Type is not application/json",
    422: "A field is missing, of the wrong type or out of range (each named in `errors`)",
    503: "Model and state still loading, or the journal or the Redis state store cannot be reached",
}


class _Answer(Exception):
    """Ends a request early with an error answer."""

    def __init__(self, status: int, detail: str, errors: list[Problem] | None = None, **extra: Any) -> None:
        self.status, self.detail, self.errors, self.extra = status, detail, errors or [], extra


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, separators=(",", ":")).encode(), status, headers, media_type="application/json")


def _error(answer: _Answer) -> Response:
    body = {"detail": answer.detail, "errors": [p.model_dump() for p in answer.errors], **answer.extra}
    headers = (
        {"Retry-After": "1"}
        if answer.status == 503
        else ({"WWW-Authenticate": "ApiKey"} if answer.status == 401 else None)
    )
    return _json(answer.status, body, headers)


async def _answer_error(request: Request, answer: Exception) -> Response:
    """An `_Answer` raised by a dependency (the API key's), answered as one raised in a route."""
    return _error(cast(_Answer, answer))


def _refused(exc: Refused, prefix: str = "", **extra: Any) -> _Answer:
    field = f"{prefix}{exc.field}"
    return _Answer(exc.status, f"{field}: {exc.message}", [Problem(field=field, message=exc.message)], **extra)


def _parse(model: type[BaseModel], body: bytes) -> Any:
    try:
        parsed = model.model_validate_json(body)
    except ValidationError as exc:
        status, found = problems(exc, model)
        raise _Answer(status, one_line(found), found) from None
    if found := duplicate_keys(body):
        raise _Answer(422, one_line(found), found)
    return parsed


def _json_content(request: Request) -> None:
    if problem := content_type_problem(request.headers.get("content-type")):
        raise _Answer(415, f"Content-Type: {problem}", [Problem(field="Content-Type", message=problem)])


def _score_out(tx: TransactionIn, scored: Any) -> dict[str, Any]:
    return {
        "transaction_id": tx.transaction_id,
        "fraud_probability": scored.score,
        "alert": scored.alert,
        "threshold": scored.threshold,
        "model_version": scored.model_version,
    }


def _size(service: Service) -> dict[str, int]:
    """The store's counts for /metrics; none while a shared store is unreachable (the gauges read 0)."""
    try:
        return service.store.size()
    except StoreUnavailable:
        return {}


class _Holder:
    service: Service | None = None
    failure: str | None = None


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
        task = asyncio.create_task(_load())
        try:
            yield
        finally:
            task.cancel()
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
            service.threshold,
            service.scorer.fast_path,
            lambda: _size(service),
            service.journal_entries,
        )
        metrics.capped(service.capacity.caps)
        print(describe(service, config), flush=True)

    def _fail(message: str) -> None:
        holder.failure = message
        print(message, file=sys.stderr, flush=True)
        if on_fatal is not None:
            on_fatal(message)

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
            raise _Answer(503, holder.failure or "loading: the model and the state are not ready yet (see /readyz)")
        return holder.service

    # FastAPI's API key scheme reads the header (and documents it in the OpenAPI schema); the
    # answer to a missing or wrong key is ours, in the same shape as every other error.
    header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description=f"the key in {config.api_key_env}")

    # async: no thread per request; the default, not Annotated: this module's annotations are strings
    # that FastAPI resolves in the module's namespace, where ``header`` is not.
    async def _authorised(given: str | None = Security(header)) -> None:
        if api_key is not None and (given is None or not hmac.compare_digest(given.encode("latin-1"), api_key)):
            raise _Answer(
                401, f"missing or wrong API key: send it in the X-API-Key header ({config.api_key_env} is set)"
            )

    #: The /v1 routes' dependency: none when no key is set (nothing to check, nothing to document).
    secured: dict[str, Any] = {"dependencies": [Depends(_authorised)]} if api_key is not None else {}

    async def _body(request: Request) -> bytes:
        limit = config.max_body_bytes
        declared = request.headers.get("content-length", "")
        too_large = _Answer(
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
        _json_content(request)
        return service, _parse(model, await _body(request))

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
    app.add_exception_handler(_Answer, _answer_error)  # raised by the API key's dependency
    app.state.holder = holder  # the loaded Service (None while loading), for routes added by ``run(customize=...)``

    def _doc(
        body: type[BaseModel] | None, ok: type[BaseModel] | None, *statuses: int, error: type[BaseModel] = ErrorOut
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "response_model": ok,
            "responses": {s: {"model": error, "description": _ERRORS[s]} for s in statuses},
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
                raise _refused(exc) from None
        except _Answer as answer:
            return _error(answer)
        if retry:
            metrics.retries.inc()
            return _json(200, _score_out(tx, scored), {"Idempotent-Replayed": "true"})
        metrics.scored(scored.score, scored.alert)
        return _json(200, _score_out(tx, scored))

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
                raise _Answer(422, f"transactions: {message}", [Problem(field="transactions", message=message)])
            for i, tx in enumerate(batch.transactions):
                try:
                    scored, retry = service.score(tx)
                except Refused as exc:
                    raise _refused(exc, f"transactions[{i}].", results=results) from None
                if retry:
                    metrics.retries.inc()
                else:
                    metrics.scored(scored.score, scored.alert)
                results.append(_score_out(tx, scored))
        except _Answer as answer:
            return _error(answer)
        return _json(200, {"results": results})

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
                raise _refused(exc) from None
        except _Answer as answer:
            return _error(answer)
        metrics.labels.labels(tx_fraud=str(label.tx_fraud)).inc()
        return _json(200, {"transaction_id": label.transaction_id, "tx_fraud": label.tx_fraud})

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
                return _json(200, await asyncio.wrap_future(service.start_snapshot()))
            except (PipelineError, OSError) as exc:
                raise _Answer(503, f"snapshot failed: {exc}") from None
        except _Answer as answer:
            return _error(answer)

    @app.get("/healthz", summary="The process is up")
    async def healthz() -> Response:
        return _json(200, {"status": "ok"})

    @app.get("/readyz", summary="200 once the model and the state are loaded, else 503")
    async def readyz() -> Response:
        service = holder.service
        if service is None:
            status = "failed" if holder.failure else "loading"
            return _json(503, {"status": status, "detail": holder.failure or "loading the model and the state"})
        try:
            size = service.store.size()
        except StoreUnavailable as exc:
            return _json(503, {"status": "store unavailable", "detail": str(exc)})
        return _json(
            200,
            {
                "status": "ready",
                "model_version": service.version,
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
                raise _refused(exc) from None
        except _Answer as answer:
            return _error(answer)
        print(
            f"fraudpipe serve: the clock moved to a new period: {done['start']} (newest transaction before: "
            f"{done['previous_newest']}); {done['transactions']:,} transactions held",
            flush=True,
        )
        return _json(200, done)

    _add_body_schemas(app, (TransactionIn, ScoreBatchIn, LabelIn, PeriodIn))
    return app


def _add_body_schemas(app: FastAPI, models: tuple[type[BaseModel], ...]) -> None:
    """The request bodies are parsed by hand (from bytes): put their schemas in the OpenAPI components."""
    _, defs = models_json_schema([(m, "validation") for m in models], ref_template="#/components/schemas/{model}")
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schema.setdefault("components", {}).setdefault("schemas", {}).update(defs["$defs"])
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


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
            "fraudpipe.serve.app:worker_app",
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
