"""Online features: replaying transactions one by one must give the offline features exactly."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_features import CONFIGS, DAY, EXTENDED, HANDBOOK, SMALL, features_config, frame, location_tables, make_transactions

from fraudpipe.errors import DataError
from fraudpipe.features import FeatureConfig, build_features, feature_names
from fraudpipe.online import OnlineState

TOLERANCE = 1e-9


def seconds_of(tx: pd.DataFrame) -> np.ndarray:
    return tx["tx_datetime"].to_numpy().astype("datetime64[s]").astype(np.int64)


def replay(
    tx: pd.DataFrame, cut: int, config: FeatureConfig, customers=None, terminals=None, labels_at_once: bool = False
) -> tuple[np.ndarray, OnlineState]:
    """Online features of rows cut.. with the state built from rows ..cut.

    Each test transaction is featurized, then added without its label; a label is added once its
    transaction is older than the delay (or at once with ``labels_at_once``: the delay must then
    be enforced by the state itself).
    """
    state = OnlineState.from_history(tx.iloc[:cut], config, customers, terminals)
    s, d = seconds_of(tx), config.delay_days * DAY
    known = cut
    out = np.empty((len(tx) - cut, len(feature_names(config))))
    for i, row in enumerate(tx.iloc[cut:].itertuples(index=False), start=cut):
        while not labels_at_once and known < i and s[known] <= s[i] - d:
            assert state.label(tx["transaction_id"].iat[known], tx["tx_fraud"].iat[known])
            known += 1
        out[i - cut] = state.features(row.customer_id, row.terminal_id, row.tx_datetime, row.tx_amount)
        state.update(
            row.transaction_id, row.customer_id, row.terminal_id, row.tx_datetime, row.tx_amount,
            row.tx_fraud if labels_at_once else None,
        )  # fmt: skip
    return out, state


def tie_cut(tx: pd.DataFrame) -> int:
    """A cut in the middle of a same-second, same-customer group: history and test share a second."""
    s = pd.Series(seconds_of(tx))
    group = tx.assign(s=s).groupby(["customer_id", "s"]).cumcount()
    candidates = np.flatnonzero((group.to_numpy() == 1) & (np.arange(len(tx)) > len(tx) // 3))
    return int(candidates[0])


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("labels_at_once", [False, True])
def test_replay_matches_offline(name: str, labels_at_once: bool) -> None:
    config = CONFIGS[name]
    tx = make_transactions(2, n=400, days=45 if config.customer_horizon_days > 7 else 12)
    customers, terminals = location_tables(tx)
    offline = build_features(tx, config, customers, terminals)[feature_names(config)].to_numpy()
    cut = tie_cut(tx)
    online, _ = replay(tx, cut, config, customers, terminals, labels_at_once)
    diff = np.abs(online - offline[cut:])
    worst = np.unravel_index(diff.argmax(), diff.shape)
    assert diff.max() <= TOLERANCE, f"row {cut + worst[0]}, {feature_names(config)[worst[1]]}: {diff.max()}"

    # the replayed period really covers ties and window edges (else the test proves little)
    test, s = tx.iloc[cut:], pd.Series(seconds_of(tx))
    assert tx.assign(s=s).iloc[cut:].duplicated(["customer_id", "s"]).sum() >= 1
    rows = tx.assign(s=s, i=np.arange(len(tx)))
    for key, edges in [
        ("customer_id", [n * DAY for n in config.customer_windows]),
        ("terminal_id", [config.delay_days * DAY] if config.delay_days else []),
        ("terminal_id", [(config.delay_days + n) * DAY for n in config.terminal_windows]),
    ]:
        pairs = rows.merge(rows, on=key)
        assert ((pairs["i_y"] >= cut) & (pairs["s_y"] - pairs["s_x"]).isin(edges)).any() or not edges, (key, edges)
    assert len(test) >= 100


def test_parity_across_pruning() -> None:
    """A long replay with short windows: the state forgets old transactions without changing a feature."""
    tx = make_transactions(4, n=500, days=40)
    customers, terminals = location_tables(tx)
    offline = build_features(tx, SMALL, customers, terminals)[feature_names(SMALL)].to_numpy()
    online, state = replay(tx, 50, SMALL, customers, terminals)
    assert np.abs(online - offline[50:]).max() <= TOLERANCE
    kept = state.history()
    horizon = pd.Timestamp(state.as_of) - pd.Timedelta(days=SMALL.retention_days)
    assert len(kept) < len(tx) / 3 and (kept["tx_datetime"] >= horizon - pd.Timedelta(days=1)).all()


def test_save_load_round_trip(tmp_path: Path) -> None:
    tx = make_transactions(5, n=400, days=45)
    customers, terminals = location_tables(tx)
    _, state = replay(tx, 200, EXTENDED, customers, terminals)
    state.save(tmp_path / "a")
    loaded = OnlineState.load(tmp_path / "a")
    assert loaded.as_of == state.as_of and loaded.feature_names == state.feature_names
    pd.testing.assert_frame_equal(loaded.history(), state.history())
    end = tx["tx_datetime"].iat[-1]
    probes = [(c, t, end + pd.Timedelta(seconds=k * 9_000), 12.5 * k) for k, (c, t) in enumerate(zip(tx["customer_id"][:40], tx["terminal_id"][-40:]))]
    for probe in probes:
        np.testing.assert_array_equal(loaded.features(*probe), state.features(*probe))
    loaded.save(tmp_path / "b")  # deterministic, and no pickle anywhere
    digest = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "a").iterdir()}
    assert digest == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "b").iterdir()}
    assert sorted(digest) == ["customers.parquet", "history.parquet", "state.json", "terminals.parquet"]


def test_history_equals_replay() -> None:
    """from_history on the whole table and a replay of it end in states that featurize alike."""
    tx = make_transactions(6, n=300, days=45)
    _, replayed = replay(tx, 100, HANDBOOK, labels_at_once=True)
    built = OnlineState.from_history(tx, HANDBOOK)
    end = tx["tx_datetime"].iat[-1]
    for k in range(30):
        probe = (tx["customer_id"].iat[k], tx["terminal_id"].iat[-k - 1], end + pd.Timedelta(hours=k * 7), 40.0 + k)
        np.testing.assert_array_equal(built.features(*probe), replayed.features(*probe))


def test_labels_wait_for_the_delay() -> None:
    config = features_config(customer_windows=(1,), terminal_windows=(1,), delay_days=1)
    state = OnlineState.from_history(frame([0], [1], [5], [10.0], [1]), config)
    at = pd.Timestamp("2018-04-01")
    assert state.features(2, 5, at + pd.Timedelta(hours=23), 1.0)[-2:].tolist() == [0, 0]  # younger than the delay
    assert state.features(2, 5, at + pd.Timedelta(days=1), 1.0)[-2:].tolist() == [1, 1]  # exactly d old: counts
    state.update(7, 3, 5, at + pd.Timedelta(hours=1), 20.0)  # no label yet
    assert state.features(2, 5, at + pd.Timedelta(days=1, hours=2), 1.0)[-2:].tolist() == [2, 0.5]
    assert state.label(7, 1)
    assert state.features(2, 5, at + pd.Timedelta(days=1, hours=2), 1.0)[-2:].tolist() == [2, 1.0]
    state.update(7, 3, 5, at + pd.Timedelta(hours=1), 20.0, tx_fraud=0)  # a re-sent transaction only relabels
    assert state.features(2, 5, at + pd.Timedelta(days=1, hours=2), 1.0)[-2:].tolist() == [2, 0.5]
    assert not state.label(999, 1)
    with pytest.raises(DataError, match="0 or 1"):
        state.label(7, 2)


def test_new_keys_and_datetime_forms() -> None:
    state = OnlineState.from_history(make_transactions(0), HANDBOOK)
    naive = state.features(424242, 434343, "2018-04-20T03:00:00", 55.0)
    assert naive.tolist() == [55.0, 0.0, 1.0, 1, 55.0, 1, 55.0, 1, 55.0, 0, 0, 0, 0, 0, 0]  # a Friday night
    aware = pd.Timestamp("2018-04-20T05:00:00+02:00")
    np.testing.assert_array_equal(state.features(424242, 434343, aware, 55.0), naive)
    np.testing.assert_array_equal(state.features(424242, 434343, np.datetime64("2018-04-20T03:00:00.9"), 55.0), naive)


def test_missing_locations_fail_clearly() -> None:
    tx = make_transactions(0)
    with pytest.raises(DataError, match="needs customer locations"):
        OnlineState.from_history(tx, EXTENDED)
    customers, terminals = location_tables(tx)
    state = OnlineState.from_history(tx, EXTENDED, customers, terminals)
    with pytest.raises(DataError, match="customer_id 987654 has no location"):
        state.features(987654, int(terminals["terminal_id"].iat[0]), "2018-05-01", 1.0)
