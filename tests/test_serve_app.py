"""`fraudpipe serve` as a client sees it: a real uvicorn process on loopback, spoken to over HTTP."""

from __future__ import annotations

import json
import re
import signal
import socket
import time

import httpx
import numpy as np
import pandas as pd
import pytest

from fraudpipe.contract import TX_DATETIME
from fraudpipe.features.definitions import build_features, feature_names
from fraudpipe.model import load_bundle
from helpers.serve import Server, body, replay, world
from helpers.serve import config as serve_config

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the tests that do not need their own (each uses transactions nobody else sends)."""
    w = world()
    tmp = tmp_path_factory.mktemp("serve")
    with Server(tmp, w.bundle_dir, w.state_dir, tmp / "journal", ("--max-batch", "5", "--max-body-bytes", "4096")) as s:
        yield s


def test_start_up_health_readiness_and_openapi(server):
    w = world()
    out = server.stdout.read_text()
    assert "1 worker" in out and "in-process state store" in out
    assert re.search(
        r"ready on .*fast path on \(xgboost 3\.\d+\.\d+, float32 row into XGBoosterPredictFromDense\)", out
    )
    assert server.client.get("/healthz").json() == {"status": "ok"}
    ready = server.client.get("/readyz").json()
    assert (
        ready["status"] == "ready"
        and ready["workers"] == 1
        and ready["model_version"] == load_bundle(w.bundle_dir).version
    )
    schema = server.client.get("/openapi.json").json()
    assert {"/v1/score", "/v1/score/batch", "/v1/labels", "/healthz", "/readyz", "/metrics"} <= set(schema["paths"])
    request = schema["paths"]["/v1/score"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert request == {"$ref": "#/components/schemas/TransactionIn"}
    assert {"transaction_id", "tx_datetime", "tx_amount"} <= set(
        schema["components"]["schemas"]["TransactionIn"]["properties"]
    )
    assert server.client.get("/docs").status_code == 200


def test_score_is_the_batch_score_and_adds_the_transaction(server):
    w = world()
    row = w.test.iloc[0]
    before = server.client.get("/readyz").json()["transactions"]
    answer = server.score(body(row))
    assert answer.status_code == 200, answer.text
    got = answer.json()
    bundle = load_bundle(w.bundle_dir)
    expected = float(w.batch_scores([row.transaction_id])[0])
    assert abs(got["fraud_probability"] - expected) <= 1e-6
    assert got == {
        "transaction_id": int(row.transaction_id),
        "fraud_probability": got["fraud_probability"],
        "alert": got["fraud_probability"] >= bundle.threshold,
        "threshold": bundle.threshold,
        "model_version": bundle.version,
        "model_registry_version": None,  # served from a path (tests/test_serve_registry.py: from the registry)
    }
    assert server.client.get("/readyz").json()["transactions"] == before + 1


def test_unknown_customer_and_terminal_are_a_cold_start(server):
    w = world()
    row = w.test.iloc[1]
    payload = body(row, transaction_id="cold-1", customer_id="new-card", terminal_id="new-terminal")
    answer = server.score(payload)
    assert answer.status_code == 200, answer.text
    # offline, the same transaction alone: empty histories
    alone = pd.DataFrame(
        {
            "transaction_id": [1],
            "tx_datetime": [row.tx_datetime],
            "customer_id": [1],
            "terminal_id": [1],
            "tx_amount": [row.tx_amount],
            "tx_fraud": pd.array([0], dtype="int8"),
        }
    )
    features = build_features(alone.astype({"tx_datetime": "datetime64[us]"}), w.config)
    assert (
        features["customer_id_nb_tx_1day_window"].iat[0] == 1 and features["terminal_id_nb_tx_1day_window"].iat[0] == 0
    )
    expected = float(load_bundle(w.bundle_dir).score(features)[0])
    assert abs(answer.json()["fraud_probability"] - expected) <= 1e-6


def test_a_retry_gets_the_same_answer_and_counts_once(server):
    w = world()
    row = w.test.iloc[2]
    first = server.score(body(row))
    count = server.client.get("/readyz").json()["transactions"]
    again = server.score(
        body(row, transaction_id=str(row.transaction_id), tx_datetime=f"{row.tx_datetime.isoformat()}+00:00")
    )
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json() | {"transaction_id": first.json()["transaction_id"]} == first.json()
    assert "idempotent-replayed" not in first.headers
    assert server.client.get("/readyz").json()["transactions"] == count  # counted once
    conflict = server.score(body(row, tx_amount=row.tx_amount + 1))
    assert conflict.status_code == 409
    assert conflict.json()["errors"][0]["field"] == "transaction_id" and "tx_amount" in conflict.json()["detail"]
    assert re.search(r"^fraudpipe_retries_total 1\.0$", server.client.get("/metrics").text, re.M)


def test_late_transactions_are_placed_in_time_order_and_too_late_ones_refused(tmp_path):
    """Out-of-order arrival within the window: every score is the batch score but that of the one
    overtaken; a transaction older than the window is refused with a 422 that says so. (The state
    keeps a day more than the feature windows: late_days=1, the default.)"""
    w = world()
    rows = w.test.head(60).reset_index(drop=True)
    # swap two transactions of one customer an hour or so apart, inside the run
    same = rows[rows.duplicated("customer_id", keep=False)]
    first = same.index[0]
    second = same[same["customer_id"] == rows.at[first, "customer_id"]].index[1]
    order = list(range(len(rows)))
    order[first], order[second] = order[second], order[first]
    with Server(tmp_path, w.bundle_dir, w.late_state_dir, tmp_path / "journal") as server:
        answers = {}
        for i in order:
            answer = server.score(body(rows.iloc[i]))
            assert answer.status_code == 200, answer.text
            answers[i] = answer.json()["fraud_probability"]
        got = np.array([answers[i] for i in range(len(rows))])
        expected = w.batch_scores(rows["transaction_id"])
        exact = np.abs(got - expected) <= 1e-6
        assert exact[first], "the late transaction got the features of its place in time"
        assert exact[np.arange(len(rows)) != second].all(), "every other transaction, before and after, is exact"

        newest = pd.Timestamp(rows[TX_DATETIME].max())
        late = body(
            rows.iloc[0], transaction_id=10**9, tx_datetime=(newest - pd.Timedelta(days=1, hours=1)).isoformat()
        )
        refused = server.score(late)
        assert refused.status_code == 422
        assert (
            refused.json()["errors"][0]["field"] == "tx_datetime"
            and "older than the retention window" in refused.json()["detail"]
        )
        within = body(rows.iloc[0], transaction_id=10**9 + 1, tx_datetime=(newest - pd.Timedelta(hours=23)).isoformat())
        assert server.score(within).status_code == 200


def test_a_state_kept_without_lateness_refuses_what_it_cannot_featurize_exactly(server):
    """featurize's snapshot keeps exactly the feature windows: a transaction older than its newest one
    would miss history, so it is refused (until the service has kept a day more itself)."""
    w = world()
    newest = w.tx[w.tx[TX_DATETIME] < w.cut][TX_DATETIME].max()
    late = body(
        w.test.iloc[60],
        transaction_id="before-the-snapshot",
        tx_datetime=(newest - pd.Timedelta(minutes=5)).isoformat(),
    )
    refused = server.score(late)
    assert refused.status_code == 422 and "older than the retention window" in refused.json()["detail"]


def test_labels(server):
    w = world()
    row = w.test.iloc[3]
    assert server.score(body(row)).status_code == 200
    ok = server.client.post("/v1/labels", json={"transaction_id": int(row.transaction_id), "tx_fraud": 1})
    assert ok.status_code == 200 and ok.json() == {"transaction_id": int(row.transaction_id), "tx_fraud": 1}
    known_before = w.tx[w.tx[TX_DATETIME] < w.cut].iloc[-1]  # in the history the service started from
    assert (
        server.client.post(
            "/v1/labels", json={"transaction_id": str(known_before.transaction_id), "tx_fraud": 0}
        ).status_code
        == 200
    )
    unknown = server.client.post("/v1/labels", json={"transaction_id": "never-seen", "tx_fraud": 1})
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["field"] == "transaction_id"


def test_batch_scores_in_order_like_single_requests(server):
    w = world()
    rows = w.test.iloc[10:14]
    answer = server.client.post("/v1/score/batch", json={"transactions": [body(r) for r in rows.itertuples()]})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["transaction_id"] for r in results] == rows["transaction_id"].tolist()
    assert (
        np.abs(np.array([r["fraud_probability"] for r in results]) - w.batch_scores(rows["transaction_id"])).max()
        <= 1e-6
    )

    too_many = server.client.post(
        "/v1/score/batch", json={"transactions": [body(r) for r in w.test.iloc[20:26].itertuples()]}
    )
    assert too_many.status_code == 422 and too_many.json()["errors"][0]["field"] == "transactions"
    assert "at most 5" in too_many.json()["detail"]

    # a bad transaction stops the batch at its place: the ones before it are scored and recorded
    mixed = [body(r) for r in w.test.iloc[30:33].itertuples()]
    mixed[2]["tx_datetime"] = "2001-01-01T00:00:00"
    stopped = server.client.post("/v1/score/batch", json={"transactions": mixed})
    assert stopped.status_code == 422 and stopped.json()["errors"][0]["field"] == "transactions[2].tx_datetime"
    assert len(stopped.json()["results"]) == 2
    mixed[2]["tx_datetime"] = w.test.iloc[32].tx_datetime.isoformat()
    resent = server.client.post("/v1/score/batch", json={"transactions": mixed}).json()["results"]
    assert resent[:2] == stopped.json()["results"]  # the same answers: retries


def test_api_key(tmp_path):
    w = world()
    with Server(
        tmp_path, w.bundle_dir, w.state_dir, tmp_path / "journal", env={"FRAUDPIPE_API_KEY": "s3cret"}
    ) as server:
        assert "API key required" in server.stdout.read_text()
        payload = body(w.test.iloc[0])
        assert server.score(payload).status_code == 401
        wrong = server.client.post("/v1/score", json=payload, headers={"X-API-Key": "s3cret-not"})
        assert wrong.status_code == 401 and "X-API-Key" in wrong.json()["detail"]
        assert wrong.headers["WWW-Authenticate"] == "ApiKey" and wrong.json()["errors"] == []
        schemes = server.client.get("/openapi.json").json()["components"]["securitySchemes"]
        assert [(s["type"], s["in"], s["name"]) for s in schemes.values()] == [("apiKey", "header", "X-API-Key")]
        assert server.client.post("/v1/score", json=payload, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert server.client.post("/v1/labels", json={"transaction_id": 1, "tx_fraud": 1}).status_code == 401
        assert server.client.post("/v1/admin/snapshot").status_code == 401
        assert server.client.get("/healthz").status_code == 200 and server.client.get("/readyz").status_code == 200


def _raw(server: Server, request: bytes) -> int:
    """Send raw bytes, return the status code (hand-made requests httpx would refuse to send)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1])


def test_malformed_and_hostile_requests_get_4xx_and_the_server_stays_up(server):
    w = world()
    good = body(w.test.iloc[40])
    post = server.client.post

    def send(content: bytes | str, path: str = "/v1/score", content_type: str | None = "application/json"):
        return post(path, content=content, headers={"content-type": content_type} if content_type else {})

    duplicated = json.dumps(good | {"tx_amount": 5})[:-1] + ', "tx_amount": 99999}'
    cases: list[tuple[str, int, str, object]] = [  # (what, status, field named, request)
        ("not JSON", 400, "body", lambda: send(b"{not json")),
        ("truncated JSON", 400, "body", lambda: send(json.dumps(good)[:-5])),
        ("empty body", 400, "body", lambda: send(b"")),
        ("a JSON list", 422, "body", lambda: post("/v1/score", json=[good])),
        ("a JSON string", 422, "body", lambda: post("/v1/score", json="hello")),
        (
            "missing tx_amount",
            422,
            "tx_amount",
            lambda: post("/v1/score", json={k: v for k, v in good.items() if k != "tx_amount"}),
        ),
        ("amount as text", 422, "tx_amount", lambda: post("/v1/score", json=good | {"tx_amount": "12.5"})),
        ("negative amount", 422, "tx_amount", lambda: post("/v1/score", json=good | {"tx_amount": -1})),
        (
            "NaN amount",
            422,
            "tx_amount",
            lambda: send(json.dumps(good | {"tx_amount": float("nan")})),
        ),
        (
            "infinite amount",
            422,
            "tx_amount",
            lambda: send(json.dumps(good).replace(str(good["tx_amount"]), "1e999")),
        ),
        (
            "huge amount",
            422,
            "tx_amount",
            lambda: post("/v1/score", json=good | {"transaction_id": "huge", "tx_amount": 1e12}),
        ),
        ("boolean id", 422, "transaction_id", lambda: post("/v1/score", json=good | {"transaction_id": True})),
        ("float id", 422, "customer_id", lambda: post("/v1/score", json=good | {"customer_id": 7.5})),
        ("empty id", 422, "terminal_id", lambda: post("/v1/score", json=good | {"terminal_id": ""})),
        (
            "id of 10,000 characters",
            422,
            "customer_id",
            lambda: post("/v1/score", json=good | {"customer_id": "x" * 300}),
        ),
        ("date without time", 422, "tx_datetime", lambda: post("/v1/score", json=good | {"tx_datetime": "2018-05-02"})),
        ("unparsable date", 422, "tx_datetime", lambda: post("/v1/score", json=good | {"tx_datetime": "yesterday"})),
        (
            "epoch number as date",
            422,
            "tx_datetime",
            lambda: post("/v1/score", json=good | {"tx_datetime": 1525219200}),
        ),
        ("month 13", 422, "tx_datetime", lambda: post("/v1/score", json=good | {"tx_datetime": "2018-13-02T00:00:00"})),
        (
            "far future",
            422,
            "tx_datetime",
            lambda: post("/v1/score", json=good | {"transaction_id": "future", "tx_datetime": "9999-12-31T23:59:59"}),
        ),
        (
            "an offset taking year 1 before year 1 in UTC",
            422,
            "tx_datetime",
            lambda: post("/v1/score", json=good | {"tx_datetime": "0001-01-01T00:00:00+05:00"}),
        ),
        (
            "an offset taking year 9999 past its end in UTC",
            422,
            "tx_datetime",
            lambda: post("/v1/score", json=good | {"tx_datetime": "9999-12-31T23:59:59-05:00"}),
        ),
        (
            "epoch seconds as text",
            422,
            "tx_datetime",
            lambda: post("/v1/score", json=good | {"tx_datetime": "1538438400"}),
        ),
        (
            "epoch milliseconds as text",
            422,
            "tx_datetime",
            lambda: post("/v1/score", json=good | {"tx_datetime": "1538438400000"}),
        ),
        ("a key sent twice", 422, "tx_amount", lambda: send(duplicated)),
        (
            "a key sent twice in a batch item",
            422,
            "transactions[0].tx_amount",
            lambda: send('{"transactions": [' + duplicated + "]}", "/v1/score/batch"),
        ),
        (
            "a label sent twice",
            422,
            "tx_fraud",
            lambda: send('{"transaction_id": 1, "tx_fraud": 0, "tx_fraud": 1}', "/v1/labels"),
        ),
        ("text/plain body", 415, "Content-Type", lambda: send(json.dumps(good), content_type="text/plain")),
        (
            "a form",
            415,
            "Content-Type",
            lambda: send(json.dumps(good), content_type="application/x-www-form-urlencoded"),
        ),
        (
            "multipart",
            415,
            "Content-Type",
            lambda: send(json.dumps(good), content_type="multipart/form-data; boundary=x"),
        ),
        ("no Content-Type", 415, "Content-Type", lambda: send(json.dumps(good), content_type=None)),
        (
            "JSON in another charset",
            415,
            "Content-Type",
            lambda: send(json.dumps(good), content_type="application/json; charset=latin-1"),
        ),
        (
            "a label as text/plain",
            415,
            "Content-Type",
            lambda: send('{"transaction_id": 1, "tx_fraud": 1}', "/v1/labels", "text/plain"),
        ),
        (
            "a batch as a form",
            415,
            "Content-Type",
            lambda: send(json.dumps({"transactions": [good]}), "/v1/score/batch", "application/x-www-form-urlencoded"),
        ),
        ("label in a score request", 422, "tx_fraud", lambda: post("/v1/score", json=good | {"tx_fraud": 1})),
        ("unknown field", 422, "amount", lambda: post("/v1/score", json=good | {"amount": 3})),
        ("half a coordinate pair", 422, "customer_y", lambda: post("/v1/score", json=good | {"customer_x": 1.0})),
        (
            "lone surrogate in an id",
            400,
            "body",
            lambda: send(json.dumps(good).replace('"customer_id": ', '"customer_id": "\\ud800", "x": ')),
        ),
        ("deep nesting", 400, "body", lambda: send(b"[" * 2000 + b"]" * 2000)),
        (
            "body over the limit",
            413,
            "body",
            lambda: send(b" " * 5000 + json.dumps(good).encode()),
        ),
        ("label 2", 422, "tx_fraud", lambda: post("/v1/labels", json={"transaction_id": 1, "tx_fraud": 2})),
        ("label true", 422, "tx_fraud", lambda: post("/v1/labels", json={"transaction_id": 1, "tx_fraud": True})),
        ("batch not a list", 422, "transactions", lambda: post("/v1/score/batch", json={"transactions": good})),
        ("empty batch", 422, "transactions", lambda: post("/v1/score/batch", json={"transactions": []})),
        (
            "bad item in a batch",
            422,
            "transactions[1].tx_amount",
            lambda: post("/v1/score/batch", json={"transactions": [good, good | {"tx_amount": None}]}),
        ),
        ("wrong method", 405, "", lambda: server.client.get("/v1/score")),
        ("unknown path", 404, "", lambda: post("/v1/scores", json=good)),
    ]
    before = server.client.get("/readyz").json()["transactions"]
    for what, status, field, request in cases:
        answer = request()
        assert answer.status_code == status, (what, answer.status_code, answer.text)
        if field:
            fields = [e["field"] for e in answer.json()["errors"]]
            assert field in fields, (what, fields)
            assert field in answer.json()["detail"], (what, answer.text)
    # hand-made bytes: a chunked body over the limit, a lying Content-Length, a broken request line
    chunk = b"2000\r\n" + b" " * 0x2000 + b"\r\n0\r\n\r\n"
    json_type = b"Content-Type: application/json\r\n"
    assert (
        _raw(
            server,
            b"POST /v1/score HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" + json_type + b"\r\n" + chunk,
        )
        == 413
    )
    assert (
        _raw(server, b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n" + json_type + b"\r\n{}")
        == 413
    )
    assert _raw(server, b"BREW /v1/score HTCPCP/1.0\r\n\r\n") == 400
    assert len(cases) + 3 >= 20

    # the server is up, answered no 500, recorded none of the refused, and still scores with the right features
    assert server.client.get("/readyz").json()["transactions"] == before
    answer = server.score(good)
    assert answer.status_code == 200, answer.text
    assert abs(answer.json()["fraud_probability"] - float(world().batch_scores([good["transaction_id"]])[0])) <= 1e-6
    metrics = server.client.get("/metrics").text
    assert 'status="500"' not in metrics, metrics
    assert re.search(r'fraudpipe_http_requests_total\{method="POST",route="other",status="404"\} 1\.0', metrics)


def test_metrics(server):
    w = world()
    row = w.test.iloc[50]
    scored = server.score(body(row)).json()
    text = server.client.get("/metrics").text
    version = load_bundle(w.bundle_dir).version
    assert f'fraudpipe_model_info{{model_version="{version}",registry_version=""}} 1.0' in text
    assert re.search(rf'^fraudpipe_score_count\{{model_version="{version}"\}} [1-9]', text, re.M)
    assert re.search(
        r'^fraudpipe_http_requests_total\{method="POST",route="/v1/score",status="200"\} [1-9]', text, re.M
    )
    assert re.search(
        r'^fraudpipe_http_request_duration_seconds_bucket\{le="\+Inf",route="/v1/score"\} [1-9]', text, re.M
    )
    assert (
        'fraudpipe_http_request_duration_seconds_bucket{le="0.0005",route="/v1/score"}' in text
    )  # sub-millisecond buckets
    assert re.search(rf'^fraudpipe_alerts_total\{{model_version="{version}"\}} \d', text, re.M)
    held = server.client.get("/readyz").json()["transactions"]
    assert f"fraudpipe_state_transactions {float(held)}" in text
    assert "fraudpipe_ready 1.0" in text and f"fraudpipe_model_threshold {scored['threshold']}" in text
    assert re.search(
        r'^fraudpipe_scoring_fast_path\{reason="xgboost 3\.\d+\.\d+, float32 row into '
        r'XGBoosterPredictFromDense"\} 1\.0$',
        text,
        re.M,
    )


def test_a_bad_bundle_refuses_to_start_in_one_line(tmp_path):
    w = world()
    import shutil

    cases = {"missing": tmp_path / "nothing-here"}
    truncated = tmp_path / "truncated"
    shutil.copytree(w.bundle_dir, truncated)
    data = (truncated / "model.ubj").read_bytes()
    (truncated / "model.ubj").write_bytes(data[: len(data) // 2])
    tampered = tmp_path / "tampered"
    shutil.copytree(w.bundle_dir, tampered)
    meta = json.loads((tampered / "bundle.json").read_text())
    (tampered / "bundle.json").write_text(json.dumps(meta | {"threshold": 0.01}))
    cases |= {"truncated": truncated, "tampered": tampered}
    for what, bundle in cases.items():
        server = Server(tmp_path, bundle, w.state_dir, tmp_path / "journal").start(wait=False)
        assert server.proc.wait(timeout=120) == 1, (what, server.output())
        err = server.stderr.read_text().strip().splitlines()
        assert len(err) == 1 and err[0].startswith("serve failed: ") and "Traceback" not in server.output(), (what, err)
        assert str(bundle) in err[0] and ("sha256" in err[0] or "does not exist" in err[0]), err


def test_the_service_never_imports_great_expectations(tmp_path):
    """Start-up and requests, then a clean stop; the process says at exit what it imported."""
    w = world()
    server = Server(tmp_path, w.bundle_dir, w.state_dir, tmp_path / "journal")
    # uvicorn restores the SIGTERM handler it found, then raises the signal again once it has shut down
    probe = (
        "import runpy, signal, sys\n"
        "def stopped(*_):\n"
        "    loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('great_expectations', 'fraudpipe'))\n"
        "    print('IMPORTED', loaded, flush=True)\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stopped)\n"
        "sys.argv = ['fraudpipe'] + sys.argv[1:]\n"
        "runpy.run_module('fraudpipe.cli', run_name='__main__')\n"
    )
    server.command = lambda: [server.__class__.command(server)[0], "-c", probe, *server.__class__.command(server)[3:]]  # type: ignore[method-assign]
    server.start()
    assert server.score(body(w.test.iloc[0])).status_code == 200
    assert server.stop() == 0
    line = next(x for x in server.stdout.read_text().splitlines() if x.startswith("IMPORTED"))
    imported = eval(line.removeprefix("IMPORTED "))  # a list literal printed by the probe
    assert "fraudpipe.serve.app" in imported and not any(m.startswith("great_expectations") for m in imported)
    assert not {"fraudpipe.data.validate", "fraudpipe.data.ingest"} & set(imported)


def test_parity_with_the_batch_path_over_http(tmp_path):
    """The test period in time order through the real service, labels fed through /v1/labels as they
    come due (older than the delay): every score equals the batch path's."""
    w = world()
    test = w.test
    with Server(tmp_path, w.bundle_dir, w.state_dir, tmp_path / "journal") as server:
        (scores,) = replay([server], test, test, w.config.delay_days)
        labels = server.client.get("/metrics").text
    expected = w.batch_scores(test["transaction_id"])
    diff = np.abs(np.array(scores) - expected)
    assert len(scores) == len(test) >= 1500
    assert diff.max() <= 1e-6, f"worst at {test['transaction_id'].iat[diff.argmax()]}: {diff.max()}"
    assert re.search(
        r'^fraudpipe_labels_total\{tx_fraud="1"\} [1-9]', labels, re.M
    )  # labels did arrive, frauds among them
    # and the features really depend on those labels: the risk windows of the last days are not all zero
    risk = [f for f in feature_names(w.config) if f.startswith("terminal_id_risk")]
    assert (w.table.set_index("transaction_id").loc[test["transaction_id"].tail(300), risk].to_numpy() > 0).any()


def test_a_killed_server_restarts_where_it_was(tmp_path):
    """kill -9 in the middle, with a snapshot before it: after the restart (snapshot + journal replay)
    the scores equal those of a server that never stopped; SIGUSR1 snapshots too."""
    w = world()
    test = w.test
    parts = test.iloc[:400], test.iloc[400:1600], test.iloc[1600:]  # labels come due (7 days) in the second part
    crashing = Server(tmp_path / "a", w.bundle_dir, w.state_dir, tmp_path / "a" / "journal")
    steady = Server(tmp_path / "b", w.bundle_dir, w.state_dir, tmp_path / "b" / "journal")
    for s in (crashing, steady):
        s.workdir.mkdir()
        s.start()
    try:
        replay([crashing, steady], parts[0], test, w.config.delay_days)
        snap = crashing.client.post("/v1/admin/snapshot")
        assert snap.status_code == 200, snap.text
        assert crashing.client.get("/readyz").json()["journal_entries"] == 0
        second, reference = replay([crashing, steady], parts[1], test, w.config.delay_days)
        assert second == reference
        assert crashing.client.get("/readyz").json()["journal_entries"] > len(parts[1])  # transactions and labels
        crashing.stop(signal.SIGKILL)
        assert crashing.proc.returncode == -signal.SIGKILL
        crashing.start()
        out = crashing.stdout.read_text()
        assert "its snapshot" in out and re.search(r"\+ [1-9][\d,]* journal entries", out), out
        retry = crashing.score(body(parts[1].iloc[-1]))
        assert retry.headers.get("idempotent-replayed") == "true" and retry.json()["fraud_probability"] == second[-1]
        crashing.proc.send_signal(signal.SIGUSR1)
        for _ in range(100):
            if "SIGUSR1: snapshot" in crashing.stdout.read_text():
                break
            time.sleep(0.1)
        assert crashing.client.get("/readyz").json()["journal_entries"] == 0
        third, reference = replay([crashing, steady], parts[2], test, w.config.delay_days)
        assert third == reference, "after kill -9 and restart, the same scores as the server that never stopped"
    finally:
        for s in (crashing, steady):
            s.stop()


def test_readyz_is_503_until_the_model_and_state_are_loaded(tmp_path):
    """The real app in process: its lifespan starts the load in a thread and returns at once, so the
    server answers /healthz at once and /readyz (and the /v1 routes) with 503 until the load is done."""
    import asyncio

    from fraudpipe.serve.app import create_app

    w = world()
    app = create_app(serve_config(tmp_path, port=0))

    async def scenario() -> list[tuple[int, dict]]:
        transport = httpx.ASGITransport(app=app)
        seen = []
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        ):
            for path, method in (("/readyz", "GET"), ("/healthz", "GET"), ("/v1/score", "POST")):
                answer = await client.request(method, path, json=body(w.test.iloc[0]) if method == "POST" else None)
                seen.append((answer.status_code, answer.json(), answer.headers.get("retry-after")))
            while (await client.get("/readyz")).status_code != 200:
                await asyncio.sleep(0.05)
            answer = await client.post("/v1/score", json=body(w.test.iloc[0]))
            seen.append((answer.status_code, answer.json(), None))
        return seen

    loading, health, early, scored = asyncio.run(scenario())
    assert loading[0] == 503 and loading[1]["status"] == "loading"
    assert health[0] == 200
    assert early[0] == 503 and early[2] == "1" and "not ready" in early[1]["detail"]
    assert (
        scored[0] == 200
        and abs(scored[1]["fraud_probability"] - float(w.batch_scores([w.test["transaction_id"].iat[0]])[0])) <= 1e-6
    )
