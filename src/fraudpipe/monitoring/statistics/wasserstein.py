"""The Wasserstein distance normalised by the reference's spread: numeric features against a large
reference, and the score distribution."""

from __future__ import annotations

import numpy as np

from fraudpipe.monitoring.statistics.registry import NUMERIC, register
from fraudpipe.monitoring.statistics.samples import sorted_values

WASSERSTEIN = "wasserstein"


@register(
    WASSERSTEIN,
    "Wasserstein distance (normed)",
    "how far the values moved on average, in standard deviations of the reference: 0.1 is a tenth of one",
    NUMERIC,
    p_value=False,
)
def wasserstein_normed(reference: np.ndarray, current: np.ndarray) -> float:
    """The 1-Wasserstein distance between the two samples divided by the reference's standard
    deviation (Evidently's "normed" distance: 0.1 means the mass moved a tenth of a std on average).

    Computed here rather than by ``scipy.stats.wasserstein_distance``, which handles weights and so
    sorts each sample twice and their union once more, then looks every point of the union up in
    both samples: each sample is sorted once (`samples.sorted_values`, nothing to do when the caller
    sorted it), the two runs are merged, and each sample's distribution function at a point of the
    union is the count of its values merged so far. That count is the looked-up one wherever the
    next point is larger; where it is not, the step between them is 0 and so is the term. Same value
    (the test holds them to 1e-12). A constant reference has no scale: the raw distance is returned.
    """
    u, v = sorted_values(reference), sorted_values(current)
    merged = np.concatenate([u, v])
    order = np.argsort(merged, kind="stable")  # two ascending runs: a linear merge
    both = merged[order]
    # Counts accumulated as floats (whole numbers, exact below 2**53): the same quotients as from
    # integers, without a cast of every count before each division.
    from_u = np.cumsum(order[:-1] < len(u), dtype=np.float64)
    cdf_u = from_u / len(u)
    cdf_v = (np.arange(1.0, len(both)) - from_u) / len(v)
    raw = float(np.sum(np.abs(cdf_u - cdf_v) * np.diff(both)))
    scale = float(np.std(u))
    return raw / scale if scale > 0 else raw
