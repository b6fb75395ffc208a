"""The Jensen-Shannon distance: binary and categorical features against a large reference, where a
p-value would call every difference significant."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from fraudpipe.monitoring.statistics.categories import category_counts
from fraudpipe.monitoring.statistics.registry import CATEGORICAL, register

JENSEN_SHANNON = "jensen_shannon"


@register(
    JENSEN_SHANNON,
    "Jensen-Shannon distance",
    "how much the shares per value moved: 0 the same shares, 0.83 no value in common",
    CATEGORICAL,
    p_value=False,
)
def jensen_shannon(reference: pd.Series | np.ndarray, current: pd.Series | np.ndarray) -> float:
    """Jensen-Shannon distance (natural log: 0 to sqrt(ln 2)) between the category shares.

    ``scipy.spatial.distance.jensenshannon``'s steps written out, with one term per category:
    importing scipy.spatial for it cost the monitor stage a quarter to half a second. The test holds
    the value to scipy's, bit for bit."""
    ref, cur = category_counts(reference, current)
    p, q = _shares(ref / ref.sum()), _shares(cur / cur.sum())  # normalised twice, as scipy was called
    m = (p + q) / 2.0
    return float(np.sqrt((np.sum(_relative_entropy(p, m)) + np.sum(_relative_entropy(q, m))) / 2.0))


def _shares(values: np.ndarray) -> np.ndarray:
    return values / np.sum(values)


def _relative_entropy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x ln(x / y) per element, 0 where x is 0, as ``scipy.special.rel_entr`` computes it where y > 0:
    the C library's logarithm, of the ratio or, for a ratio between 1/2 and 2 (the shares of a
    feature that barely moved), of one plus the relative difference, which keeps the digits the
    ratio would round away."""
    return np.array([_term(a, b) for a, b in zip(x.tolist(), y.tolist())], dtype=np.float64)


def _term(x: float, y: float) -> float:
    if x <= 0:
        return 0.0
    ratio = x / y
    return x * (math.log1p((x - y) / y) if 0.5 < ratio < 2 else math.log(ratio))
