"""The one online scorer: a transaction's features from its history into a row, the row into a score.

`fraudpipe serve` scores every request with an `OnlineScorer`, and so do the tests that hold the
service to the batch path and benchmarks/scoring.py, so the latency reported is that of the code
that serves. The scorer does not own the state: the service reads a customer's and terminal's
`History` from its store (in-process or Redis) and passes it in; `replay` reads it from an
`OnlineState`, as the in-process store does (`features.online.replay`, where the `parity` stage
replays the features alone; `evaluate` scores its rows with the same `RowScorer`).

Per transaction: ``history_features`` (the training definitions) gives a float64 row, which
`RowScorer` standardises into a float32 buffer and scores with XGBoost's C entry point (or the
bundle's own path for other estimators; ``fast_path`` says which).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from fraudpipe.features.definitions import FeatureConfig, feature_names
from fraudpipe.features.online import History, OnlineState, history_features
from fraudpipe.features.online.replay import Replay, replay_rows
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


def replay(scorer: OnlineScorer, state: OnlineState, transactions: pd.DataFrame) -> Replay:
    """Score each transaction as it arrives, then add it with its label to ``state``, in table order
    (what the service does with its in-process store); features in the bundle's order."""
    return replay_rows(state, transactions, len(scorer.bundle.features), scorer.score)
