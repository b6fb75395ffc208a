"""The in-process state store: the StateStore interface over OnlineState, and its snapshot."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from fraudpipe.features.online import History, OnlineState, history_features
from fraudpipe.serve.stores.base import Scored, StateStore, Transaction, epoch_second
from fraudpipe.serve.stores.memory import InProcessStore
from helpers.serve import world


def record(row, score: float = 0.5, tid: str | None = None) -> Scored:
    when = pd.Timestamp(row.tx_datetime).to_pydatetime()
    tx = Transaction(
        tid or str(row.transaction_id),
        str(row.customer_id),
        str(row.terminal_id),
        when,
        epoch_second(when),
        float(row.tx_amount),
    )
    return Scored(tx, score, score >= 0.5, 0.5, "xgboost-0123456789ab")


def test_epoch_second_counts_time_as_the_features_do():
    stamps = pd.to_datetime(
        ["2018-05-01 10:00:00.999999", "1970-01-01 00:00:00.000000", "2018-09-30 23:59:48.000000"]
    ).astype("datetime64[us]")
    expected = stamps.to_numpy().astype("datetime64[s]").astype(np.int64).tolist()
    assert [epoch_second(t.to_pydatetime()) for t in stamps] == expected


def test_the_store_is_a_state_store_whose_histories_give_the_online_features():
    w = world()
    store: StateStore = InProcessStore.load(w.state_dir, late_days=1)
    state = OnlineState.load(w.state_dir, late_days=1)
    for row in w.test.head(50).itertuples():
        t = epoch_second(pd.Timestamp(row.tx_datetime).to_pydatetime())
        history = store.get_history(str(row.customer_id), str(row.terminal_id), t)
        assert isinstance(history, History)
        features = history_features(store.config, history, t, float(row.tx_amount))
        np.testing.assert_array_equal(
            features, state.features(row.customer_id, row.terminal_id, row.tx_datetime, row.tx_amount)
        )
        np.testing.assert_allclose(features, w.offline_row(row.transaction_id), rtol=0, atol=1e-9)
        store.add_transaction(record(row))
        state.update(row.transaction_id, row.customer_id, row.terminal_id, row.tx_datetime, row.tx_amount)


def test_answers_labels_and_snapshot_round_trip(tmp_path):
    w = world()
    store = InProcessStore.load(w.state_dir, late_days=1)
    rows = w.test.head(20)
    for i, row in enumerate(rows.itertuples()):
        store.add_transaction(record(row, score=i / 20))
    first = str(rows["transaction_id"].iat[0])
    assert store.get_scored(first).score == 0.0 and store.get_scored("nope") is None
    assert store.has_transaction(first) and not store.has_transaction("nope")
    old = str(w.tx[w.tx["tx_datetime"] < w.cut]["transaction_id"].iat[-1])
    assert store.has_transaction(old) and store.get_scored(old) is None  # in the history, never scored here
    assert store.add_label(first, 1) and not store.add_label("nope", 1)
    store.save(tmp_path / "snap")
    loaded = InProcessStore.load(tmp_path / "snap", late_days=1)
    assert {k: loaded.get_scored(k) for k in map(str, rows["transaction_id"])} == {
        k: store.get_scored(k) for k in map(str, rows["transaction_id"])
    }
    assert loaded.state.label_of(first) == 1 and loaded.size() == store.size()
    assert loaded.earliest_exact() == store.earliest_exact()
    pd.testing.assert_frame_equal(loaded.state.history(), store.state.history())


def test_answers_are_forgotten_with_their_transactions():
    """The store keeps the answer to a retry only while the transaction is in the history."""
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
    assert config.retention_days == 2
    store = InProcessStore(OnlineState(config, late_days=1))
    start = datetime(2018, 5, 1)
    for day in range(6):
        when = start + timedelta(days=day)
        tx = Transaction(f"d{day}", "c", "t", when, epoch_second(when), 10.0)
        store.add_transaction(Scored(tx, 0.1, False, 0.5, "v"))
    # kept: what is newer than retention_days + late_days = 3 days before the newest
    assert [store.get_scored(f"d{d}") is not None for d in range(6)] == [False, False, False, True, True, True]
    assert [store.has_transaction(f"d{d}") for d in range(6)] == [False, False, False, True, True, True]
    assert store.earliest_exact() == epoch_second(start + timedelta(days=4))  # a day before the newest
