"""The monitoring report's figures as inline SVG (`monitoring.svg`): the page needs no file beside it,
and the same result draws the same bytes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudpipe.monitoring.statistics import NUMERIC
from fraudpipe.monitoring.svg import Axis, Bars, Line, Rule, bar_chart, day_label, day_ticks, line_chart, percent_label

REFERENCE_COLOR, CURRENT_COLOR = "#4C72B0", "#DD8452"
#: Each chart's size in pixels, for the page's column of about 1,070: the two daily charts side by side.
FEATURE_SIZE, SCORE_SIZE, CALIBRATION_SIZE, DAILY_SIZE = (368, 240), (480, 272), (368, 336), (520, 240)


def _density(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.histogram(values, bins=edges, density=True)[0] if len(values) else np.zeros(len(edges) - 1)


def _category(value: object) -> str:
    return f"{value:g}" if isinstance(value, (float, np.floating)) else str(value)


def distribution_figure(name: str, kind: str, reference: np.ndarray, current: np.ndarray) -> str:
    """Reference against current: density histograms on shared bins (numeric, 0.5-99.5 percentile
    range, so one extreme value does not squash the rest) or shares per value (binary, categorical)."""
    if kind != NUMERIC:
        categories = np.unique(np.concatenate([reference, current]))
        bars = [
            Bars(label, [float(np.mean(values == c)) if len(values) else 0.0 for c in categories], color)
            for values, label, color in ((reference, "reference", REFERENCE_COLOR), (current, "current", CURRENT_COLOR))
        ]
        return bar_chart(name, [_category(c) for c in categories], bars, Axis("share of rows"), FEATURE_SIZE)
    both = np.concatenate([reference, current]).astype(np.float64)
    low, high = np.quantile(both, [0.005, 0.995])
    if high <= low:
        low, high = float(both.min()), float(both.max()) + 1.0
    edges = np.linspace(low, high, 41)
    lines = [
        Line(label, edges.tolist(), _density(np.clip(values, low, high), edges).tolist(), color, steps=True)
        for values, label, color in ((reference, "reference", REFERENCE_COLOR), (current, "current", CURRENT_COLOR))
    ]
    return line_chart(name, lines, Axis(), Axis("density", low=0.0), size=FEATURE_SIZE)


def score_figure(reference: np.ndarray, current: np.ndarray, threshold: float) -> str:
    """Score histograms, reference against current, on a log scale (almost every score is low)."""
    edges = np.linspace(0.0, 1.0, 51)
    lines = [
        Line(label, edges.tolist(), _density(np.clip(values, 0, 1), edges).tolist(), color, steps=True)
        for values, label, color in (
            (reference, "reference (training period)", REFERENCE_COLOR),
            (current, "current", CURRENT_COLOR),
        )
        if len(values)
    ]
    rule = Rule(threshold, "#000", vertical=True, label=f"alert threshold {threshold:.3f}")
    x, y = Axis("predicted fraud probability", low=0.0, high=1.0), Axis("density", log=True)
    return line_chart("Score distribution", lines, x, y, [rule], SCORE_SIZE)


def calibration_figure(table: pd.DataFrame) -> str:
    """Observed fraud rate against mean predicted probability per score decile, per sample. The axes
    reach a little past 0 and 1, so that a decile at a corner (the lowest scores, a fraud rate of 1)
    shows its whole marker instead of a half cut off by the frame."""
    lines = [Line("perfectly calibrated", [0.0, 1.0], [0.0, 1.0], "#888", dash="5,4")]
    for (sample, part), color in zip(table.groupby("sample", sort=False), (REFERENCE_COLOR, CURRENT_COLOR)):
        x, y = part["mean_score"].to_numpy(np.float64), part["fraud_rate"].to_numpy(np.float64)
        lines.append(Line(str(sample), x.tolist(), y.tolist(), color, markers=True))
    x_axis = Axis("mean predicted probability", low=-0.03, high=1.03)
    y_axis = Axis("observed fraud rate", low=-0.03, high=1.03)
    return line_chart("Calibration by score decile", lines, x_axis, y_axis, size=CALIBRATION_SIZE)


def daily_figures(daily: pd.DataFrame) -> list[str]:
    """Alert rate and precision per day, reference and current on one calendar axis, each sample's
    overall figure as a dotted line: what an analyst's queue looked like, day by day."""
    rates: list[Line] = []
    precisions: list[Line] = []
    rate_rules: list[Rule] = []
    precision_rules: list[Rule] = []
    for sample, part in daily.groupby("sample", sort=False):
        color = REFERENCE_COLOR if sample == "reference" else CURRENT_COLOR
        days = pd.to_datetime(part["day"]).to_numpy().astype("datetime64[D]").astype(np.int64).astype(float).tolist()
        rates.append(Line(str(sample), days, part["alert_rate"].to_numpy(np.float64).tolist(), color, markers=True))
        precision = part["precision"].to_numpy(np.float64).tolist()
        precisions.append(Line(str(sample), days, precision, color, markers=True))
        rate_rules.append(Rule(float(np.average(part["alert_rate"], weights=part["n"])), color))
        judged = float(part["n_alerted_labelled"].sum())
        if judged:
            precision_rules.append(Rule(float(part["n_alerted_frauds"].sum()) / judged, color))
    x = Axis(ticks=day_ticks, tick_format=day_label)
    return [
        line_chart(
            "Alert rate per day (share of transactions flagged)",
            rates,
            x,
            Axis(low=0.0, tick_format=percent_label(1)),
            rate_rules,
            DAILY_SIZE,
        ),
        line_chart(
            "Precision per day (share of flagged ones that were fraud)",
            precisions,
            x,
            Axis(low=0.0, high=1.05, tick_format=percent_label(0)),
            precision_rules,
            DAILY_SIZE,
        ),
    ]
