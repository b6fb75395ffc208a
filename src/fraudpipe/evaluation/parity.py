"""Online = offline: the first transactions of the test period replayed through the online features.

The service computes each transaction's features from its history and scores them one row at a
time; training and the batch scores read the offline feature table. The check is in two halves,
so that a model change reruns only the second:

- the `parity` stage replays the test period's first ``evaluate.latency_rows`` transactions through
  the online state on top of the history before them (`features.online.replay.replay_features`,
  the service's feature code) and compares their features with the offline rows (`feature_parity`,
  reports/parity.json); it writes the online rows it computed (data/parity/online.parquet);
- `evaluate` scores those online rows with the service's `RowScorer` and with the batch path
  (`score_parity`, reports/parity_scores.json).

Online features equal to the offline ones (the first) scored alike by both paths (the second) is
the service's score equal to the batch score. The replays' per-row times are printed, not written
(wall clock).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fraudpipe.contract import TRANSACTION_ID, TX_DATETIME

if TYPE_CHECKING:  # the parity stage imports this module without the model (a model change does not rerun it)
    from fraudpipe.model import Bundle
    from fraudpipe.scoring.row import FastPath, RowScorer


def split_replay(transactions: pd.DataFrame, test_start: pd.Timestamp, rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The history before the test period, and its first ``rows`` transactions (table order) to replay."""
    before = (transactions[TX_DATETIME] < test_start).to_numpy()
    return transactions[before], transactions[~before].head(rows)


def replayed_span(replayed: pd.DataFrame) -> list[tuple[str, str, Any]] | None:
    """Parquet filters for the offline rows of the replayed transactions' time span (None: no rows)."""
    if replayed.empty:
        return None
    return [(TX_DATETIME, ">=", replayed[TX_DATETIME].min()), (TX_DATETIME, "<=", replayed[TX_DATETIME].max())]


def feature_parity(
    transaction_ids: np.ndarray, online: np.ndarray, offline: pd.DataFrame, names: Sequence[str]
) -> dict[str, float]:
    """Largest |online - offline| feature difference over the replayed rows (0: no skew) and how
    many rows were compared; ``online`` holds the ``names`` columns, rows as ``transaction_ids``."""
    if not len(transaction_ids):
        return {"max_abs_feature_diff": 0.0, "rows_compared": 0}
    rows = offline.set_index(TRANSACTION_ID).loc[transaction_ids, list(names)].to_numpy(np.float64)
    return {"max_abs_feature_diff": float(np.max(np.abs(rows - online))), "rows_compared": len(transaction_ids)}


def online_rows(transaction_ids: np.ndarray, online: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    """The replayed rows' online features as a table (what `evaluate` scores)."""
    return pd.DataFrame({TRANSACTION_ID: transaction_ids, **dict(zip(names, online.T))})


def score_parity(rows: pd.DataFrame, bundle: Bundle, scorer: RowScorer) -> tuple[dict[str, float], np.ndarray]:
    """Largest |row path - batch path| score over the online rows (`online_rows`), how many, and
    the row path's milliseconds per row (wall clock). The row path is the service's (``scorer``:
    float32 buffer, XGBoost's C entry point); the batch path is ``Bundle.predict_proba``."""
    bundle.check_features([c for c in rows.columns if c != TRANSACTION_ID])  # rows of another features config
    X = rows[list(bundle.features)].to_numpy(np.float64)
    n = len(X)
    if not n:
        return {"max_abs_score_diff": 0.0, "rows_compared": 0}, np.zeros(0)
    served, latency = np.empty(n), np.empty(n)
    for i, x in enumerate(X):
        start = time.perf_counter_ns()
        served[i] = scorer(x)
        latency[i] = (time.perf_counter_ns() - start) / 1e6
    figures = {"max_abs_score_diff": float(np.max(np.abs(bundle.predict_proba(X) - served))), "rows_compared": n}
    return figures, latency


def latency_percentiles(latency_ms: np.ndarray) -> tuple[float, float]:
    """p50 and p99 milliseconds per row (NaN for no rows, written as null)."""
    if not len(latency_ms):
        return float("nan"), float("nan")
    p50, p99 = np.percentile(latency_ms, [50, 99])
    return float(p50), float(p99)


def latency_summary(latency_ms: np.ndarray, fast_path: FastPath) -> dict[str, float]:
    """p50/p99 milliseconds per transaction, and whether they were measured on XGBoost's fast path
    (1) or its fallback (0)."""
    p50, p99 = latency_percentiles(latency_ms)
    return {
        "score_latency_p50_ms": p50,
        "score_latency_p99_ms": p99,
        "score_latency_rows": len(latency_ms),
        "score_fast_path": int(fast_path.on),
    }
