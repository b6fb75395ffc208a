"""The checks of one current window against the reference: each feature, the dataset, the scores,
and performance once labels are known.

Per feature, one test chosen by the feature's type and the reference's size, as Evidently's
defaults choose them (Evidently itself does not import with pandas 3): a numeric feature (more
than ``categorical_max_values`` distinct reference values) gets the two-sample
Kolmogorov-Smirnov test when the reference has at most ``large_sample`` rows, the Wasserstein
distance normalised by the reference's standard deviation above that (a p-value test flags every
feature at a million rows, where any difference is "significant"); a binary or categorical
feature gets Pearson's chi-square test of homogeneity when small, the Jensen-Shannon distance
(natural log, as scipy and Evidently) between the category shares when large. Every feature also
gets a population stability index over quantile bins of the reference, one scale across types.
The dataset drifts when the share of drifted features reaches ``drift_share``. The features are
compared on a pool of threads, one per core: each feature's statistics are computed on their own
and numpy's sorts and merges, most of the time, release the GIL; the table keeps the feature order.

The prediction side: PSI and normalised Wasserstein distance of the score distribution, and the
relative change of the alert rate. Performance is measured on the part of the current window whose
labels are known (older than the label delay) against the test period's figures from `evaluate`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd

from fraudpipe.contract import CUSTOMER_ID, TX_DATETIME, TX_FRAUD, require_columns
from fraudpipe.data.split import remove_known_compromised
from fraudpipe.errors import DataError
from fraudpipe.metrics import average_precision, card_precision_at_k
from fraudpipe.monitoring.config import FeatureChecks, PerformanceChecks, PredictionChecks
from fraudpipe.monitoring.statistics import BINARY, CATEGORICAL, NUMERIC, STATISTICS
from fraudpipe.monitoring.statistics.chi2 import CHI2
from fraudpipe.monitoring.statistics.jensen_shannon import JENSEN_SHANNON
from fraudpipe.monitoring.statistics.ks import KS
from fraudpipe.monitoring.statistics.psi import category_psi, psi
from fraudpipe.monitoring.statistics.samples import sorted_values
from fraudpipe.monitoring.statistics.wasserstein import WASSERSTEIN, wasserstein_normed
from fraudpipe.progress import progress

# --------------------------------------------------------------------------------------------
# One feature


def _numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype)


def feature_kind(reference: pd.Series, categorical_max_values: int) -> str:
    """``binary`` (at most two distinct values, as 0/1 flags are), ``categorical`` (text, or numbers
    with at most ``categorical_max_values`` distinct values: Evidently's rule), else ``numeric``."""
    values = reference.dropna()
    n_distinct = int(values.nunique())
    if n_distinct <= 2:
        return BINARY
    if not _numeric(values) or n_distinct <= categorical_max_values:
        return CATEGORICAL
    return NUMERIC


def choose_test(kind: str, n_reference: int, checks: FeatureChecks) -> tuple[str, float]:
    """The test for a feature of ``kind`` with ``n_reference`` reference rows, and its threshold."""
    small = n_reference <= checks.large_sample
    if kind == NUMERIC:
        return (KS, checks.p_value) if small else (WASSERSTEIN, checks.wasserstein)
    return (CHI2, checks.p_value) if small else (JENSEN_SHANNON, checks.jensen_shannon)


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str
    test: str
    statistic: float
    threshold: float
    drifted: bool
    psi: float


def feature_drift(name: str, reference: pd.Series, current: pd.Series, checks: FeatureChecks) -> FeatureDrift:
    """The chosen test and the PSI of one feature (missing values left out of both)."""
    ref, cur = reference.dropna(), current.dropna()
    if ref.empty or cur.empty:
        which = "reference" if ref.empty else "current"
        raise DataError(f"feature {name!r} has no value in the {which} window: it cannot be compared")
    kind = feature_kind(ref, checks.categorical_max_values)
    test, threshold = choose_test(kind, len(ref), checks)
    if kind == NUMERIC:  # sorted once for both statistics
        r, c = sorted_values(ref.to_numpy(np.float64)), sorted_values(cur.to_numpy(np.float64))
        index = psi(r, c, checks.psi_bins)
    else:
        r, c = ref, cur
        index = category_psi(ref, cur)
    chosen = STATISTICS[test]
    statistic = chosen.function(r, c)
    return FeatureDrift(name, kind, test, statistic, threshold, chosen.drifted(statistic, threshold), index)


FEATURE_TABLE_COLUMNS = ("feature", "kind", "test", "statistic", "threshold", "drifted", "psi")


def feature_workers(n_features: int) -> int:
    """Threads for ``n_features`` features: one per core this process may run on, no more than features."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, n_features))


def feature_table(
    reference: pd.DataFrame, current: pd.DataFrame, features: Sequence[str], checks: FeatureChecks
) -> pd.DataFrame:
    """One row per feature, in the given order: kind, test, statistic, threshold, drifted, PSI."""
    require_columns(reference, features, "the reference (training period)")
    require_columns(current, features, "the current window")
    references, currents = [reference[f] for f in features], [current[f] for f in features]
    with ThreadPoolExecutor(max_workers=feature_workers(len(features))) as pool:
        drifts = pool.map(feature_drift, features, references, currents, repeat(checks))  # in feature order
        rows = list(progress(drifts, desc="feature drift", total=len(features), unit="feature"))
    return pd.DataFrame([r.__dict__ for r in rows], columns=list(FEATURE_TABLE_COLUMNS))


def dataset_drift(table: pd.DataFrame, drift_share: float) -> dict[str, float]:
    """How many features drifted, their share, and whether that share reaches ``drift_share``."""
    n = len(table)
    n_drifted = int(table["drifted"].sum())
    share = n_drifted / n if n else 0.0
    return {
        "drift_share": share,
        "dataset_drift": int(n > 0 and share >= drift_share),
        "n_drifted": n_drifted,
        "n_features": n,
    }


def drifted_features(table: pd.DataFrame) -> list[str]:
    """The drifted features, the most shifted first (by PSI, the one scale every test shares)."""
    drifted = table.loc[table["drifted"].astype(bool)]
    return drifted.sort_values("psi", ascending=False, kind="stable")["feature"].tolist()


# --------------------------------------------------------------------------------------------
# Predictions


def prediction_drift(
    reference_scores: np.ndarray, current_scores: np.ndarray, threshold: float, checks: PredictionChecks, bins: int
) -> dict[str, float]:
    """PSI and normed Wasserstein distance of the scores, the alert rates (``score >= threshold``)
    and the alert rate's relative change; ``prediction_drift`` when any crosses its threshold."""
    ref, cur = sorted_values(reference_scores), sorted_values(current_scores)  # once for PSI and Wasserstein
    ref_rate, cur_rate = float(np.mean(ref >= threshold)), float(np.mean(cur >= threshold))
    change = cur_rate / ref_rate - 1 if ref_rate > 0 else (0.0 if cur_rate == 0 else float("inf"))
    out = {
        "prediction_psi": psi(ref, cur, bins),
        "prediction_wasserstein": wasserstein_normed(ref, cur),
        "reference_alert_rate": ref_rate,
        "current_alert_rate": cur_rate,
        "alert_rate_change": change,
    }
    out["prediction_drift"] = int(
        out["prediction_psi"] >= checks.psi
        or out["prediction_wasserstein"] >= checks.wasserstein
        or abs(change) >= checks.alert_rate_change
    )
    return out


# --------------------------------------------------------------------------------------------
# Performance once labels are known


def labelled_mask(current: pd.DataFrame, delay_days: int) -> np.ndarray:
    """Rows whose label is known at the end of the window: at least ``delay_days`` older than its
    last transaction, with a label (an unlabelled row of a live source stays unknown)."""
    require_columns(current, [TX_DATETIME, TX_FRAUD], "the current window")
    if current.empty:
        return np.zeros(0, dtype=bool)
    times = current[TX_DATETIME]
    old_enough = (times <= times.max() - pd.Timedelta(days=delay_days)).to_numpy()
    return old_enough & current[TX_FRAUD].notna().to_numpy()


def known_compromised(current: pd.DataFrame, known: np.ndarray, delay_days: int) -> np.ndarray:
    """Labelled rows of cards already known compromised on their day (a fraud at least
    ``delay_days + 1`` days earlier in the window): the handbook's rule that `split` applies to the
    test period (`split.remove_known_compromised`), with days counted from the window's first day."""
    rows = np.flatnonzero(known)
    part = current[[TX_DATETIME, CUSTOMER_ID, TX_FRAUD]].iloc[rows].assign(_row=rows)  # 3 columns taken, not all
    if part.empty:
        return np.zeros(len(current), dtype=bool)
    since = part[TX_DATETIME].min().normalize()
    kept = remove_known_compromised(part, part, since=since, delay_days=delay_days)["_row"].to_numpy()
    out = known.copy()
    out[kept] = False
    return out


def measured_mask(current: pd.DataFrame, delay_days: int, remove_known: bool) -> np.ndarray:
    """The rows performance is measured on: labelled (``labelled_mask``) and, when the test period's
    figures were measured without the cards already known compromised (``remove_known``:
    `split.remove_known_compromised`), without those, so that live figures compare with the test's."""
    known = labelled_mask(current, delay_days)
    return known & ~known_compromised(current, known, delay_days) if remove_known else known


def performance(
    current: pd.DataFrame,
    scores: np.ndarray,
    known: np.ndarray,
    test_metrics: Mapping[str, Any],
    checks: PerformanceChecks,
) -> dict[str, float]:
    """AP and card precision@k (k as `evaluate` used it) on the ``known`` rows, and the relative
    drop of AP against the test period's. Null (NaN) with fewer than ``min_frauds`` labelled frauds."""
    for key in ("average_precision", "card_precision_at_k", "card_precision_k"):
        if key not in test_metrics:
            raise DataError(f"the test period's metrics lack {key!r}: rerun the evaluate stage (dvc repro evaluate)")
    k = int(test_metrics["card_precision_k"])
    part = current[[TX_DATETIME, CUSTOMER_ID, TX_FRAUD]][known]  # the columns read below, not the whole window
    labels = part[TX_FRAUD].to_numpy(dtype=np.int8)
    n_frauds = int(labels.sum())
    out: dict[str, float] = {
        "n_labelled": int(known.sum()),
        "n_labelled_frauds": n_frauds,
        "test_average_precision": float(test_metrics["average_precision"]),
        "test_card_precision_at_k": float(test_metrics["card_precision_at_k"]),
        "card_precision_k": k,
        "live_average_precision": float("nan"),
        "live_card_precision_at_k": float("nan"),
        "performance_drop": float("nan"),
    }
    if n_frauds < checks.min_frauds:
        return out
    s = np.asarray(scores, dtype=np.float64)[known]
    ap = average_precision(labels, s)
    out["live_average_precision"] = ap
    out["live_card_precision_at_k"] = card_precision_at_k(
        s, labels, part[CUSTOMER_ID].to_numpy(), part[TX_DATETIME].dt.floor("D").to_numpy(), k
    )
    test_ap = out["test_average_precision"]
    out["performance_drop"] = (test_ap - ap) / test_ap if test_ap > 0 else float("nan")
    return out
