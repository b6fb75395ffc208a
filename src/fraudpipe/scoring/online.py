"""One transaction in, one fraud score out: the online scoring path that the latency metric measures.

Latency is only worth reporting if it is measured on the code that serves, so evaluation replays
real transactions through an `OnlineScorer`: online features from history, then the model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fraudpipe.contract import (
    COORDINATE_COLUMNS,
    CUSTOMER_ID,
    TERMINAL_ID,
    TRANSACTION_ID,
    TX_AMOUNT,
    TX_DATETIME,
    TX_FRAUD,
)
from fraudpipe.features.online import OnlineState
from fraudpipe.model import Bundle


@dataclass
class OnlineScorer:
    """A model bundle and the online state whose features it was trained on."""

    state: OnlineState
    bundle: Bundle

    def __post_init__(self) -> None:
        self.bundle.check_features(self.state.feature_names)  # refuse train/serve skew up front

    # ``coordinates``: the transaction's own customer_x, customer_y, terminal_x, terminal_y, when it
    # carries them (keyword arguments of ``OnlineState.features``/``update``).

    def features(
        self,
        customer_id: int | str,
        terminal_id: int | str,
        tx_datetime: Any,
        tx_amount: float,
        **coordinates: float | None,
    ) -> np.ndarray:
        return self.state.features(customer_id, terminal_id, tx_datetime, tx_amount, **coordinates)

    def score(
        self,
        customer_id: int | str,
        terminal_id: int | str,
        tx_datetime: Any,
        tx_amount: float,
        **coordinates: float | None,
    ) -> float:
        """P(fraud) of a new transaction, from history only (the transaction is not added)."""
        x = self.features(customer_id, terminal_id, tx_datetime, tx_amount, **coordinates)
        return float(self.bundle.predict_proba(x[np.newaxis, :])[0])

    def observe(
        self,
        transaction_id: int | str,
        customer_id: int | str,
        terminal_id: int | str,
        tx_datetime: Any,
        tx_amount: float,
        tx_fraud: int | None = None,
        **coordinates: float | None,
    ) -> None:
        """Add a transaction (and its label, once known) to the history later scores use."""
        self.state.update(transaction_id, customer_id, terminal_id, tx_datetime, tx_amount, tx_fraud, **coordinates)


@dataclass(frozen=True)
class Replay:
    """What replaying transactions one by one through an online scorer produced."""

    transaction_ids: np.ndarray  # as in the replayed table: int64 or text
    features: np.ndarray  # (n, n_features), bundle feature order
    scores: np.ndarray
    latency_ms: np.ndarray  # features + score, per transaction (wall clock: not reproducible)


def replay(scorer: OnlineScorer, transactions: pd.DataFrame) -> Replay:
    """Score each transaction as it arrives, then add it with its label, in table order; the
    coordinate columns, when the table has them, go along with each transaction."""
    n, width = len(transactions), len(scorer.bundle.features)
    feats, scores, latency = np.empty((n, width)), np.empty(n), np.empty(n)
    columns = [transactions[c].to_numpy() for c in (TRANSACTION_ID, CUSTOMER_ID, TERMINAL_ID, TX_DATETIME, TX_AMOUNT)]
    labels = transactions[TX_FRAUD].astype("Int8").tolist() if TX_FRAUD in transactions else [None] * n
    carried = [c for c in COORDINATE_COLUMNS if c in transactions]
    coordinates = transactions[carried].to_dict("records") if carried else [{}] * n
    for i, (tid, customer, terminal, when, amount) in enumerate(zip(*columns)):
        start = time.perf_counter_ns()
        x = scorer.features(customer, terminal, when, amount, **coordinates[i])
        scores[i] = scorer.bundle.predict_proba(x[np.newaxis, :])[0]
        latency[i] = (time.perf_counter_ns() - start) / 1e6
        feats[i] = x
        label = labels[i]
        scorer.observe(tid, customer, terminal, when, amount, None if label is pd.NA else label, **coordinates[i])
    return Replay(columns[0], feats, scores, latency)


def latency_summary(latency_ms: np.ndarray) -> dict[str, float]:
    """p50/p99 milliseconds per transaction (empty input gives NaN, written as null)."""
    if not len(latency_ms):
        return {"score_latency_p50_ms": float("nan"), "score_latency_p99_ms": float("nan"), "score_latency_rows": 0}
    return {
        "score_latency_p50_ms": float(np.percentile(latency_ms, 50)),
        "score_latency_p99_ms": float(np.percentile(latency_ms, 99)),
        "score_latency_rows": len(latency_ms),
    }


def max_abs_difference(replayed: Replay, offline: pd.DataFrame, feature_names: list[str]) -> float:
    """Largest |online - offline| feature difference over the replayed rows (0 means no skew)."""
    if not len(replayed.transaction_ids):
        return 0.0
    table = offline.set_index(TRANSACTION_ID).loc[replayed.transaction_ids, feature_names]
    return float(np.max(np.abs(table.to_numpy(np.float64) - replayed.features)))
