"""Evaluation plots: data for `dvc plots`, JSON records that DVC draws with Vega-Lite (dvc.yaml names
each file's template and axes).

The records must be strict JSON (scikit-learn's first ROC threshold is `inf`: it is replaced by the
next float above the highest score, which means the same thing — no alert) and small enough to diff
(curves are thinned to at most `max_points`). The summaries (importance, calibration, score
histogram) are rounded to `DECIMALS` places and listed in a fixed order, so a rerun writes the same
bytes and a diff shows only what moved. No figure is drawn here: a stage that drew them would pay
matplotlib's import and rendering (about a second) on every run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np

from fraudpipe.curves import precision_recall_curve, roc_curve

#: Decimal places of the summaries' fractions: far below what a plot shows, stable across platforms.
DECIMALS = 6


def _thin(n: int, max_points: int) -> np.ndarray:
    """Indices of at most max_points evenly spread points, always keeping both ends."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))


def _finite_thresholds(thresholds: np.ndarray) -> np.ndarray:
    thresholds = np.asarray(thresholds, dtype=np.float64).copy()
    finite = np.isfinite(thresholds)
    top = thresholds[finite].max() if finite.any() else 1.0
    thresholds[~finite] = np.nextafter(top, np.inf)
    return thresholds


def roc_records(labels: np.ndarray, scores: np.ndarray, max_points: int = 1000) -> list[dict[str, float]]:
    """ROC curve as `{fpr, tpr, threshold}` records, thresholds finite, from (0, 0) to (1, 1)."""
    fpr, tpr, thresholds = roc_curve(labels, scores)
    thresholds = _finite_thresholds(thresholds)
    return [
        {"fpr": float(fpr[i]), "tpr": float(tpr[i]), "threshold": float(thresholds[i])}
        for i in _thin(len(fpr), max_points)
    ]


def precision_recall_records(labels: np.ndarray, scores: np.ndarray, max_points: int = 1000) -> list[dict[str, float]]:
    """Precision-recall curve as `{recall, precision, threshold}` records, by increasing threshold.

    scikit-learn's last point (recall 0, precision 1) has no threshold; it gets the next float
    above the highest score, the threshold at which nothing is alerted.
    """
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    thresholds = _finite_thresholds(np.append(thresholds, np.inf))
    return [
        {"recall": float(recall[i]), "precision": float(precision[i]), "threshold": float(thresholds[i])}
        for i in _thin(len(recall), max_points)
    ]


def confusion_records(labels: np.ndarray, scores: np.ndarray, threshold: float) -> list[dict[str, int]]:
    """One `{actual, predicted}` record per transaction, as DVC's confusion template counts them."""
    actual = np.asarray(labels).astype(np.int64)
    predicted = (np.asarray(scores) >= threshold).astype(np.int64)
    return [{"actual": int(a), "predicted": int(p)} for a, p in zip(actual, predicted)]


def confusion_json(labels: np.ndarray, scores: np.ndarray, threshold: float) -> str:
    """`records_json` of `confusion_records`, without a dict per transaction: a record is one of four
    lines, picked per row (a test period's records cost 0.1 s as dicts). Labels other than 0/1 take
    the general path."""
    actual = np.asarray(labels).astype(np.int64)
    predicted = (np.asarray(scores) >= threshold).astype(np.int64)
    if not len(actual) or actual.min() < 0 or actual.max() > 1:
        return records_json(confusion_records(labels, scores, threshold))
    lines = np.array(
        [json.dumps({"actual": a, "predicted": p}, separators=(",", ":")) for a in (0, 1) for p in (0, 1)],
        dtype=object,
    )
    return "[\n" + ",\n".join(lines[2 * actual + predicted]) + "\n]\n"


def records_json(records: Sequence[Mapping[str, float | str]]) -> str:
    """A JSON list with one compact record per line: small in git, readable in a diff. The records
    are flat (numbers and names), so the list is encoded in one call (a record per call costs 0.4 s
    for a test period's confusion records) and a line ends wherever one record meets the next."""
    if not records:
        return "[\n\n]\n"
    text = json.dumps(records, separators=(",", ":"), allow_nan=False)
    return "[\n" + text[1:-1].replace("},{", "},\n{") + "\n]\n"


def feature_importance_records(importance: Mapping[str, float]) -> list[dict[str, str | float]]:
    """`{feature, importance}` records, the largest share first (ties by name): the bar chart's order."""
    shares = {str(name): round(float(value), DECIMALS) for name, value in importance.items()}
    return [{"feature": name, "importance": shares[name]} for name in sorted(shares, key=lambda n: (-shares[n], n))]


def calibration_records(labels: np.ndarray, scores: np.ndarray, n_bins: int = 10) -> list[dict[str, str | float]]:
    """Per uniform score bin holding a row (`curves.calibration_curve`'s bins): the mean predicted
    probability, the observed fraud rate, and the rows and frauds behind them, so that a bin of a
    few rows is seen to be one."""
    probabilities = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.searchsorted(edges[1:-1], probabilities)
    rows = np.bincount(bins, minlength=n_bins)
    frauds = np.bincount(bins, weights=np.asarray(labels) == 1, minlength=n_bins)
    total = np.bincount(bins, weights=probabilities, minlength=n_bins)
    return [
        {
            "bin": f"{edges[i]:.{DECIMALS}g}-{edges[i + 1]:.{DECIMALS}g}",
            "mean_predicted": round(float(total[i] / rows[i]), DECIMALS),
            "fraud_rate": round(float(frauds[i] / rows[i]), DECIMALS),
            "rows": int(rows[i]),
            "frauds": int(frauds[i]),
        }
        for i in np.flatnonzero(rows)
    ]


def score_distribution_records(
    labels: np.ndarray, scores: np.ndarray, threshold: float, bins: int = 50
) -> list[dict[str, str | float]]:
    """Rows per score bin and class (`{score, class, rows, threshold}`, ``score`` the bin's centre),
    genuine then fraud, every bin listed, empty ones too; each record carries the alert threshold,
    which the template draws as a rule."""
    positive = np.asarray(labels) == 1
    clipped = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    edges = np.linspace(0.0, 1.0, bins + 1)
    centres = [round(float(c), DECIMALS) for c in (edges[:-1] + edges[1:]) / 2]
    cut = round(float(threshold), DECIMALS)
    records: list[dict[str, str | float]] = []
    for name, mask in (("genuine", ~positive), ("fraud", positive)):
        counts = np.histogram(clipped[mask], bins=edges)[0]
        records += [
            {"score": c, "class": name, "rows": int(n), "threshold": cut} for c, n in zip(centres, counts, strict=True)
        ]
    return records
