"""Numeric samples in ascending order, the form the Wasserstein distance and quantile-bin PSI read.

Sorting a live window's column is most of a numeric feature's drift check (about 40 ms for half a
million values, per feature and statistic), so a feature's samples are sorted once and both its
statistics take them as they are: an already ascending array is recognised in one pass. Integer
counts in a small range (the feature table's window counts) are laid out by counting, in linear
time, rather than compared: the same values in the same order.
"""

from __future__ import annotations

import numpy as np

#: Integer-valued samples spanning at most this many values are sorted by counting.
COUNTING_RANGE = 1 << 16


def is_ascending(values: np.ndarray) -> bool:
    """Whether every value is at most the next one (NaN anywhere makes it False)."""
    return bool(np.all(values[:-1] <= values[1:]))


def sorted_values(values: np.ndarray) -> np.ndarray:
    """``values`` as float64 in ascending order: the array itself when it already is."""
    values = np.asarray(values, dtype=np.float64)
    if is_ascending(values):
        return values
    counted = _counting_sort(values)
    return counted if counted is not None else np.sort(values)


def _counting_sort(values: np.ndarray) -> np.ndarray | None:
    """The ascending order of whole numbers spanning fewer than `COUNTING_RANGE` values, by counting
    each; None for any other sample (a fraction, a wide range, NaN)."""
    low, high = float(np.min(values)), float(np.max(values))
    if not (abs(low) < 2**52 and abs(high) < 2**52 and high - low < COUNTING_RANGE):  # NaN fails too
        return None
    whole = values.astype(np.int64)
    if not np.array_equal(whole, values):
        return None
    start = int(low)
    counts = np.bincount(whole - start)
    return np.repeat(np.arange(start, start + len(counts), dtype=np.int64), counts).astype(np.float64)
