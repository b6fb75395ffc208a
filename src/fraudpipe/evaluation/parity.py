"""Online = offline: the first transactions of the test period replayed through the one online scorer.

The service computes each transaction's features from its history and scores them one row at a
time; training and the batch scores read the offline feature table. The `parity` stage replays
the test period's first ``evaluate.latency_rows`` transactions through `scoring.online`'s
`OnlineScorer` (the service's scorer) on top of the history before it, and compares: the largest
feature difference and the largest score difference against the offline rows, and how many rows
were compared (reproducible: reports/parity.json). The same replay times each transaction
(history lookup, features, score): the latency figure, wall clock, in a file of its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fraudpipe.contract import TRANSACTION_ID, TX_DATETIME
from fraudpipe.model import Bundle
from fraudpipe.scoring.online import Replay
from fraudpipe.scoring.row import FastPath


def split_replay(transactions: pd.DataFrame, test_start: pd.Timestamp, rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The history before the test period, and its first ``rows`` transactions (table order) to replay."""
    before = (transactions[TX_DATETIME] < test_start).to_numpy()
    return transactions[before], transactions[~before].head(rows)


def replayed_span(replayed: pd.DataFrame) -> list[tuple[str, str, Any]] | None:
    """Parquet filters for the offline rows of the replayed transactions' time span (None: no rows)."""
    if replayed.empty:
        return None
    return [(TX_DATETIME, ">=", replayed[TX_DATETIME].min()), (TX_DATETIME, "<=", replayed[TX_DATETIME].max())]


def parity_figures(replayed: Replay, offline: pd.DataFrame, bundle: Bundle) -> dict[str, float]:
    """Largest |online - offline| feature and score differences over the replayed rows (0: no skew);
    the offline score is the batch path's (``Bundle.predict_proba`` on the offline rows)."""
    n = len(replayed.transaction_ids)
    if not n:
        return {"max_abs_feature_diff": 0.0, "max_abs_score_diff": 0.0, "rows_compared": 0}
    rows = offline.set_index(TRANSACTION_ID).loc[replayed.transaction_ids, list(bundle.features)]
    X = rows.to_numpy(np.float64)
    return {
        "max_abs_feature_diff": float(np.max(np.abs(X - replayed.features))),
        "max_abs_score_diff": float(np.max(np.abs(bundle.predict_proba(X) - replayed.scores))),
        "rows_compared": n,
    }


def latency_summary(latency_ms: np.ndarray, fast_path: FastPath) -> dict[str, float]:
    """p50/p99 milliseconds per transaction (empty input gives NaN, written as null), and whether
    they were measured on XGBoost's fast path (1) or its fallback (0)."""
    figures = {
        "score_latency_p50_ms": float(np.percentile(latency_ms, 50)) if len(latency_ms) else float("nan"),
        "score_latency_p99_ms": float(np.percentile(latency_ms, 99)) if len(latency_ms) else float("nan"),
        "score_latency_rows": len(latency_ms),
    }
    return figures | {"score_fast_path": int(fast_path.on)}
