"""Transactions replayed one by one through an online state, as the service meets them.

Each transaction's features are computed from the history before it (`history_features`), then
the transaction is added with its label, in table order: what the service does with its
in-process store. The `parity` stage replays the features alone (`replay_features`: no model, so a
model change does not rerun it); `scoring.online.replay` puts a scorer in the same loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
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
    canonical_id,
)
from fraudpipe.features.definitions import FeatureConfig, feature_names
from fraudpipe.features.online.compute import history_features
from fraudpipe.features.online.history import History, to_epoch_second
from fraudpipe.features.online.state import OnlineState

#: One transaction: its history, epoch second, amount and own coordinates -> (feature row, score).
Step = Callable[[History, int, float, Sequence[Any]], tuple[np.ndarray, float]]


@dataclass(frozen=True)
class Replay:
    """What replaying transactions one by one produced."""

    transaction_ids: np.ndarray  # as in the replayed table: int64 or text
    features: np.ndarray  # (n, n_features): the step's feature order
    scores: np.ndarray  # P(fraud); NaN where only the features were replayed
    latency_ms: np.ndarray  # history lookup + the step, per transaction (wall clock: not reproducible)


def replay_features(config: FeatureConfig, state: OnlineState, transactions: pd.DataFrame) -> Replay:
    """Each transaction's online features (``feature_names(config)`` order) as the service computes
    them before it scores; scores NaN."""

    def features(history: History, t: int, amount: float, coordinates: Sequence[Any]) -> tuple[np.ndarray, float]:
        return history_features(config, history, t, amount, coordinates), float("nan")

    return replay_rows(state, transactions, len(feature_names(config)), features)


def replay_rows(state: OnlineState, transactions: pd.DataFrame, width: int, step: Step) -> Replay:
    """``step`` on each transaction as it arrives (``width`` features), then the transaction added
    with its label to ``state``; the coordinate columns, when the table has them, go along."""
    n = len(transactions)
    feats, scores, latency = np.empty((n, width)), np.empty(n), np.empty(n)
    columns = [transactions[c].to_numpy() for c in (TRANSACTION_ID, CUSTOMER_ID, TERMINAL_ID, TX_DATETIME, TX_AMOUNT)]
    labels = transactions[TX_FRAUD].astype("Int8").tolist() if TX_FRAUD in transactions else [None] * n
    coordinates = _coordinates(transactions)
    for i, (tid, customer, terminal, when, amount) in enumerate(zip(*columns)):
        customer, terminal, t = canonical_id(customer), canonical_id(terminal), to_epoch_second(when)
        amount = float(amount)
        start = time.perf_counter_ns()
        feats[i], scores[i] = step(state.lookup(customer, terminal), t, amount, coordinates[i])
        latency[i] = (time.perf_counter_ns() - start) / 1e6
        label = labels[i]
        state.add(
            canonical_id(tid),
            customer,
            terminal,
            t,
            amount,
            None if label is None or label is pd.NA else int(label),
            coordinates=coordinates[i],
        )
    return Replay(columns[0], feats, scores, latency)


def _coordinates(transactions: pd.DataFrame) -> list[tuple[Any, ...]]:
    """Each row's customer_x, customer_y, terminal_x, terminal_y (None where the table lacks a column)."""
    n = len(transactions)
    values = [transactions[c].tolist() if c in transactions else [None] * n for c in COORDINATE_COLUMNS]
    return list(zip(*values)) if n else []
