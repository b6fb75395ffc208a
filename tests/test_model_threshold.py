"""The alert threshold rules, by hand."""

from __future__ import annotations

import re

import numpy as np
import pytest

from fraudpipe.errors import ConfigError
from fraudpipe.model.threshold import max_f1_threshold, select_threshold, top_k_per_day_threshold


def test_max_f1_threshold_by_hand():
    # F1 at >= 0.9, 0.8, 0.7, 0.6, 0.3, 0.1: 0.5, 0.8, 0.667, 0.857, 0.75, 0.667 -> 0.6
    assert max_f1_threshold(np.array([1, 1, 0, 1, 0, 0]), np.array([0.9, 0.8, 0.7, 0.6, 0.3, 0.1])) == 0.6


def test_top_k_per_day_threshold_gives_k_alerts_a_day():
    rng = np.random.default_rng(1)
    scores, days = rng.uniform(size=1000), np.repeat(np.arange(4), 250)
    threshold = top_k_per_day_threshold(scores, days, k=10)
    assert np.sum(scores >= threshold) == 40
    assert top_k_per_day_threshold(scores[:5], days[:5], k=10) == scores[:5].min()  # budget > rows


def test_select_threshold_follows_the_rule():
    labels, scores = np.array([1, 1, 0, 1, 0, 0]), np.array([0.9, 0.8, 0.7, 0.6, 0.3, 0.1])
    days = np.zeros(6)
    assert select_threshold(labels, scores, days, "max_f1", 2) == 0.6
    assert select_threshold(labels, scores, days, "top_k_per_day", 2) == 0.8
    with pytest.raises(ConfigError, match=re.escape("model.threshold_rule")):
        select_threshold(labels, scores, days, "best", 2)
