"""The two-sample Kolmogorov-Smirnov test: numeric features against a small reference."""

from __future__ import annotations

import numpy as np

from fraudpipe.monitoring.statistics.registry import NUMERIC, register

KS = "ks"


@register(
    KS,
    "Kolmogorov-Smirnov p-value",
    "the chance that the two samples differ this much by luck alone: small means the values really changed",
    NUMERIC,
    p_value=True,
)
def ks_p_value(reference: np.ndarray, current: np.ndarray) -> float:
    """p-value of the two-sample Kolmogorov-Smirnov test (scipy, exact for small samples)."""
    from scipy import stats  # see the package's docstring: scipy.stats only where a small reference is tested

    return float(stats.ks_2samp(reference, current).pvalue)
