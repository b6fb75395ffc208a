"""The service's answers: JSON bodies built directly, errors that name their field, request bodies
parsed from bytes (duplicate keys and non-JSON content types refused), and the OpenAPI schemas of
those bodies, which FastAPI cannot see since the routes read bytes."""

from __future__ import annotations

import json
from typing import Any, cast

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from fraudpipe.serve.schema import (
    Problem,
    TransactionIn,
    content_type_problem,
    duplicate_keys,
    one_line,
    problems,
)
from fraudpipe.serve.service import Refused

ERRORS = {
    400: "The body is not JSON",
    401: "Missing or wrong API key (X-API-Key header)",
    404: "Unknown transaction_id",
    409: "transaction_id already used for another transaction",
    413: "Body larger than --max-body-bytes",
    415: "Content-Type is not application/json",
    422: "A field is missing, of the wrong type or out of range (each named in `errors`)",
    503: "Model and state still loading, or the journal or the Redis state store cannot be reached",
}


class Answer(Exception):
    """Ends a request early with an error answer."""

    def __init__(self, status: int, detail: str, errors: list[Problem] | None = None, **extra: Any) -> None:
        self.status, self.detail, self.errors, self.extra = status, detail, errors or [], extra


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, separators=(",", ":")).encode(), status, headers, media_type="application/json")


def error_response(answer: Answer) -> Response:
    body = {"detail": answer.detail, "errors": [p.model_dump() for p in answer.errors], **answer.extra}
    headers = (
        {"Retry-After": "1"}
        if answer.status == 503
        else ({"WWW-Authenticate": "ApiKey"} if answer.status == 401 else None)
    )
    return json_response(answer.status, body, headers)


async def answer_error(request: Request, answer: Exception) -> Response:
    """An `Answer` raised by a dependency (the API key's), answered as one raised in a route."""
    return error_response(cast(Answer, answer))


def refused_answer(exc: Refused, prefix: str = "", **extra: Any) -> Answer:
    field = f"{prefix}{exc.field}"
    return Answer(exc.status, f"{field}: {exc.message}", [Problem(field=field, message=exc.message)], **extra)


def parse_body(model: type[BaseModel], body: bytes) -> Any:
    try:
        parsed = model.model_validate_json(body)
    except ValidationError as exc:
        status, found = problems(exc, model)
        raise Answer(status, one_line(found), found) from None
    if found := duplicate_keys(body):
        raise Answer(422, one_line(found), found)
    return parsed


def require_json(request: Request) -> None:
    if problem := content_type_problem(request.headers.get("content-type")):
        raise Answer(415, f"Content-Type: {problem}", [Problem(field="Content-Type", message=problem)])


def score_out(tx: TransactionIn, scored: Any, service: Any) -> dict[str, Any]:
    """The answer; the registry version of the model that gave it (a retry's may be an earlier model's)."""
    return {
        "transaction_id": tx.transaction_id,
        "fraud_probability": scored.score,
        "alert": scored.alert,
        "threshold": scored.threshold,
        "model_version": scored.model_version,
        "model_registry_version": service.release_of(scored.model_version),
    }


def add_body_schemas(app: FastAPI, models: tuple[type[BaseModel], ...]) -> None:
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
