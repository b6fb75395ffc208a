"""Request bodies: what is accepted, and how every refusal names its field."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from pydantic import ValidationError

from fraudpipe.serve.schema import (
    LabelIn,
    ScoreBatchIn,
    TransactionIn,
    content_type_problem,
    duplicate_keys,
    one_line,
    problems,
)

GOOD = {
    "transaction_id": 7,
    "customer_id": "card-1",
    "terminal_id": 12,
    "tx_datetime": "2018-05-01T10:00:00",
    "tx_amount": 12.5,
}


def refused(model, body) -> tuple[int, str, list[str]]:
    text = body if isinstance(body, (str, bytes)) else json.dumps(body)
    with pytest.raises(ValidationError) as info:
        model.model_validate_json(text)
    status, found = problems(info.value, model)
    return status, one_line(found), [p.field for p in found]


@pytest.mark.parametrize(
    ("sent", "utc"),
    [
        ("2018-05-01T10:00:00", datetime(2018, 5, 1, 10)),  # naive: UTC, as the training data
        ("2018-05-01T10:00:00Z", datetime(2018, 5, 1, 10)),
        ("2018-05-01T12:00:00+02:00", datetime(2018, 5, 1, 10)),
        ("2018-05-01 10:00:00.123456", datetime(2018, 5, 1, 10, 0, 0, 123456)),
    ],
)
def test_datetimes_are_naive_utc(sent, utc):
    assert TransactionIn.model_validate_json(json.dumps(GOOD | {"tx_datetime": sent})).naive_utc == utc


def test_ids_stay_as_sent_integers_or_text():
    tx = TransactionIn.model_validate_json(json.dumps(GOOD | {"terminal_id": "007"}))
    assert (tx.transaction_id, tx.customer_id, tx.terminal_id) == (7, "card-1", "007")
    assert TransactionIn.model_validate_json(json.dumps(GOOD | {"tx_amount": 0})).tx_amount == 0.0


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"tx_amount": -0.01}, "tx_amount", "must be >= 0"),
        ({"tx_amount": "5"}, "tx_amount", "must be a number, got '5'"),
        ({"transaction_id": 1.0}, "transaction_id", "must be an integer or a string"),
        ({"transaction_id": 2**63}, "transaction_id", "64-bit integer"),
        ({"customer_id": ""}, "customer_id", "1 to 256 characters"),
        ({"tx_datetime": "2018-05-01"}, "tx_datetime", "ISO 8601 date and time"),
        ({"tx_datetime": 1525168800}, "tx_datetime", "as a string"),
        ({"tx_datetime": "1538438400"}, "tx_datetime", "ISO 8601 date and time"),  # epoch seconds as text
        ({"tx_datetime": "1538438400000"}, "tx_datetime", "ISO 8601 date and time"),  # epoch milliseconds
        ({"tx_datetime": "1538438400.5"}, "tx_datetime", "ISO 8601 date and time"),
        ({"tx_datetime": "0001-01-01T00:00:00+05:00"}, "tx_datetime", "once converted to UTC"),
        ({"tx_datetime": "9999-12-31T23:59:59-05:00"}, "tx_datetime", "once converted to UTC"),
        ({"tx_fraud": 0}, "tx_fraud", "send it to POST /v1/labels"),
        ({"tx_amout": 1}, "tx_amout", "did you mean 'tx_amount'?"),
        ({"terminal_x": 1.0}, "terminal_y", "coordinates come in pairs"),
        ({"customer_x": 1.0, "customer_y": float("inf")}, "customer_y", "must be a finite number, got inf"),
    ],
)
def test_each_refusal_names_its_field(change, field, says):
    body = json.dumps(GOOD | change).replace("Infinity", "1e999")
    status, line, fields = refused(TransactionIn, body)
    assert status == 422 and fields == [field] and line.startswith(f"{field}: ")
    assert says in line, line


def test_not_json_is_400_and_nested_fields_have_their_path():
    assert refused(TransactionIn, "{")[0] == 400 and refused(TransactionIn, "{")[2] == ["body"]
    assert refused(TransactionIn, "[]")[:1] == (422,) and refused(TransactionIn, "[]")[2] == ["body"]
    _status, line, fields = refused(
        ScoreBatchIn, {"transactions": [GOOD, GOOD | {"tx_amount": None}, {"transaction_id": 1}]}
    )
    assert fields[0] == "transactions[1].tx_amount" and "transactions[2].customer_id" in fields
    assert "transactions[2].customer_id: missing field" in line
    assert refused(ScoreBatchIn, {"transactions": []})[2] == ["transactions"]


def test_labels_are_0_or_1_integers():
    assert LabelIn.model_validate_json('{"transaction_id": "a", "tx_fraud": 1}').tx_fraud == 1
    for bad, says in (
        (2, "must be <= 1, got 2"),
        (-1, "must be >= 0, got -1"),
        (True, "must be an integer, got True"),
        (1.0, "must be an integer, got 1.0"),
        ("1", "must be an integer, got '1'"),
        (None, "must be an integer, got None"),
    ):
        status, line, fields = refused(LabelIn, {"transaction_id": "a", "tx_fraud": bad})
        assert status == 422 and fields == ["tx_fraud"] and line == f"tx_fraud: {says}", line


@pytest.mark.parametrize(
    ("sent", "utc"),
    [
        ("0001-01-01T05:00:00+05:00", datetime(1, 1, 1)),  # the edges of the calendar, still in range in UTC
        ("9999-12-31T18:59:59-05:00", datetime(9999, 12, 31, 23, 59, 59)),
        ("2018-10-02t00:00:00z", datetime(2018, 10, 2)),
    ],
)
def test_datetimes_at_the_edges_of_the_calendar(sent, utc):
    assert TransactionIn.model_validate_json(json.dumps(GOOD | {"tx_datetime": sent})).naive_utc == utc


def test_a_key_sent_twice_is_named_with_its_path():
    assert duplicate_keys(json.dumps(GOOD).encode()) == []
    twice = json.dumps(GOOD)[:-1] + ', "tx_amount": 99999}'
    assert [(p.field, p.message) for p in duplicate_keys(twice.encode())] == [
        ("tx_amount", "sent more than once (a JSON object names each field once)")
    ]
    batch = '{"transactions": [' + json.dumps(GOOD) + ", " + twice + "]}"
    assert [p.field for p in duplicate_keys(batch.encode())] == ["transactions[1].tx_amount"]
    assert [p.field for p in duplicate_keys(b'{"transactions": [], "transactions": []}')] == ["transactions"]
    escaped = json.dumps(GOOD)[:-1] + ', "tx\\u005famount": 1}'  # the same key, written with an escape
    assert [p.field for p in duplicate_keys(escaped.encode())] == ["tx_amount"]


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("application/json", None),
        ("Application/JSON; charset=UTF-8", None),
        ('application/json;charset="utf-8"', None),
        (None, "missing: send the body as JSON with Content-Type: application/json"),
        ("text/plain", "must be application/json, got 'text/plain'"),
        ("application/x-www-form-urlencoded", "must be application/json, got 'application/x-www-form-urlencoded'"),
        ("multipart/form-data; boundary=x", "must be application/json, got 'multipart/form-data; boundary=x'"),
        (
            "application/json; charset=latin-1",
            "must be application/json in UTF-8, got 'application/json; charset=latin-1'",
        ),
        ("application/jsonx", "must be application/json, got 'application/jsonx'"),
    ],
)
def test_only_a_json_content_type_is_taken(header, problem):
    assert content_type_problem(header) == problem
