"""`evaluation.parity`: what the parity stage replays, and the figures it and evaluate write."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudpipe.errors import ConfigError
from fraudpipe.evaluation.parity import (
    feature_parity,
    latency_summary,
    online_rows,
    replayed_span,
    split_replay,
)
from fraudpipe.metrics import EvaluateConfig
from fraudpipe.pipeline.loader import value_at
from fraudpipe.scoring.row import FastPath


def test_latency_summary_percentiles_and_the_path_measured():
    summary = latency_summary(np.arange(1, 101, dtype=float), FastPath(True, "xgboost 3.2.0"))
    assert summary["score_latency_p50_ms"] == pytest.approx(50.5)
    assert summary["score_latency_p99_ms"] == pytest.approx(99.01)
    assert summary["score_latency_rows"] == 100 and summary["score_fast_path"] == 1
    empty = latency_summary(np.array([]), FastPath(False, "not a booster"))
    assert empty["score_latency_rows"] == 0 and empty["score_fast_path"] == 0
    assert np.isnan(empty["score_latency_p50_ms"]) and np.isnan(empty["score_latency_p99_ms"])


def test_the_parity_stage_reads_only_latency_rows_of_the_evaluate_group():
    evaluate = {"latency_rows": 7, "gate": "not read", "card_precision_k": "not read"}
    assert value_at({"evaluate": evaluate}, "evaluate.latency_rows", EvaluateConfig) == 7
    with pytest.raises(ConfigError, match=r"^evaluate\.latency_rows: must be >= 0, got -1$"):
        value_at({"evaluate": {"latency_rows": -1}}, "evaluate.latency_rows", EvaluateConfig)


def test_the_history_is_what_precedes_the_test_period_and_the_replay_its_first_rows():
    times = pd.to_datetime(["2018-04-01 10:00", "2018-04-01 23:59", "2018-04-02 00:00", "2018-04-02 01:00"])
    table = pd.DataFrame({"transaction_id": [1, 2, 3, 4], "tx_datetime": times})
    history, replayed = split_replay(table, pd.Timestamp("2018-04-02"), 1)
    assert history["transaction_id"].tolist() == [1, 2] and replayed["transaction_id"].tolist() == [3]
    assert replayed_span(replayed) == [("tx_datetime", ">=", times[2]), ("tx_datetime", "<=", times[2])]
    assert replayed_span(replayed.iloc[:0]) is None


def test_feature_parity_is_the_largest_difference_over_the_replayed_rows_in_their_order():
    offline = pd.DataFrame(
        {"transaction_id": [10, 11, 12], "a": [1.0, 2.0, 3.0], "b": [0.5, 0.25, 0.0], "c": [9, 9, 9]}
    )
    online = np.array([[3.0, 0.0], [1.0, 0.75]])  # rows 12 and 10, columns a and b: b of row 10 differs by 0.25
    assert feature_parity(np.array([12, 10]), online, offline, ["a", "b"]) == {
        "max_abs_feature_diff": 0.25,
        "rows_compared": 2,
    }
    assert feature_parity(np.zeros(0, dtype=np.int64), np.zeros((0, 2)), offline, ["a", "b"]) == {
        "max_abs_feature_diff": 0.0,
        "rows_compared": 0,
    }


def test_online_rows_name_their_columns_and_keep_the_ids():
    rows = online_rows(np.array(["x", "y"], dtype=object), np.array([[1.0, 2.0], [3.0, 4.0]]), ["a", "b"])
    assert rows.columns.tolist() == ["transaction_id", "a", "b"]
    assert rows["transaction_id"].tolist() == ["x", "y"] and rows["b"].tolist() == [2.0, 4.0]
