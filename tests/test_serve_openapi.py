"""The whole API from its own OpenAPI schema (Schemathesis): no generated request, valid or not,
gets a 5xx, and the service stays ready throughout.

The app runs in process (ASGI) on the small world the serve tests share: a bundle and an online
state; its journal lives in a temporary directory. Bounded to stay well under a minute.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from fraudpipe.serve.app import create_app
from fraudpipe.serve.config import ServeConfig
from helpers.serve import world

pytestmark = pytest.mark.timeout(300)

#: Any date and time of the calendar, naive or with any offset, and more often its two ends with an
#: offset that takes them out of range once converted to UTC (a 500 the default strategy never hit).
_OFFSETS = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
_EDGES = st.sampled_from([datetime.min, datetime.max]).flatmap(
    lambda edge: _OFFSETS.map(lambda tz: edge.replace(tzinfo=tz).isoformat())
)
schemathesis.openapi.format("date-time", _EDGES | st.datetimes(timezones=st.none() | _OFFSETS).map(datetime.isoformat))


@pytest.fixture
def api_schema(tmp_path):
    """The schema of a freshly loaded app (Schemathesis's pytest plugin ends every ASGI lifespan when a
    test ends, so each test gets its own app)."""
    w = world()
    config = ServeConfig.parse(
        {
            "model": w.bundle_dir,
            "state": w.state_dir,
            "journal_dir": tmp_path / "journal",
            "host": "127.0.0.1",
            "port": 0,
            "max_batch": 20,
            "max_body_bytes": 1 << 16,
            "max_amount": 1e5,
            "late_days": 1,
            "max_future_seconds": 300,
            "api_key_env": "FRAUDPIPE_TEST_UNSET_KEY",
        },
        "serve",
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(config))  # starts the lifespan
    end = time.monotonic() + 60
    while ready(schema) != 200:
        assert time.monotonic() < end, "the app did not load the model and the state within 60 s"
        time.sleep(0.05)
    return schema


def ready(schema) -> int:
    return schema["/readyz"]["GET"].Case().call().status_code


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_no_request_gets_a_server_error_and_the_service_stays_ready(api_schema, mode):
    """Requests drawn from the schema, valid (positive) or breaking it (negative), on every route.

    (Schemathesis's own pytest integration needs an internal of pytest that 9.x removed; its
    strategies under Hypothesis's ``given`` do the same.)"""

    @given(case=api_schema.as_strategy(generation_mode=mode))
    @settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def request_then_ready(case):  # no deadline: a swap request may load a bundle; timing is for benchmarks/
        case.call_and_validate(checks=[not_a_server_error])
        assert ready(api_schema) == 200

    request_then_ready()
