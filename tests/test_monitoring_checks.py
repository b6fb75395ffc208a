"""The monitoring checks, segments and the whole comparison on hand-built samples whose answer is
known (the statistics themselves: tests/test_monitoring_statistics.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudpipe.config import compose
from fraudpipe.errors import ConfigError, DataError
from fraudpipe.io import write_json
from fraudpipe.monitoring.checks import (
    choose_test,
    dataset_drift,
    drifted_features,
    feature_kind,
    feature_table,
    known_compromised,
    labelled_mask,
    performance,
    prediction_drift,
)
from fraudpipe.monitoring.config import MonitorConfig
from fraudpipe.monitoring.daily import daily_table
from fraudpipe.monitoring.history import add_point, history_point, read_history
from fraudpipe.monitoring.monitor import METRIC_KEYS, monitor, moved
from fraudpipe.monitoring.segments import (
    amount_bands,
    calibration,
    customer_age,
    largest_gaps,
    regions,
    segment_gaps,
    segment_table,
)
from fraudpipe.monitoring.statistics import BINARY, CATEGORICAL, NUMERIC
from fraudpipe.monitoring.statistics.chi2 import CHI2
from fraudpipe.monitoring.statistics.jensen_shannon import JENSEN_SHANNON
from fraudpipe.monitoring.statistics.ks import KS
from fraudpipe.monitoring.statistics.wasserstein import WASSERSTEIN

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = compose(ROOT / "conf")["monitor"]  # composed: conf/monitor/ derives window_input


@pytest.fixture
def config() -> MonitorConfig:
    return MonitorConfig.parse(DEFAULTS, "monitor")


# --------------------------------------------------------------------------------------------
# Choosing the test


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([0.0, 1.0, 1.0, 0.0], BINARY),
        ([3.0, 3.0, 3.0], BINARY),  # a constant: at most two values
        ([0.0, 1.0, 2.0, 3.0, 4.0], CATEGORICAL),  # five values: Evidently's categorical rule
        (list(range(6)), NUMERIC),
        (["visa", "amex", "visa", "jcb"], CATEGORICAL),
    ],
)
def test_feature_kind(values, kind):
    assert feature_kind(pd.Series(values), categorical_max_values=5) == kind


def test_choose_test_by_type_and_reference_size(config):
    checks = config.features
    small, large = checks.large_sample, checks.large_sample + 1
    assert choose_test(NUMERIC, small, checks) == (KS, checks.p_value)
    assert choose_test(NUMERIC, large, checks) == (WASSERSTEIN, checks.wasserstein)
    assert choose_test(BINARY, small, checks) == (CHI2, checks.p_value)
    assert choose_test(CATEGORICAL, large, checks) == (JENSEN_SHANNON, checks.jensen_shannon)


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0, flag_share: float = 0.3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "amount": rng.lognormal(3 + shift, 0.5, size=n),
            "flag": (rng.random(n) < flag_share).astype(np.float64),
            "steady": rng.normal(size=n),
        }
    )


@pytest.mark.parametrize("n", [500, 5000], ids=["small-reference", "large-reference"])
def test_feature_table_flags_exactly_the_shifted_features(config, n):
    rng = np.random.default_rng(7)
    table = feature_table(
        _frame(rng, n), _frame(rng, 2 * n, shift=0.5, flag_share=0.5), ["amount", "flag", "steady"], config.features
    )
    assert table["feature"].tolist() == ["amount", "flag", "steady"]
    assert dict(zip(table["feature"], table["drifted"])) == {"amount": True, "flag": True, "steady": False}
    expected_tests = (
        ["ks", "chi2", "ks"] if n <= config.features.large_sample else ["wasserstein", "jensen_shannon", "wasserstein"]
    )
    assert table["test"].tolist() == expected_tests
    assert table.loc[table["feature"] == "amount", "psi"].item() > 0.1
    assert drifted_features(table)[0] in ("amount", "flag")
    assert dataset_drift(table, 0.5) == {
        "drift_share": 2 / 3,
        "dataset_drift": 1,
        "n_drifted": 2,
        "n_features": 3,
    }
    assert dataset_drift(table, 0.7)["dataset_drift"] == 0


def test_feature_table_refuses_a_missing_feature_or_an_empty_one(config):
    frame = _frame(np.random.default_rng(0), 50)
    with pytest.raises(DataError, match=r"the current window lacks column\(s\) \['nope'\]"):
        feature_table(frame.assign(nope=1.0), frame, ["nope"], config.features)
    with pytest.raises(DataError, match="'steady' has no value in the current window"):
        feature_table(frame, frame.assign(steady=np.nan), ["steady"], config.features)


# --------------------------------------------------------------------------------------------
# Predictions, performance, segments, calibration


def test_prediction_drift_counts_the_alert_rate_change(config):
    checks = config.prediction
    ref = np.r_[np.zeros(980), np.ones(20)]  # 2 % alerts
    assert prediction_drift(ref, ref, 0.5, checks, 10)["prediction_drift"] == 0
    doubled = prediction_drift(ref, np.r_[np.zeros(960), np.ones(40)], 0.5, checks, 10)
    assert doubled["reference_alert_rate"] == 0.02 and doubled["current_alert_rate"] == 0.04
    assert doubled["alert_rate_change"] == pytest.approx(1.0)
    assert doubled["prediction_drift"] == 1


def _window(days: int = 20, per_day: int = 10) -> pd.DataFrame:
    start = pd.Timestamp("2018-08-15")
    times = (
        start
        + pd.to_timedelta(np.repeat(np.arange(days), per_day), unit="D")
        + pd.to_timedelta(np.tile(np.arange(per_day), days), unit="h")
    )
    n = len(times)
    return pd.DataFrame(
        {
            "tx_datetime": times.astype("datetime64[us]"),
            "customer_id": np.arange(n) % 37,
            "tx_amount": np.linspace(1, 300, n),
            "tx_fraud": (np.arange(n) % 9 == 0).astype(np.int8),
        }
    )


def test_labels_are_known_once_older_than_the_delay_and_present():
    window = _window()
    labels = window["tx_fraud"].astype("Int8")
    labels.iloc[0] = pd.NA
    known = labelled_mask(window.assign(tx_fraud=labels), delay_days=7)
    cutoff = window["tx_datetime"].max() - pd.Timedelta(days=7)
    assert known.tolist() == ((window["tx_datetime"] <= cutoff) & labels.notna()).tolist()
    assert not known[0] and known[1] and not known[-1]


def test_known_compromised_cards_are_dropped_from_the_delay_plus_one_th_day_on():
    window = pd.DataFrame(
        {
            "tx_datetime": pd.to_datetime(
                ["2018-08-15 10:00", "2018-08-16 10:00", "2018-08-17 10:00", "2018-08-17 11:00"]
            ).astype("datetime64[us]"),
            "customer_id": [1, 1, 1, 2],
            "tx_fraud": np.array([1, 0, 0, 0], dtype=np.int8),
        }
    )
    # Delay 1: the fraud of day 0 is known on day 2 (0 <= 2 - 1 - 1), not on day 1.
    assert known_compromised(window, np.ones(4, dtype=bool), delay_days=1).tolist() == [False, False, True, False]


def test_performance_needs_enough_labelled_frauds(config):
    window = _window()
    scores = window["tx_fraud"].to_numpy() * 0.8 + 0.1
    test = {"average_precision": 0.8, "card_precision_at_k": 0.3, "card_precision_k": 5}
    known = np.ones(len(window), dtype=bool)
    perf = performance(window, scores, known, test, config.performance.model_copy(update={"min_frauds": 5}))
    assert perf["live_average_precision"] == 1.0  # every fraud ranked first
    assert perf["performance_drop"] == pytest.approx((0.8 - 1.0) / 0.8)
    assert perf["card_precision_k"] == 5 and 0 < perf["live_card_precision_at_k"] <= 1
    few = performance(window, scores, known, test, config.performance.model_copy(update={"min_frauds": 10_000}))
    assert math.isnan(few["live_average_precision"]) and math.isnan(few["performance_drop"])
    with pytest.raises(DataError, match="card_precision_k"):
        performance(window, scores, known, {"average_precision": 0.8, "card_precision_at_k": 0.3}, config.performance)


def test_amount_bands_keep_their_order():
    bands = amount_bands(np.array([5.0, 20.0, 75.0, 500.0]), [20, 50, 100, 220])
    assert list(bands) == ["under 20", "20 to 50", "50 to 100", "220 and over"]
    assert list(bands.categories) == ["under 20", "20 to 50", "50 to 100", "100 to 220", "220 and over"]


def test_regions_split_the_customers_area_and_name_unknown_customers():
    customers = pd.DataFrame({"customer_id": [0, 1, 2, 3], "x": [0.0, 100, 0, 100], "y": [0.0, 0, 100, 100]})
    names = regions(pd.Series([0, 1, 2, 3, 9]), customers, grid=2)
    assert list(names) == [
        "south-west (x 0-50, y 0-50)",
        "south-east (x 50-100, y 0-50)",
        "north-west (x 0-50, y 50-100)",
        "north-east (x 50-100, y 50-100)",
        "unknown",
    ]
    nine = pd.DataFrame({"customer_id": [0, 1, 2, 3], "x": [0.0, 100, 50, 50], "y": [0.0, 100, 50, 0]})
    names = regions(pd.Series([0, 1, 2, 3]), nine, grid=3)
    assert [name.split(" (")[0] for name in names] == ["south-west", "north-east", "centre", "south"]


def test_customer_age_for_integer_and_text_ids():
    new, seen = "new since training", "seen in training"
    assert list(customer_age(pd.Series([1, 2, 3]), pd.Series([2, 5]))) == [new, seen, new]
    text = pd.Series(["007", "7"], dtype="str")
    assert list(customer_age(text, pd.Series(["7"], dtype="str"))) == [new, seen]


def test_segment_table_by_hand():
    groups = {
        "amount band": pd.Categorical(["low", "low", "low", "high", "high", "high"], categories=["low", "mid", "high"]),
        "customer": np.array(["new", "new", "established", "established", "established", "established"], dtype=object),
    }
    alerts = np.array([1, 0, 0, 1, 1, 0])
    labels = np.array([1, 1, 0, 1, 0, 1])
    known = np.array([True, True, True, True, True, False])
    table = segment_table(groups, alerts, labels, known, min_frauds=1)
    low = table[(table["segment"] == "amount band") & (table["group"] == "low")].iloc[0]
    assert (low["n"], low["alert_rate"], low["frauds"], low["recall"], low["precision"]) == (3, 1 / 3, 2, 0.5, 1.0)
    high = table[(table["segment"] == "amount band") & (table["group"] == "high")].iloc[0]
    assert (high["n_labelled"], high["frauds"], high["recall"], high["precision"]) == (2, 1, 1.0, 0.5)
    assert "mid" not in table["group"].tolist()  # an empty group is left out
    assert table["segment"].tolist()[:2] == ["amount band", "amount band"]
    gaps = largest_gaps(table)
    assert gaps["max_segment_recall_gap"] == pytest.approx(0.5)  # amount band: 1.0 - 0.5 (customer: 0.5 vs 1.0 too)
    assert gaps["max_segment_alert_rate_gap"] == pytest.approx(max(2 / 3 - 1 / 3, 0.5 - 0.5))
    flags = segment_gaps(table, limit=0.4).set_index("segment")
    # amount band: recall gap 0.5 > 0.4 flagged; customer: recall 0.5 vs 1.0 (gap 0.5) flagged too
    assert flags.loc["amount band", "recall_gap"] == pytest.approx(0.5)
    assert flags.loc["amount band", "alert_rate_gap"] == pytest.approx(1 / 3)
    assert flags["flagged"].tolist() == [True, True]
    assert not segment_gaps(table, limit=0.5)["flagged"].any()  # a gap at the limit is not above it


def test_daily_table_by_hand():
    times = pd.Series(pd.to_datetime(["2018-08-01 09:00", "2018-08-01 23:59", "2018-08-02 01:00", "2018-08-02 02:00"]))
    alerts = np.array([1, 1, 0, 1])
    labels = np.array([1, 0, 0, 1])
    known = np.array([True, True, True, False])
    table = daily_table(times, alerts, labels, known, "current")
    assert table["day"].tolist() == [pd.Timestamp("2018-08-01"), pd.Timestamp("2018-08-02")]
    assert table["n"].tolist() == [2, 2] and table["alert_rate"].tolist() == [1.0, 0.5]
    assert table["n_alerted_labelled"].tolist() == [2, 0] and table["n_alerted_frauds"].tolist() == [1, 0]
    assert table["precision"].iloc[0] == 0.5 and math.isnan(table["precision"].iloc[1])  # no judged alert that day
    assert daily_table(times.iloc[:0], alerts[:0], labels[:0], known[:0], "current").empty


def test_calibration_by_hand():
    scores = np.array([0.01, 0.02, 0.03, 0.95, 1.0])
    labels = np.array([0, 0, 1, 1, 1])
    table = calibration(scores, labels, bins=10, sample="current")
    assert table["decile"].tolist() == [1, 10]
    assert table["n"].tolist() == [3, 2]
    assert table["mean_score"].tolist() == pytest.approx([0.02, 0.975])
    assert table["fraud_rate"].tolist() == pytest.approx([1 / 3, 1.0])


# --------------------------------------------------------------------------------------------
# Configuration and the whole comparison


def test_conf_defaults_parse_and_mistakes_name_their_key():
    assert MonitorConfig.parse(DEFAULTS, "monitor").current == "predictions"
    with pytest.raises(ConfigError, match=r"monitor.segments.amount_bands: must be strictly increasing"):
        MonitorConfig.parse({**DEFAULTS, "segments": {**DEFAULTS["segments"], "amount_bands": [50, 20]}}, "monitor")
    assert DEFAULTS["window_input"] == "data/predictions/live.parquet"  # infer's scores: dvc.yaml's dependency
    logged = compose(ROOT / "conf", ["monitor.current=service_log", "monitor.log=/var/lib/fraudpipe"])
    assert MonitorConfig.parse(logged["monitor"], "monitor").window_input == "/var/lib/fraudpipe"  # the service's log
    with pytest.raises(ConfigError, match=r"monitor.window_input: must be what monitor.current=service_log reads"):
        MonitorConfig.parse({**DEFAULTS, "current": "service_log"}, "monitor")  # a hand edit of current alone
    with pytest.raises(
        ConfigError, match=r"monitor.current: must be one of 'predictions' or 'service_log', got 'journal'"
    ):
        MonitorConfig.parse({**DEFAULTS, "current": "journal"}, "monitor")
    with pytest.raises(ConfigError, match=r"monitor.log"):
        MonitorConfig.parse({**DEFAULTS, "log": ""}, "monitor")
    redis = compose(ROOT / "conf", ["monitor.current=service_log", "monitor.log=redis://:pw@cache:6379/0"])["monitor"]
    with pytest.raises(ConfigError, match=r"monitor.window_input: a Redis log is no file DVC can hash.*:\*\*\*@cache"):
        MonitorConfig.parse(redis, "monitor")  # dvc.yaml's dependency: DVC cannot read a redis:// URL
    redis["window_inputs"]["service_log"] = redis["window_input"] = "data/interim/transactions.parquet"
    assert MonitorConfig.parse(redis, "monitor").log_where == "Redis redis://:***@cache:6379/0, prefix fraudpipe"
    with pytest.raises(ConfigError, match=r"monitor.features.drift_share: must be <= 1"):
        MonitorConfig.parse({**DEFAULTS, "features": {**DEFAULTS["features"], "drift_share": 1.5}}, "monitor")


def _monitor(config: MonitorConfig, current: pd.DataFrame, reference: pd.DataFrame, scores: np.ndarray | None = None):
    scores = np.full(len(current), 0.1) if scores is None else scores
    return monitor(
        reference,
        np.full(len(reference), 0.1),
        current,
        scores,
        (scores >= 0.5).astype(np.int8),
        features=["tx_amount"],
        threshold=0.5,
        test_metrics={"average_precision": 0.5, "card_precision_at_k": 0.2, "card_precision_k": 3},
        delay_days=7,
        remove_known=True,
        config=config,
    )


def test_monitor_alerts_and_says_why_only_when_something_crossed_its_threshold(config):
    reference = _window(days=7)
    quiet = _monitor(config, reference.assign(tx_datetime=reference["tx_datetime"] + pd.Timedelta(days=7)), reference)
    assert quiet.metrics["alert"] == 0 and quiet.reasons == [] and quiet.summary.startswith("No alert")
    inflated = _window(days=20)
    inflated["tx_amount"] *= 3
    loud = _monitor(config, inflated, reference)
    assert loud.metrics["alert"] == 1 and loud.metrics["dataset_drift"] == 1
    assert loud.summary.startswith("ALERT: dataset drift: 1 of 1 features drifted") and "tx_amount" in loud.summary
    assert list(loud.samples) == ["tx_amount"]  # its distribution is drawn in the report


def test_changes_are_said_as_what_happened(config):
    assert (moved(0.05), moved(-0.05), moved(0.001), moved(float("nan"))) == (
        "rose 5%",
        "fell 5%",
        "held steady",
        "could not be compared",
    )
    reference = _window(days=7)
    quiet = _monitor(config, reference.assign(tx_datetime=reference["tx_datetime"] + pd.Timedelta(days=7)), reference)
    assert "drop" not in quiet.summary and "+" not in quiet.summary and "-" not in quiet.summary.split("(")[0]
    assert "the alert rate held steady" in quiet.summary


def test_the_daily_table_holds_both_periods_and_the_gaps_their_limit(config):
    reference = _window(days=7)
    result = _monitor(config, _window(days=20), reference)
    assert result.daily.groupby("sample", sort=False).size().to_dict() == {"reference": 7, "current": 20}
    assert result.daily["n"].sum() == len(reference) + 200
    assert result.gap_limit == config.segments.max_gap
    assert result.segment_gaps["segment"].tolist() == ["transaction amount", "customer history"]


def test_a_rerun_replaces_its_own_history_point_and_a_new_window_adds_one(config, tmp_path):
    reference = _window(days=7)
    first = _monitor(config, _window(days=20), reference)
    later = _monitor(config, _window(days=21), reference)
    path = tmp_path / "history.json"
    assert read_history(path) == []
    write_json(add_point(read_history(path), history_point(first)), path)
    written = path.read_bytes()
    write_json(add_point(read_history(path), history_point(first)), path)
    assert path.read_bytes() == written  # nothing changed: the same bytes
    write_json(add_point(read_history(path), history_point(later)), path)
    points = read_history(path)
    assert [p["run"] for p in points] == [1, 2] and points[0]["window"] != points[1]["window"]
    assert points[1]["alert_rate"] == later.metrics["current_alert_rate"]
    assert points[0]["live_average_precision"] is None or points[0]["live_average_precision"] >= 0
    write_json(add_point(read_history(path), history_point(first)), path)  # the first window again: replaced
    assert [p["window"] for p in read_history(path)] == [points[0]["window"], points[1]["window"]]
    path.write_text("{}")
    with pytest.raises(DataError, match="expected a JSON list of points"):
        read_history(path)


def test_monitor_writes_every_key_in_order(config):
    reference = _window(days=7)
    result = _monitor(config, _window(days=20), reference)
    assert tuple(result.metrics) == METRIC_KEYS


def test_an_empty_window_is_nothing_to_monitor_not_an_error(config):
    # split=relative without live days gives an empty live period: the pipeline must still reproduce.
    reference = _window(days=7)
    result = _monitor(config, reference.iloc[:0], reference)
    m = result.metrics
    assert tuple(m) == METRIC_KEYS
    assert m["alert"] == 0 and m["n_current"] == 0 and m["n_drifted"] == 0 and m["n_features"] == 1
    assert math.isnan(m["drift_share"]) and math.isnan(m["prediction_psi"]) and math.isnan(m["live_average_precision"])
    assert m["test_average_precision"] == 0.5 and m["n_reference"] == len(reference)
    assert result.summary.startswith("Nothing monitored: the current window holds no transactions")
    assert "No alert" not in result.summary and "split.live_days" in result.summary
    assert result.features.empty and result.segments.empty and set(result.calibration["sample"]) == {"reference"}


def test_monitor_refuses_misaligned_scores(config):
    reference = _window(days=7)
    with pytest.raises(DataError, match="3 scores and 3 alerts for 70 current rows"):
        _monitor(config, reference, reference, scores=np.zeros(3))
