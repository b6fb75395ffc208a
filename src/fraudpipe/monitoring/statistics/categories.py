"""Categorical samples as counts per category: what chi-square, Jensen-Shannon and category PSI compare."""

from __future__ import annotations

import numpy as np
import pandas as pd


def category_counts(
    reference: pd.Series | np.ndarray, current: pd.Series | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Counts per category in each sample, over the union of the categories, in sorted order."""
    ref, cur = pd.Series(reference).dropna(), pd.Series(current).dropna()
    categories = pd.Index(pd.unique(pd.concat([ref, cur], ignore_index=True))).sort_values()
    return (
        ref.value_counts().reindex(categories, fill_value=0).to_numpy(np.float64),
        cur.value_counts().reindex(categories, fill_value=0).to_numpy(np.float64),
    )
