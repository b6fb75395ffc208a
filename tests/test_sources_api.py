"""API source against a real HTTP server on 127.0.0.1: pagination, retries with backoff, errors.

The `test_bad_input_*` tests are part of the project's bad-input corpus.
"""

from __future__ import annotations

import itertools
import time

import pytest

from fraudpipe.config import parse
from fraudpipe.data.sources import ApiConfig, DataConfig, SourceError, make_source, redact_url
from fraudpipe.errors import ConfigError
from helpers.sources import data_conf, data_config

RECORDS = [
    {"id": i, "when": f"2018-04-01T00:{i:02d}:00", "card": 100 + i % 3, "pos": 7, "amount": 1.5 * i, "label": i % 2}
    for i in range(25)
]


def api_cfg(url: str, **overrides) -> ApiConfig:
    changes = {"page_size": 10, "timeout_s": 2.0, "max_retries": 2, "backoff_s": 0.01}  # tiny waits in tests
    config = data_config("api", url=url, **changes | overrides)
    assert isinstance(config, ApiConfig)
    return config


@pytest.mark.parametrize("absolute_next", [False, True], ids=["relative-next", "absolute-next"])
def test_every_page_is_read_in_order_with_native_json_types(http_server, absolute_next):
    url = http_server.serve_pages("/tx", RECORDS, absolute_next=absolute_next)
    raw = make_source(api_cfg(url)).read()
    assert raw["id"].tolist() == list(range(25))
    assert list(raw.columns) == ["id", "when", "card", "pos", "amount", "label"]
    assert raw["amount"].dtype == "float64" and raw["id"].dtype == "int64"
    assert [r.query.get("offset", "0") for r in http_server.hits("/tx")] == ["0", "10", "20"]


def test_page_size_params_and_headers_are_sent(http_server):
    url = http_server.serve_pages("/tx", RECORDS)
    make_source(api_cfg(url, page_size=5, params={"since": "2018-04-01"}, headers={"Authorization": "Bearer t"})).read()
    first = http_server.hits("/tx")[0]
    assert first.query == {"since": "2018-04-01", "limit": "5"}
    assert first.headers["authorization"] == "Bearer t"
    assert len(http_server.hits("/tx")) == 5


def test_a_page_that_fails_once_succeeds_on_retry_without_losing_or_repeating_records(http_server):
    url = http_server.serve_pages("/tx", RECORDS, fail_once=[1])
    raw = make_source(api_cfg(url)).read()
    assert raw["id"].tolist() == list(range(25))
    assert [r.query.get("offset", "0") for r in http_server.hits("/tx")] == ["0", "10", "10", "20"]


def test_429_is_retried_after_the_servers_retry_after(http_server):
    calls = []

    def limited(request):
        calls.append(time.monotonic())
        if len(calls) == 1:
            return 429, {"detail": "slow down"}, {"Retry-After": "0.2"}
        return 200, {"records": RECORDS[:2], "next": None}

    raw = make_source(api_cfg(http_server.route("/tx", limited))).read()
    assert len(raw) == 2
    assert calls[1] - calls[0] >= 0.2  # the server's wait, not the 0.01 s backoff


def test_backoff_doubles_between_attempts(http_server):
    calls = []

    def down(request):
        calls.append(time.monotonic())
        return 503, "maintenance"

    with pytest.raises(SourceError):
        make_source(api_cfg(http_server.route("/tx", down), max_retries=3, backoff_s=0.05)).read()
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert len(calls) == 4
    assert [round(g, 2) >= w for g, w in zip(gaps, [0.05, 0.1, 0.2])] == [True] * 3


def test_records_key_null_reads_a_bare_list(http_server):
    url = http_server.route("/tx", lambda r: (200, RECORDS[:3]))
    assert len(make_source(api_cfg(url, records_key=None, next_key=None)).read()) == 3


def test_an_empty_api_gives_an_empty_batch(http_server):
    url = http_server.route("/tx", lambda r: (200, {"records": [], "next": None}))
    assert make_source(api_cfg(url)).read().empty


# --- bad input corpus -------------------------------------------------------------------------


def test_bad_input_api_that_keeps_failing_names_url_attempts_and_last_status(http_server):
    url = http_server.route("/tx", lambda r: (500, {"detail": "boom"}))
    with pytest.raises(SourceError) as err:
        make_source(api_cfg(url + "?token=hunter2")).read()
    message = str(err.value)
    assert f"GET {url}?limit=10&token=***" in message or f"GET {url}?token=***&limit=10" in message
    assert "failed 3 times (1 try + data.max_retries=2); last: HTTP 500" in message
    assert "hunter2" not in message
    assert len(http_server.hits("/tx")) == 3


def test_bad_input_api_that_is_unreachable(closed_port):
    url = f"http://127.0.0.1:{closed_port}/tx"
    with pytest.raises(SourceError, match=rf"GET {url}\?limit=10 failed 3 times .*last: ConnectError"):
        make_source(api_cfg(url)).read()


def test_bad_input_api_that_times_out(http_server):
    def slow(request):
        time.sleep(0.5)
        return 200, {"records": [], "next": None}

    with pytest.raises(SourceError, match=r"failed 2 times .*last: ReadTimeout"):
        make_source(api_cfg(http_server.route("/tx", slow), timeout_s=0.1, max_retries=1)).read()


def test_bad_input_api_returning_non_json(http_server):
    url = http_server.route("/tx", lambda r: (200, "<html>login</html>", {"content-type": "text/html"}))
    with pytest.raises(SourceError, match=r"did not return JSON \(content-type 'text/html', body starts b'<html>login"):
        make_source(api_cfg(url)).read()


def test_bad_input_api_page_without_the_records_key(http_server):
    url = http_server.route("/tx", lambda r: (200, {"data": [], "next": None}))
    with pytest.raises(
        SourceError, match=r"has no 'records' list \(found keys \['data', 'next'\]\).*data\.records_key"
    ):
        make_source(api_cfg(url)).read()


def test_bad_input_api_client_error_is_not_retried(http_server):
    url = http_server.route("/tx", lambda r: (401, {"detail": "bad token"}))
    with pytest.raises(SourceError, match=r"answered HTTP 401: .*bad token"):
        make_source(api_cfg(url)).read()
    assert len(http_server.hits("/tx")) == 1


def test_bad_input_api_pagination_that_loops(http_server):
    url = http_server.route("/tx", lambda r: (200, {"records": RECORDS[:1], "next": "/tx?limit=10"}))
    with pytest.raises(SourceError, match="pagination loops back"):
        make_source(api_cfg(url)).read()


def test_bad_input_api_records_that_are_not_objects(http_server):
    url = http_server.route("/tx", lambda r: (200, {"records": [1, 2], "next": None}))
    with pytest.raises(SourceError, match="not a list of JSON objects"):
        make_source(api_cfg(url)).read()


def test_the_conf_option_parses_into_its_model():
    config = parse(DataConfig, data_conf("api"), "data")
    assert isinstance(config, ApiConfig) and config.to_dict() == data_conf("api")
    assert config.datetime_format is None and config.max_retries == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_retrys": 3}, "data.max_retrys: unknown key (did you mean 'max_retries'?"),
        ({"max_retries": -3}, "data.max_retries: must be >= 0, got -3"),  # refused, not clamped to 0
        ({"page_size": 0}, "data.page_size: must be >= 1, got 0"),
        ({"timeout_s": 0}, "data.timeout_s: must be > 0, got 0"),
        ({"timeout_s": "10"}, "data.timeout_s: must be a number, got '10'"),
        ({"headers": {"X-Key": 5}}, "data.headers.X-Key: must be a string, got 5"),  # not turned into "5"
        ({"url": ""}, "data.url: must be an http(s) URL, got ''"),
        ({"url": "ftp://h/x?token=hunter2"}, "data.url: must be an http(s) URL, got 'ftp://h/x?token=***'"),
        ({"snapshot": ""}, "data.snapshot: must be at least 1 character(s) long, got ''"),
    ],
)
def test_bad_config_names_the_full_key_and_the_value(change, message):
    with pytest.raises(ConfigError) as err:
        data_config("api", **change)
    assert message in str(err.value)
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://h/x?api_key=abc&limit=3", "http://h/x?api_key=***&limit=3"),
        ("https://user:pw@h/x", "https://user:***@h/x"),
        ("postgresql+psycopg://u:p@h:5432/db?sslmode=require", "postgresql+psycopg://u:***@h:5432/db?sslmode=require"),
        ("sqlite:////abs/path.db", "sqlite:////abs/path.db"),
    ],
)
def test_urls_in_messages_never_carry_secrets(url, shown):
    assert redact_url(url) == shown


def test_bad_input_a_record_with_a_key_twice_is_refused_not_last_wins(http_server):
    body = '{"records": [{"id": 1, "amount": 10.0, "amount": 1020.0}], "next": null}'
    url = http_server.route("/dup", lambda request: (200, body, {"content-type": "application/json"}))
    with pytest.raises(
        SourceError, match=r"returned an object with the key 'amount' twice; cannot tell which value to use"
    ):
        make_source(api_cfg(url)).read()
