"""The routes of `fraudpipe serve`: what each request does with the loaded ``Service``.

The /v1 routes are ``RawRoute``s: FastAPI documents them (OpenAPI) like any route, but calls each
endpoint with the request alone, skipping its dependency solving (about 30 µs a request, a tenth
of what a score request costs). The endpoints parse their bodies from bytes (``responses``) and
check the API key themselves (``_authorised``; the key's dependency on the route only documents
it). Every answer that records something (a score, a label, a move of the clock) is sent once the
journal commit holding it is done (``Service.durable``: one commit for the requests handled
together). A refusal, the request's (``Answer``) or the service's (``Refused``), becomes the error
response in one place (``_answered``).

Routes: POST /v1/score, /v1/score/batch, /v1/labels, /v1/admin/snapshot, /v1/admin/period,
/v1/admin/model (these need the API key when its variable is set); GET /healthz, /readyz, /metrics.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response, Security
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from fraudpipe.errors import PipelineError
from fraudpipe.serve.config import ServeConfig
from fraudpipe.serve.metrics import Metrics
from fraudpipe.serve.responses import (
    ERRORS,
    Answer,
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
from fraudpipe.serve.service import Refused, Service
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


@dataclass
class Holder:
    """The loaded ``Service`` (None while loading or reloading), its model swapper, and why loading failed."""

    service: Service | None = None
    swapper: Swapper | None = None
    failure: str | None = None
    loading: asyncio.Task | None = None


class RawRoute(APIRoute):
    """A route FastAPI documents but runs as a plain Starlette endpoint (``Request`` in, ``Response``
    out): its dependencies are documentation only, the endpoint does their work."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        return self.endpoint


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


def _answered(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """``endpoint`` with its refusals as answers: an ``Answer`` (the request: its body, its key) or a
    ``Refused`` (the service: what the transaction or the state does not allow) becomes the error response."""

    @functools.wraps(endpoint)
    async def answered(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Refused as exc:
            return error_response(refused_answer(exc))
        except Answer as answer:
            return error_response(answer)

    return answered


def add_routes(app: FastAPI, config: ServeConfig, holder: Holder, metrics: Metrics, store: str) -> None:
    """The service's routes on ``app``; ``store``: the state store's name (/readyz)."""
    api_key = config.api_key()
    key_problem = f"missing or wrong API key: send it in the X-API-Key header ({config.api_key_env} is set)"

    def _authorised(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get(API_KEY_HEADER)
        if given is None or not hmac.compare_digest(given.encode("latin-1"), api_key):
            raise Answer(401, key_problem)

    # documentation only (``RawRoute``): the scheme in the OpenAPI schema, when a key is set
    header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description=f"the key in {config.api_key_env}")

    async def _documented_key(given: str | None = Security(header)) -> None:  # never called: ``_authorised``
        return None

    secured: dict[str, Any] = {"dependencies": [Depends(_documented_key)]} if api_key is not None else {}
    v1 = APIRouter(route_class=RawRoute)

    def _service(request: Request) -> Service:
        _authorised(request)
        service = holder.service
        if service is None:
            raise Answer(503, holder.failure or "loading: the model and the state are not ready yet (see /readyz)")
        return service

    too_large = f"larger than {config.max_body_bytes} bytes"

    async def _body(request: Request) -> bytes:
        limit = config.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise Answer(413, f"body: {too_large} (--max-body-bytes)", [Problem(field="body", message=too_large)])
        body, more = b"", True
        while more:
            message = await request.receive()
            if message["type"] != "http.request":
                raise ClientDisconnect
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                raise Answer(413, f"body: {too_large} (--max-body-bytes)", [Problem(field="body", message=too_large)])
        return body

    async def _prepare(request: Request, model: type[BaseModel]) -> tuple[Service, Any]:
        service = _service(request)
        require_json(request)
        return service, parse_body(model, await _body(request))

    @v1.post(
        "/v1/score",
        summary="Score one transaction, then add it to the history",
        **_doc(TransactionIn, ScoreOut, 400, 401, 409, 413, 415, 422, 503),
        **secured,
    )
    @_answered
    async def score(request: Request) -> Response:
        service, tx = await _prepare(request, TransactionIn)
        scored, retry = service.score(tx)
        await service.durable()
        if retry:
            metrics.retries.inc()
            return json_response(200, score_out(tx, scored, service), {"Idempotent-Replayed": "true"})
        metrics.scored(scored.score, scored.alert)
        return json_response(200, score_out(tx, scored, service))

    @v1.post(
        "/v1/score/batch",
        summary="Score transactions in order, each as if sent alone",
        **_doc(ScoreBatchIn, ScoreBatchOut, 400, 401, 409, 413, 415, 422, 503, error=BatchErrorOut),
        **secured,
    )
    @_answered
    async def score_batch(request: Request) -> Response:
        results: list[dict[str, Any]] = []
        service, batch = await _prepare(request, ScoreBatchIn)
        n = len(batch.transactions)
        if n > config.max_batch:
            message = f"at most {config.max_batch} transactions per call (--max-batch), got {n}"
            raise Answer(422, f"transactions: {message}", [Problem(field="transactions", message=message)])
        stopped = None
        for i, tx in enumerate(batch.transactions):
            try:
                scored, retry = service.score(tx)
            except Refused as exc:
                stopped = refused_answer(exc, f"transactions[{i}].", results=results)
                break
            if retry:
                metrics.retries.inc()
            else:
                metrics.scored(scored.score, scored.alert)
            results.append(score_out(tx, scored, service))
        await service.durable()  # those scored, the stopped batch's too: its answer says they are recorded
        if stopped is not None:
            raise stopped
        return json_response(200, {"results": results})

    @v1.post(
        "/v1/labels",
        summary="Fraud feedback: counts in terminal risk features once older than the delay",
        **_doc(LabelIn, LabelOut, 400, 401, 404, 413, 415, 422, 503),
        **secured,
    )
    @_answered
    async def labels(request: Request) -> Response:
        service, label = await _prepare(request, LabelIn)
        service.label(label)
        await service.durable()
        metrics.labels.labels(tx_fraud=str(label.tx_fraud)).inc()
        return json_response(200, {"transaction_id": label.transaction_id, "tx_fraud": label.tx_fraud})

    @v1.post(
        "/v1/admin/snapshot",
        summary="Write a snapshot of the state and truncate the journal (also on SIGUSR1)",
        **_doc(None, None, 401, 503),
        **secured,
    )
    @_answered
    async def snapshot(request: Request) -> Response:
        service = _service(request)
        try:  # written in the background: other requests are answered meanwhile
            return json_response(200, await asyncio.wrap_future(service.start_snapshot()))
        except (PipelineError, OSError) as exc:
            raise Answer(503, f"snapshot failed: {exc}") from None

    @v1.post(
        "/v1/admin/period",
        summary="Move the clock to a new period: the stream resumes at `start`; what is held stays held",
        **_doc(PeriodIn, None, 400, 401, 413, 415, 422, 503),
        **secured,
    )
    @_answered
    async def period(request: Request) -> Response:
        service, move = await _prepare(request, PeriodIn)
        done = service.start_period(move)
        await service.durable()
        print(
            f"fraudpipe serve: the clock moved to a new period: {done['start']} (newest transaction before: "
            f"{done['previous_newest']}); {done['transactions']:,} transactions held",
            flush=True,
        )
        return json_response(200, done)

    @v1.post(
        "/v1/admin/model",
        summary="Swap the models: a new champion, a challenger in the shadow (null drops it), or promote it",
        **_doc(ModelIn, None, 400, 401, 409, 413, 415, 422, 503),
        **secured,
    )
    @_answered
    async def swap_model(request: Request) -> Response:
        _, body = await _prepare(request, ModelIn)
        swapper = holder.swapper
        if swapper is None:  # set with the service
            raise Answer(503, "loading: the model and the state are not ready yet (see /readyz)")
        return json_response(200, await swapper.request(body))

    app.include_router(v1)

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
                "shadow_own_state": live.shadow is not None and live.shadow.side is not None,  # ``serve.sides``
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
