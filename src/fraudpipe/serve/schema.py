"""The service's request and response bodies, and the one way a malformed body becomes a 4xx.

A score request is one transaction in the contract without its label: ids are integers or
non-empty strings (``contract.canonical_id``: 7 and "7" are one card, "007" another);
``tx_datetime`` is an ISO 8601 date *and* time: with an offset it is converted to UTC (and must
stay within years 1 to 9999 there), without one it is taken as UTC, like the naive datetimes the
pipeline trains on; a bare date or a number, even written as text, is refused. ``tx_amount`` is
a finite number >= 0. The coordinates are optional, in pairs, and only used by the distance
feature. Unknown fields are refused by name, and so is a key sent twice in one object (JSON
parsers keep the last one; a client meant one of them).

A body is taken only as ``application/json`` (``content_type_problem``): a web page can post a
form or text/plain to any site without asking, never JSON. Bodies are parsed from bytes by
pydantic (``model_validate_json``), once, and every failure is described field by field
(``problems``): 400 when the body is not JSON at all, 422 otherwise. A key sent twice is looked
for only in a body that may hold one (``may_repeat_a_field``: a byte scan, under a microsecond).
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from fraudpipe.config import rule_errors
from fraudpipe.contract import COORDINATE_COLUMNS

MAX_ID_LENGTH = 256
_INT64 = (-(2**63), 2**63 - 1)


def _identifier(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise PydanticCustomError("id_type", "must be an integer or a string")
    if isinstance(value, str) and not 0 < len(value.strip()) <= MAX_ID_LENGTH:
        raise PydanticCustomError(
            "id_length",
            "must be a string of 1 to {n} characters (surrounding whitespace not counted)",
            {"n": MAX_ID_LENGTH},
        )
    if isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
        raise PydanticCustomError("id_range", "must be a 64-bit integer (send larger ids as strings)")
    return value


#: An identifier as sent (int or str); its key is ``contract.canonical_id`` of it.
Identifier = Annotated[
    int | str,
    PlainValidator(_identifier),
    WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH}]}),
]
Coordinate = Annotated[float | None, Field(allow_inf_nan=False)]

#: The start of an ISO 8601 date and time; pydantic would also read a number written as text
#: ("1538438400") as seconds or milliseconds since the epoch.
_DATE_AND_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _date_and_time_text(value: Any) -> str | datetime:
    """Text that starts as an ISO 8601 date and time, left for pydantic to parse (in lax mode: after a
    validator of ours, strict mode would refuse any text for a datetime); a datetime from Python."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("datetime_type", "must be a string")
    if not _DATE_AND_TIME.match(value):
        raise PydanticCustomError("datetime_text", "must be an ISO 8601 date and time, e.g. 2018-09-30T23:59:48Z")
    return value


def _in_range_in_utc(value: datetime) -> datetime:
    if value.tzinfo is not None:
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise PydanticCustomError(
                "datetime_utc_range", "must fall within years 1 to 9999 once converted to UTC"
            ) from None
    return value


TxDatetime = Annotated[
    datetime,
    BeforeValidator(_date_and_time_text),
    AfterValidator(_in_range_in_utc),
    Field(description="ISO 8601 date and time; without an offset it is UTC", strict=False),
]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class TransactionIn(Body):
    """One transaction to score (no label: labels arrive on POST /v1/labels)."""

    transaction_id: Identifier
    customer_id: Identifier
    terminal_id: Identifier
    tx_datetime: TxDatetime
    tx_amount: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    customer_x: Coordinate = None
    customer_y: Coordinate = None
    terminal_x: Coordinate = None
    terminal_y: Coordinate = None

    @model_validator(mode="after")
    def _pairs(self) -> TransactionIn:
        problems = []
        for x, y in (COORDINATE_COLUMNS[:2], COORDINATE_COLUMNS[2:]):
            if (getattr(self, x) is None) != (getattr(self, y) is None):
                missing, given = (x, y) if getattr(self, x) is None else (y, x)
                problems.append((missing, f"missing: {given} is given, and coordinates come in pairs", None))
        if problems:
            raise rule_errors(problems)
        return self

    @property
    def naive_utc(self) -> datetime:
        """tx_datetime as the pipeline keeps it: naive, in UTC."""
        dt = self.tx_datetime
        return dt if dt.tzinfo is None else dt.astimezone(UTC).replace(tzinfo=None)

    @property
    def coordinates(self) -> tuple[float | None, float | None, float | None, float | None]:
        return self.customer_x, self.customer_y, self.terminal_x, self.terminal_y


class ScoreBatchIn(Body):
    """Transactions scored in order, as if sent one by one."""

    transactions: Annotated[list[TransactionIn], Field(min_length=1)]


class LabelIn(Body):
    """Fraud feedback on a transaction the service knows."""

    transaction_id: Identifier
    tx_fraud: Annotated[int, Field(ge=0, le=1, description="1: fraud, 0: genuine")]


class PeriodIn(Body):
    """The operator's move of the service's clock to a new period (POST /v1/admin/period)."""

    start: Annotated[TxDatetime, Field(description="where the stream resumes: after the newest transaction seen")]

    @property
    def naive_utc(self) -> datetime:
        """start as the pipeline keeps times: naive, in UTC."""
        dt = self.start
        return dt if dt.tzinfo is None else dt.astimezone(UTC).replace(tzinfo=None)


class ScoreOut(BaseModel):
    transaction_id: int | str
    fraud_probability: float
    alert: bool = Field(description="fraud_probability >= threshold")
    threshold: float
    model_version: str = Field(description="the bundle's own version: its estimator and the sha256 of its files")
    model_registry_version: str | None = Field(
        default=None, description="the registry's name for it, fraud-model@v1.2.0 (null: served from a path)"
    )


class ScoreBatchOut(BaseModel):
    results: list[ScoreOut]


class LabelOut(BaseModel):
    transaction_id: int | str
    tx_fraud: int


class Problem(BaseModel):
    field: str
    message: str


class ErrorOut(BaseModel):
    detail: str
    errors: list[Problem] = []


class BatchErrorOut(ErrorOut):
    """A batch stopped at one transaction: those before it were scored (and are recorded: resending
    the batch returns the same scores for them)."""

    results: list[ScoreOut] = []


# --- describing what is wrong -------------------------------------------------------------------

_MESSAGES = {
    "missing": "missing field",
    "greater_than_equal": "must be >= {ge}",
    "less_than_equal": "must be <= {le}",
    "float_type": "must be a number",
    "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "finite_number": "must be a finite number",
    "datetime_type": "must be an ISO 8601 date and time as a string, e.g. 2018-09-30T23:59:48Z",
    "datetime_parsing": "must be an ISO 8601 date and time, e.g. 2018-09-30T23:59:48Z ({error})",
    "list_type": "must be a list",
    "too_short": "must hold at least {min_length} item(s)",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
}
_EXTRA_HINT = {"tx_fraud": "a score request carries no label: send it to POST /v1/labels"}


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def problems(exc: ValidationError, model: type[BaseModel]) -> tuple[int, list[Problem]]:
    """(status, one Problem per broken rule, each naming its field): 400 for a body that is not
    JSON, else 422."""
    out: list[Problem] = []
    for error in exc.errors(include_url=False):
        kind, loc = error["type"], tuple(error["loc"])
        if kind == "json_invalid":
            return 400, [Problem(field="body", message=f"not valid JSON ({error['ctx'].get('error', error['msg'])})")]
        if kind == "fraudpipe_rule":
            for key, rule, _ in error["ctx"]["problems"]:
                out.append(Problem(field=_path((*loc, key)), message=rule))
            continue
        if kind == "extra_forbidden":
            name = str(loc[-1])
            known = _fields_at(model, loc[:-1])
            close = difflib.get_close_matches(name, known, n=1)
            hint = (
                _EXTRA_HINT.get(name)
                or (f"did you mean {close[0]!r}? " if close else "") + f"fields: {', '.join(known)}"
            )
            out.append(Problem(field=_path(loc), message=f"unknown field ({hint})"))
            continue
        template = _MESSAGES.get(kind)
        message = template.format(**(error.get("ctx") or {})) if template else error["msg"]
        if kind not in ("missing", "model_type", "model_attributes_type"):
            message += f", got {_shown(error['input'])}"
        out.append(Problem(field=_path(loc), message=message))
    return 422, out


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the (nested) model at ``loc`` of a body."""
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        nested = getattr(field.annotation, "__args__", ()) if field else ()
        found = [a for a in nested if isinstance(a, type) and issubclass(a, BaseModel)]
        if not found:
            return []
        model = found[0]
    return list(model.model_fields)


class _Duplicate(Exception):
    pass


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) < len(pairs):
        raise _Duplicate
    return found


class _Object(dict):
    """A JSON object as parsed, with the keys it named more than once."""

    duplicates: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    found = _Object(pairs)
    if len(found) < len(pairs):
        found.duplicates = tuple(key for key, n in Counter(key for key, _ in pairs).items() if n > 1)
    return found


_CHECK = json.JSONDecoder(object_pairs_hook=_refuse_duplicates)
_FIND = json.JSONDecoder(object_pairs_hook=_object)


def _names(model: type[BaseModel]) -> set[str]:
    """The field names of a body model and of the models nested in it."""
    out = set(model.model_fields)
    for field in model.model_fields.values():
        for arg in (field.annotation, *getattr(field.annotation, "__args__", ())):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                out |= _names(arg)
    return out


@functools.cache
def _field_name_pattern(model: type[BaseModel]) -> re.Pattern[bytes]:
    return re.compile(b"|".join(re.escape(json.dumps(name).encode()) for name in sorted(_names(model))))


def may_repeat_a_field(body: bytes, model: type[BaseModel]) -> bool:
    """False when ``body`` (JSON that validated as ``model``) cannot name one of its fields twice in an
    object: it holds no backslash (so no key is an escaped spelling of a field's name) and no
    field's name appears twice in quotes. A key that is no field is refused by the model anyway
    (``extra="forbid"``), sent once or twice."""
    if b"\\" in body:
        return True
    found = _field_name_pattern(model).findall(body)
    return len(set(found)) < len(found)


def duplicate_keys(body: bytes) -> list[Problem]:
    """One Problem per key named twice in an object of ``body`` (UTF-8 JSON that pydantic took).

    pydantic's parser keeps the last value, so a second pass with the standard library's finds
    them (about 6 µs for a score request); only a body that has one is walked for the paths."""
    text = body.decode()
    try:
        _CHECK.decode(text)
        return []
    except _Duplicate:
        pass
    out: list[Problem] = []
    stack: list[tuple[tuple[Any, ...], Any]] = [((), _FIND.decode(text))]
    while stack:
        loc, value = stack.pop()
        if isinstance(value, _Object):
            message = "sent more than once (a JSON object names each field once)"
            out.extend(Problem(field=_path((*loc, key)), message=message) for key in value.duplicates)
            stack.extend(((*loc, key), item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend(((*loc, i), item) for i, item in reversed(list(enumerate(value))))
    return out


def content_type_problem(header: str | None) -> str | None:
    """Why a request body's Content-Type is not JSON in UTF-8, or None when it is."""
    if header is None:
        return "missing: send the body as JSON with Content-Type: application/json"
    media, *parameters = header.split(";")
    if media.strip().lower() != "application/json":
        return f"must be application/json, got {header!r}"
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return f"must be application/json in UTF-8, got {header!r}"
    return None


def one_line(items: list[Problem]) -> str:
    return "; ".join(f"{p.field}: {p.message}" for p in items)
