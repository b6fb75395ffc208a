"""Evaluation plots: data for `dvc plots` (JSON records) and matplotlib figures (PNG).

DVC renders the JSON records itself, so they must be strict JSON (scikit-learn's first ROC
threshold is `inf`: it is replaced by the next float above the highest score, which means the
same thing — no alert) and small enough to diff (curves are thinned to at most `max_points`).
Figures are made on the Agg canvas they are saved with (`agg_figure`) and written with fixed
metadata, so reruns write byte-identical PNGs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fraudpipe.curves import calibration_curve, precision_recall_curve, roc_curve
from fraudpipe.io import atomic_path

#: PNG metadata without the matplotlib version, so a library upgrade alone does not change files.
PNG_METADATA = {"Software": None}


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


def records_json(records: Sequence[Mapping[str, float]]) -> str:
    """A JSON list with one compact record per line: small in git, readable in a diff. The records
    are flat and hold numbers, so the list is encoded in one call (a record per call costs 0.4 s
    for a test period's confusion records) and a line ends wherever one record meets the next."""
    if not records:
        return "[\n\n]\n"
    text = json.dumps(records, separators=(",", ":"), allow_nan=False)
    return "[\n" + text[1:-1].replace("},{", "},\n{") + "\n]\n"


def agg_figure(figsize: tuple[float, float], dpi: float = 100) -> Figure:
    """A figure on an Agg canvas at the resolution it is saved with: `tight_layout` then measures the
    text with the renderer that draws it, so the saving reuses those measurements (matplotlib caches
    text extents per renderer) instead of laying every label out twice."""
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def feature_importance_figure(importance: Mapping[str, float], title: str = "Feature importance") -> Figure:
    names = list(importance)
    values = np.array([importance[n] for n in names], dtype=np.float64)
    order = np.argsort(values, kind="stable")
    fig = agg_figure((7, 0.3 * len(names) + 1.2))
    ax = fig.subplots()
    ax.barh(np.array(names)[order], values[order], color="#4C72B0")
    ax.set_xlabel("share of total importance")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def calibration_figure(labels: np.ndarray, scores: np.ndarray, n_bins: int = 10) -> Figure:
    """Reliability diagram: observed fraud rate against mean predicted probability per bin."""
    observed, predicted = calibration_curve(labels, np.clip(scores, 0.0, 1.0), n_bins)
    fig = agg_figure((5.5, 5))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    ax.plot(predicted, observed, marker="o", label="model")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed fraud rate")
    ax.set_title(f"Calibration ({n_bins} uniform bins)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def score_distribution_figure(
    labels: np.ndarray, scores: np.ndarray, threshold: float | None = None, bins: int = 50
) -> Figure:
    """Score histograms per class, each normalised to its own count (frauds are <1 % of rows)."""
    labels = np.asarray(labels).astype(bool)
    edges = np.linspace(0.0, 1.0, bins + 1).tolist()  # a list: the stubs of hist(bins=) want a Sequence
    fig = agg_figure((7, 4.5))
    ax = fig.subplots()
    for mask, name, color in ((~labels, "genuine", "#4C72B0"), (labels, "fraud", "#C44E52")):
        if mask.any():
            ax.hist(
                np.clip(scores[mask], 0, 1),
                bins=edges,
                density=True,
                histtype="step",
                linewidth=1.5,
                color=color,
                label=f"{name} ({int(mask.sum()):,})",
            )
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle=":", label=f"threshold {threshold:.3f}")
    ax.set_yscale("log")
    ax.set_xlabel("predicted fraud probability")
    ax.set_ylabel("density")
    ax.set_title("Score distribution by class")
    ax.legend()
    fig.tight_layout()
    return fig


def save_png(fig: Figure, path: str | os.PathLike[str], dpi: int = 100) -> None:
    """Write a figure atomically as a deterministic PNG (Agg renders it: figures are made without
    pyplot, whose import and figure registry a stage writing files does not need); made by
    `agg_figure` at this ``dpi``, it is drawn with the renderer its layout measured with."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata=PNG_METADATA)
