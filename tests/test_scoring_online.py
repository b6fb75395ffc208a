"""The one online scorer (the service's): one transaction at a time, the features and scores of the batch path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fraudpipe.config import compose
from fraudpipe.contract import TX_DATETIME, feature_columns
from fraudpipe.data.simulate import SimulatorConfig, simulate
from fraudpipe.errors import BundleError
from fraudpipe.evaluation.parity import feature_parity, online_rows, score_parity
from fraudpipe.features.definitions import FeatureConfig, build_features, feature_names
from fraudpipe.features.online import OnlineState, to_epoch_second
from fraudpipe.features.online.replay import replay_features
from fraudpipe.model import ModelConfig, load_bundle, save_bundle, train_bundle
from fraudpipe.scoring.online import OnlineScorer, replay
from fraudpipe.scoring.row import RowScorer
from helpers.features import text_ids

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small simulated month: features, a model trained on the first three weeks, its bundle."""
    params = compose(
        CONF,
        [
            "data.simulator.n_customers=100",
            "data.simulator.n_terminals=500",
            "data.simulator.n_days=40",
            "data.simulator.radius=10",
            "model.n_estimators=20",
        ],
    )
    sim = simulate(SimulatorConfig.parse(params["data"]["simulator"], "data.simulator"))
    tx = sim.transactions.drop(columns="tx_fraud_scenario")
    config = FeatureConfig.parse(params["features"], "features")
    table = build_features(tx, config)
    cut = tx[TX_DATETIME].min() + np.timedelta64(30, "D")
    model_config = ModelConfig.parse(params["model"] | {"threshold_validation_days": 0}, "model")
    bundle_dir = tmp_path_factory.mktemp("bundle")
    save_bundle(train_bundle(table[table[TX_DATETIME] < cut], model_config), bundle_dir)
    return tx, table, config, cut, bundle_dir


@pytest.fixture(scope="module")
def located(world, tmp_path_factory):
    """The world as a real file has it: text ids and per-transaction coordinates (the simulator's
    locations, copied onto each row), a bundle that uses the distance feature."""
    tx, _, config, cut, _ = world
    sim = simulate(
        SimulatorConfig.parse(
            compose(
                CONF,
                [
                    "data.simulator.n_customers=100",
                    "data.simulator.n_terminals=500",
                    "data.simulator.n_days=40",
                    "data.simulator.radius=10",
                ],
            )["data"]["simulator"],
            "data.simulator",
        )
    )
    c, t = (
        sim.customers.set_index("customer_id").loc[tx["customer_id"]],
        sim.terminals.set_index("terminal_id").loc[tx["terminal_id"]],
    )
    carried = tx.assign(
        customer_x=c["x"].to_numpy(),
        customer_y=c["y"].to_numpy(),
        terminal_x=t["x"].to_numpy(),
        terminal_y=t["y"].to_numpy(),
    )
    (text,) = text_ids(carried)
    located_config = FeatureConfig.parse(
        config.to_dict() | {"extras": [*config.extras, "customer_terminal_distance"]}, "features"
    )
    table = build_features(text, located_config)
    model_config = ModelConfig.parse(
        compose(CONF, ["model.n_estimators=20"])["model"] | {"threshold_validation_days": 0}, "model"
    )
    bundle_dir = tmp_path_factory.mktemp("located_bundle")
    save_bundle(train_bundle(table[table[TX_DATETIME] < cut], model_config), bundle_dir)
    return text, table, located_config, cut, bundle_dir


def _replay(table, history, transactions, config, bundle_dir):
    """Replay ``transactions`` on the state of ``history``; the replay and its parity figures."""
    bundle = load_bundle(bundle_dir, nthread=1)
    replayed = replay(OnlineScorer(bundle, config), OnlineState.from_history(history, config), transactions)
    return replayed, feature_parity(replayed.transaction_ids, replayed.features, table, bundle.features)


def test_replay_scores_equal_batch_scores_and_features_equal_offline(world):
    tx, table, config, cut, bundle_dir = world
    before = tx[TX_DATETIME] < cut
    replayed, parity = _replay(table, tx[before], tx[~before].head(300), config, bundle_dir)
    assert len(replayed.scores) == 300 and parity["rows_compared"] == 300
    assert parity["max_abs_feature_diff"] <= 1e-9
    offline = table.set_index("transaction_id").loc[replayed.transaction_ids]
    batch = load_bundle(bundle_dir).score(offline.reset_index())
    np.testing.assert_allclose(replayed.scores, batch, rtol=0, atol=1e-6)  # float32 model inputs
    assert (replayed.latency_ms > 0).all()


def test_the_features_alone_replay_as_the_scorer_computes_them_and_score_alike_on_both_paths(world):
    """The parity stage's half (`replay_features`, no model) and evaluate's (`score_parity` of its
    rows): the same rows as the scorer's replay, and the scores it gave."""
    tx, table, config, cut, bundle_dir = world
    before = tx[TX_DATETIME] < cut
    scored, _ = _replay(table, tx[before], tx[~before].head(300), config, bundle_dir)
    alone = replay_features(config, OnlineState.from_history(tx[before], config), tx[~before].head(300))
    np.testing.assert_array_equal(alone.features, scored.features)  # the bundle's order is the config's
    assert np.isnan(alone.scores).all() and (alone.latency_ms > 0).all()
    bundle = load_bundle(bundle_dir, nthread=1)
    rows = online_rows(alone.transaction_ids, alone.features, feature_names(config))
    figures, latency = score_parity(rows, bundle, RowScorer(bundle))
    assert figures["rows_compared"] == 300 and figures["max_abs_score_diff"] <= 1e-6 and len(latency) == 300
    np.testing.assert_allclose(bundle.predict_proba(alone.features), scored.scores, rtol=0, atol=1e-6)
    other = rows.drop(columns=feature_names(config)[-1])
    with pytest.raises(BundleError, match="feature list differs"):
        score_parity(other, bundle, RowScorer(bundle))


def test_the_online_scorer_runs_on_the_fast_path(world):
    _, _, config, _, bundle_dir = world
    scorer = OnlineScorer(load_bundle(bundle_dir, nthread=1), config)
    assert scorer.fast_path.on, scorer.fast_path.reason
    assert scorer.row.fast


def _xgboost_by_hand(bundle_dir, row: np.ndarray) -> float:
    """P(fraud) of one feature row computed apart from the serving path: bundle.json's standardiser
    by hand, then XGBoost's DMatrix prediction (the service uses inplace_predict)."""
    import json

    import xgboost as xgb

    meta = json.loads((bundle_dir / "bundle.json").read_text())
    std = meta["standardizer"]
    x = (row - np.array(std["mean"])) / np.array(std["scale"])
    booster = xgb.Booster()
    booster.load_model(str(bundle_dir / meta["model"]["file"]))
    return float(booster.predict(xgb.DMatrix(x[np.newaxis, :], feature_names=meta["features"]))[0])


def test_score_is_the_offline_rows_score_and_does_not_add_the_transaction(world):
    tx, table, config, cut, bundle_dir = world
    state = OnlineState.from_history(tx[tx[TX_DATETIME] < cut], config)
    scorer = OnlineScorer(load_bundle(bundle_dir), config)
    row = tx[tx[TX_DATETIME] >= cut].iloc[0]
    keys, t = (str(row.customer_id), str(row.terminal_id)), to_epoch_second(row.tx_datetime)
    offline = table.loc[table["transaction_id"] == row.transaction_id, feature_columns(table)].to_numpy(np.float64)[0]
    expected = _xgboost_by_hand(bundle_dir, offline)
    assert 0 < expected < 1
    first = scorer.score(state.lookup(*keys), t, row.tx_amount)
    np.testing.assert_allclose(first.features, offline, rtol=0, atol=1e-9)  # online features = offline features
    assert first.score == pytest.approx(expected, abs=1e-6)
    again = scorer.score(state.lookup(*keys), t, row.tx_amount)  # scoring left the history as it was
    assert again.score == first.score
    np.testing.assert_array_equal(again.features, first.features)
    state.add(str(row.transaction_id), *keys, t, row.tx_amount, int(row.tx_fraud))
    added = scorer.score(state.lookup(*keys), t, row.tx_amount).features
    position = state.feature_names.index("customer_id_nb_tx_1day_window")
    assert added[position] == first.features[position] + 1  # the added transaction now counts as history


def test_scorer_refuses_a_bundle_with_other_features(world):
    _, _, config, _, bundle_dir = world
    other = FeatureConfig.parse(config.to_dict() | {"customer_windows": [1, 7]}, "features")
    with pytest.raises(BundleError, match="feature list differs"):
        OnlineScorer(load_bundle(bundle_dir), other)


def test_replay_with_text_ids_equals_the_int64_replay(world):
    """Text ids (hex hashes, names with commas, "007" beside "7") through the serving path: the
    same features and scores as the int64 ids, and no skew against the offline table of text ids."""
    tx, table, config, cut, bundle_dir = world
    (text,) = text_ids(tx)
    before = (tx[TX_DATETIME] < cut).to_numpy()
    ints, int_parity = _replay(table, tx[before], tx[~before].head(200), config, bundle_dir)
    texts, text_parity = _replay(
        build_features(text, config), text[before], text[~before].head(200), config, bundle_dir
    )
    assert texts.transaction_ids.tolist() == text[~before].head(200)["transaction_id"].tolist()
    np.testing.assert_array_equal(texts.features, ints.features)
    np.testing.assert_array_equal(texts.scores, ints.scores)
    assert text_parity["max_abs_feature_diff"] <= 1e-9
    assert int_parity["max_abs_feature_diff"] <= 1e-9


def test_replay_sends_the_coordinates_a_table_carries(located):
    text, table, config, cut, bundle_dir = located
    assert "customer_terminal_distance" in load_bundle(bundle_dir).features
    before = (text[TX_DATETIME] < cut).to_numpy()
    moved = text.assign(terminal_x=text["terminal_x"] + 1.0)  # every transaction carries other coordinates
    _, parity = _replay(table, moved[before], text[~before].head(200), config, bundle_dir)
    assert parity["max_abs_feature_diff"] <= 1e-9  # their own coordinates win over the last known
    # without the columns, the last known coordinates from history count (here: the same)
    head = text[~before].head(200)
    assert (
        head["customer_id"].isin(text.loc[before, "customer_id"])
        & head["terminal_id"].isin(text.loc[before, "terminal_id"])
    ).all()
    bare = head.drop(columns=["customer_x", "customer_y", "terminal_x", "terminal_y"])
    _, parity = _replay(table, text[before], bare, config, bundle_dir)
    assert parity["max_abs_feature_diff"] <= 1e-9
