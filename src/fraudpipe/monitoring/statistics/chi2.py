"""Pearson's chi-square test of homogeneity: binary and categorical features against a small reference."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudpipe.monitoring.statistics.categories import category_counts
from fraudpipe.monitoring.statistics.registry import CATEGORICAL, register

CHI2 = "chi2"


@register(
    CHI2,
    "chi-square p-value",
    "the chance that the shares per value differ this much by luck alone: small means they really changed",
    CATEGORICAL,
    p_value=True,
)
def chi2_p_value(reference: pd.Series | np.ndarray, current: pd.Series | np.ndarray) -> float:
    """p-value of Pearson's chi-square test that both samples share one category distribution
    (a 2 x k contingency table, no continuity correction); 1 when there is one category only."""
    ref, cur = category_counts(reference, current)
    if len(ref) < 2:
        return 1.0
    from scipy import stats  # see the package's docstring: scipy.stats only where a small reference is tested

    return float(stats.chi2_contingency(np.vstack([ref, cur]), correction=False).pvalue)
