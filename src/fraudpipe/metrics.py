"""Scoring a model the way the handbook does, with bootstrap intervals, and the batch throughput.

Quality metrics are pure functions of labels and scores, so the same numbers come out of the
`evaluate` stage, the `backtest` folds and any notebook. Throughput is wall-clock, so the caller
writes it apart: metrics.json stays reproducible. The quality gate that reads these metrics is
`fraudpipe.gate`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, NamedTuple, Self

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from fraudpipe.config import Config, rule_errors
from fraudpipe.contract import CUSTOMER_ID, TX_DATETIME, TX_FRAUD, require_columns
from fraudpipe.curves import average_precision_score, roc_auc_score
from fraudpipe.errors import DataError
from fraudpipe.gate import GateConfig, interval_keys


def quality_metric_names(k: int) -> tuple[str, ...]:
    """The keys `quality_metrics` returns, in its order: the names a quality gate may set minimums
    on. The key of card precision does not change with k (``card_precision_k`` records k), so runs
    with different budgets line up in `dvc exp show` and `dvc metrics diff`."""
    return (
        "roc_auc",
        "average_precision",
        "card_precision_at_k",
        "card_precision_k",
        "precision",
        "recall",
        "f1",
        "accuracy",
        "threshold",
        "n_test",
        "n_frauds",
    )


#: The metrics `bootstrap_intervals` gives an interval, in the order of their bounds' keys.
INTERVAL_METRICS = ("roc_auc", "average_precision", "card_precision_at_k")

#: The keys `bootstrap_intervals` returns: the interval bounds of INTERVAL_METRICS (the same keys
#: whatever the level, which ``ci_level`` records) and the number of test days resampled.
INTERVAL_KEYS = (*(key for name in INTERVAL_METRICS for key in interval_keys(name)), "ci_level", "n_test_days")


class IntervalConfig(Config):
    """The bootstrap of the test metrics' intervals: its level, its resamples, its seed (reruns
    give the same bytes)."""

    confidence: Annotated[float, Field(gt=0, lt=1)]
    resamples: Annotated[int, Field(ge=10)]
    seed: int


class Resampled(NamedTuple):
    """A metric's value and its values on each bootstrap resample (the draws its interval reads)."""

    value: float
    draws: np.ndarray


CardPrecisionK = Annotated[int, Field(ge=1)]


class EvaluateConfig(Config):
    """`conf/evaluate/`: card precision budget, the rows `parity` replays (and times), the test
    metrics' intervals, the quality gate."""

    card_precision_k: CardPrecisionK
    latency_rows: Annotated[int, Field(ge=0)]
    interval: IntervalConfig
    gate: GateConfig

    @model_validator(mode="after")
    def _gate_names_known_metrics(self) -> Self:
        known = (*quality_metric_names(self.card_precision_k), *INTERVAL_KEYS)
        unknown = [name for name in self.gate.minimums if name not in known]
        if unknown:
            rule = f"not a metric of the test period (known: {', '.join(known)})"
            raise rule_errors([(f"gate.minimums.{name}", rule, self.gate.minimums[name]) for name in unknown])
        return self


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """AUC ROC; NaN (written as null) when the labels hold one class, where it is undefined."""
    labels = np.asarray(labels)
    if np.unique(labels).size < 2:
        return float("nan")
    return roc_auc_score(labels, scores)


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """scikit-learn's average precision (step-wise, no interpolation), as the handbook reports."""
    labels = np.asarray(labels)
    if not labels.any():
        return float("nan")
    return average_precision_score(labels, scores)


def card_precision_at_k(
    scores: np.ndarray, labels: np.ndarray, cards: np.ndarray, days: np.ndarray, k: int = 100
) -> float:
    """The handbook's card precision@k: the share of frauds among the k cards investigators check a day.

    Reading of the definition (handbook ch. 4, "Precision top-k metrics"): days are processed in
    order; each day, cards *detected* on an earlier day are dropped — detected meaning they were
    among that day's k highest-scoring cards and were fraudulent (a checked genuine card stays in
    play). The remaining transactions are reduced to one row per card with the card's maximum
    score and maximum label; the k highest are the day's alerts, and the day's value is
    (fraudulent cards among them) / k — divided by k even when fewer than k cards remain. The
    result is the mean over days. Ties at the k-th place go to the smaller card id, so the figure
    is deterministic: numeric order for integer ids, lexicographic order (Unicode code points, the
    same as UTF-8 bytes: "007" < "7" < "9" < "Z" < "a") for text ids. Cards are opaque keys.
    """
    per_day = card_precision_per_day(scores, labels, cards, days, k)
    return float(np.mean(per_day)) if len(per_day) else float("nan")


def card_precision_per_day(
    scores: np.ndarray, labels: np.ndarray, cards: np.ndarray, days: np.ndarray, k: int = 100
) -> np.ndarray:
    """The day values `card_precision_at_k` averages, in day order (see there)."""
    frame = pd.DataFrame(
        {
            "score": np.asarray(scores, dtype=np.float64),
            "label": np.asarray(labels),
            "card": np.asarray(cards),
            "day": np.asarray(days),
        }
    )
    # Each card's maximum score and label per day, once for all days (a card's day figures do not
    # depend on which cards were detected before: those are only left out).
    cards_by_day = frame.groupby(["day", "card"], sort=True).agg(score=("score", "max"), label=("label", "max"))
    detected: set = set()
    per_day: list[float] = []
    for _, day_cards in cards_by_day.groupby(level="day", sort=True):
        per_card = day_cards.droplevel("day")
        per_card = per_card[~per_card.index.isin(detected)]
        top = per_card.sort_values("score", ascending=False, kind="stable").head(k)
        hits = top.index[top["label"] == 1]
        per_day.append(len(hits) / k)
        detected.update(hits.tolist())
    return np.asarray(per_day, dtype=np.float64)


def threshold_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall, F1 and accuracy of the alerts `score >= threshold` (0 where undefined)."""
    labels = np.asarray(labels).astype(bool)
    predicted = np.asarray(scores) >= threshold
    tp = int(np.sum(predicted & labels))
    fp = int(np.sum(predicted & ~labels))
    fn = int(np.sum(~predicted & labels))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = float(np.mean(predicted == labels)) if labels.size else float("nan")
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": accuracy}


def quality_metrics(table: pd.DataFrame, scores: np.ndarray, threshold: float, k: int = 100) -> dict[str, float]:
    """Every reproducible metric of one scored test period, flat: roc_auc, average_precision,
    card_precision_at_k (the handbook's card precision@k), card_precision_k (its k), precision,
    recall, f1, accuracy, threshold, n_test, n_frauds."""
    if len(scores) != len(table):
        raise ValueError(f"{len(scores)} scores for {len(table)} rows")
    require_columns(table, (TX_DATETIME, CUSTOMER_ID, TX_FRAUD), "the scored table")
    labels = table[TX_FRAUD].to_numpy(dtype=np.int8)
    days = table[TX_DATETIME].dt.floor("D").to_numpy()
    out: dict[str, float] = {
        "roc_auc": roc_auc(labels, scores),
        "average_precision": average_precision(labels, scores),
        "card_precision_at_k": card_precision_at_k(scores, labels, table[CUSTOMER_ID].to_numpy(), days, k),
        "card_precision_k": int(k),
    }
    out |= threshold_metrics(labels, scores, threshold)
    out |= {"threshold": float(threshold), "n_test": len(table), "n_frauds": int(labels.sum())}
    return out


def resampled_ranking_metrics(
    labels: np.ndarray, scores: np.ndarray, days: np.ndarray, counts: np.ndarray, chunk: int = 64
) -> dict[str, np.ndarray]:
    """AUC ROC and scikit-learn's average precision (``roc_auc_score`` and ``average_precision_score``
    with ``sample_weight``) of each resample of whole days: row ``r`` of ``counts`` weighs every row
    of day ``d`` by ``counts[r, d]``. Rows come sorted by descending score and ``days`` holds each
    row's day index. NaN for a resample without a fraud (and, for AUC, without a genuine row).

    A resample changes weights, not the order, so the true and false positives alerted at each
    distinct score are the per-day counts at that score, summed up to it, times the resample's day
    weights. Whole counts, so the sums are exact and the figures equal a row-by-row weighted sum's."""
    scores = np.asarray(scores)
    n_days = counts.shape[1]
    ends = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True])  # the last row of each distinct score
    block = np.repeat(np.arange(len(ends)), np.diff(ends, prepend=-1))
    positive = np.asarray(labels, dtype=bool)
    cells = block * n_days + np.asarray(days)
    tp_at, fp_at = (
        np.bincount(cells[rows], minlength=len(ends) * n_days).reshape(len(ends), n_days).astype(np.float64)
        for rows in (positive, ~positive)
    )
    return {
        "roc_auc": _resampled_roc_auc(tp_at, fp_at, counts),
        "average_precision": _resampled_average_precision(tp_at, fp_at, counts, chunk),
    }


def _resampled_average_precision(tp_at: np.ndarray, fp_at: np.ndarray, counts: np.ndarray, chunk: int) -> np.ndarray:
    """Average precision from the true and false positives at each distinct score (blocks x days):
    the resamples' cumulative counts by one matrix product per ``chunk`` resamples."""
    cum_tp, cum_fp = (np.cumsum(c, axis=0).T.copy() for c in (tp_at, fp_at))
    out = np.empty(len(counts), dtype=np.float64)
    for start in range(0, len(counts), chunk):
        weights = np.asarray(counts[start : start + chunk], dtype=np.float64)
        tp, fp = weights @ cum_tp, weights @ cum_fp
        alerted = tp + fp
        precision = np.divide(tp, alerted, out=np.zeros_like(tp), where=alerted > 0)
        total = tp[:, -1:]
        with np.errstate(invalid="ignore", divide="ignore"):
            value = np.sum(np.diff(tp, axis=1, prepend=0.0) / total * precision, axis=1)
        out[start : start + chunk] = np.where(total[:, 0] > 0, value, np.nan)
    return out


def _resampled_roc_auc(tp_at: np.ndarray, fp_at: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """AUC ROC from the true and false positives at each distinct score (blocks x days). The
    trapezoids' area, doubled, is the sum over scores of the false positives there times the true
    positives up to and through it, ``sum_b fp_b (TP_b + TP_{b-1})``; with day weights ``w`` each
    factor is linear in ``w``, so the sum is ``w' M w`` for one days x days matrix ``M``: a quadratic
    form per resample, in whole counts (exact), divided once by frauds x genuine."""
    cum_tp = np.cumsum(tp_at, axis=0)
    pairs_by_day = fp_at.T @ (2.0 * cum_tp - tp_at)
    weights = np.asarray(counts, dtype=np.float64)
    twice_area = np.einsum("rd,de,re->r", weights, pairs_by_day, weights)
    pairs = (weights @ tp_at.sum(axis=0)) * (weights @ fp_at.sum(axis=0))
    return np.divide(twice_area, 2.0 * pairs, out=np.full(len(weights), np.nan), where=pairs > 0)


def resampled_metrics(table: pd.DataFrame, scores: np.ndarray, k: int, counts: np.ndarray) -> dict[str, Resampled]:
    """Each of INTERVAL_METRICS on the scored table and on each resample of its days (row ``r`` of
    ``counts``: how often each day, in order, is drawn): the one place every resampled figure comes
    from, so evaluate's intervals and the champion/challenger comparison move with the same days.
    Card precision resamples the day values the metric averages."""
    labels = table[TX_FRAUD].to_numpy(dtype=np.int8)
    days = table[TX_DATETIME].dt.floor("D").to_numpy()
    day_of_row = np.unique(days, return_inverse=True)[1]
    scores = np.asarray(scores)
    order = np.argsort(-scores.astype(np.float64), kind="stable")
    draws = resampled_ranking_metrics(labels[order], scores[order], day_of_row[order], counts)
    per_day = card_precision_per_day(scores, labels, table[CUSTOMER_ID].to_numpy(), days, k)
    return {
        "roc_auc": Resampled(roc_auc(labels, scores), draws["roc_auc"]),
        "average_precision": Resampled(average_precision(labels, scores), draws["average_precision"]),
        "card_precision_at_k": Resampled(float(np.mean(per_day)), counts @ per_day / counts.shape[1]),
    }


def day_resamples(n_days: int, config: IntervalConfig) -> np.ndarray:
    """How often each of ``n_days`` days is drawn in each of ``config.resamples`` bootstrap resamples
    (resamples x days), seeded: every figure resampled with one matrix moves with the same days, which
    is what makes a difference of two models' figures a paired bootstrap."""
    rng = np.random.default_rng(config.seed)
    draws = rng.integers(0, n_days, size=(config.resamples, n_days))
    counts = np.zeros((config.resamples, n_days))
    np.add.at(counts, (np.arange(config.resamples).repeat(n_days), draws.ravel()), 1.0)
    return counts


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """The percentile interval of a bootstrap distribution, resamples without a value left out."""
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan")
    low, high = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def bootstrap_intervals(table: pd.DataFrame, scores: np.ndarray, k: int, config: IntervalConfig) -> dict[str, float]:
    """Percentile intervals of AUC ROC, average precision and card precision@k over the test days,
    resampled whole (a day's cards and alerts stay together, as card precision counts them): a
    test period of few frauds or few days reads as what it is. A resample where a metric is
    undefined (no fraud) is left out of its interval."""
    if len(scores) != len(table):
        raise ValueError(f"{len(scores)} scores for {len(table)} rows")
    require_columns(table, (TX_DATETIME, CUSTOMER_ID, TX_FRAUD), "the scored table")
    n_days = len(np.unique(table[TX_DATETIME].dt.floor("D").to_numpy()))
    out: dict[str, float] = dict.fromkeys(INTERVAL_KEYS, float("nan"))
    out |= {"ci_level": float(config.confidence), "n_test_days": n_days}
    if not n_days:
        return out
    for name, figure in resampled_metrics(table, scores, k, day_resamples(n_days, config)).items():
        low, high = interval_keys(name)
        out[low], out[high] = percentile_interval(figure.draws, config.confidence)
    return out


def aggregate_folds(per_fold: Sequence[Mapping[str, float]], suffix: str = "fold") -> dict[str, float]:
    """`<metric>_<suffix>_mean` and `_std` over folds (sample std, ddof=1, as pandas reports it)."""
    frame = pd.DataFrame(list(per_fold), dtype=np.float64)
    out: dict[str, float] = {f"n_{suffix}s": len(frame)}
    for key in frame.columns:
        out[f"{key}_{suffix}_mean"] = float(frame[key].mean())
        out[f"{key}_{suffix}_std"] = float(frame[key].std(ddof=1)) if len(frame) > 1 else float("nan")
    return out


def batch_throughput(predict: Callable[[np.ndarray], np.ndarray], X: np.ndarray, repeats: int = 3) -> dict[str, float]:
    """Transactions per second when scoring `X` in one call (best of `repeats`; not reproducible)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        predict(X)
        best = min(best, time.perf_counter() - start)
    return {"batch_throughput_tx_per_s": float(len(X) / best) if best > 0 else float("nan")}


def read_metrics(path: str | Path) -> dict[str, Any]:
    """The test period's metrics as `evaluate` wrote them (reports/metrics.json), for the stages
    after it (the gate's verdict, the figures monitoring compares against)."""
    path = Path(path)
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path} does not exist: run the evaluate stage first (dvc repro evaluate)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not JSON ({exc}); rerun the evaluate stage (dvc repro evaluate)") from None
    if not isinstance(metrics, dict):
        raise DataError(f"{path}: expected a JSON object of metrics; rerun the evaluate stage (dvc repro evaluate)")
    return metrics
