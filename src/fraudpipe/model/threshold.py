"""Choosing the alert threshold (alert when score >= threshold) from labelled scores."""

from __future__ import annotations

import numpy as np

from fraudpipe.curves import precision_recall_curve
from fraudpipe.errors import ConfigError


def max_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold with the highest F1 on these labels."""
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    precision, recall = precision[:-1], recall[:-1]  # the last point (recall 0) has no threshold
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return float(thresholds[int(np.argmax(f1))])


def top_k_per_day_threshold(scores: np.ndarray, days: np.ndarray, k: int) -> float:
    """The threshold giving on average k alerts a day (a daily review budget) on these days."""
    budget = k * len(np.unique(days))
    ordered = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    return float(ordered[min(budget, len(ordered)) - 1])


def select_threshold(labels: np.ndarray, scores: np.ndarray, days: np.ndarray, rule: str, k: int) -> float:
    """The threshold by `model.threshold_rule` (ModelConfig allows exactly these two)."""
    if rule == "max_f1":
        return max_f1_threshold(labels, scores)
    if rule == "top_k_per_day":
        return top_k_per_day_threshold(scores, days, k)
    raise ConfigError(f"model.threshold_rule: must be 'max_f1' or 'top_k_per_day', got {rule!r}")
