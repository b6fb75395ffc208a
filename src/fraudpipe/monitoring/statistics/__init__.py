"""The drift statistics, one module per family, each registered by name (``registry.STATISTICS``).

- ``ks``: two-sample Kolmogorov-Smirnov p-value (numeric, small reference).
- ``chi2``: Pearson's chi-square p-value (binary and categorical, small reference).
- ``wasserstein``: Wasserstein distance normed by the reference's std (numeric, large reference).
- ``jensen_shannon``: Jensen-Shannon distance of the category shares (binary and categorical, large).
- ``psi``: population stability index, over quantile bins or over categories (every feature).

Importing this package imports every family, so the registry is complete. The two tests of a
small reference (``ks``, ``chi2``) import scipy.stats when they run, not with the package: it
costs about a second of the monitor stage's start, and a reference of more than
``monitor.features.large_sample`` rows (the default data's) is compared by distances instead.
"""

from fraudpipe.monitoring.statistics import chi2, jensen_shannon, ks, psi, wasserstein
from fraudpipe.monitoring.statistics.registry import (
    BINARY,
    CATEGORICAL,
    NUMERIC,
    STATISTICS,
    Statistic,
    is_drifted,
    register,
)

__all__ = [
    "BINARY",
    "CATEGORICAL",
    "NUMERIC",
    "STATISTICS",
    "Statistic",
    "chi2",
    "is_drifted",
    "jensen_shannon",
    "ks",
    "psi",
    "register",
    "wasserstein",
]
