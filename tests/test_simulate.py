"""The simulator against the handbook's definition (ch. 3), on scaled-down runs.

"Proportional" here means keeping every per-entity intensity of the published run, because the
fraud rate of each scenario depends on ratios, not sizes: scenario 2's rate is about
terminals_per_day * terminal_days / n_terminals and scenario 3's about
customers_per_day * customer_days * share / n_customers, while the transaction count is
n_customers * n_days * 2 * P(0 < t < 86400). The rates per day must be whole numbers, so the
smallest such run is one third of the published one: 1 terminal a day among 5,000 and 1 customer a
day among 1,667 (for 2 among 10,000 and 3 among 5,000), with the radius scaled by
sqrt(10,000 / 5,000) so that a customer still reaches about 78.5 terminals. The days stay at 183
so that windows cut at the end of the period weigh the same.
"""

from __future__ import annotations

import datetime
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from fraudpipe.contract import SECONDS_PER_DAY, TRANSACTION_DTYPES, epoch_seconds
from fraudpipe.data.simulate import (
    TX_FRAUD_SCENARIO,
    DriftConfig,
    FraudConfig,
    Simulation,
    SimulatorConfig,
    simulate,
)
from fraudpipe.errors import ConfigError
from fraudpipe.io import write_parquet

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = {"transactions": 1_754_155, "rate": 14_681 / 1_754_155, "by_scenario": (973, 9_077, 4_631)}
P_KEEP = 0.5 * (
    math.erf(43_200 / 20_000 / math.sqrt(2)) - math.erf((1 - 43_200) / 20_000 / math.sqrt(2))
)  # 0 < t < 86400

THIRD = SimulatorConfig(
    n_customers=1_667,
    n_terminals=5_000,
    n_days=183,
    start_date="2018-04-01",
    radius=5.0 * math.sqrt(2),
    seed=0,
    fraud=FraudConfig(
        amount_threshold=220.0,
        terminals_per_day=1,
        terminal_days=28,
        customers_per_day=1,
        customer_days=14,
        customer_share=1 / 3,
        customer_amount_factor=5.0,
    ),
    drift=DriftConfig(start_day=None, amount_factor=1.0, terminals_per_day=None, night_fraud_share=0.0),
)
SMALL = SimulatorConfig(
    n_customers=300,
    n_terminals=600,
    n_days=60,
    start_date="2018-04-01",
    radius=5.0 * math.sqrt(10_000 / 600),
    seed=7,
    fraud=THIRD.fraud.model_copy(update={"terminals_per_day": 2, "customers_per_day": 3}),
    drift=THIRD.drift,
)


@pytest.fixture(scope="module")
def third() -> Simulation:
    return simulate(THIRD)


@pytest.fixture(scope="module")
def small() -> Simulation:
    return simulate(SMALL)


def _with(config: SimulatorConfig, **changes: object) -> SimulatorConfig:
    """``config`` with some keys changed (``drift_<key>`` for drift's), checked like a conf/ file."""
    d = config.to_dict()
    for key in list(changes):
        if key in FraudConfig.model_fields:
            d["fraud"][key] = changes.pop(key)
        elif key.startswith("drift_"):
            d["drift"][key[6:]] = changes.pop(key)
    return SimulatorConfig.parse(d | changes, "data.simulator")


def test_size_matches_the_customers_expected_activity(third: Simulation) -> None:
    tx, customers = third.transactions, third.customers
    expected = customers["mean_nb_tx_per_day"].sum() * THIRD.n_days * P_KEEP
    assert len(tx) == pytest.approx(expected, rel=0.01)
    # Against the published run, scaled: the sum of 1,667 uniform rates has a 1.4 % sd and the
    # model's mean sits 1.1 % above the published draw, hence the wider band.
    assert len(tx) == pytest.approx(PUBLISHED["transactions"] / 3, rel=0.06)


def test_fraud_rate_and_scenario_shares_are_the_published_ones(third: Simulation) -> None:
    tx = third.transactions
    assert 0.0075 <= tx["tx_fraud"].mean() <= 0.0095
    counts = tx.loc[tx["tx_fraud"] == 1, TX_FRAUD_SCENARIO].value_counts()
    assert set(counts.index) == {1, 2, 3}
    shares = counts / counts.sum()
    published = np.array(PUBLISHED["by_scenario"]) / sum(PUBLISHED["by_scenario"])  # 6.6 / 61.8 / 31.5 %
    for scenario, share in zip((1, 2, 3), published):
        assert shares[scenario] == pytest.approx(share, abs=0.06 if scenario > 1 else 0.03), scenario


def test_transactions_follow_the_contract(small: Simulation) -> None:
    tx = small.transactions
    assert list(tx.columns) == [*TRANSACTION_DTYPES, TX_FRAUD_SCENARIO]
    assert {c: str(t) for c, t in tx.dtypes.items()} == {**TRANSACTION_DTYPES, TX_FRAUD_SCENARIO: "int8"}
    assert (tx["tx_fraud"] == (tx[TX_FRAUD_SCENARIO] > 0)).all()


def test_sorted_by_time_with_row_number_ids(small: Simulation) -> None:
    tx = small.transactions
    assert tx["tx_datetime"].is_monotonic_increasing
    assert (tx["transaction_id"].to_numpy() == np.arange(len(tx))).all()
    assert tx.index.equals(pd.RangeIndex(len(tx)))


def test_times_fall_inside_the_period_strictly_within_each_day(small: Simulation) -> None:
    origin = epoch_seconds(np.array(["2018-04-01"], "datetime64[s]"))[0]
    seconds = epoch_seconds(small.transactions["tx_datetime"]) - origin
    day, second = np.divmod(seconds, SECONDS_PER_DAY)
    assert day.min() == 0 and day.max() == SMALL.n_days - 1
    assert second.min() >= 1 and second.max() <= SECONDS_PER_DAY - 1
    # The published time-of-day law: N(43200, 20000), truncated to the day.
    assert second.mean() == pytest.approx(43_200, abs=400)


def test_amounts_are_non_negative_cents(small: Simulation) -> None:
    amount = small.transactions["tx_amount"].to_numpy()
    assert amount.min() >= 0
    assert (np.round(amount, 2) == amount).all()


def test_every_terminal_is_within_radius_of_its_customer(third: Simulation) -> None:
    tx = third.transactions
    c = third.customers.set_index("customer_id").loc[tx["customer_id"], ["x", "y"]].to_numpy()
    t = third.terminals.set_index("terminal_id").loc[tx["terminal_id"], ["x", "y"]].to_numpy()
    assert np.hypot(*(c - t).T).max() <= THIRD.radius
    # ... and a customer picks uniformly among them: one with ten times as many transactions as
    # terminals in reach has used (nearly) all of them.
    cxy, txy = third.customers[["x", "y"]].to_numpy(), third.terminals[["x", "y"]].to_numpy()
    reach = pd.Series([(np.hypot(*(txy - xy).T) <= THIRD.radius).sum() for xy in cxy])
    used = tx.groupby("customer_id")["terminal_id"].nunique().reindex(reach.index, fill_value=0)
    busy = tx["customer_id"].value_counts().reindex(reach.index, fill_value=0) >= 10 * reach
    assert busy.sum() > 50  # corner customers, with a quarter of the usual neighbourhood
    assert (used[busy] >= 0.95 * reach[busy]).all()


def test_customers_out_of_reach_of_every_terminal_make_no_transaction() -> None:
    sim = simulate(_with(SMALL, radius=1.5))  # about 0.4 terminals in range: most customers have none
    c, t = sim.customers[["x", "y"]].to_numpy(), sim.terminals[["x", "y"]].to_numpy()
    reach = (np.hypot(c[:, None, 0] - t[None, :, 0], c[:, None, 1] - t[None, :, 1]) <= 1.5).any(axis=1)
    active = np.zeros(len(c), dtype=bool)
    active[sim.transactions["customer_id"].unique()] = True
    assert 0 < reach.sum() < len(c) / 2
    assert not (active & ~reach).any()
    assert active.sum() >= 0.8 * reach.sum()  # those in reach do transact (all but the quietest)


def test_customer_and_terminal_tables(small: Simulation) -> None:
    customers, terminals = small.customers, small.terminals
    assert list(customers.columns) == ["customer_id", "x", "y", "mean_amount", "std_amount", "mean_nb_tx_per_day"]
    assert list(terminals.columns) == ["terminal_id", "x", "y"]
    assert customers["customer_id"].dtype == "int64" and terminals["terminal_id"].dtype == "int64"
    assert (customers["customer_id"].to_numpy() == np.arange(SMALL.n_customers)).all()
    assert len(terminals) == SMALL.n_terminals
    assert customers[["x", "y"]].stack().between(0, 100).all() and terminals[["x", "y"]].stack().between(0, 100).all()
    assert customers["mean_amount"].between(5, 100).all() and customers["mean_nb_tx_per_day"].between(0, 4).all()
    assert np.allclose(customers["std_amount"], customers["mean_amount"] / 2)


def test_scenario_1_flags_every_amount_above_the_threshold(third: Simulation) -> None:
    tx = third.transactions
    assert (tx.loc[tx[TX_FRAUD_SCENARIO] == 1, "tx_amount"] > 220).all()
    assert (tx.loc[tx["tx_fraud"] == 0, "tx_amount"] <= 220).all()


def test_scenario_2_takes_every_transaction_of_a_compromised_terminal(third: Simulation) -> None:
    tx = third.transactions.assign(day=lambda t: t["tx_datetime"].dt.floor("D"))
    hit = tx.loc[tx[TX_FRAUD_SCENARIO] == 2, ["terminal_id", "day"]].drop_duplicates()
    same_cell = tx.merge(hit, on=["terminal_id", "day"])
    assert len(same_cell) > len(hit) and same_cell["tx_fraud"].eq(1).all()
    # A compromise lasts 28 days from its day: no terminal's scenario-2 frauds spread further than
    # one window unless it was compromised again (rare with 1 in 5,000 a day).
    spread = tx[tx[TX_FRAUD_SCENARIO] == 2].groupby("terminal_id")["day"].agg(lambda d: (d.max() - d.min()).days)
    assert (spread <= 27).mean() > 0.95


def test_scenario_3_takes_a_third_of_each_pool_and_multiplies_its_amounts() -> None:
    # Every customer compromised every day for one day: each day's pool is that whole day.
    base = _with(SMALL, terminals_per_day=0, amount_threshold=1e9, customers_per_day=SMALL.n_customers, customer_days=1)
    plain = simulate(_with(base, customer_amount_factor=1.0)).transactions
    fraud = simulate(base).transactions
    per_day = fraud.groupby(fraud["tx_datetime"].dt.floor("D"))
    assert (per_day[TX_FRAUD_SCENARIO].apply(lambda s: (s == 3).sum()) == per_day.size() // 3).all()
    hit = fraud[TX_FRAUD_SCENARIO] == 3
    assert np.array_equal(fraud.loc[hit, "tx_amount"], np.round(plain.loc[hit, "tx_amount"] * 5, 2))
    assert np.array_equal(fraud.loc[~hit, "tx_amount"], plain.loc[~hit, "tx_amount"])
    # Two-day windows overlap: a transaction picked by both of its compromises is multiplied twice.
    twice = simulate(_with(base, customer_days=2)).transactions
    ratio = (twice["tx_amount"] / plain["tx_amount"])[(twice[TX_FRAUD_SCENARIO] == 3) & (plain["tx_amount"] > 1)]
    assert set(np.round(ratio, 1)) == {5.0, 25.0}


def test_same_config_gives_byte_identical_files(tmp_path: Path) -> None:
    for run in ("a", "b"):
        sim = simulate(SMALL)
        for name in ("transactions", "customers", "terminals"):
            write_parquet(getattr(sim, name), tmp_path / run / f"{name}.parquet")
    for name in ("transactions", "customers", "terminals"):
        assert (tmp_path / "a" / f"{name}.parquet").read_bytes() == (tmp_path / "b" / f"{name}.parquet").read_bytes()


def test_another_seed_gives_another_run(small: Simulation) -> None:
    other = simulate(_with(SMALL, seed=SMALL.seed + 1))
    assert not other.customers.equals(small.customers)
    assert len(other.transactions) != len(small.transactions) or not other.transactions.equals(small.transactions)


START = 30


def _split(tx: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    late = tx["tx_datetime"] >= pd.Timestamp("2018-04-01") + pd.Timedelta(days=START)
    return tx[~late], tx[late]


def test_drift_is_off_unless_it_has_a_start_day_and_a_knob(small: Simulation) -> None:
    for drift in ({"amount_factor": 3.0, "terminals_per_day": 50, "night_fraud_share": 0.5}, {"start_day": START}):
        changed = _with(SMALL, **{f"drift_{k}": v for k, v in drift.items()})
        assert not changed.drift.active and changed.drift != SMALL.drift
        assert simulate(changed).transactions.equals(small.transactions)


def test_drift_amount_factor_inflates_amounts_from_start_day_only(small: Simulation) -> None:
    drifted = simulate(_with(SMALL, drift_start_day=START, drift_amount_factor=2.0)).transactions
    (before, after), (base_before, base_after) = _split(drifted), _split(small.transactions)
    assert before.equals(base_before)
    where = ["tx_datetime", "customer_id", "terminal_id"]
    assert after[where].equals(base_after[where])
    untouched = after[TX_FRAUD_SCENARIO] != 3
    assert np.array_equal(after.loc[untouched, "tx_amount"], np.round(base_after.loc[untouched, "tx_amount"] * 2, 2))
    assert (after[TX_FRAUD_SCENARIO] == 1).sum() > 3 * (base_after[TX_FRAUD_SCENARIO] == 1).sum()


def test_drift_terminal_rate_raises_scenario_2_from_start_day_only(small: Simulation) -> None:
    drifted = simulate(_with(SMALL, drift_start_day=START, drift_terminals_per_day=20)).transactions
    (before, after), (base_before, base_after) = _split(drifted), _split(small.transactions)
    assert before.equals(base_before)
    assert np.array_equal(after["tx_amount"], base_after["tx_amount"])
    assert (after[TX_FRAUD_SCENARIO] == 2).sum() > 4 * (base_after[TX_FRAUD_SCENARIO] == 2).sum()


def test_drift_night_pattern_appears_from_start_day_only(small: Simulation) -> None:
    drifted = simulate(_with(SMALL, drift_start_day=START, drift_night_fraud_share=0.5)).transactions
    (before, after), (base_before, _) = _split(drifted), _split(small.transactions)
    assert before.equals(base_before)
    night = after["tx_datetime"].dt.hour <= 6
    assert (after.loc[~night, TX_FRAUD_SCENARIO] != 4).all()
    assert (after.loc[night, TX_FRAUD_SCENARIO] == 4).mean() == pytest.approx(0.5, abs=0.05)
    assert (drifted[TX_FRAUD_SCENARIO] == 4).sum() > 100


def test_config_round_trips_the_committed_conf_and_params() -> None:
    conf = yaml.safe_load((REPO / "conf/data/simulated.yaml").read_text())["simulator"]
    config = SimulatorConfig.parse(conf, "data.simulator")
    assert config.to_dict() == conf
    assert config.drift.start_day is None and config.n_customers == 5_000 and config.radius == 5.0
    params = yaml.safe_load((REPO / "params.yaml").read_text())["data"]["simulator"]
    assert SimulatorConfig.parse(params, "data.simulator") == config
    assert SimulatorConfig.parse(conf | {"start_date": datetime.date(2018, 4, 1)}, "data.simulator") == config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("radius"), "data.simulator.radius: missing key"),
        (lambda d: d.update(radious=5.0), "data.simulator.radious: unknown key (did you mean 'radius'?"),
        (
            lambda d: d["fraud"].update(amount_treshold=1.0),
            "data.simulator.fraud.amount_treshold: unknown key (did you mean 'amount_threshold'?",
        ),
        (lambda d: d.update(n_customers="5000"), "data.simulator.n_customers: must be a whole number, got '5000'"),
        (lambda d: d.update(n_days=0), "data.simulator.n_days: must be >= 1, got 0"),
        (lambda d: d.update(radius=True), "data.simulator.radius: must be a number, got True"),
        (
            lambda d: d["fraud"].update(terminals_per_day=20_000),
            "data.simulator.fraud.terminals_per_day: must be <= n_terminals (600), got 20000",
        ),
        (
            lambda d: d["drift"].update(night_fraud_share=1.5),
            "data.simulator.drift.night_fraud_share: must be <= 1, got 1.5",
        ),
        (lambda d: d["drift"].update(start_day=-1), "data.simulator.drift.start_day: must be >= 0, got -1"),
        (
            lambda d: d.update(start_date="April 1st"),
            "data.simulator.start_date: must be an ISO date (YYYY-MM-DD), got 'April 1st'",
        ),
    ],
)
def test_bad_config_is_refused_naming_the_key_and_the_value(change, message) -> None:
    d = SMALL.to_dict()
    change(d)
    with pytest.raises(ConfigError) as err:
        SimulatorConfig.parse(d, "data.simulator")
    assert message in str(err.value)
