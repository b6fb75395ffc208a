"""The binary classification curves scikit-learn computes, in numpy: the same arithmetic in the
same order, so the same floats (tests/test_curves.py holds them to scikit-learn's on every call).

Importing scikit-learn costs a scoring stage more than its work: `sklearn.metrics` pulls in
scipy.stats, about a second of a stage's start on two cores, for four curves that are a sort and
two cumulative sums. Labels are 0/1 (any integer or boolean dtype), scores finite.
"""

from __future__ import annotations

import numpy as np


def _counts_at_thresholds(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positives alerted at each distinct score (``score >= threshold``), by
    decreasing threshold, and the thresholds: scikit-learn's ``confusion_matrix_at_thresholds``."""
    scores = np.asarray(scores)
    # Ties need no order of their own: the counts are read at the last row of each run of equal scores.
    order = np.argsort(scores, kind="stable")[::-1]
    scores = scores[order]
    positive = (np.asarray(labels)[order] == 1).astype(np.float64)
    ends = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    tps = np.cumsum(positive, dtype=np.float64)[ends]
    fps = 1 + ends.astype(np.float64) - tps
    return fps, tps, scores[ends]


def precision_recall_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's ``precision_recall_curve``: precision and recall by increasing threshold,
    ending at (recall 0, precision 1), which has no threshold."""
    fps, tps, thresholds = _counts_at_thresholds(labels, scores)
    alerted = tps + fps
    precision = np.where(alerted != 0, np.divide(tps, alerted), 0.0)
    recall = np.full(tps.shape, 1.0) if tps[-1] == 0 else tps / tps[-1]
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thresholds[::-1]


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's ``roc_curve`` (``drop_intermediate=True``): false and true positive rates by
    decreasing threshold from (0, 0), the first threshold ``inf``; NaN rates for an absent class."""
    fps, tps, thresholds = _counts_at_thresholds(labels, scores)
    if len(fps) > 2:  # points collinear with their neighbours change no area and no plot
        corner = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        fps, tps, thresholds = fps[corner], tps[corner], thresholds[corner]
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    thresholds = np.r_[np.inf, thresholds.astype(np.float64)]
    fpr = np.full(fps.shape, np.nan) if fps[-1] <= 0 else fps / fps[-1]
    tpr = np.full(tps.shape, np.nan) if tps[-1] <= 0 else tps / tps[-1]
    return fpr, tpr, thresholds


def roc_auc_score(labels: np.ndarray, scores: np.ndarray) -> float:
    """scikit-learn's ``roc_auc_score`` of two classes: the trapezoids under the ROC curve."""
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def average_precision_score(labels: np.ndarray, scores: np.ndarray) -> float:
    """scikit-learn's ``average_precision_score``: precision summed over recall steps, no interpolation."""
    precision, recall, _ = precision_recall_curve(labels, scores)
    return float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))


def calibration_curve(labels: np.ndarray, probabilities: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's ``calibration_curve`` with uniform bins on [0, 1]: the observed fraud rate and
    the mean probability of each bin that holds a row."""
    probabilities = np.asarray(probabilities)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.searchsorted(edges[1:-1], probabilities)
    total = np.bincount(bins, minlength=n_bins)
    observed = np.bincount(bins, weights=np.asarray(labels) == 1, minlength=n_bins)
    predicted = np.bincount(bins, weights=probabilities, minlength=n_bins)
    held = total != 0
    return observed[held] / total[held], predicted[held] / total[held]
