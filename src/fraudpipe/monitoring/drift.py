"""Monitoring statistics: is the current window still the world the model was trained on?

Reference is the training period (its features, and the model's scores on them); current is the
window being watched (by default the live period as `infer` scored it). Everything here is a
pure function of arrays and tables; the `monitor` stage reads and writes, `monitor_report` draws.

Per feature, one test chosen by the feature's type and the reference's size, as Evidently's
defaults choose them (Evidently itself does not import with pandas 3): a numeric feature (more
than ``categorical_max_values`` distinct reference values) gets the two-sample
Kolmogorov-Smirnov test when the reference has at most ``large_sample`` rows, the Wasserstein
distance normalised by the reference's standard deviation above that (a p-value test flags every
feature at a million rows, where any difference is "significant"); a binary or categorical
feature gets Pearson's chi-square test of homogeneity when small, the Jensen-Shannon distance
(natural log, as scipy and Evidently) between the category shares when large. Every feature also
gets a population stability index over quantile bins of the reference, one scale across types.
The dataset drifts when the share of drifted features reaches ``drift_share``.

The prediction side: PSI and normalised Wasserstein distance of the score distribution, and the
relative change of the alert rate. Performance is measured on the part of the current window whose
labels are known (older than the label delay) against the test period's figures from `evaluate`;
bias as alert rate, recall and precision per segment (customer region, amount band, new or
established customer); calibration as mean score against observed fraud rate per score decile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Self

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from fraudpipe.config import AS_TUPLE, Config, rule_error
from fraudpipe.contract import CUSTOMER_ID, TX_AMOUNT, TX_DATETIME, TX_FRAUD, id_codes, require_columns
from fraudpipe.data.split import remove_known_compromised
from fraudpipe.errors import DataError
from fraudpipe.metrics import average_precision, card_precision_at_k, threshold_metrics
from fraudpipe.progress import progress

#: Shares below this count as this in PSI, so an empty bin gives a large but finite term (Evidently's floor).
PSI_FLOOR = 1e-4

BINARY, CATEGORICAL, NUMERIC = "binary", "categorical", "numeric"
KS, CHI2, WASSERSTEIN, JENSEN_SHANNON = "ks", "chi2", "wasserstein", "jensen_shannon"
#: Tests whose statistic is a p-value (drifted when below the threshold); the others are
#: distances (drifted when at or above it).
P_VALUE_TESTS = frozenset({KS, CHI2})
TEST_NAMES = {
    KS: "Kolmogorov-Smirnov p-value",
    CHI2: "chi-square p-value",
    WASSERSTEIN: "Wasserstein distance (normed)",
    JENSEN_SHANNON: "Jensen-Shannon distance",
}

Share = Annotated[float, Field(gt=0, le=1)]
Positive = Annotated[float, Field(gt=0)]


class FeatureChecks(Config):
    """``monitor.features``: how each feature's test is chosen, its thresholds, the dataset rule."""

    large_sample: int = Field(ge=1)
    categorical_max_values: int = Field(ge=2)
    p_value: Annotated[float, Field(gt=0, lt=1)]
    wasserstein: Positive
    jensen_shannon: Positive
    psi_bins: int = Field(ge=2)
    drift_share: Share


class PredictionChecks(Config):
    """``monitor.prediction``: when the score distribution or the alert rate has drifted."""

    psi: Positive
    wasserstein: Positive
    alert_rate_change: Positive


class PerformanceChecks(Config):
    """``monitor.performance``: the relative drop of average precision that alerts, and how many
    labelled frauds the figure needs before it means anything (fewer: null, never an alert)."""

    max_drop: Share
    min_frauds: int = Field(ge=1)


class SegmentChecks(Config):
    """``monitor.segments``: amount band edges, the region grid, frauds a segment needs for its recall."""

    amount_bands: Annotated[tuple[Positive, ...], AS_TUPLE]
    region_grid: int = Field(ge=1)
    min_frauds: int = Field(ge=1)

    @model_validator(mode="after")
    def _bands_increase(self) -> Self:
        if list(self.amount_bands) != sorted(set(self.amount_bands)):
            raise rule_error("must be strictly increasing", list(self.amount_bands), key="amount_bands")
        return self


class MonitorConfig(Config):
    """conf/monitor/: what is compared, the thresholds, and whether an alert fails the stage.

    ``current`` names the window watched (`monitor_window`): ``predictions``, the live period as
    `infer` scored it, or ``service_log``, what the service scored, from its log in ``journal_dir``.
    """

    current: Literal["predictions", "service_log"]
    journal_dir: str = Field(min_length=1)
    fail_on_alert: bool
    features: FeatureChecks
    prediction: PredictionChecks
    performance: PerformanceChecks
    segments: SegmentChecks
    calibration_bins: int = Field(ge=2)
    report_max_plots: int = Field(ge=0)


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


def is_drifted(test: str, statistic: float, threshold: float) -> bool:
    """p-value tests drift below the threshold, distances at or above it; NaN never drifts."""
    if not np.isfinite(statistic):
        return False
    return statistic < threshold if test in P_VALUE_TESTS else statistic >= threshold


def ks_p_value(reference: np.ndarray, current: np.ndarray) -> float:
    """p-value of the two-sample Kolmogorov-Smirnov test (scipy, exact for small samples)."""
    from scipy import stats  # imported where used: check_config and check_data import this module for its config

    return float(stats.ks_2samp(reference, current).pvalue)


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


def chi2_p_value(reference: pd.Series | np.ndarray, current: pd.Series | np.ndarray) -> float:
    """p-value of Pearson's chi-square test that both samples share one category distribution
    (a 2 x k contingency table, no continuity correction); 1 when there is one category only."""
    ref, cur = category_counts(reference, current)
    if len(ref) < 2:
        return 1.0
    from scipy import stats

    return float(stats.chi2_contingency(np.vstack([ref, cur]), correction=False).pvalue)


def jensen_shannon(reference: pd.Series | np.ndarray, current: pd.Series | np.ndarray) -> float:
    """Jensen-Shannon distance (scipy, natural log: 0 to sqrt(ln 2)) between the category shares."""
    ref, cur = category_counts(reference, current)
    from scipy.spatial import distance

    return float(distance.jensenshannon(ref / ref.sum(), cur / cur.sum()))


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


def psi(reference: np.ndarray, current: np.ndarray, bins: int) -> float:
    """PSI of a numeric sample over ``bins`` quantile bins of the reference."""
    edges = quantile_edges(reference, bins)
    return psi_from_shares(binned_shares(reference, edges), binned_shares(current, edges))


def category_psi(reference: pd.Series | np.ndarray, current: pd.Series | np.ndarray) -> float:
    """PSI over the categories themselves (a binary or categorical feature's natural bins)."""
    ref, cur = category_counts(reference, current)
    return psi_from_shares(ref / max(ref.sum(), 1), cur / max(cur.sum(), 1))


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
    if kind == NUMERIC:
        r, c = ref.to_numpy(np.float64), cur.to_numpy(np.float64)
        statistic = ks_p_value(r, c) if test == KS else wasserstein_normed(r, c)
        index = psi(r, c, checks.psi_bins)
    else:
        statistic = chi2_p_value(ref, cur) if test == CHI2 else jensen_shannon(ref, cur)
        index = category_psi(ref, cur)
    return FeatureDrift(name, kind, test, statistic, threshold, is_drifted(test, statistic, threshold), index)


FEATURE_TABLE_COLUMNS = ("feature", "kind", "test", "statistic", "threshold", "drifted", "psi")


def feature_table(
    reference: pd.DataFrame, current: pd.DataFrame, features: Sequence[str], checks: FeatureChecks
) -> pd.DataFrame:
    """One row per feature, in the given order: kind, test, statistic, threshold, drifted, PSI."""
    require_columns(reference, features, "the reference (training period)")
    require_columns(current, features, "the current window")
    rows = [
        feature_drift(f, reference[f], current[f], checks)
        for f in progress(features, desc="feature drift", unit="feature")
    ]
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
    ref = np.asarray(reference_scores, dtype=np.float64)
    cur = np.asarray(current_scores, dtype=np.float64)
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
    part = current.iloc[rows][[TX_DATETIME, CUSTOMER_ID, TX_FRAUD]].assign(_row=rows)
    if part.empty:
        return np.zeros(len(current), dtype=bool)
    since = part[TX_DATETIME].min().normalize()
    kept = remove_known_compromised(part, part, since=since, delay_days=delay_days)["_row"].to_numpy()
    out = known.copy()
    out[kept] = False
    return out


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
    part = current[known]
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


# --------------------------------------------------------------------------------------------
# Segments and calibration

SEGMENT_COLUMNS = ("segment", "group", "n", "alert_rate", "n_labelled", "frauds", "recall", "precision")


def amount_bands(amounts: np.ndarray, edges: Sequence[float]) -> pd.Categorical:
    """The band of each amount, ``< e0``, ``e0-e1``, ..., ``>= en``, as categories in that order."""
    labels = [f"< {edges[0]:g}"] + [f"{a:g}-{b:g}" for a, b in zip(edges[:-1], edges[1:])] + [f">= {edges[-1]:g}"]
    codes = np.searchsorted(np.asarray(edges, dtype=np.float64), np.asarray(amounts, dtype=np.float64), side="right")
    return pd.Categorical.from_codes(codes, categories=labels)


def regions(customer_ids: pd.Series, customers: pd.DataFrame, grid: int) -> np.ndarray:
    """Each transaction's customer region: the cell of a ``grid`` x ``grid`` grid over the customers'
    bounding box, named by its coordinate ranges. A customer without a location: ``unknown``."""
    require_columns(customers, [CUSTOMER_ID, "x", "y"], "the customer locations (data/raw/customers.parquet)")
    x, y = customers["x"].to_numpy(np.float64), customers["y"].to_numpy(np.float64)
    names = np.full(len(customers) + 1, "unknown", dtype=object)
    x_edges = np.linspace(x.min(), x.max(), grid + 1)
    y_edges = np.linspace(y.min(), y.max(), grid + 1)
    col = np.clip(np.searchsorted(x_edges, x, side="right") - 1, 0, grid - 1)
    row = np.clip(np.searchsorted(y_edges, y, side="right") - 1, 0, grid - 1)
    names[:-1] = [
        f"x {x_edges[c]:.0f}-{x_edges[c + 1]:.0f}, y {y_edges[r]:.0f}-{y_edges[r + 1]:.0f}" for c, r in zip(col, row)
    ]
    position = pd.Index(customers[CUSTOMER_ID]).get_indexer(customer_ids)  # -1 (not found) -> "unknown"
    return names[position]


def customer_age(customer_ids: pd.Series, reference_ids: pd.Series) -> np.ndarray:
    """``established`` for a customer the reference period saw, ``new`` otherwise (new to the model)."""
    both = pd.concat([reference_ids, customer_ids], ignore_index=True)
    codes = id_codes(both, CUSTOMER_ID)
    seen = np.isin(codes[len(reference_ids) :], codes[: len(reference_ids)])
    return np.where(seen, "established", "new").astype(object)


def segment_table(
    segments: Mapping[str, np.ndarray | pd.Categorical],
    alerts: np.ndarray,
    labels: np.ndarray,
    known: np.ndarray,
    min_frauds: int,
) -> pd.DataFrame:
    """Per segment and group (a categorical's groups in its order, others sorted; empty groups left
    out): rows, alert rate and, on the labelled rows, frauds, recall and precision (recall null
    below ``min_frauds`` frauds, precision null without an alert)."""
    alerts = np.asarray(alerts).astype(bool)
    labels = np.asarray(labels)
    rows = []
    for segment, groups in segments.items():
        order = list(groups.categories) if isinstance(groups, pd.Categorical) else sorted(pd.unique(groups))
        values = np.asarray(groups, dtype=object)
        for group in order:
            rows_in = values == group
            if not rows_in.any():
                continue
            lab = rows_in & known
            frauds = int(labels[lab].sum())
            alerted = int(alerts[lab].sum())
            figures = threshold_metrics(labels[lab], alerts[lab].astype(np.float64), 0.5)
            rows.append(
                {
                    "segment": segment,
                    "group": str(group),
                    "n": int(rows_in.sum()),
                    "alert_rate": float(alerts[rows_in].mean()),
                    "n_labelled": int(lab.sum()),
                    "frauds": frauds,
                    "recall": figures["recall"] if frauds >= min_frauds else float("nan"),
                    "precision": figures["precision"] if alerted else float("nan"),
                }
            )
    return pd.DataFrame(rows, columns=list(SEGMENT_COLUMNS))


def largest_gaps(table: pd.DataFrame) -> dict[str, float]:
    """The largest difference between two groups of one segment: of recall (groups with a recall)
    and of alert rate; NaN when no segment has two comparable groups."""
    out = {}
    for column, key in (("recall", "max_segment_recall_gap"), ("alert_rate", "max_segment_alert_rate_gap")):
        spread = (
            table.dropna(subset=[column])
            .groupby("segment")[column]
            .agg(lambda s: s.max() - s.min() if len(s) > 1 else np.nan)
        )
        out[key] = float(spread.max()) if spread.notna().any() else float("nan")
    return out


CALIBRATION_COLUMNS = ("sample", "decile", "n", "mean_score", "fraud_rate")


def calibration(scores: np.ndarray, labels: np.ndarray, bins: int, sample: str) -> pd.DataFrame:
    """Mean score and observed fraud rate per score decile (``bins`` equal-width bins of the
    predicted probability, the last one closed): a calibrated model has them equal. Empty bins
    are left out. Bins of the score's value, not of its rank: most scores share one low value, so
    rank deciles would all describe that value."""
    scores = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    labels = np.asarray(labels, dtype=np.float64)
    which = np.minimum((scores * bins).astype(np.int64), bins - 1)
    n = np.bincount(which, minlength=bins)
    score_sum = np.bincount(which, weights=scores, minlength=bins)
    fraud_sum = np.bincount(which, weights=labels, minlength=bins)
    rows = [
        {
            "sample": sample,
            "decile": i + 1,
            "n": int(n[i]),
            "mean_score": float(score_sum[i] / n[i]),
            "fraud_rate": float(fraud_sum[i] / n[i]),
        }
        for i in range(bins)
        if n[i]
    ]
    return pd.DataFrame(rows, columns=list(CALIBRATION_COLUMNS))


# --------------------------------------------------------------------------------------------
# Inputs

# --------------------------------------------------------------------------------------------
# The whole comparison


@dataclass(frozen=True)
class MonitorResult:
    """Everything the stage writes and the report shows."""

    metrics: dict[str, float]
    features: pd.DataFrame
    segments: pd.DataFrame
    calibration: pd.DataFrame
    reasons: list[str]
    summary: str
    #: For the report's plots: the reference and current values of the features to draw, the scores.
    samples: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    reference_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    current_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    threshold: float = 0.5
    model_version: str = ""
    periods: dict[str, str] = field(default_factory=dict)


def _period(times: pd.Series) -> str:
    return f"{times.min():%Y-%m-%d %H:%M} .. {times.max():%Y-%m-%d %H:%M}" if len(times) else "empty"


def _pct(value: float) -> str:
    return f"{value:.1%}"


def monitor(
    reference: pd.DataFrame,
    reference_scores: np.ndarray,
    current: pd.DataFrame,
    current_scores: np.ndarray,
    current_alerts: np.ndarray,
    *,
    features: Sequence[str],
    threshold: float,
    test_metrics: Mapping[str, Any],
    delay_days: int,
    remove_known: bool,
    config: MonitorConfig,
    customers: pd.DataFrame | None = None,
    model_version: str = "",
) -> MonitorResult:
    """Compare the current window with the reference; the flat metrics end with ``alert`` (0/1).

    ``delay_days`` is the label delay; ``remove_known`` whether the test period's figures were
    measured without known compromised cards (`split.remove_known_compromised`), so the live ones are too.
    """
    if len(current_scores) != len(current) or len(current_alerts) != len(current):
        raise DataError(
            f"{len(current_scores)} scores and {len(current_alerts)} alerts for {len(current)} current rows"
        )
    require_columns(current, [TX_DATETIME, CUSTOMER_ID, TX_AMOUNT, TX_FRAUD], "the current window")
    require_columns(reference, [CUSTOMER_ID, TX_FRAUD], "the reference (training period)")
    if current.empty:
        return _empty_window(
            reference,
            reference_scores,
            current,
            features=features,
            threshold=threshold,
            test_metrics=test_metrics,
            config=config,
            model_version=model_version,
        )

    table = feature_table(reference, current, features, config.features)
    metrics: dict[str, float] = dataset_drift(table, config.features.drift_share)
    metrics |= prediction_drift(
        reference_scores, current_scores, threshold, config.prediction, config.features.psi_bins
    )
    known = labelled_mask(current, delay_days)
    # Performance like the test period's: without the cards already known compromised, when split drops them there.
    measured = known & ~known_compromised(current, known, delay_days) if remove_known else known
    perf = performance(current, current_scores, measured, test_metrics, config.performance)

    labels = current[TX_FRAUD].fillna(0).to_numpy(dtype=np.int8)
    groups = {}
    if customers is not None:
        groups["customer region"] = regions(current[CUSTOMER_ID], customers, config.segments.region_grid)
    groups["amount band"] = amount_bands(current[TX_AMOUNT].to_numpy(np.float64), config.segments.amount_bands)
    groups["customer"] = customer_age(current[CUSTOMER_ID], reference[CUSTOMER_ID])
    segments = segment_table(groups, np.asarray(current_alerts), labels, known, config.segments.min_frauds)
    gaps = largest_gaps(segments)

    calib = pd.concat(
        [
            calibration(
                reference_scores, reference[TX_FRAUD].fillna(0).to_numpy(), config.calibration_bins, "reference"
            ),
            calibration(
                np.asarray(current_scores)[known], labels[known], config.calibration_bins, "current (labelled)"
            ),
        ],
        ignore_index=True,
    )

    checks = config
    reasons = []
    if metrics["dataset_drift"]:
        reasons.append(
            f"dataset drift: {metrics['n_drifted']} of {metrics['n_features']} features drifted "
            f"(share {metrics['drift_share']:.2f} >= {checks.features.drift_share:g})"
        )
    if metrics["prediction_drift"]:
        parts = []
        if metrics["prediction_psi"] >= checks.prediction.psi:
            parts.append(f"score PSI {metrics['prediction_psi']:.3f} >= {checks.prediction.psi:g}")
        if metrics["prediction_wasserstein"] >= checks.prediction.wasserstein:
            parts.append(
                f"score Wasserstein {metrics['prediction_wasserstein']:.3f} >= {checks.prediction.wasserstein:g}"
            )
        if abs(metrics["alert_rate_change"]) >= checks.prediction.alert_rate_change:
            parts.append(
                f"alert rate {_pct(metrics['reference_alert_rate'])} -> {_pct(metrics['current_alert_rate'])} "
                f"({metrics['alert_rate_change']:+.0%}, limit ±{checks.prediction.alert_rate_change:.0%})"
            )
        reasons.append("prediction drift: " + ", ".join(parts))
    drop = perf["performance_drop"]
    if np.isfinite(drop) and drop >= checks.performance.max_drop:
        reasons.append(
            f"performance drop: average precision {perf['live_average_precision']:.3f} on the labelled "
            f"live rows against {perf['test_average_precision']:.3f} on the test period "
            f"({drop:.0%} >= {checks.performance.max_drop:.0%})"
        )

    every = (
        metrics | perf | gaps | {"n_reference": len(reference), "n_current": len(current), "alert": int(bool(reasons))}
    )
    flat = {key: every[key] for key in METRIC_KEYS}
    drifted = drifted_features(table)
    summary = _summary(reasons, drifted, flat, checks)
    plotted = drifted[: config.report_max_plots]
    samples = {f: (reference[f].dropna().to_numpy(), current[f].dropna().to_numpy()) for f in plotted}
    return MonitorResult(
        flat,
        table,
        segments,
        calib,
        reasons,
        summary,
        samples,
        np.asarray(reference_scores, dtype=np.float64),
        np.asarray(current_scores, dtype=np.float64),
        float(threshold),
        model_version,
        {
            "reference": _period(reference[TX_DATETIME]) if TX_DATETIME in reference else "",
            "current": _period(current[TX_DATETIME]),
        },
    )


#: The keys of drift.json, in order.
METRIC_KEYS = (
    "drift_share",
    "dataset_drift",
    "n_drifted",
    "n_features",
    "prediction_psi",
    "prediction_wasserstein",
    "prediction_drift",
    "reference_alert_rate",
    "current_alert_rate",
    "alert_rate_change",
    "n_labelled",
    "n_labelled_frauds",
    "test_average_precision",
    "test_card_precision_at_k",
    "card_precision_k",
    "live_average_precision",
    "live_card_precision_at_k",
    "performance_drop",
    "max_segment_recall_gap",
    "max_segment_alert_rate_gap",
    "n_reference",
    "n_current",
    "alert",
)


def _empty_window(
    reference: pd.DataFrame,
    reference_scores: np.ndarray,
    current: pd.DataFrame,
    *,
    features: Sequence[str],
    threshold: float,
    test_metrics: Mapping[str, Any],
    config: MonitorConfig,
    model_version: str,
) -> MonitorResult:
    """No current transactions (a relative split without live days): nothing drifted, nothing to
    alert on; the statistics are undefined (null), the counts zero. Not an error, so that a
    pipeline without a live period still reproduces."""
    ref_scores = np.asarray(reference_scores, dtype=np.float64)
    perf = performance(current, np.zeros(0), np.zeros(0, dtype=bool), test_metrics, config.performance)
    metrics = (
        dict.fromkeys(METRIC_KEYS, float("nan"))
        | perf
        | {
            "dataset_drift": 0,
            "n_drifted": 0,
            "n_features": len(features),
            "prediction_drift": 0,
            "reference_alert_rate": float(np.mean(ref_scores >= threshold)) if len(ref_scores) else float("nan"),
            "n_reference": len(reference),
            "n_current": 0,
            "alert": 0,
        }
    )
    summary = (
        "No alert: the current window holds no transactions (no live period: set split.live_days, or a "
        "split.train_start that leaves days after the test period), so there is nothing to compare."
    )
    return MonitorResult(
        {key: metrics[key] for key in METRIC_KEYS},
        pd.DataFrame(columns=list(FEATURE_TABLE_COLUMNS)),
        pd.DataFrame(columns=list(SEGMENT_COLUMNS)),
        calibration(ref_scores, reference[TX_FRAUD].fillna(0).to_numpy(), config.calibration_bins, "reference"),
        [],
        summary,
        {},
        ref_scores,
        np.zeros(0),
        float(threshold),
        model_version,
        {"reference": _period(reference[TX_DATETIME]) if TX_DATETIME in reference else "", "current": "empty"},
    )


def _summary(reasons: list[str], drifted: list[str], metrics: Mapping[str, float], config: MonitorConfig) -> str:
    """One sentence: alert or not, and why."""
    named = ""
    if drifted:
        shown = ", ".join(drifted[:5]) + (f" and {len(drifted) - 5} more" if len(drifted) > 5 else "")
        named = f" Drifted features: {shown}."
    if reasons:
        return "ALERT: " + "; ".join(reasons) + "." + named
    drop = metrics["performance_drop"]
    perf = (
        f"average precision drop {drop:+.0%} against the test period"
        if np.isfinite(drop)
        else "too few labelled frauds to judge performance"
    )
    return (
        f"No alert: {metrics['n_drifted']} of {metrics['n_features']} features drifted (share "
        f"{metrics['drift_share']:.2f} < {config.features.drift_share:g}), score PSI {metrics['prediction_psi']:.3f}, "
        f"alert rate {metrics['alert_rate_change']:+.0%}, {perf}.{named}"
    )
