"""The Wasserstein distance normalised by the reference's spread: numeric features against a large
reference, and the score distribution."""

from __future__ import annotations

import numpy as np

from fraudpipe.monitoring.statistics.registry import NUMERIC, register

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
    sorts each sample twice and their union once more: each sample is sorted once and the union
    merged, which halves the stage's time on a live period of half a million rows. Same value
    (the test holds them to 1e-12). A constant reference has no scale: the raw distance is returned.
    """
    u = np.sort(np.asarray(reference, dtype=np.float64))
    v = np.sort(np.asarray(current, dtype=np.float64))
    both = np.sort(np.concatenate([u, v]), kind="stable")  # two sorted runs: a merge
    widths = np.diff(both)
    cdf_u = np.searchsorted(u, both[:-1], side="right") / len(u)
    cdf_v = np.searchsorted(v, both[:-1], side="right") / len(v)
    raw = float(np.sum(np.abs(cdf_u - cdf_v) * widths))
    scale = float(np.std(u))
    return raw / scale if scale > 0 else raw
