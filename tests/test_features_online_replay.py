"""`features.online.replay`: the parity stage's replay, features only, equal to the offline table."""

from __future__ import annotations

import numpy as np

from fraudpipe.features.definitions import build_features, feature_names
from fraudpipe.features.online import OnlineState
from fraudpipe.features.online.replay import replay_features, replay_rows
from helpers.features import EXTENDED, HANDBOOK, location_tables, make_transactions


def test_the_features_alone_equal_the_offline_table_and_the_state_takes_every_row():
    tx = make_transactions(3, n=400, days=45)
    cut = len(tx) * 2 // 3
    customers, terminals = location_tables(tx)
    state = OnlineState.from_history(tx.iloc[:cut], EXTENDED, customers, terminals)
    replayed = replay_features(EXTENDED, state, tx.iloc[cut:])
    offline = build_features(tx, EXTENDED, customers, terminals).set_index("transaction_id")
    expected = offline.loc[replayed.transaction_ids, feature_names(EXTENDED)].to_numpy(np.float64)
    np.testing.assert_allclose(replayed.features, expected, rtol=0, atol=1e-9)
    assert replayed.transaction_ids.tolist() == tx["transaction_id"].iloc[cut:].tolist()
    assert np.isnan(replayed.scores).all() and (replayed.latency_ms > 0).all()
    assert state.as_of == tx["tx_datetime"].max()  # each was added after its features


def test_a_step_sees_each_transaction_before_it_is_added():
    tx = make_transactions(4, n=60, days=10)
    state = OnlineState.from_history(tx.iloc[:10], HANDBOOK)
    seen: list[tuple[float, int]] = []

    def step(history, t, amount, coordinates):
        seen.append((amount, len(history.customer.times)))
        return np.full(1, amount), float(len(seen))

    out = replay_rows(state, tx.iloc[10:], 1, step)
    assert out.scores.tolist() == [float(i) for i in range(1, 51)]
    assert out.features[:, 0].tolist() == tx["tx_amount"].iloc[10:].astype(float).tolist()
    # a customer's later transaction in the replay finds the earlier one in its history
    customers = tx["customer_id"].iloc[10:].tolist()
    first = next(i for i, c in enumerate(customers) if customers.count(c) > 1)
    again = customers.index(customers[first], first + 1)
    assert seen[again][1] >= seen[first][1] + 1
