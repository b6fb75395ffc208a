"""Offline features against a deliberately naive implementation (plain loops over rows)."""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import get_args

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraudpipe.contract import KEY_COLUMNS, feature_columns
from fraudpipe.errors import ConfigError, DataError
from fraudpipe.features import windows
from fraudpipe.features.definitions import (
    EXTRAS,
    Extra,
    FeatureConfig,
    build_features,
    feature_names,
)
from fraudpipe.features.online import OnlineState
from fraudpipe.io import write_parquet
from helpers.features import (
    CONFIGS,
    DAY,
    EXTENDED,
    HANDBOOK,
    HANDBOOK_CONF,
    ROOT,
    SMALL,
    coordinates,
    features_config,
    frame,
    location_tables,
    make_transactions,
    text_ids,
)

# --- the naive reference -----------------------------------------------------------------------


def naive_features(tx: pd.DataFrame, config: FeatureConfig, customers=None, terminals=None) -> pd.DataFrame:
    """The definitions read literally: for each row, scan every row before it (table order)."""
    rows = list(tx.itertuples(index=False))
    epoch = pd.Timestamp("1970-01-01")
    t = [(pd.Timestamp(r.tx_datetime) - epoch) // pd.Timedelta(seconds=1) for r in rows]
    fraud = [0 if pd.isna(r.tx_fraud) else int(r.tx_fraud) for r in rows]
    cxy = {} if customers is None else {r.customer_id: (r.x, r.y) for r in customers.itertuples()}
    txy = {} if terminals is None else {r.terminal_id: (r.x, r.y) for r in terminals.itertuples()}
    last = {"customer": dict(cxy), "terminal": dict(txy)}  # the side tables, then what earlier rows carried

    def where(r, side: str) -> tuple[float, float]:
        """A row's own coordinates of one side if it carries them, else the last known of its id."""
        own = (getattr(r, f"{side}_x", math.nan), getattr(r, f"{side}_y", math.nan))
        if not math.isnan(own[0]):
            last[side][getattr(r, f"{side}_id")] = own
        return last[side][getattr(r, f"{side}_id")]

    def customer_window(i: int, n: int) -> list[int]:
        """Row i and the rows before it of its customer within the last n days."""
        return [j for j in range(i + 1) if rows[j].customer_id == rows[i].customer_id and t[i] - n * DAY < t[j] <= t[i]]

    def mean(window: list[int]) -> float:
        return math.fsum(rows[j].tx_amount for j in window) / len(window)

    d = config.delay_days
    out = []
    for i, r in enumerate(rows):
        when = pd.Timestamp(r.tx_datetime)
        f = {
            "tx_amount": r.tx_amount,
            "tx_during_weekend": float(when.weekday() >= 5),
            "tx_during_night": float(when.hour <= 6),
        }
        for n in config.customer_windows:
            w = customer_window(i, n)
            f[f"customer_id_nb_tx_{n}day_window"] = len(w)
            f[f"customer_id_avg_amount_{n}day_window"] = mean(w)
        for n in config.terminal_windows:
            w = [
                j
                for j in range(i)
                if rows[j].terminal_id == r.terminal_id and t[i] - (d + n) * DAY < t[j] <= t[i] - d * DAY
            ]
            f[f"terminal_id_nb_tx_{n}day_window"] = len(w)
            f[f"terminal_id_risk_{n}day_window"] = sum(fraud[j] for j in w) / len(w) if w else 0.0
        for n in config.extra_windows:
            w = customer_window(i, n)
            if "amount_ratio" in config.extras:
                m = mean(w)
                f[f"customer_id_amount_ratio_{n}day_window"] = r.tx_amount / m if m > 0 else 1.0
            if "amount_zscore" in config.extras:
                cents = [round(rows[j].tx_amount * 100) for j in w]
                mu = Fraction(sum(cents), len(cents))
                var = sum((Fraction(c) - mu) ** 2 for c in cents) / len(cents)
                f[f"customer_id_amount_zscore_{n}day_window"] = (
                    float(round(r.tx_amount * 100) - mu) / math.sqrt(var) if var else 0.0
                )
            if "nb_terminals" in config.extras:
                f[f"customer_id_nb_terminals_{n}day_window"] = len({rows[j].terminal_id for j in w})
        if "seconds_since_prev_tx" in config.extras:
            cap = config.customer_horizon_days * DAY
            prev = [j for j in range(i) if rows[j].customer_id == r.customer_id]
            f["customer_id_seconds_since_prev_tx"] = min(t[i] - t[prev[-1]], cap) if prev else cap
        if "customer_terminal_distance" in config.extras:
            (ax, ay), (bx, by) = where(r, "customer"), where(r, "terminal")
            f["customer_terminal_distance"] = math.sqrt((ax - bx) ** 2 + (ay - by) ** 2)
        out.append(f)
    return pd.DataFrame(out, columns=feature_names(config), dtype=np.float64)


def assert_same_features(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    for column in want.columns:
        np.testing.assert_allclose(
            got[column].to_numpy(), want[column].to_numpy(), rtol=1e-9, atol=1e-9, err_msg=column
        )


# --- against the naive reference -----------------------------------------------------------------


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_naive_implementation(name: str, seed: int) -> None:
    config = CONFIGS[name]
    tx = make_transactions(seed, days=45 if config.customer_horizon_days > 7 else 12)
    customers, terminals = location_tables(tx, seed)
    got = build_features(tx, config, customers, terminals)
    assert_same_features(got[feature_names(config)], naive_features(tx, config, customers, terminals))
    pd.testing.assert_frame_equal(got[list(KEY_COLUMNS)], tx[list(KEY_COLUMNS)])


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_chunked_window_search_matches_naive(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    """Window starts are searched a chunk of rows at a time (4,096 on real data); small chunks put
    chunk edges everywhere."""
    monkeypatch.setattr(windows, "_SEARCH_CHUNK", chunk)
    tx = make_transactions(2, days=45)
    customers, terminals = location_tables(tx, 2)
    got = build_features(tx, EXTENDED, customers, terminals)[feature_names(EXTENDED)]
    assert_same_features(got, naive_features(tx, EXTENDED, customers, terminals))


def test_generated_data_has_every_edge() -> None:
    """Guards the naive comparison: the data must keep exercising ties and window edges."""
    tx = make_transactions(0)
    s = (tx["tx_datetime"] - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
    tx = tx.assign(s=s)
    assert tx.duplicated(["customer_id", "s"]).sum() >= 3  # same-second ties within a customer
    assert tx.duplicated(["terminal_id", "s"]).sum() >= 3
    assert not tx["transaction_id"].is_monotonic_increasing  # ties are ordered by id, not by row creation
    pairs = tx.merge(tx, on=["customer_id", "terminal_id"])
    gaps = set((pairs["s_y"] - pairs["s_x"]).tolist())
    assert {d * DAY for d in (1, 2, 3, 4, 7, 8, 9)} <= gaps  # exactly n days and d + n days apart
    counts = tx["customer_id"].value_counts()
    assert (counts == 1).any() and (tx["terminal_id"].value_counts() == 1).any()


def test_ties_and_edges_by_hand() -> None:
    """The tie rule on a table small enough to read: earlier rows in (time, id) order count, later ones never."""
    s = [0, 0, 0, DAY, DAY + 1]
    tx = frame(
        s, customer=[7, 7, 8, 7, 7], terminal=[1, 1, 1, 1, 1], amount=[10, 20, 99, 30, 40], fraud=[1, 0, 0, 0, 0]
    )
    config = features_config(customer_windows=(1,), terminal_windows=(1,), delay_days=1)
    got = build_features(tx, config)
    assert got["customer_id_nb_tx_1day_window"].tolist() == [1, 2, 1, 1, 2]  # (t - 1 day, t]: 0 is out at t = 1 day
    assert got["customer_id_avg_amount_1day_window"].tolist() == [10, 15, 99, 30, 35]
    # terminal, delay 1 day: (t - 2 days, t - 1 day]; at t = 1 day the three rows at 0 are exactly on the edge
    assert got["terminal_id_nb_tx_1day_window"].tolist() == [0, 0, 0, 3, 3]
    assert got["terminal_id_risk_1day_window"].tolist() == [0, 0, 0, 1 / 3, 1 / 3]
    no_delay = build_features(tx, features_config(customer_windows=(), terminal_windows=(1,), delay_days=0))
    assert no_delay["terminal_id_nb_tx_1day_window"].tolist() == [
        0,
        1,
        2,
        0,
        1,
    ]  # strictly earlier rows, (t - 1 day, t]


# --- properties ----------------------------------------------------------------------------------

#: Times on a coarse grid (quarter days) plus a few seconds: ties and exact n-day gaps are common.
_rows = st.lists(
    st.tuples(
        st.integers(0, 3),  # customer
        st.integers(0, 3),  # terminal
        st.integers(0, 40).map(lambda q: q * DAY // 4) | st.integers(0, 10 * DAY),
        st.integers(0, 50_000).map(lambda c: c / 100),
        st.booleans(),
    ),
    min_size=1,
    max_size=40,
)


def _from_rows(rows) -> pd.DataFrame:
    c, t, s, a, f = zip(*rows)
    return frame(s, c, t, a, f, tid=np.random.default_rng(len(rows)).permutation(len(rows)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_rows)
def test_property_matches_naive(rows) -> None:
    tx = _from_rows(rows)
    customers, terminals = location_tables(tx)
    assert_same_features(
        build_features(tx, SMALL, customers, terminals)[feature_names(SMALL)],
        naive_features(tx, SMALL, customers, terminals),
    )


@settings(max_examples=40, deadline=None)
@given(_rows, st.integers(1, 40))
def test_property_later_rows_never_change_earlier_features(rows, cut) -> None:
    """Causality: the features of a prefix are the first rows of the features of the whole."""
    tx = _from_rows(rows)
    customers, terminals = location_tables(tx)
    whole = build_features(tx, SMALL, customers, terminals)
    head = build_features(tx.iloc[:cut].reset_index(drop=True), SMALL, customers, terminals)
    pd.testing.assert_frame_equal(head, whole.iloc[: len(head)].reset_index(drop=True))


@settings(max_examples=40, deadline=None)
@given(_rows, st.permutations(range(4)), st.permutations(range(4)))
def test_property_ids_are_only_names(rows, new_customer, new_terminal) -> None:
    tx = _from_rows(rows)
    renamed = tx.assign(
        customer_id=np.asarray(new_customer)[tx["customer_id"]] * 1_000_003,
        terminal_id=np.asarray(new_terminal)[tx["terminal_id"]] - 17,
    )
    config = features_config(
        customer_windows=(1, 3), terminal_windows=(1,), delay_days=1, extras=("nb_terminals",), extra_windows=(2,)
    )
    a, b = build_features(tx, config), build_features(renamed, config)
    pd.testing.assert_frame_equal(a[feature_names(config)], b[feature_names(config)])


@settings(max_examples=40, deadline=None)
@given(_rows)
def test_property_bounds(rows) -> None:
    got = build_features(_from_rows(rows), SMALL, *location_tables(_from_rows(rows)))
    assert (got.filter(like="risk") >= 0).all().all() and (got.filter(like="risk") <= 1).all().all()
    assert (got.filter(like="customer_id_nb_tx") >= 1).all().all()
    assert (got["customer_id_nb_tx_1day_window"] <= got["customer_id_nb_tx_3day_window"]).all()
    assert (got["customer_id_nb_terminals_2day_window"] <= got["customer_id_nb_terminals_4day_window"]).all()


# --- contract, config, errors --------------------------------------------------------------------


def test_table_contract_and_order() -> None:
    tx = make_transactions(3)
    got = build_features(tx, EXTENDED, *location_tables(tx))
    assert list(got.columns[: len(KEY_COLUMNS)]) == list(KEY_COLUMNS)
    assert feature_columns(got) == feature_names(EXTENDED)
    assert feature_names(EXTENDED)[0] == "tx_amount"
    assert (got.dtypes[feature_names(EXTENDED)] == np.float64).all()
    assert got["tx_datetime"].dtype == "datetime64[us]" and got["tx_fraud"].dtype == np.int8


def test_handbook_feature_names() -> None:
    assert feature_names(HANDBOOK) == [
        "tx_amount",
        "tx_during_weekend",
        "tx_during_night",
        "customer_id_nb_tx_1day_window",
        "customer_id_avg_amount_1day_window",
        "customer_id_nb_tx_7day_window",
        "customer_id_avg_amount_7day_window",
        "customer_id_nb_tx_30day_window",
        "customer_id_avg_amount_30day_window",
        "terminal_id_nb_tx_1day_window",
        "terminal_id_risk_1day_window",
        "terminal_id_nb_tx_7day_window",
        "terminal_id_risk_7day_window",
        "terminal_id_nb_tx_30day_window",
        "terminal_id_risk_30day_window",
    ]


def test_conf_options_share_keys_and_parse() -> None:
    options = {p.stem: yaml.safe_load(p.read_text()) for p in sorted((ROOT / "conf/features").glob("*.yaml"))}
    assert {"handbook", "extended"} <= set(options)
    assert len({tuple(sorted(o)) for o in options.values()}) == 1  # a sweep over features=... needs equal keys
    handbook, extended = (FeatureConfig.parse(options[n], "features") for n in ("handbook", "extended"))
    assert len(feature_names(handbook)) == 15
    names = feature_names(extended)
    assert set(feature_names(handbook)) <= set(names) and len(names) > 15  # every handbook feature, and more
    assert names[:3] == ["tx_amount", "tx_during_weekend", "tx_during_night"]
    assert extended.name == "extended" and extended.to_dict() == options["extended"]  # `set` in, `set` out
    assert FeatureConfig.parse(extended.to_dict(), "features") == extended


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"colour": "red"},
            "features.colour: unknown key "
            "(known keys: customer_windows, delay_days, extra_windows, extras, set, terminal_windows)",
        ),
        (
            {"extras": ["velocity"]},
            "features.extras[0]: must be one of 'amount_ratio', 'amount_zscore', 'nb_terminals', "
            "'seconds_since_prev_tx' or 'customer_terminal_distance', got 'velocity'",
        ),
        ({"extras": "nb_terminals"}, "features.extras: must be a list, got 'nb_terminals'"),
        ({"customer_windows": [7, 0]}, "features.customer_windows[1]: must be >= 1, got 0"),
        ({"terminal_windows": [7, 7]}, "features.terminal_windows: must not repeat a window, got [7, 7]"),
        ({"delay_days": -1}, "features.delay_days: must be >= 0, got -1"),
        ({"delay_days": 1.5}, "features.delay_days: must be a whole number, got 1.5"),
        (
            {"customer_windows": [], "extras": ["seconds_since_prev_tx"]},
            "features.extras: 'seconds_since_prev_tx' is capped at the longest customer window",
        ),
    ],
)
def test_bad_config_names_the_full_key_and_the_value(change: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        FeatureConfig.parse(HANDBOOK_CONF | change, "features")
    assert message in str(err.value)


def test_the_extras_type_spells_out_every_extra_in_order() -> None:
    assert get_args(Extra) == EXTRAS


def test_unsorted_input_names_the_rows() -> None:
    tx = make_transactions(0)
    swapped = tx.iloc[[0, 2, 1, *range(3, len(tx))]].reset_index(drop=True)
    with pytest.raises(DataError, match=r"sorted by \(tx_datetime, transaction_id\).*positions \[2\]"):
        build_features(swapped, HANDBOOK)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda tx: tx.drop(columns="terminal_id"), "lacks column.*terminal_id"),
        (
            lambda tx: tx.assign(tx_amount=tx["tx_amount"].where(tx.index != 4)),
            "'tx_amount' is missing in 1 row.*positions \\[4\\]",
        ),
    ],
)
def test_bad_input_is_named(mutate, message: str) -> None:
    with pytest.raises(DataError, match=message):
        build_features(mutate(make_transactions(0)), HANDBOOK)


def test_locations_only_when_asked() -> None:
    tx = make_transactions(0)
    assert len(build_features(tx, HANDBOOK)) == len(tx)  # no location tables: the 15 still work
    without = features_config(extras=tuple(e for e in EXTRAS if e != "customer_terminal_distance"))
    assert "customer_terminal_distance" not in build_features(tx, without)
    with pytest.raises(DataError, match=r"needs customer locations.*remove it from features\.extras"):
        build_features(tx, EXTENDED)
    customers, terminals = location_tables(tx)
    with pytest.raises(DataError, match=r"1 terminal_id.*no terminal location, e\.g\. \[20000\]"):
        build_features(tx, EXTENDED, customers, terminals[terminals["terminal_id"] != 20_000])


def test_unlabelled_rows_count_as_genuine() -> None:
    tx = make_transactions(0)
    unlabelled = tx.assign(tx_fraud=pd.array([pd.NA] * len(tx), dtype="Int8"))
    got = build_features(unlabelled, HANDBOOK)
    assert (got.filter(like="terminal_id_risk") == 0).all().all()
    assert got["tx_fraud"].isna().all()
    pd.testing.assert_series_equal(
        got["terminal_id_nb_tx_7day_window"], build_features(tx, HANDBOOK)["terminal_id_nb_tx_7day_window"]
    )


# --- the stage -----------------------------------------------------------------------------------


@pytest.mark.parametrize("locations", ["tables", "per_transaction", None])
def test_featurize_stage(tmp_path: Path, locations: str | None) -> None:
    """The stage in a scratch directory: both outputs, byte-identical on a rerun; a clear failure without locations.

    With side tables the ids are int64 (the simulator); with per-transaction coordinates they are
    text (a real file): the text ids reach the feature table and the online state as they are.
    """
    with_locations = locations is not None
    tx = make_transactions(0)
    if locations == "per_transaction":
        (tx,) = text_ids(coordinates(tx))
    write_parquet(tx, tmp_path / "data/interim/transactions.parquet")
    if locations == "tables":
        customers, terminals = location_tables(tx)
        write_parquet(customers, tmp_path / "data/raw/customers.parquet")
        write_parquet(terminals, tmp_path / "data/raw/terminals.parquet")
    engine = yaml.safe_load((ROOT / "conf/engine/pandas.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"features": EXTENDED.to_dict(), "engine": engine}))

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(ROOT / "stages/featurize.py")],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def digests() -> dict[str, str]:
        return {
            str(p.relative_to(tmp_path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((tmp_path / "data/features").rglob("*"))
            if p.is_file()
        }

    proc = run()
    if not with_locations:
        assert proc.returncode == 1 and "needs customer locations" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert proc.stderr.strip().startswith("stage 'featurize' failed: ") and proc.stderr.count("\n") == 1
        assert not (tmp_path / "data/features/features.parquet").exists()
        return
    assert proc.returncode == 0, proc.stderr
    table = pd.read_parquet(tmp_path / "data/features/features.parquet")
    assert feature_columns(table) == feature_names(EXTENDED) and len(table) == len(tx)
    assert (
        table["transaction_id"].tolist() == tx["transaction_id"].tolist()
        and table["customer_id"].dtype == tx["customer_id"].dtype
    )
    state = OnlineState.load(tmp_path / "data/features/online_state")
    assert state.as_of == tx["tx_datetime"].iat[-1]
    pd.testing.assert_frame_equal(
        state.history()[["transaction_id", "customer_id", "terminal_id"]],
        tx[["transaction_id", "customer_id", "terminal_id"]].iloc[-len(state.history()) :].reset_index(drop=True),
    )
    first = digests()
    assert run().returncode == 0 and digests() == first


@pytest.mark.parametrize("scale", [1, 70_001, 2**40])  # 16-bit, 32-bit and wider id ranges sort differently
def test_any_id_range(scale: int) -> None:
    tx = make_transactions(7)
    wide = tx.assign(customer_id=tx["customer_id"] * scale - 5, terminal_id=-tx["terminal_id"] * scale)
    config = features_config(extras=("nb_terminals", "seconds_since_prev_tx"))
    pd.testing.assert_frame_equal(
        build_features(wide, config)[feature_names(config)], build_features(tx, config)[feature_names(config)]
    )
    assert_same_features(build_features(wide, config)[feature_names(config)], naive_features(wide, config))


# --- text ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("seed", [0, 1])
def test_text_ids_give_the_int64_features_row_for_row(name: str, seed: int) -> None:
    """The same data with ids as text (hex hashes, names with commas, "007" beside "7"): the same
    features bit for bit, the text ids in the key columns, and the naive reference agrees."""
    config = CONFIGS[name]
    tx = make_transactions(seed, days=45 if config.customer_horizon_days > 7 else 12)
    customers, terminals = location_tables(tx, seed)
    text, text_customers, text_terminals = text_ids(tx, customers, terminals)
    assert all(text[c].dtype == "str" for c in ("transaction_id", "customer_id", "terminal_id"))
    assert {"7", "007", "Kirlin, Sporer and Mann"} <= set(text["customer_id"]) & set(text["terminal_id"]) & set(
        text["transaction_id"]
    )
    got = build_features(text, config, text_customers, text_terminals)
    want = build_features(tx, config, customers, terminals)
    np.testing.assert_array_equal(got[feature_names(config)].to_numpy(), want[feature_names(config)].to_numpy())
    pd.testing.assert_frame_equal(got[list(KEY_COLUMNS)], text[list(KEY_COLUMNS)])
    assert_same_features(got[feature_names(config)], naive_features(text, config, text_customers, text_terminals))


def test_text_transaction_ids_order_same_second_rows_by_code_point() -> None:
    """Ties in time are in transaction_id order: for text, lexicographic ("10" < "9", "007" < "7")."""
    tx = frame([0, 0, 0, 0], customer=[1, 1, 1, 1], terminal=[1, 1, 1, 1], amount=[1, 2, 3, 4], fraud=[0, 0, 0, 0])
    ordered = tx.assign(transaction_id=pd.array(["007", "10", "7", "9"], dtype="str"))
    assert build_features(ordered, HANDBOOK)["customer_id_nb_tx_1day_window"].tolist() == [1, 2, 3, 4]
    numeric = tx.assign(transaction_id=pd.array(["7", "9", "10", "007"], dtype="str"))
    with pytest.raises(
        DataError,
        match=r"sorted by \(tx_datetime, transaction_id\).*positions \[2, 3\].*transaction_id \['10', '007'\]",
    ):
        build_features(numeric, HANDBOOK)


def test_an_id_column_of_python_objects_is_refused() -> None:
    tx = make_transactions(0)
    with pytest.raises(DataError, match=r"column 'customer_id' has dtype object: ids are int64 or str"):
        build_features(tx.assign(customer_id=tx["customer_id"].astype(object)), HANDBOOK)


def test_side_tables_match_ids_by_their_key_whatever_the_dtype() -> None:
    """Integer ids in a side table find the same ids as text ("7" is 7); "007" is another id."""
    config = features_config(extras=("customer_terminal_distance",))
    tx = frame([0, 1], customer=[7, 8], terminal=[1, 1], amount=[1, 2], fraud=[0, 0])
    customers = pd.DataFrame({"customer_id": [7, 8], "x": [3.0, 0.0], "y": [4.0, 1.0]})
    terminals = pd.DataFrame({"terminal_id": [1], "x": [0.0], "y": [0.0]})
    text = tx.assign(customer_id=pd.array(["7", "8"], dtype="str"), terminal_id=pd.array(["1", "1"], dtype="str"))
    assert build_features(text, config, customers, terminals)["customer_terminal_distance"].tolist() == [5.0, 1.0]
    with pytest.raises(DataError, match=r"1 customer_id\(s\) have no customer location, e.g. \['007'\]"):
        build_features(text.assign(customer_id=pd.array(["007", "8"], dtype="str")), config, customers, terminals)


# --- per-transaction coordinates ---------------------------------------------------------------

DISTANCE = features_config(customer_windows=(1,), terminal_windows=(1,), extras=("customer_terminal_distance",))


def test_distance_from_per_transaction_coordinates_is_numpy_hypot() -> None:
    tx = coordinates(make_transactions(3), seed=3)
    got = build_features(tx, DISTANCE)
    expected = np.hypot(tx["customer_x"] - tx["terminal_x"], tx["customer_y"] - tx["terminal_y"]).to_numpy()
    np.testing.assert_array_equal(got["customer_terminal_distance"].to_numpy(), expected)
    assert not set(got.columns) & {"customer_x", "customer_y", "terminal_x", "terminal_y"}  # no model inputs
    assert feature_columns(got) == feature_names(DISTANCE)
    assert feature_columns(pd.concat([got, tx.filter(like="_x")], axis=1)) == feature_names(
        DISTANCE
    )  # even when carried along


def test_per_transaction_coordinates_win_over_the_side_tables() -> None:
    tx = make_transactions(4)
    customers, terminals = location_tables(tx, 4)
    carried = coordinates(tx, seed=4)
    np.testing.assert_array_equal(
        build_features(carried, DISTANCE, customers, terminals)["customer_terminal_distance"].to_numpy(),
        build_features(carried, DISTANCE)["customer_terminal_distance"].to_numpy(),
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rows_without_coordinates_use_the_last_known_of_their_id(seed: int) -> None:
    """NaN coordinates: the last an earlier row of the same customer (terminal) carried, else the side table."""
    tx = coordinates(make_transactions(seed), seed=seed, missing=0.4)
    customers, terminals = location_tables(tx, seed)
    text, text_customers, text_terminals = text_ids(tx, customers, terminals)
    for data, c, t in ((tx, customers, terminals), (text, text_customers, text_terminals)):
        got = build_features(data, EXTENDED, c, t)
        assert_same_features(got[feature_names(EXTENDED)], naive_features(data, EXTENDED, c, t))
    # without side tables, every row must be covered by an earlier row of its customer and terminal
    first_rows = tx.groupby("customer_id").head(1).index.union(tx.groupby("terminal_id").head(1).index)
    covered = tx.copy()
    covered.loc[first_rows, ["customer_x", "customer_y", "terminal_x", "terminal_y"]] = 1.5
    got = build_features(covered, EXTENDED)["customer_terminal_distance"]
    assert_same_features(got.to_frame(), naive_features(covered, EXTENDED)[["customer_terminal_distance"]])


@pytest.mark.parametrize(
    ("mutate", "tables", "message"),
    [
        (
            lambda tx: tx.assign(customer_x=np.nan, customer_y=np.nan),
            False,
            r"customer coordinates \(customer_x, customer_y\) are missing in 300 row\(s\).*no customer locations table",
        ),
        (
            lambda tx: tx.drop(columns="terminal_y"),
            True,
            r"column 'terminal_x' but not 'terminal_y': terminal coordinates come in pairs",
        ),
        (
            lambda tx: tx.assign(customer_y=tx["customer_y"].where(tx.index != 3)),
            True,
            r"one of the pair is missing in 1 row\(s\), e.g. positions \[3\]",
        ),
        (
            lambda tx: tx.assign(terminal_x=tx["terminal_x"].where(tx.index != 5, np.inf)),
            True,
            r"must be finite; not in 1 row\(s\), e.g. positions \[5\]",
        ),
    ],
)
def test_bad_coordinates_are_named(mutate, tables: bool, message: str) -> None:
    tx = coordinates(make_transactions(0))
    extra = location_tables(tx) if tables else ()
    with pytest.raises(DataError, match=message):
        build_features(mutate(tx), DISTANCE, *extra)
