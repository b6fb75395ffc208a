"""The one online scorer: a transaction's features from its history into a row, the row into a score.

`fraudpipe serve` scores every request with an `OnlineScorer`, and so do the tests that hold the
service to the batch path and benchmarks/scoring.py, so the latency reported is that of the code
that serves. The scorer does not own the state: the service reads a customer's and terminal's
`History` from its store (in-process or Redis) and passes it in; `replay` reads it from an
`OnlineState`, as the in-process store does. The `parity` stage replays the features alone
(`replay_features`: no model, so a model change does not rerun it) and `evaluate` scores its rows
with the same `RowScorer`.

Per transaction: ``history_features`` (the training definitions) gives a float64 row, which
`RowScorer` standardises into a float32 buffer and scores with XGBoost's C entry point (or the
bundle's own path for other estimators; ``fast_path`` says which).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

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
from fraudpipe.features.online import History, OnlineState, history_features, to_epoch_second
from fraudpipe.model import Bundle
from fraudpipe.scoring.row import FastPath, RowScorer

NO_COORDINATES: tuple[None, None, None, None] = (None, None, None, None)


class Scoring(NamedTuple):
    """One transaction scored: its feature row (float64, bundle order) and P(fraud)."""

    features: np.ndarray
    score: float


class OnlineScorer:
    """A bundle and the feature config whose online features it scores (refused when they differ)."""

    def __init__(self, bundle: Bundle, config: FeatureConfig) -> None:
        bundle.check_features(feature_names(config))  # train/serve skew refused up front
        self.bundle, self.config = bundle, config
        self.row = RowScorer(bundle)

    @property
    def fast_path(self) -> FastPath:
        return self.row.fast_path

    def score(self, history: History, t: int, amount: float, coordinates: Sequence[Any] = NO_COORDINATES) -> Scoring:
        """Score a new transaction at epoch second ``t`` from ``history`` (its customer's and
        terminal's, before it); ``coordinates``: its own customer_x, customer_y, terminal_x,
        terminal_y (None or NaN: not carried). DataError when the distance feature lacks a location."""
        x = history_features(self.config, history, t, amount, coordinates)
        return Scoring(x, self.row(x))


@dataclass(frozen=True)
class Replay:
    """What replaying transactions one by one through the online features (and a scorer) produced."""

    transaction_ids: np.ndarray  # as in the replayed table: int64 or text
    features: np.ndarray  # (n, n_features): the bundle's feature order, or the config's (`replay_features`)
    scores: np.ndarray  # P(fraud); NaN where only the features were replayed
    latency_ms: np.ndarray  # history lookup + features (+ score), per transaction (wall clock: not reproducible)


def replay(scorer: OnlineScorer, state: OnlineState, transactions: pd.DataFrame) -> Replay:
    """Score each transaction as it arrives, then add it with its label to ``state``, in table order
    (what the service does with its in-process store); the coordinate columns, when the table has
    them, go along with each transaction."""
    return _replay(state, transactions, len(scorer.bundle.features), scorer.score)


def replay_features(config: FeatureConfig, state: OnlineState, transactions: pd.DataFrame) -> Replay:
    """`replay` without a model: each transaction's online features (``feature_names(config)``
    order) as the service computes them before it scores; scores NaN."""

    def features(history: History, t: int, amount: float, coordinates: Sequence[Any]) -> Scoring:
        return Scoring(history_features(config, history, t, amount, coordinates), float("nan"))

    return _replay(state, transactions, len(feature_names(config)), features)


def _replay(
    state: OnlineState, transactions: pd.DataFrame, width: int, step: Callable[[History, int, float, Any], Scoring]
) -> Replay:
    n = len(transactions)
    feats, scores, latency = np.empty((n, width)), np.empty(n), np.empty(n)
    columns = [transactions[c].to_numpy() for c in (TRANSACTION_ID, CUSTOMER_ID, TERMINAL_ID, TX_DATETIME, TX_AMOUNT)]
    labels = transactions[TX_FRAUD].astype("Int8").tolist() if TX_FRAUD in transactions else [None] * n
    coordinates = _coordinates(transactions)
    for i, (tid, customer, terminal, when, amount) in enumerate(zip(*columns)):
        customer, terminal, t = canonical_id(customer), canonical_id(terminal), to_epoch_second(when)
        amount = float(amount)
        start = time.perf_counter_ns()
        scored = step(state.lookup(customer, terminal), t, amount, coordinates[i])
        latency[i] = (time.perf_counter_ns() - start) / 1e6
        feats[i], scores[i] = scored
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
