"""The population stability index: one scale for every feature whatever its test, over quantile bins
of the reference (numbers) or over the categories themselves."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudpipe.monitoring.statistics.categories import category_counts
from fraudpipe.monitoring.statistics.registry import CATEGORICAL, NUMERIC, register
from fraudpipe.monitoring.statistics.samples import sorted_values

PSI, CATEGORY_PSI = "psi", "category_psi"
#: Shares below this count as this in PSI, so an empty bin gives a large but finite term (Evidently's floor).
PSI_FLOOR = 1e-4


def psi_from_shares(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index sum((c - r) * ln(c / r)) of two vectors of bin shares, each share
    floored at ``PSI_FLOOR`` so that an empty bin counts as rare, not as impossible."""
    r = np.maximum(np.asarray(reference, dtype=np.float64), PSI_FLOOR)
    c = np.maximum(np.asarray(current, dtype=np.float64), PSI_FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def quantile_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Inner edges of ``bins`` equal-count bins of the reference, repeated quantiles merged.

    Bins are closed on the right, (edge[i-1], edge[i]], so a value that fills several quantiles
    (the zero of a feature that is mostly zero) is a bin of its own and a shift of the rest away
    from it still shows; a change inside one bin does not (PSI's known blind spot)."""
    inner = np.quantile(np.asarray(reference, dtype=np.float64), np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(inner)


def binned_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of ``values`` in each of the ``len(edges) + 1`` bins the inner edges make."""
    values = np.asarray(values, dtype=np.float64)
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def sorted_binned_shares(ascending: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """`binned_shares` of a sample in ascending order: where each edge falls in it, not where each
    value falls among the edges (a few lookups instead of one per value; the same counts)."""
    ends = np.searchsorted(ascending, edges, side="right")
    counts = np.diff(ends, prepend=0, append=len(ascending))
    return counts / max(len(ascending), 1)


#: PSI's one-line meaning, the same for numbers and categories (the industry's rule of thumb).
PSI_MEANING = (
    "how much the rows moved between bins of the reference: below 0.1 stable, 0.1-0.25 a shift, above 0.25 a large one"
)


@register(PSI, "population stability index", PSI_MEANING, NUMERIC, p_value=False)
def psi(reference: np.ndarray, current: np.ndarray, bins: int) -> float:
    """PSI of a numeric sample over ``bins`` quantile bins of the reference (each sample sorted
    first, `samples.sorted_values`: nothing to do when the caller sorted it)."""
    ref, cur = sorted_values(reference), sorted_values(current)
    edges = quantile_edges(ref, bins)
    return psi_from_shares(sorted_binned_shares(ref, edges), sorted_binned_shares(cur, edges))


@register(CATEGORY_PSI, "population stability index (categories)", PSI_MEANING, CATEGORICAL, p_value=False)
def category_psi(reference: pd.Series | np.ndarray, current: pd.Series | np.ndarray) -> float:
    """PSI over the categories themselves (a binary or categorical feature's natural bins)."""
    ref, cur = category_counts(reference, current)
    return psi_from_shares(ref / max(ref.sum(), 1), cur / max(cur.sum(), 1))
