"""Metrics against hand-computed values and an independent naive card precision@k; their intervals;
the evaluate config (the gate's own rule: tests/test_gate.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from fraudpipe.config import compose
from fraudpipe.errors import ConfigError
from fraudpipe.metrics import (
    INTERVAL_KEYS,
    INTERVAL_METRICS,
    EvaluateConfig,
    IntervalConfig,
    aggregate_folds,
    average_precision,
    batch_throughput,
    bootstrap_intervals,
    card_precision_at_k,
    card_precision_per_day,
    quality_metric_names,
    quality_metrics,
    resampled_metrics,
    resampled_ranking_metrics,
    roc_auc,
    threshold_metrics,
)

ROOT = Path(__file__).resolve().parents[1]
GATE = {"enforce": True, "judge": "interval", "minimums": {}}


def evaluate_config(**changes) -> EvaluateConfig:
    """conf/evaluate/ as composed into params.yaml, with some keys changed."""
    return EvaluateConfig.parse(compose(ROOT / "conf")["evaluate"] | changes, "evaluate")


# (day, card, score, label). k = 2.
#   day 1: cards A(.9,1) B(.8,0 and .05,1 -> max .8, label 1) C(.7,1) D(.1,0)
#          top 2 = A, B, both fraudulent -> 2/2 = 1.0; detected {A, B}
#   day 2: A(.95,1) and B(.99,1) are dropped (detected earlier);
#          C(.85,1 and .2,0 -> .85, 1) D(.6,0) E(.3,1): top 2 = C, D -> 1/2 = 0.5; detected += C
#          (without the drop the top 2 would be B, A -> 1.0)
#   day 3: C(.9,1) dropped; D(.5,0) alone: 0 frauds / k = 0.0 (divided by k, not by 1)
#   mean = (1.0 + 0.5 + 0.0) / 3 = 0.5
HAND_EXAMPLE = [
    (1, "A", 0.9, 1),
    (1, "B", 0.8, 0),
    (1, "B", 0.05, 1),
    (1, "C", 0.7, 1),
    (1, "D", 0.1, 0),
    (2, "A", 0.95, 1),
    (2, "B", 0.99, 1),
    (2, "C", 0.85, 1),
    (2, "C", 0.2, 0),
    (2, "D", 0.6, 0),
    (2, "E", 0.3, 1),
    (3, "C", 0.9, 1),
    (3, "D", 0.5, 0),
]


def _arrays(rows):
    day, card, score, label = map(np.array, zip(*rows))
    return score.astype(float), label.astype(int), card, day


def test_card_precision_matches_the_hand_computed_example():
    score, label, card, day = _arrays(HAND_EXAMPLE)
    assert card_precision_at_k(score, label, card, day, k=2) == pytest.approx(0.5)


def test_card_precision_only_drops_cards_that_were_alerted_and_fraudulent():
    # Day 1: card X is fraudulent but not in the top 1 (Y is): X stays in play on day 2.
    rows = [(1, "Y", 0.9, 0), (1, "X", 0.5, 1), (2, "X", 0.8, 1), (2, "Y", 0.7, 0)]
    score, label, card, day = _arrays(rows)
    assert card_precision_at_k(score, label, card, day, k=1) == pytest.approx((0.0 + 1.0) / 2)


def test_card_precision_breaks_ties_by_card_id():
    score, label, card, day = _arrays([(1, 2, 0.5, 1), (1, 1, 0.5, 0), (1, 3, 0.1, 1)])
    assert card_precision_at_k(score, label, card.astype(int), day, k=1) == 0.0  # card 1 wins the tie


def test_card_precision_breaks_ties_by_text_card_id_in_code_point_order():
    """Text card ids: the tie goes to the lexicographically smaller id ("007" < "7", "10" < "9")."""
    score, label, day = np.array([0.5, 0.5, 0.1]), np.array([1, 0, 1]), np.zeros(3)
    for winner, loser in (("007", "7"), ("10", "9"), ("Z", "a"), ("a", "é")):
        cards = pd.array([loser, winner, "x"], dtype="str").to_numpy()  # the winner is genuine: 0
        assert card_precision_at_k(score, label, cards, day, k=1) == 0.0
        swapped = pd.array([winner, loser, "x"], dtype="str").to_numpy()  # the winner is the fraud: 1
        assert card_precision_at_k(score, label, swapped, day, k=1) == 1.0


@pytest.mark.parametrize("seed", range(3))
def test_card_precision_on_text_ids_agrees_with_the_naive_implementation_and_with_int_ids(seed):
    score, label, card, day = _random_days(seed)
    names = np.array([f"{i:03d}" for i in range(60)], dtype=object)  # same order as the integers
    text = pd.array(names[card], dtype="str").to_numpy()
    assert card_precision_at_k(score, label, text, day, k=7) == card_precision_at_k(score, label, card, day, k=7)
    shuffled = pd.array(
        np.array([f"card {i * 37 % 61}, x" for i in range(60)], dtype=object)[card], dtype="str"
    ).to_numpy()
    assert card_precision_at_k(score, label, shuffled, day, k=7) == pytest.approx(
        _naive_card_precision(score, label, shuffled, day, 7)
    )


def _random_days(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """400 scored transactions of 60 cards over 5 days, 15 % fraud; scores rounded: many ties."""
    rng = np.random.default_rng(seed)
    n = 400
    card = rng.integers(0, 60, n)
    day = rng.integers(0, 5, n)
    label = (rng.uniform(size=n) < 0.15).astype(int)
    score = np.round(rng.uniform(size=n) + 0.3 * label, 2)
    return score, label, card, day


def _naive_card_precision(score, label, card, day, k):
    """Independent reading of the definition with plain Python loops."""
    detected, values = set(), []
    for d in sorted(set(day.tolist())):
        best: dict = {}
        for s, y, c, dd in zip(score, label, card, day):
            if dd != d or c in detected:
                continue
            old = best.get(c, (-math.inf, 0))
            best[c] = (max(old[0], s), max(old[1], y))
        ranked = sorted(best.items(), key=lambda item: (-item[1][0], item[0]))[:k]
        hits = [c for c, (_, y) in ranked if y == 1]
        values.append(len(hits) / k)
        detected.update(hits)
    return sum(values) / len(values)


@pytest.mark.parametrize("seed", range(5))
def test_card_precision_agrees_with_a_naive_implementation(seed):
    score, label, card, day = _random_days(seed)
    assert card_precision_at_k(score, label, card, day, k=7) == pytest.approx(
        _naive_card_precision(score, label, card, day, 7)
    )


def test_threshold_metrics_by_hand():
    labels = np.array([1, 1, 0, 0, 0, 1])
    scores = np.array([0.9, 0.4, 0.6, 0.1, 0.2, 0.5])
    # alerts at >= 0.5: rows 0, 2, 5 -> tp 2, fp 1, fn 1, tn 2
    m = threshold_metrics(labels, scores, 0.5)
    assert m == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "accuracy": 4 / 6})
    assert threshold_metrics(labels, scores, 2.0) == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "accuracy": 0.5}


def test_auc_and_average_precision_by_hand_and_undefined_cases():
    labels, scores = np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1])
    assert average_precision(labels, scores) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert roc_auc(labels, scores) == pytest.approx(0.75)
    assert math.isnan(roc_auc(np.zeros(3), np.ones(3)))
    assert math.isnan(average_precision(np.zeros(3), np.ones(3)))


def test_quality_metrics_on_a_table():
    rows = pd.DataFrame(HAND_EXAMPLE, columns=["day", "customer_id", "score", "tx_fraud"])
    table = pd.DataFrame(
        {
            "tx_datetime": pd.Timestamp("2018-08-08")
            + pd.to_timedelta(rows["day"] - 1, unit="D")
            + pd.Timedelta(hours=12),
            "customer_id": rows["customer_id"],
            "tx_fraud": rows["tx_fraud"].astype("int8"),
        }
    )
    m = quality_metrics(table, rows["score"].to_numpy(), threshold=0.5, k=2)
    assert list(m) == [
        "roc_auc",
        "average_precision",
        "card_precision_at_k",
        "card_precision_k",
        "precision",
        "recall",
        "f1",
        "accuracy",
        "threshold",
        "n_test",
        "n_frauds",
    ]
    assert list(m) == list(quality_metric_names(2))  # the names the gate accepts are the real ones
    assert m["card_precision_at_k"] == pytest.approx(0.5) and m["card_precision_k"] == 2
    assert (m["n_test"], m["n_frauds"], m["threshold"]) == (13, 8, 0.5)
    with pytest.raises(ValueError, match="12 scores for 13 rows"):
        quality_metrics(table, rows["score"].to_numpy()[:-1], 0.5)


def test_aggregate_folds_mean_and_sample_std():
    out = aggregate_folds([{"auc": 0.8, "n": 10}, {"auc": 0.9, "n": 20}, {"auc": 1.0, "n": 30}])
    assert out["n_folds"] == 3
    assert out["auc_fold_mean"] == pytest.approx(0.9)
    assert out["auc_fold_std"] == pytest.approx(0.1)  # ddof=1
    assert out["n_fold_mean"] == pytest.approx(20)


def test_evaluate_config_reads_the_default_conf_file():
    conf = yaml.safe_load((ROOT / "conf/evaluate/default.yaml").read_text())
    assert conf["interval"]["seed"] == "${seed}"  # the root seed, as the models' random_state
    composed = compose(ROOT / "conf")["evaluate"]
    config = EvaluateConfig.parse(composed, "evaluate")
    assert config.card_precision_k == 100 and config.gate.enforce is True and config.gate.judge == "interval"
    assert config.gate.minimums == {"average_precision": 0.3, "roc_auc": 0.75}
    assert config.interval == IntervalConfig(confidence=0.95, resamples=1000, seed=0)
    assert config.to_dict() == composed
    assert all(field.is_required() for field in EvaluateConfig.model_fields.values())  # conf/ holds the defaults


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"typo": 1}, r"^evaluate\.typo: unknown key"),
        ({"card_precision_k": 0}, r"^evaluate\.card_precision_k: must be >= 1, got 0$"),
        ({"latency_rows": -1}, r"^evaluate\.latency_rows: must be >= 0, got -1$"),
        ({"gate": GATE | {"enforce": "yes"}}, r"^evaluate\.gate\.enforce: must be true or false, got 'yes'$"),
        (
            {"gate": GATE | {"judge": "median"}},
            r"^evaluate\.gate\.judge: must be one of 'point' or 'interval', got 'median'$",
        ),
        (
            {"gate": GATE | {"minimums": {"roc_auc": "high"}}},
            r"^evaluate\.gate\.minimums\.roc_auc: must be a number, got 'high'$",
        ),
        ({"gate": {"enforce": True, "judge": "point"}}, r"^evaluate\.gate\.minimums: missing key$"),
        ({"gate": {"enforce": True, "minimums": {}}}, r"^evaluate\.gate\.judge: missing key$"),
        (
            {"gate": {"enforce": True, "judge": "point", "minimum": {}}},
            r"evaluate\.gate\.minimum: unknown key \(did you mean 'minimums'\?",
        ),
        # An unknown metric is a configuration mistake, found before anything runs (not a failed gate).
        (
            {"gate": GATE | {"minimums": {"auc": 0.5, "roc_auc": 0.7}}},
            r"^evaluate\.gate\.minimums\.auc: not a metric of the test period \(known: roc_auc, average_precision, "
            r"card_precision_at_k, .*n_frauds, roc_auc_ci_low, .*n_test_days\), got 0\.5$",
        ),
        # the key of card precision is fixed; a budget-named key is not a metric.
        (
            {"card_precision_k": 50, "gate": GATE | {"minimums": {"card_precision_at_100": 0.2}}},
            r"^evaluate\.gate\.minimums\.card_precision_at_100: not a metric",
        ),
    ],
)
def test_evaluate_config_mistakes_name_the_key(changes, message):
    with pytest.raises(ConfigError, match=message):
        evaluate_config(**changes)


def test_gate_may_name_any_test_metric_including_card_precision_whatever_its_k():
    config = evaluate_config(
        card_precision_k=50, gate=GATE | {"minimums": {"card_precision_at_k": 0.2, "n_frauds": 10}}
    )
    assert config.gate.minimums == {"card_precision_at_k": 0.2, "n_frauds": 10.0}


@pytest.mark.parametrize("seed", range(4))
def test_resampled_auc_and_average_precision_are_scikit_learns_with_day_weights(seed):
    from sklearn.metrics import average_precision_score, roc_auc_score

    score, label, _, day = _random_days(seed)  # rounded scores: many ties
    day_index = np.unique(day, return_inverse=True)[1]
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 3, size=(70, day_index.max() + 1)).astype(float)  # zero weights too, as a resample has
    counts[0] = 1.0  # no resampling: the plain figures
    counts[1] = np.where(np.arange(counts.shape[1]) == 0, 1.0, 0.0)  # one day only
    order = np.argsort(-score, kind="stable")
    ours = resampled_ranking_metrics(label[order], score[order], day_index[order], counts, chunk=16)
    assert list(ours) == ["roc_auc", "average_precision"]
    reference = {"roc_auc": roc_auc_score, "average_precision": average_precision_score}
    for name, values in ours.items():
        for c, value in zip(counts, values):
            weights = c[day_index]
            if not (weights * label).any() or not (weights * (1 - label)).any():
                assert math.isnan(value), (name, c)
            else:
                expected = reference[name](label, score, sample_weight=weights)
                assert value == pytest.approx(expected, abs=1e-12), (name, c)
    assert ours["average_precision"][0] == pytest.approx(average_precision(label, score), abs=1e-12)
    assert ours["roc_auc"][0] == pytest.approx(roc_auc(label, score), abs=1e-12)
    no_frauds = resampled_ranking_metrics(np.zeros_like(label[order]), score[order], day_index[order], counts[:3])
    assert all(np.isnan(values).all() for values in no_frauds.values())


def test_every_interval_metric_is_resampled_by_one_function_with_its_point_value():
    table, scores = _scored_days(6, 200, 0.05)
    counts = np.ones((2, 6))  # each day drawn once: the resample is the table itself
    k = 5
    figures = resampled_metrics(table, scores, k, counts)
    points = quality_metrics(table, scores, 0.5, k)
    assert tuple(figures) == INTERVAL_METRICS
    for name, (value, draws) in figures.items():
        assert value == points[name] and draws.shape == (2,)
        assert draws == pytest.approx([value, value], abs=1e-12), name


@pytest.mark.parametrize("seed", range(3))
def test_card_precision_is_the_mean_of_its_day_values(seed):
    score, label, card, day = _random_days(seed)
    per_day = card_precision_per_day(score, label, card, day, 7)
    assert len(per_day) == 5 and card_precision_at_k(score, label, card, day, 7) == float(np.mean(per_day))


def _scored_days(n_days: int, rows_per_day: int, fraud_rate: float, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = n_days * rows_per_day
    label = (rng.uniform(size=n) < fraud_rate).astype(np.int8)
    table = pd.DataFrame(
        {
            "tx_datetime": pd.Timestamp("2019-03-01")
            + pd.to_timedelta(np.repeat(np.arange(n_days), rows_per_day), "D"),
            "customer_id": rng.integers(0, 10 * rows_per_day, n),
            "tx_fraud": label,
        }
    )
    return table, np.clip(rng.normal(0.3 + 0.4 * label, 0.2), 0, 1)


def test_intervals_hold_the_metric_and_are_the_same_for_the_same_seed():
    table, scores = _scored_days(14, 300, 0.02)
    config = IntervalConfig(confidence=0.95, resamples=400, seed=3)
    out = bootstrap_intervals(table, scores, 10, config)
    assert tuple(out) == INTERVAL_KEYS and out["ci_level"] == 0.95 and out["n_test_days"] == 14
    ap, cp = (
        average_precision(table["tx_fraud"], scores),
        card_precision_at_k(scores, table["tx_fraud"], table["customer_id"], table["tx_datetime"].dt.floor("D"), 10),
    )
    auc = roc_auc(table["tx_fraud"], scores)
    assert out["roc_auc_ci_low"] < auc < out["roc_auc_ci_high"]
    assert out["average_precision_ci_low"] < ap < out["average_precision_ci_high"]
    assert out["card_precision_at_k_ci_low"] < cp < out["card_precision_at_k_ci_high"]
    assert json.dumps(bootstrap_intervals(table, scores, 10, config)) == json.dumps(out)
    assert bootstrap_intervals(table, scores, 10, config.model_copy(update={"seed": 4})) != out
    narrower = bootstrap_intervals(table, scores, 10, config.model_copy(update={"confidence": 0.5}))
    assert out["average_precision_ci_low"] < narrower["average_precision_ci_low"] < ap


def test_a_small_test_period_gets_a_wide_interval_and_an_empty_one_none():
    config = IntervalConfig(confidence=0.95, resamples=400, seed=0)

    def width(table, scores, name):
        out = bootstrap_intervals(table, scores, 5, config)
        return out[f"{name}_ci_high"] - out[f"{name}_ci_low"]

    large, small = _scored_days(28, 1000, 0.01), _scored_days(7, 300, 0.01)  # ~280 and ~21 frauds
    assert width(*small, "average_precision") > 3 * width(*large, "average_precision")
    assert width(*small, "roc_auc") > 2.5 * width(*large, "roc_auc")
    empty = bootstrap_intervals(large[0].iloc[:0], large[1][:0], 5, config)
    assert empty["n_test_days"] == 0 and all(math.isnan(empty[key]) for key in INTERVAL_KEYS[:-2])


def test_batch_throughput_scores_the_whole_batch_per_call():
    X = np.ones((300, 4))
    calls = []

    def predict(rows):
        calls.append(len(rows))
        return rows.sum(axis=1)

    throughput = batch_throughput(predict, X, repeats=3)
    assert calls == [300, 300, 300]  # the whole batch in one call, best of three
    assert throughput["batch_throughput_tx_per_s"] > 0
    json.dumps(throughput, allow_nan=False)
