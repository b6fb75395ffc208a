"""The Redis state store against a real redis-server: the same state as the in-process store at
every step, the batch features and scores through it, seeded once for every worker, durable
through a Redis restart (its append-only file), and monitoring's service log read from it."""

from __future__ import annotations

import json
import re
import signal
import threading
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudpipe.contract import TX_DATETIME
from fraudpipe.errors import ConfigError, DataError
from fraudpipe.features.online import OnlineState, history_features
from fraudpipe.model import load_bundle
from fraudpipe.serve.schema import LabelIn, TransactionIn
from fraudpipe.serve.service import Service
from fraudpipe.serve.stores.base import Conflict, Scored, StoreUnavailable, Transaction, epoch_second
from fraudpipe.serve.stores.memory import InProcessStore
from fraudpipe.serve.stores.redis import RedisStore
from fraudpipe.servicelog import read_redis_log, read_service_log
from helpers.redis import RedisServer, redis_server_binary
from helpers.serve import body, config, world

pytestmark = pytest.mark.timeout(600)


def transaction(row, tid: str | None = None, **changes) -> Transaction:
    when = changes.pop("when", None) or pd.Timestamp(row.tx_datetime).to_pydatetime()
    return Transaction(
        tid or str(row.transaction_id),
        str(row.customer_id),
        str(row.terminal_id),
        when,
        epoch_second(when),
        float(changes.pop("amount", row.tx_amount)),
    )


def scored(tx: Transaction, score: float = 0.25) -> Scored:
    return Scored(tx, score, score >= 0.5, 0.5, "xgboost-0123456789ab")


def assert_same_step(a: InProcessStore, b: RedisStore, tx: Transaction, config) -> np.ndarray:
    """Both stores answer ``prepare`` alike and give the same features; returns them."""
    left, right = a.prepare(tx), b.prepare(tx)
    assert (left.scored, left.known, left.earliest_exact) == (right.scored, right.known, right.earliest_exact), tx
    features = history_features(config, left.history, tx.t, tx.tx_amount)
    np.testing.assert_array_equal(history_features(config, right.history, tx.t, tx.tx_amount), features)
    return features


def test_the_test_period_through_redis_gives_the_batch_features_and_scores(redis_server):
    """The inference issue's replay parity through the Redis store: the test period in time order,
    labels fed as they come due (older than the delay); at every step the Redis store answers as the
    in-process one, the features are the offline ones and the scores the batch scores."""
    w = world()
    local = InProcessStore.load(w.state_dir, late_days=1)
    shared = RedisStore.open(redis_server.unix_url, "t", w.state_dir, late_days=1)
    assert shared.seeded and shared.size() == local.size()
    bundle = load_bundle(w.bundle_dir, nthread=1)
    test = w.test
    times, ids, frauds = test[TX_DATETIME].to_numpy(), test["transaction_id"].tolist(), test["tx_fraud"].tolist()
    scores, worst, sent, frauds_sent = [], 0.0, 0, 0
    for row in test.itertuples(index=False):
        due = np.datetime64(row.tx_datetime) - np.timedelta64(w.config.delay_days, "D")
        while sent < len(times) and times[sent] <= due:
            assert local.add_label(str(ids[sent]), int(frauds[sent])) and shared.add_label(
                str(ids[sent]), int(frauds[sent])
            )
            frauds_sent += int(frauds[sent])
            sent += 1
        tx = transaction(row)
        x = assert_same_step(local, shared, tx, w.config)
        worst = max(worst, float(np.abs(x - w.offline_row(row.transaction_id)).max()))
        scores.append(float(bundle.predict_proba(x[np.newaxis, :])[0]))
        assert local.add_transaction(scored(tx)) is None and shared.add_transaction(scored(tx)) is None
    assert worst <= 1e-9
    expected = w.batch_scores(test["transaction_id"])
    assert len(scores) == len(test) >= 1500 and np.abs(np.array(scores) - expected).max() <= 1e-6
    assert frauds_sent > 0 and shared.size() == local.size() and shared.earliest_exact() == local.earliest_exact()
    pd.testing.assert_frame_equal(shared.to_in_process().state.history(), local.state.history())


def test_retries_late_arrivals_labels_and_answers_behave_as_in_process(redis_server):
    w = world()
    local = InProcessStore.load(w.late_state_dir, late_days=1)
    shared = RedisStore.open(redis_server.url, "s", w.late_state_dir, late_days=1)  # over TCP this time
    rows = list(w.test.head(300).itertuples())
    for i, row in enumerate(rows):
        tx = transaction(row)
        if i == 150:  # a late arrival: six hours before the newest transaction, placed in time order
            tx = transaction(
                row, tid="late-1", when=pd.Timestamp(rows[149].tx_datetime).to_pydatetime() - timedelta(hours=6)
            )
        assert_same_step(local, shared, tx, w.config)
        local.add_transaction(scored(tx, i / 300)), shared.add_transaction(scored(tx, i / 300))
        assert_same_step(local, shared, tx, w.config)  # now a retry: the answer given is found in both
    first = transaction(rows[0])
    again = scored(first, 0.99)  # another worker scoring the same transaction_id: the first answer stands
    assert shared.add_transaction(again) == local.get_scored(first.transaction_id) == scored(first, 0.0)
    old = str(w.tx[w.tx[TX_DATETIME] < w.cut]["transaction_id"].iat[-1])  # in the starting history, never scored
    assert (
        shared.has_transaction(old)
        and shared.get_scored(old) is None
        and shared.add_transaction(scored(transaction(w.tx[w.tx["transaction_id"] == int(old)].iloc[0]))) is None
    )
    for tid, label in ((first.transaction_id, 1), (old, 1), ("late-1", 1), (first.transaction_id, 0), ("nope", 1)):
        assert shared.add_label(tid, label) == local.add_label(tid, label)
    with pytest.raises(DataError, match="tx_fraud must be 0 or 1"):
        shared.add_label(first.transaction_id, 2)
    assert shared.get_scored("nope") is None and not shared.has_transaction("nope")
    pd.testing.assert_frame_equal(shared.to_in_process().state.history(), local.state.history())
    later = transaction(
        rows[-1], tid="probe", when=pd.Timestamp(rows[-1].tx_datetime).to_pydatetime() + timedelta(days=8)
    )
    assert_same_step(local, shared, later, w.config)  # the labels count in the terminal windows alike


def test_ids_holding_the_member_separator_and_either_protocol_read_as_in_process(redis_server):
    """History members are "seq|time|amount|terminal" and "seq|time|tid", split at once for a whole
    window: a terminal id or transaction id holding '|' must not shift the fields; RESP2
    (``?protocol=2``) and RESP3 (redis-py's default) give the same features."""
    w = world()
    local = InProcessStore.load(w.state_dir, late_days=1)
    resp3 = RedisStore.open(redis_server.unix_url, "sep", w.state_dir, late_days=1)
    resp2 = RedisStore.open(f"{redis_server.unix_url}&protocol=2", "sep", w.state_dir, late_days=1)
    assert resp2.client.connection_pool.get_connection().protocol == 2
    rows = list(w.test.head(120).itertuples())
    for i, row in enumerate(rows):  # 3 customers and 2 terminals of its own: each builds a history
        tx = Transaction(
            f"t|{i}",
            f"C|{i % 3}",
            f"T|{i % 2}|x",
            pd.Timestamp(row.tx_datetime).to_pydatetime(),
            epoch_second(pd.Timestamp(row.tx_datetime).to_pydatetime()),
            float(row.tx_amount),
        )
        features = assert_same_step(local, resp3, tx, w.config)
        np.testing.assert_array_equal(
            history_features(w.config, resp2.prepare(tx).history, tx.t, tx.tx_amount), features
        )
        local.add_transaction(scored(tx)), (resp3 if i % 2 else resp2).add_transaction(scored(tx), None)
        if i % 10 == 9:
            assert local.add_label(f"t|{i - 5}", 1) and resp2.add_label(f"t|{i - 5}", 1)
    later = transaction(rows[-1], when=pd.Timestamp(rows[-1].tx_datetime).to_pydatetime() + timedelta(days=8))
    later = Transaction("probe", "C|0", "T|0|x", later.tx_datetime, later.t, 5.0)
    history = resp2.prepare(later).history.terminal
    assert sum(history.frauds) > 0 and all(t.startswith("t|") for t in history.tids)  # the labels count, ids whole
    assert_same_step(local, resp3, later, w.config)


def test_two_workers_scoring_one_card_at_once_are_serialised(redis_server):
    """Both read the card's history before either writes: the second write is refused (Conflict), and
    read again it sees the first, as one worker would have; a label on the terminal does the same."""
    w = world()
    a, b = (RedisStore.open(redis_server.unix_url, "c", w.state_dir, 1) for _ in range(2))
    local = InProcessStore.load(w.state_dir, 1)
    test = w.test
    customer = test["customer_id"].value_counts().index[0]
    first, second = (transaction(r) for r in test[test["customer_id"] == customer].head(2).itertuples())
    read_a, read_b = a.prepare(first), b.prepare(second)
    assert a.add_transaction(scored(first), read_a) is None
    with pytest.raises(Conflict, match=f"customer {customer} or terminal"):
        b.add_transaction(scored(second), read_b)
    assert not a.has_transaction(second.transaction_id)  # nothing of it was written
    local.add_transaction(scored(first))
    assert_same_step(local, b, second, w.config)  # read again: the first transaction is in its windows
    assert b.add_transaction(scored(second), b.prepare(second)) is None
    local.add_transaction(scored(second))
    third = transaction(
        test[(test["terminal_id"] == int(second.terminal_id)) & (test[TX_DATETIME] > second.tx_datetime)].iloc[0]
    )
    read = a.prepare(third)
    assert b.add_label(second.transaction_id, 1) and local.add_label(second.transaction_id, 1)
    with pytest.raises(Conflict):
        a.add_transaction(scored(third), read)
    assert_same_step(local, a, third, w.config)
    # a change to other histories does not disturb it: the card's third transaction, on another terminal
    others = test[
        (test["customer_id"] != customer)
        & ~test["terminal_id"].isin(test[test["customer_id"] == customer]["terminal_id"])
    ]
    unrelated = transaction(others.iloc[0])
    read = a.prepare(unrelated)
    b.add_transaction(scored(transaction(test[test["customer_id"] == customer].iloc[2])))
    assert a.add_transaction(scored(unrelated), read) is None


def test_old_transactions_and_their_answers_are_forgotten_at_the_same_moments(redis_server, tmp_path):
    """Retention as in the in-process store: pruned once a day of data, answers with their transactions."""
    w = world()
    config = w.config.model_copy(
        update={
            "customer_windows": (1,),
            "terminal_windows": (1,),
            "delay_days": 1,
            "extras": (),
            "extra_windows": (1,),
        }
    )
    OnlineState(config).save(tmp_path / "empty")
    local, shared = (
        InProcessStore(OnlineState(config, late_days=1)),
        RedisStore.open(redis_server.unix_url, "r", tmp_path / "empty", 1),
    )
    start = datetime(2018, 5, 1)
    for hours in range(0, 6 * 24, 7):
        when = start + timedelta(hours=hours)
        tx = Transaction(f"h{hours}", f"c{hours % 3}", f"t{hours % 2}", when, epoch_second(when), 10.0 + hours)
        assert_same_step(local, shared, tx, config)
        local.add_transaction(scored(tx)), shared.add_transaction(scored(tx))
        assert shared.size() == local.size() and shared.earliest_exact() == local.earliest_exact()
    kept = [shared.get_scored(f"h{h}") is not None for h in range(0, 6 * 24, 7)]
    assert kept == [local.get_scored(f"h{h}") is not None for h in range(0, 6 * 24, 7)] and not all(kept) and any(kept)
    assert shared.size()["transactions"] < 21


def test_save_exports_what_both_stores_restart_from(redis_server, tmp_path):
    w = world()
    shared = RedisStore.open(redis_server.unix_url, "e", w.state_dir, late_days=1)
    local = InProcessStore.load(w.state_dir, late_days=1)
    for i, row in enumerate(w.test.head(40).itertuples()):
        (
            shared.add_transaction(scored(transaction(row), i / 40)),
            local.add_transaction(scored(transaction(row), i / 40)),
        )
    shared.add_label(str(w.test["transaction_id"].iat[3]), 1), local.add_label(str(w.test["transaction_id"].iat[3]), 1)
    shared.save(tmp_path / "export")
    local.save(tmp_path / "local")
    loaded = InProcessStore.load(tmp_path / "export", late_days=1)
    pd.testing.assert_frame_equal(loaded.state.history(), local.state.history())
    assert loaded.size() == local.size() and loaded.earliest_exact() == local.earliest_exact()
    assert all(loaded.get_scored(k) == local.get_scored(k) for k in map(str, w.test["transaction_id"].head(40)))
    again = RedisStore.open(redis_server.unix_url, "e2", tmp_path / "export", late_days=1)  # seeds another Redis state
    assert again.seeded and again.size() == local.size()
    for row in w.test.iloc[40:80].itertuples():
        tx = transaction(row)
        assert_same_step(local, again, tx, w.config)
        local.add_transaction(scored(tx)), again.add_transaction(scored(tx))


def test_one_worker_seeds_the_others_attach_and_a_different_state_is_refused(redis_server):
    w = world()
    opened: list[RedisStore] = []
    threads = [
        threading.Thread(target=lambda: opened.append(RedisStore.open(redis_server.unix_url, "w", w.state_dir, 1)))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(opened) == 3 and sorted(s.seeded for s in opened) == [False, False, True]
    client = redis_server.client()
    meta = json.loads(client.get("w:meta"))
    assert meta["transactions"] == opened[0].size()["transactions"] and client.get("w:seeding") is None
    assert {s.size()["transactions"] for s in opened} == {meta["transactions"]}
    with pytest.raises(
        DataError,
        match=r"holds the state seeded from .* not .*late_state "
        r".*start with the same --state, or another --redis-prefix",
    ):
        RedisStore.open(redis_server.unix_url, "w", w.late_state_dir, 1)
    with pytest.raises(ConfigError, match=r"--late-days 2: the shared state .* keeps 1 late day"):
        RedisStore.open(redis_server.unix_url, "w", w.state_dir, 2)
    assert not RedisStore.open(redis_server.unix_url, "w", Path("/nonexistent"), 1).seeded  # attaching needs no --state
    with pytest.raises(DataError, match=re.escape("state.json does not exist")):
        RedisStore.open(redis_server.unix_url, "other", Path("/nonexistent"), 1)  # nothing there, nothing to seed from


def test_members_carry_their_time_and_a_state_of_the_format_before_is_refused(redis_server):
    """Seeded and added members hold their score as their second field (the windows are read without
    WITHSCORES); a state written by the code before (format 1, no time in the members) would be misread,
    so a worker refuses it by name."""
    w = world()
    store = RedisStore.open(redis_server.unix_url, "fmt", w.state_dir, 1)
    row = next(w.test.itertuples())
    store.add_transaction(scored(transaction(row, tid="added")), None)
    client = redis_server.client()
    for key in (f"fmt:c:{row.customer_id}", f"fmt:t:{row.terminal_id}"):
        pairs = client.zrange(key, 0, -1, withscores=True)
        assert len(pairs) > 1 and all(int(m.split("|")[1]) == score for m, score in pairs)
    meta = json.loads(client.get("fmt:meta"))
    client.set("fmt:meta", json.dumps(meta | {"format": 1}))
    with pytest.raises(DataError, match=r"prefix 'fmt'\) holds a state of format 1; this code reads 2"):
        RedisStore.open(redis_server.unix_url, "fmt", w.state_dir, 1)


def test_a_seeder_that_died_half_way_is_replaced(redis_server):
    """Its lock lapses; the next worker clears what it wrote and seeds afresh."""
    w = world()
    client = redis_server.client()
    client.set("d:seeding", "dead-host:1:0", ex=1)
    client.hset("d:tx", "stale", '[0,1,-1,"c","t","1.0"]')
    client.zadd("d:c:stale-customer", {"000000000001|0|1.0|t": 0})
    store = RedisStore.open(redis_server.unix_url, "d", w.state_dir, 1)
    assert store.seeded and not store.has_transaction("stale") and client.exists("d:c:stale-customer") == 0
    assert store.size() == InProcessStore.load(w.state_dir, 1).size()


def test_a_redis_restart_with_its_append_only_file_keeps_the_history(tmp_path):
    """kill -9 of redis-server (appendfsync always): restarted on the same directory it has every
    transaction, label and answer; a worker attaching then scores as before."""
    redis_server_binary()
    import tempfile

    server = RedisServer(Path(tempfile.mkdtemp(prefix="fp-redis-", dir="/tmp")), fsync="always").start()
    w = world()
    try:
        shared = RedisStore.open(server.unix_url, "k", w.state_dir, late_days=1)
        local = InProcessStore.load(w.state_dir, late_days=1)
        for row in w.test.head(200).itertuples():
            shared.add_transaction(scored(transaction(row))), local.add_transaction(scored(transaction(row)))
        tid = str(w.test["transaction_id"].iat[10])
        shared.add_label(tid, 1), local.add_label(tid, 1)
        before = shared.to_in_process().state.history()
        shared.close()
        server.stop(signal.SIGKILL)
        server.start()  # the same port, socket and directory: it replays its AOF
        again = RedisStore.open(server.unix_url, "k", w.state_dir, late_days=1)
        assert not again.seeded
        pd.testing.assert_frame_equal(again.to_in_process().state.history(), before)
        assert again.size() == local.size() and again.get_scored(tid) == local.get_scored(tid)
        for row in w.test.iloc[200:260].itertuples():
            tx = transaction(row)
            assert_same_step(local, again, tx, w.config)
            again.add_transaction(scored(tx)), local.add_transaction(scored(tx))
    finally:
        server.stop()


def test_the_service_log_read_from_redis_is_the_journal_s(redis_server, tmp_path):
    """What monitoring reads (``read_service_log``): the same frames from Redis as from the journal
    of an in-process service that was sent the same requests (the label times aside)."""
    w = world()
    journalled = Service.open(config(tmp_path))
    shared = Service.open(config(tmp_path, store=redis_server.unix_url, redis_prefix="m"))
    assert shared.journal is None and shared.started.seeded
    rows = w.test.head(120)
    for i, row in enumerate(rows.itertuples()):
        given = {"customer_x": 10.5, "customer_y": 20.25} if i % 7 == 3 else {}  # coordinates a request carried
        request = TransactionIn.model_validate(body(row, tx_datetime=row.tx_datetime.to_pydatetime(), **given))
        assert journalled.score(request)[0].score == shared.score(request)[0].score
        if i % 10 == 9:
            label = LabelIn(transaction_id=int(rows["transaction_id"].iat[i - 5]), tx_fraud=i % 20 // 10)
            journalled.label(label), shared.label(label)
    old = LabelIn(transaction_id=int(w.tx[w.tx[TX_DATETIME] < w.cut]["transaction_id"].iat[-1]), tx_fraud=1)
    journalled.label(old), shared.label(old)  # a label for the history the service started from counts too
    journalled.close(), shared.close()
    expected, got = read_service_log(tmp_path / "journal"), read_service_log(redis_server.unix_url, redis_prefix="m")
    assert len(got.scored) == 120 and len(got.labels) == 13
    pd.testing.assert_frame_equal(got.scored, expected.scored)
    assert (got.scored["customer_x"] == 10.5).sum() == len(range(3, 120, 7)) and got.scored["terminal_x"].isna().all()
    pd.testing.assert_frame_equal(got.labels.drop(columns="received_at"), expected.labels.drop(columns="received_at"))
    assert (
        got.labels["received_at"].notna().all()
        and got.labels["received_at"].dtype == expected.labels["received_at"].dtype
    )


def test_a_state_gone_from_redis_is_refused_not_scored_from_nothing(redis_server):
    """Redis flushed (or restarted without its AOF) under a running worker: no score from an empty history."""
    w = world()
    store = RedisStore.open(redis_server.unix_url, "g", w.state_dir, 1)
    tx = transaction(w.test.iloc[0])
    assert store.prepare(tx).history.customer.times  # a known customer, with history
    redis_server.client().flushall()
    with pytest.raises(
        StoreUnavailable,
        match=r"the shared state \(prefix 'g'\) is gone from Redis .*restart `fraudpipe serve` to seed",
    ):
        store.prepare(tx)


def test_an_unreachable_redis_is_one_line_naming_the_url(closed_port):
    w = world()
    url = f"redis://127.0.0.1:{closed_port}/0"
    with pytest.raises(
        ConfigError,
        match=rf"^--store {url}: cannot reach Redis \(ConnectionError: .*start redis-server or fix the URL$",
    ):
        RedisStore.open(url, "x", w.state_dir, 1)
    with pytest.raises(ConfigError, match=rf"^--store {url}: cannot reach Redis"):
        read_redis_log(url)
