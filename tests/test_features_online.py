"""Online features: replaying transactions one by one must give the offline features exactly."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudpipe.errors import DataError
from fraudpipe.features.definitions import FeatureConfig, build_features, feature_names
from fraudpipe.features.online import OnlineState
from helpers.features import (
    CONFIGS,
    DAY,
    EXTENDED,
    HANDBOOK,
    SMALL,
    coordinates,
    features_config,
    frame,
    location_tables,
    make_transactions,
    text_ids,
)

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
        xy = {c: getattr(row, c) for c in ("customer_x", "customer_y", "terminal_x", "terminal_y") if hasattr(row, c)}
        out[i - cut] = state.features(row.customer_id, row.terminal_id, row.tx_datetime, row.tx_amount, **xy)
        state.update(
            row.transaction_id,
            row.customer_id,
            row.terminal_id,
            row.tx_datetime,
            row.tx_amount,
            row.tx_fraud if labels_at_once else None,
            **xy,
        )
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
    probes = [
        (c, t, end + pd.Timedelta(seconds=k * 9_000), 12.5 * k)
        for k, (c, t) in enumerate(zip(tx["customer_id"][:40], tx["terminal_id"][-40:]))
    ]
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


# --- text ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CONFIGS))
def test_replay_with_text_ids_matches_the_int64_offline_features(name: str) -> None:
    """Parity on the same data with text ids (hex hashes, names with commas, "007" beside "7")."""
    config = CONFIGS[name]
    tx = make_transactions(2, n=400, days=45 if config.customer_horizon_days > 7 else 12)
    customers, terminals = location_tables(tx)
    text, text_customers, text_terminals = text_ids(tx, customers, terminals)
    assert {"7", "007"} <= set(text["customer_id"])
    offline = build_features(tx, config, customers, terminals)[feature_names(config)].to_numpy()
    cut = tie_cut(tx)
    online, state = replay(text, cut, config, text_customers, text_terminals)
    assert np.abs(online - offline[cut:]).max() <= TOLERANCE
    assert state.history()["transaction_id"].dtype == "str"


def test_an_integer_id_and_its_text_find_the_same_history() -> None:
    tx = make_transactions(0)
    state = OnlineState.from_history(tx, SMALL, *location_tables(tx))
    c, t = int(tx["customer_id"].iat[-1]), int(tx["terminal_id"].iat[-1])
    when = tx["tx_datetime"].iat[-1] + pd.Timedelta(hours=1)
    as_int = state.features(c, t, when, 10.0)
    np.testing.assert_array_equal(state.features(str(c), str(t), when, 10.0), as_int)
    np.testing.assert_array_equal(state.features(np.int64(c), np.int64(t), when, 10.0), as_int)
    assert as_int[feature_names(SMALL).index("customer_id_nb_tx_1day_window")] > 1
    with pytest.raises(DataError, match="customer_id 0" + str(c) + " has no location"):
        state.features("0" + str(c), t, when, 10.0)  # another card
    tid = tx["transaction_id"].iat[-1]
    assert state.label(str(tid), 1) and state.label(int(tid), 0)
    with pytest.raises(DataError, match=re.escape("must be an integer or a string, got 7.0")):
        state.features(7.0, t, when, 10.0)


def test_text_ids_are_saved_as_text_without_pickle(tmp_path: Path) -> None:
    """A state built from int64 ids that then sees a text id saves that id column as text; loaded
    back, the integer ids (now text in the file) still find their history."""
    tx = make_transactions(5, n=300, days=45)
    state = OnlineState.from_history(tx, HANDBOOK)
    when = tx["tx_datetime"].iat[-1] + pd.Timedelta(seconds=1)
    c = int(tx["customer_id"].iat[-1])
    state.update("fraud_Kirlin, Sporer & Co, 007", "007", "Zürich, Café 3", when, 12.5)
    state.save(tmp_path / "a")
    saved = pd.read_parquet(tmp_path / "a/history.parquet")
    assert {col: str(saved[col].dtype) for col in ("transaction_id", "customer_id", "terminal_id")} == dict.fromkeys(
        ("transaction_id", "customer_id", "terminal_id"), "str"
    )
    assert {"007", str(c)} <= set(saved["customer_id"])
    for path in (tmp_path / "a").iterdir():
        assert b"pickle" not in path.read_bytes().lower() and not path.read_bytes().startswith(b"\x80")
    loaded = OnlineState.load(tmp_path / "a")
    pd.testing.assert_frame_equal(loaded.history(), state.history())
    later = when + pd.Timedelta(hours=2)
    for probe in [
        (c, 1, later, 3.0),
        (str(c), "1", later, 3.0),
        ("007", "Zürich, Café 3", later, 1.0),
        (7, 1, later, 1.0),
    ]:
        np.testing.assert_array_equal(loaded.features(*probe), state.features(*probe))
    assert loaded.features("007", 1, later, 1.0)[3] == 2  # its earlier transaction counts
    assert loaded.features(7, 1, later, 1.0)[3] == state.features("7", 1, later, 1.0)[3]


def test_int64_ids_are_saved_as_int64(tmp_path: Path) -> None:
    tx = make_transactions(5, n=200, days=20)
    OnlineState.from_history(tx, HANDBOOK).save(tmp_path)
    saved = pd.read_parquet(tmp_path / "history.parquet")
    assert [str(saved[col].dtype) for col in ("transaction_id", "customer_id", "terminal_id")] == ["int64"] * 3


# --- per-transaction coordinates ---------------------------------------------------------------


@pytest.mark.parametrize("missing", [0.0, 0.4])
def test_replay_with_coordinates_matches_offline(missing: float) -> None:
    """Coordinates sent with each transaction (some rows without: the last known ones count)."""
    tx = coordinates(make_transactions(2, n=400, days=45), seed=2, missing=missing)
    customers, terminals = location_tables(tx)
    (text,) = text_ids(tx)
    for data, tables in ((tx, (customers, terminals)), (text, ())):
        if missing and not tables:  # no side table to fall back on: give the first row of each id its coordinates
            first = data.groupby("customer_id").head(1).index.union(data.groupby("terminal_id").head(1).index)
            data = data.copy()
            data.loc[first, ["customer_x", "customer_y", "terminal_x", "terminal_y"]] = 2.5
        offline = build_features(data, EXTENDED, *tables)[feature_names(EXTENDED)].to_numpy()
        online, _ = replay(data, 150, EXTENDED, *tables)
        assert np.abs(online - offline[150:]).max() <= TOLERANCE


def test_coordinates_a_transaction_carries_become_the_last_known(tmp_path: Path) -> None:
    config = features_config(customer_windows=(1,), terminal_windows=(1,), extras=("customer_terminal_distance",))
    state = OnlineState(config)  # no side tables: locations come with transactions
    at = pd.Timestamp("2018-04-02")
    with pytest.raises(
        DataError, match=r"customer_id abc has no location: the transaction carries no customer_x, customer_y"
    ):
        state.features("abc", "m1", at, 1.0)
    assert (
        state.features("abc", "m1", at, 1.0, customer_x=0.0, customer_y=0.0, terminal_x=3.0, terminal_y=4.0)[-1] == 5.0
    )
    state.update("t1", "abc", "m1", at, 1.0, customer_x=0.0, customer_y=0.0, terminal_x=3.0, terminal_y=4.0)
    assert state.features("abc", "m1", at, 1.0)[-1] == 5.0  # the last known ones
    nan = float("nan")
    assert (
        state.features("abc", "m1", at, 1.0, customer_x=nan, customer_y=nan, terminal_x=None, terminal_y=None)[-1]
        == 5.0
    )  # NaN: not carried
    state.update("t2", "abc", "m2", at, 1.0, customer_x=6.0, customer_y=8.0, terminal_x=6.0, terminal_y=8.0)
    assert state.features("abc", "m1", at, 1.0)[-1] == 5.0  # customer moved to (6, 8), m1 is at (3, 4)
    with pytest.raises(DataError, match="customer_x and customer_y come in pairs"):
        state.features("abc", "m1", at, 1.0, customer_x=1.0)
    with pytest.raises(DataError, match="must be finite"):
        state.update(
            "t3", "abc", "m1", at, 1.0, customer_x=9.0, customer_y=9.0, terminal_x=float("inf"), terminal_y=0.0
        )
    assert (
        not state.label("t3", 0) and state.features("abc", "m1", at, 1.0)[-1] == 5.0
    )  # refused whole: nothing changed
    state.save(tmp_path)
    assert pd.read_parquet(tmp_path / "customers.parquet").to_dict("list") == {
        "customer_id": ["abc"],
        "x": [6.0],
        "y": [8.0],
    }
    assert pd.read_parquet(tmp_path / "terminals.parquet")["terminal_id"].tolist() == ["m1", "m2"]
    np.testing.assert_array_equal(
        OnlineState.load(tmp_path).features("abc", "m1", at, 1.0), state.features("abc", "m1", at, 1.0)
    )


def test_from_history_knows_the_last_coordinates_of_each_id() -> None:
    tx = coordinates(make_transactions(3), seed=3)
    state = OnlineState.from_history(tx, features_config(extras=("customer_terminal_distance",)))
    last = tx.groupby("customer_id").tail(1).iloc[0]
    other = tx.groupby("terminal_id").tail(1).iloc[0]
    expected = np.hypot(last["customer_x"] - other["terminal_x"], last["customer_y"] - other["terminal_y"])
    assert state.features(last["customer_id"], other["terminal_id"], "2018-06-01", 1.0)[-1] == expected


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_save_history_writes_the_files_from_history_then_save_writes(tmp_path: Path, name: str) -> None:
    """featurize's shortcut: byte for byte the snapshot of the state built row by row, with int64
    and text ids, with and without labels and locations, and for an empty table."""
    config = CONFIGS[name]
    tx = make_transactions(7, n=400, days=90)  # longer than any retention: old rows are left out
    customers, terminals = location_tables(tx)
    text, *text_tables = text_ids(tx, customers, terminals)
    unlabelled = tx.assign(tx_fraud=tx["tx_fraud"].astype("Int8").mask(tx.index % 3 == 0))
    tables = (customers, terminals)
    cases = {
        "int": (tx, tables),
        "text": (text, text_tables),
        "unlabelled": (unlabelled, tables),
        "no labels": (tx.drop(columns="tx_fraud"), tables),
        "empty": (tx.iloc[:0], tables),
    }
    for case, (data, tables) in cases.items():
        built = OnlineState.from_history(data, config, *tables)
        built.save(tmp_path / case / "built")
        as_of = OnlineState.save_history(data, config, tmp_path / case / "direct", *tables)
        assert as_of == built.as_of, case
        assert _digests(tmp_path / case / "direct") == _digests(tmp_path / case / "built"), case
    assert len(pd.read_parquet(tmp_path / "int/direct/history.parquet")) < len(tx)


def test_save_history_with_locations_the_transactions_carry(tmp_path: Path) -> None:
    config = features_config(extras=("customer_terminal_distance",))
    tx = coordinates(make_transactions(3, n=300, days=60), seed=3, missing=0.3)
    customers, terminals = location_tables(tx)
    OnlineState.from_history(tx, config, customers, terminals).save(tmp_path / "built")
    OnlineState.save_history(tx, config, tmp_path / "direct", customers, terminals)
    assert _digests(tmp_path / "direct") == _digests(tmp_path / "built")
    assert sorted(_digests(tmp_path / "direct")) == [
        "customers.parquet",
        "history.parquet",
        "state.json",
        "terminals.parquet",
    ]
