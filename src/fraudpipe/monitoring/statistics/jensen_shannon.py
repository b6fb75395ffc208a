"""The Jensen-Shannon distance: binary and categorical features against a large reference, where a
p-value would call every difference significant."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import distance

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
    """Jensen-Shannon distance (scipy, natural log: 0 to sqrt(ln 2)) between the category shares."""
    ref, cur = category_counts(reference, current)
    return float(distance.jensenshannon(ref / ref.sum(), cur / cur.sum()))
