"""Proof on the simulator that monitoring catches each kind of drift and stays quiet without it.

Each run is the pipeline in one process at a tiny size (tests/helpers/scenario.py's ``tiny``: the
handbook's split, a month of live data, about 230,000 transactions, a few seconds): stable
seeds must not alert; each drift knob of conf/data/simulated_drift.yaml, turned on alone from the
first live day, must alert and name what drifted. The full-size figures over ten seeds are the
benchmark's (`python benchmarks/monitor.py`).
"""

from __future__ import annotations

import functools
import math

import pytest

from fraudpipe.config import compose
from fraudpipe.monitoring.config import MonitorConfig
from fraudpipe.monitoring.monitor import MonitorResult
from helpers.scenario import ROOT, SIZES, run_scenario

TINY = SIZES["tiny"]


@functools.cache
def _stable(seed: int) -> MonitorResult:
    """A run without drift: each seed's run once, read by the tests that compare with it."""
    return run_scenario(TINY, seed=seed)


def _drifted(result) -> set[str]:
    return set(result.features.loc[result.features["drifted"], "feature"])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_alert_without_drift(seed):
    result = _stable(seed)
    m = result.metrics
    assert m["alert"] == 0, result.summary
    assert m["n_drifted"] == 0 and m["dataset_drift"] == 0 and m["prediction_drift"] == 0
    assert m["n_labelled_frauds"] >= 30 and math.isfinite(m["performance_drop"])  # performance was judged, not skipped
    assert result.summary.startswith("No alert")


def test_amount_inflation_alerts_and_names_the_amount_features():
    result = run_scenario(TINY, drift=["amount_factor"], seed=1)
    m = result.metrics
    assert m["alert"] == 1 and m["prediction_drift"] == 1
    assert {"tx_amount", "customer_id_avg_amount_1day_window", "customer_id_avg_amount_7day_window"} <= _drifted(result)
    assert not any(f.startswith("terminal_id_nb_tx") for f in _drifted(result))  # counts did not change
    assert m["alert_rate_change"] > 0.5
    assert (
        result.summary.startswith("ALERT") and "customer_id_avg_amount" in result.summary
    )  # the most shifted, by name


def test_compromised_terminal_wave_alerts_and_names_the_terminal_risk_features():
    result = run_scenario(TINY, drift=["terminals_per_day"], seed=1)
    m = result.metrics
    assert m["alert"] == 1, result.summary
    drifted = _drifted(result)
    assert drifted and all(f.startswith("terminal_id_risk") for f in drifted), drifted
    assert not any("amount" in f for f in drifted)


def test_new_fraud_pattern_shows_as_a_performance_drop():
    stable = _stable(1)
    result = run_scenario(TINY, drift=["night_fraud_share"], seed=1)
    m = result.metrics
    assert m["alert"] == 1, result.summary
    assert (
        m["performance_drop"] >= MonitorConfig.parse(compose(ROOT / "conf")["monitor"], "monitor").performance.max_drop
    )
    assert m["live_average_precision"] < stable.metrics["live_average_precision"] - 0.1
    assert "performance drop" in result.summary
