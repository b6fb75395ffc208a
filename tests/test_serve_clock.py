"""The service's clock and size, on both stores: no request moves the clock far enough to forget what
the service acknowledged; a move to a new period is the operator's (POST /v1/admin/period) and keeps
what is held for its retention window; the state refuses new keys past its caps, never known ones."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from fraudpipe.serve.schema import LabelIn, PeriodIn, TransactionIn
from fraudpipe.serve.service import Refused, Service
from fraudpipe.serve.stores.base import Transaction, epoch_second
from fraudpipe.serve.stores.memory import InProcessStore
from helpers.serve import Server, body, config, world

pytestmark = pytest.mark.timeout(600)


def transaction(row) -> Transaction:
    when = pd.Timestamp(row.tx_datetime).to_pydatetime()
    return Transaction(
        str(row.transaction_id), str(row.customer_id), str(row.terminal_id), when, epoch_second(when), 1.0
    )


def tx(row, **changes) -> TransactionIn:
    return TransactionIn.model_validate(body(row, tx_datetime=pd.Timestamp(row.tx_datetime).to_pydatetime()) | changes)


@pytest.fixture(params=["memory", "redis"])
def open_service(request, tmp_path) -> Iterator[Callable[..., Service]]:
    """Opens a Service on the world's state in process (journal in tmp_path) or in a throwaway Redis;
    opening again restarts it on what it kept (journal replay, or the state in Redis)."""
    store = {} if request.param == "memory" else {"store": request.getfixturevalue("redis_server").unix_url}
    opened: list[Service] = []

    def open_(**changes) -> Service:
        service = Service.open(config(tmp_path, **store, **changes))
        opened.append(service)
        return service

    yield open_
    for service in opened:
        service.close()


def test_one_transaction_dated_ahead_of_the_stream_is_refused_and_forgets_nothing(open_service):
    w = world()
    service = open_service()
    rows = w.test.head(3)
    answers = [service.score(tx(row))[0] for row in rows.itertuples()]
    held, newest = service.store.size(), rows["tx_datetime"].max().to_pydatetime()
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    ahead = newest + timedelta(days=1, seconds=1)
    for i, when in enumerate((datetime(2025, 1, 1), now, ahead)):
        with pytest.raises(Refused) as info:
            service.score(tx(rows.iloc[0], transaction_id=f"ahead-{i}", tx_datetime=when))
        assert info.value.status == 422 and info.value.field == "tx_datetime"
        assert "--max-time-jump-seconds" in info.value.message and "POST /v1/admin/period" in info.value.message
    assert service.store.size() == held

    first = str(rows["transaction_id"].iat[0])
    service.label(LabelIn(transaction_id=first, tx_fraud=1))  # acknowledged seconds before: still known
    again, retry = service.score(tx(rows.iloc[0]))
    assert retry and again == answers[0]
    within = ahead - timedelta(seconds=2)  # a day after the newest: the stream may move that far
    assert not service.score(tx(rows.iloc[1], transaction_id="a-day-on", tx_datetime=within))[1]
    assert not service.score(tx(w.test.iloc[3]))[1]  # the stream goes on
    size = service.store.size()

    restarted = open_service()  # replays the journal (in process) or attaches (Redis): the same state
    assert restarted.store.size() == size and restarted.store.get_scored(first) == answers[0]


def test_a_move_to_a_new_period_keeps_what_was_acknowledged_for_its_retention(open_service):
    w = world()
    service = open_service()
    rows = w.test.head(2)
    answers = [service.score(tx(row))[0] for row in rows.itertuples()]
    first, held = str(rows["transaction_id"].iat[0]), service.store.size()
    with pytest.raises(Refused) as info:  # a new period starts after the newest transaction seen
        service.start_period(PeriodIn(start=datetime(2018, 1, 1)))
    assert info.value.status == 422 and info.value.field == "start"

    start = datetime(2025, 1, 1)
    done = service.start_period(PeriodIn(start=start))
    assert done["start"] == start.isoformat() and done["transactions"] == held["transactions"]
    with pytest.raises(Refused) as info:  # the old period is over
        service.score(tx(w.test.iloc[2]))
    assert info.value.status == 422 and "older than the retention window" in info.value.message

    kept_days = w.config.retention_days + 1  # + --late-days
    template = w.test.iloc[5]
    for day in range(kept_days + 1):  # the new period's stream, a day at a time (within the jump)
        service.score(tx(template, transaction_id=f"p{day}", tx_datetime=start + timedelta(days=day)))
        if day == 2:
            service = open_service()  # a restart replays the move where it was made
        if day == 3:
            service.snapshot()
            service = open_service()  # ... or starts from a snapshot that holds it
        if day < kept_days:  # acknowledged in the old period: the same answer, and labellable, for its retention
            assert service.score(tx(rows.iloc[0])) == (answers[0], True), day
            service.label(LabelIn(transaction_id=first, tx_fraud=1))
    assert service.store.get_scored(first) is None  # then forgotten, as without a move
    with pytest.raises(Refused) as info:
        service.label(LabelIn(transaction_id=first, tx_fraud=1))
    assert info.value.status == 404
    assert service.store.get_scored(f"p{kept_days}") is not None


def test_the_state_refuses_new_keys_past_its_caps_and_keeps_scoring_known_ones(open_service, capfd):
    w = world()
    held = InProcessStore.load(w.state_dir, late_days=1).size()
    service = open_service(max_state_customers=held["customers"], max_state_terminals=held["terminals"])
    known = w.test.iloc[0]
    found = service.store.prepare(transaction(known))
    assert not found.new_customer and not found.new_terminal
    assert not service.score(tx(known))[1]  # a known customer at a known terminal: scored at the cap
    for i in range(2):
        with pytest.raises(Refused) as info:
            service.score(tx(known, transaction_id=f"new-card-{i}", customer_id=f"new-card-{i}"))
        assert info.value.status == 503 and info.value.field == "customer_id"
        assert f"--max-state-customers {held['customers']:,}" in info.value.message
    with pytest.raises(Refused) as info:
        service.score(tx(known, transaction_id="new-shop", terminal_id="new-shop"))
    assert info.value.status == 503 and "--max-state-terminals" in info.value.message
    assert service.store.size()["customers"] == held["customers"]
    logged = [line for line in capfd.readouterr().err.splitlines() if "--max-state-" in line]
    assert len(logged) == 2, logged  # one line per cap reached, not one per refusal

    roomier = open_service(max_state_customers=held["customers"] + 1)
    assert not roomier.score(tx(known, transaction_id="room-1", customer_id="room-1"))[1]
    with pytest.raises(Refused):
        roomier.score(tx(known, transaction_id="room-2", customer_id="room-2"))


def test_over_http_the_jump_names_its_flag_the_move_is_an_admin_route_and_metrics_show_the_size(tmp_path):
    w = world()
    with Server(tmp_path, w.bundle_dir, w.state_dir, tmp_path / "journal", ("--max-state-customers", "7000")) as s:
        row = w.test.iloc[0]
        held = s.client.get("/readyz").json()["transactions"]
        answer = s.score(body(row, transaction_id="late-2025", tx_datetime="2025-01-01T00:00:00Z"))
        assert answer.status_code == 422 and "--max-time-jump-seconds" in answer.json()["detail"]
        assert s.client.get("/readyz").json()["transactions"] == held
        moved = s.client.post("/v1/admin/period", json={"start": "2025-01-01T00:00:00Z"})
        assert moved.status_code == 200 and moved.json()["transactions"] == held, moved.text
        assert s.score(body(row, transaction_id="p0", tx_datetime="2025-01-01T00:00:05Z")).status_code == 200
        text = s.client.get("/metrics").text
        rss = re.search(r"^process_resident_memory_bytes (\S+)$", text, re.M)
        assert rss and float(rss.group(1)) > 50e6
        assert 'fraudpipe_state_cap{key="customers"} 7000.0' in text
        assert f"fraudpipe_state_transactions {float(held + 1)}" in text
    assert "the clock moved to a new period: 2025-01-01T00:00:00" in s.stdout.read_text()
