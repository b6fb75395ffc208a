"""The monitor stage's comparison as one call: is the current window still the world the model was
trained on?

Reference is the training period (its features, and the model's scores on them); current is the
window being watched (by default the live period as `infer` scored it, see ``window``). ``monitor``
runs every check (``checks``: features, dataset, scores, performance; ``segments``: bias and
calibration; ``daily``: alert rate and precision per day), decides the alert and says why in one
sentence, with changes said as what happened ("rose 5%"). Everything here is a pure function of
arrays and tables; the `monitor` stage reads and writes, ``report`` draws.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fraudpipe.contract import CUSTOMER_ID, TX_AMOUNT, TX_DATETIME, TX_FRAUD, require_columns
from fraudpipe.errors import DataError
from fraudpipe.monitoring.checks import (
    FEATURE_TABLE_COLUMNS,
    dataset_drift,
    drifted_features,
    feature_table,
    labelled_mask,
    measured_mask,
    performance,
    prediction_drift,
)
from fraudpipe.monitoring.config import MonitorConfig, PredictionChecks, SegmentChecks
from fraudpipe.monitoring.daily import DAILY_COLUMNS, daily_table
from fraudpipe.monitoring.segments import (
    AMOUNT,
    GAP_COLUMNS,
    HISTORY,
    LOCATION,
    SEGMENT_COLUMNS,
    amount_bands,
    calibration,
    customer_age,
    largest_gaps,
    regions,
    segment_gaps,
    segment_table,
)


@dataclass(frozen=True)
class MonitorResult:
    """Everything the stage writes and the report shows."""

    metrics: dict[str, float]
    features: pd.DataFrame
    segments: pd.DataFrame
    calibration: pd.DataFrame
    reasons: list[str]
    summary: str
    #: For the report's plots: the reference and current values of the features to draw, the scores.
    samples: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    reference_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    current_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    threshold: float = 0.5
    model_version: str = ""
    periods: dict[str, str] = field(default_factory=dict)
    #: Alert rate and precision per day, reference and current (``daily``).
    daily: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(DAILY_COLUMNS)))
    #: Per segment, the gaps between its groups and whether one exceeds ``monitor.segments.max_gap``.
    segment_gaps: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(GAP_COLUMNS)))
    gap_limit: float = float("nan")


def _period(times: pd.Series) -> str:
    return f"{times.min():%Y-%m-%d %H:%M} .. {times.max():%Y-%m-%d %H:%M}" if len(times) else "empty"


def _pct(value: float) -> str:
    return f"{value:.2%}"


def moved(relative: float) -> str:
    """A relative change as what happened: ``rose 5%``, ``fell 5%``, ``held steady`` (under half a
    percent); ``rose from none`` from zero; ``could not be compared`` when undefined."""
    if relative == float("inf"):
        return "rose from none"
    if not np.isfinite(relative):
        return "could not be compared"
    if abs(relative) < 0.005:
        return "held steady"
    return f"{'rose' if relative > 0 else 'fell'} {abs(relative):.0%}"


def monitor(
    reference: pd.DataFrame,
    reference_scores: np.ndarray,
    current: pd.DataFrame,
    current_scores: np.ndarray,
    current_alerts: np.ndarray,
    *,
    features: Sequence[str],
    threshold: float,
    test_metrics: Mapping[str, Any],
    delay_days: int,
    remove_known: bool,
    config: MonitorConfig,
    customers: pd.DataFrame | None = None,
    model_version: str = "",
) -> MonitorResult:
    """Compare the current window with the reference; the flat metrics end with ``alert`` (0/1).

    ``delay_days`` is the label delay; ``remove_known`` whether the test period's figures were
    measured without known compromised cards (`split.remove_known_compromised`), so the live ones are too.
    """
    if len(current_scores) != len(current) or len(current_alerts) != len(current):
        raise DataError(
            f"{len(current_scores)} scores and {len(current_alerts)} alerts for {len(current)} current rows"
        )
    require_columns(current, [TX_DATETIME, CUSTOMER_ID, TX_AMOUNT, TX_FRAUD], "the current window")
    require_columns(reference, [CUSTOMER_ID, TX_FRAUD], "the reference (training period)")
    if current.empty:
        return _empty_window(
            reference,
            reference_scores,
            current,
            features=features,
            threshold=threshold,
            test_metrics=test_metrics,
            config=config,
            model_version=model_version,
        )

    # The features' drift statistics (sorting mostly, outside the GIL) run while the rest, pandas
    # work mostly, is computed: the two overlap on two cores (about 0.4 s of the stage's 2 s).
    with ThreadPoolExecutor(max_workers=1) as background:
        drift = background.submit(feature_table, reference, current, features, config.features)
        prediction = prediction_drift(
            reference_scores, current_scores, threshold, config.prediction, config.features.psi_bins
        )
        known = labelled_mask(current, delay_days)
        measured = measured_mask(current, delay_days, remove_known)
        perf = performance(current, current_scores, measured, test_metrics, config.performance)

        labels = current[TX_FRAUD].fillna(0).to_numpy(dtype=np.int8)
        groups = _segment_groups(reference, current, customers, config.segments)
        segments = segment_table(groups, np.asarray(current_alerts), labels, known, config.segments.min_frauds)
        gaps = largest_gaps(segments)
        reference_labels = reference[TX_FRAUD]
        daily = pd.concat(
            [
                daily_table(
                    reference[TX_DATETIME] if TX_DATETIME in reference else pd.Series([], dtype="datetime64[us]"),
                    np.asarray(reference_scores) >= threshold,
                    reference_labels.fillna(0).to_numpy(),
                    reference_labels.notna().to_numpy(),
                    "reference",
                ),
                daily_table(current[TX_DATETIME], np.asarray(current_alerts), labels, known, "current"),
            ],
            ignore_index=True,
        )
        calib = pd.concat(
            [
                calibration(
                    reference_scores, reference[TX_FRAUD].fillna(0).to_numpy(), config.calibration_bins, "reference"
                ),
                calibration(
                    np.asarray(current_scores)[known], labels[known], config.calibration_bins, "current (labelled)"
                ),
            ],
            ignore_index=True,
        )

        table = drift.result()
    metrics: dict[str, float] = dataset_drift(table, config.features.drift_share) | prediction
    reasons = _reasons(metrics, perf, config)
    every = (
        metrics | perf | gaps | {"n_reference": len(reference), "n_current": len(current), "alert": int(bool(reasons))}
    )
    flat = {key: every[key] for key in METRIC_KEYS}
    drifted = drifted_features(table)
    summary = _summary(reasons, drifted, flat, config)
    plotted = drifted[: config.report_max_plots]
    samples = {f: (reference[f].dropna().to_numpy(), current[f].dropna().to_numpy()) for f in plotted}
    return MonitorResult(
        flat,
        table,
        segments,
        calib,
        reasons,
        summary,
        samples,
        np.asarray(reference_scores, dtype=np.float64),
        np.asarray(current_scores, dtype=np.float64),
        float(threshold),
        model_version,
        {
            "reference": _period(reference[TX_DATETIME]) if TX_DATETIME in reference else "",
            "current": _period(current[TX_DATETIME]),
        },
        daily=daily,
        segment_gaps=segment_gaps(segments, config.segments.max_gap),
        gap_limit=config.segments.max_gap,
    )


def _segment_groups(
    reference: pd.DataFrame, current: pd.DataFrame, customers: pd.DataFrame | None, checks: SegmentChecks
) -> dict[str, np.ndarray | pd.Categorical]:
    """The current rows' group in each segment: customer location (when the source gives the
    customers' coordinates, as the simulator does), transaction amount, customer history."""
    groups: dict[str, np.ndarray | pd.Categorical] = {}
    if customers is not None:
        groups[LOCATION] = regions(current[CUSTOMER_ID], customers, checks.region_grid)
    groups[AMOUNT] = amount_bands(current[TX_AMOUNT].to_numpy(np.float64), checks.amount_bands)
    groups[HISTORY] = customer_age(current[CUSTOMER_ID], reference[CUSTOMER_ID])
    return groups


def _reasons(metrics: Mapping[str, float], perf: Mapping[str, float], config: MonitorConfig) -> list[str]:
    """One line per check that crossed its threshold, naming the figure and the limit: the alert's why."""
    reasons = []
    if metrics["dataset_drift"]:
        reasons.append(
            f"dataset drift: {metrics['n_drifted']} of {metrics['n_features']} features drifted "
            f"(share {metrics['drift_share']:.2f} >= {config.features.drift_share:g})"
        )
    if metrics["prediction_drift"]:
        reasons.append("prediction drift: " + ", ".join(_prediction_parts(metrics, config.prediction)))
    drop = perf["performance_drop"]
    if np.isfinite(drop) and drop >= config.performance.max_drop:
        reasons.append(
            f"performance drop: average precision {moved(-drop)} ({perf['live_average_precision']:.3f} on the "
            f"labelled live rows against {perf['test_average_precision']:.3f} on the test period; a fall of "
            f"{config.performance.max_drop:.0%} alerts)"
        )
    return reasons


def _prediction_parts(metrics: Mapping[str, float], checks: PredictionChecks) -> list[str]:
    """Which of the score checks crossed its threshold."""
    parts = []
    if metrics["prediction_psi"] >= checks.psi:
        parts.append(f"the scores shifted (PSI {metrics['prediction_psi']:.3f}; {checks.psi:g} alerts)")
    if metrics["prediction_wasserstein"] >= checks.wasserstein:
        parts.append(
            f"the scores moved (Wasserstein {metrics['prediction_wasserstein']:.3f}; {checks.wasserstein:g} alerts)"
        )
    if abs(metrics["alert_rate_change"]) >= checks.alert_rate_change:
        parts.append(
            f"the alert rate {moved(metrics['alert_rate_change'])} ({_pct(metrics['reference_alert_rate'])} to "
            f"{_pct(metrics['current_alert_rate'])}; a change of {checks.alert_rate_change:.0%} either way alerts)"
        )
    return parts


#: The keys of drift.json, in order.
METRIC_KEYS = (
    "drift_share",
    "dataset_drift",
    "n_drifted",
    "n_features",
    "prediction_psi",
    "prediction_wasserstein",
    "prediction_drift",
    "reference_alert_rate",
    "current_alert_rate",
    "alert_rate_change",
    "n_labelled",
    "n_labelled_frauds",
    "test_average_precision",
    "test_card_precision_at_k",
    "card_precision_k",
    "live_average_precision",
    "live_card_precision_at_k",
    "performance_drop",
    "max_segment_recall_gap",
    "max_segment_alert_rate_gap",
    "n_reference",
    "n_current",
    "alert",
)


#: How the summary of an empty window begins: it is neither an alert nor a healthy window.
NOTHING_MONITORED = "Nothing monitored"


def _empty_window(
    reference: pd.DataFrame,
    reference_scores: np.ndarray,
    current: pd.DataFrame,
    *,
    features: Sequence[str],
    threshold: float,
    test_metrics: Mapping[str, Any],
    config: MonitorConfig,
    model_version: str,
) -> MonitorResult:
    """No current transactions (a relative split without live days): nothing was measured, which
    the summary says first (never "no alert", which would read as healthy); the statistics are
    undefined (null), the counts zero, ``alert`` 0. Not an error, so that a pipeline without a live
    period still reproduces."""
    ref_scores = np.asarray(reference_scores, dtype=np.float64)
    perf = performance(current, np.zeros(0), np.zeros(0, dtype=bool), test_metrics, config.performance)
    metrics = (
        dict.fromkeys(METRIC_KEYS, float("nan"))
        | perf
        | {
            "dataset_drift": 0,
            "n_drifted": 0,
            "n_features": len(features),
            "prediction_drift": 0,
            "reference_alert_rate": float(np.mean(ref_scores >= threshold)) if len(ref_scores) else float("nan"),
            "n_reference": len(reference),
            "n_current": 0,
            "alert": 0,
        }
    )
    summary = (
        f"{NOTHING_MONITORED}: the current window holds no transactions, so no drift and no performance was "
        "measured (no live period: set split.live_days, or a split.train_start that leaves days after the test "
        "period; with monitor.current: service_log, the service has logged nothing yet)."
    )
    return MonitorResult(
        {key: metrics[key] for key in METRIC_KEYS},
        pd.DataFrame(columns=list(FEATURE_TABLE_COLUMNS)),
        pd.DataFrame(columns=list(SEGMENT_COLUMNS)),
        calibration(ref_scores, reference[TX_FRAUD].fillna(0).to_numpy(), config.calibration_bins, "reference"),
        [],
        summary,
        {},
        ref_scores,
        np.zeros(0),
        float(threshold),
        model_version,
        {"reference": _period(reference[TX_DATETIME]) if TX_DATETIME in reference else "", "current": "empty"},
    )


def _summary(reasons: list[str], drifted: list[str], metrics: Mapping[str, float], config: MonitorConfig) -> str:
    """One sentence: alert or not, and why."""
    named = ""
    if drifted:
        shown = ", ".join(drifted[:5]) + (f" and {len(drifted) - 5} more" if len(drifted) > 5 else "")
        named = f" Drifted features: {shown}."
    if reasons:
        return "ALERT: " + "; ".join(reasons) + "." + named
    drop = metrics["performance_drop"]
    perf = (
        f"average precision {moved(-drop)} against the test period ({metrics['live_average_precision']:.3f} "
        f"against {metrics['test_average_precision']:.3f})"
        if np.isfinite(drop)
        else "too few labelled frauds yet to judge the precision"
    )
    return (
        f"No alert: {metrics['n_drifted']} of {metrics['n_features']} features drifted (an alert takes a share of "
        f"{config.features.drift_share:g}), the scores kept their distribution (PSI {metrics['prediction_psi']:.3f}, "
        f"under {config.prediction.psi:g}), the alert rate {moved(metrics['alert_rate_change'])} "
        f"({_pct(metrics['reference_alert_rate'])} to {_pct(metrics['current_alert_rate'])}), and {perf}.{named}"
    )
