"""Fitting the configured estimator: optional standardisation, class weight, the spec's fit."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from fraudpipe.model.config import ModelConfig
from fraudpipe.model.estimators import Estimator, Predictor, spec

if TYPE_CHECKING:
    from dvclive import Live


def positive_weight(config: ModelConfig, labels: np.ndarray) -> float:
    """The weight of a fraud relative to a genuine transaction ('balanced' = n_genuine / n_fraud)."""
    if config.scale_pos_weight == "balanced":
        n_pos = int(np.sum(labels))
        return float((len(labels) - n_pos) / n_pos)
    return float(config.scale_pos_weight)


def estimator_params(config: ModelConfig, labels: np.ndarray) -> dict[str, Any]:
    """The keyword arguments actually given to the estimator (recorded in bundle.json)."""
    return spec(config.estimator).params(config, positive_weight(config, labels))


def threads_per_fit(fits: int) -> int:
    """The threads each of ``fits`` fits running at once may use: this process's CPUs (or
    OMP_NUM_THREADS, which XGBoost and scikit-learn's OpenMP code follow) shared out, at least one.
    Each fit gets its share explicitly: OpenMP teams that together ask for more threads than there
    are cores wait on each other at every barrier, several times slower than one fit at a time."""
    omp = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    available = int(omp) if omp.isdigit() and int(omp) > 0 else len(os.sched_getaffinity(0))
    return max(1, available // fits)


def fit_standardizer(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column's mean and scale (standard deviation; 1 for a column indistinguishable from a
    constant), to the last bit as scikit-learn's ``StandardScaler().fit(X)`` gives them for finite
    rows: its corrected two-pass variance and near-constant test, in the same operations and order
    (tests/test_model_fit.py compares the bits). Importing scikit-learn for it cost the train and
    backtest stages about a second each (scipy comes with it); XGBoost needs none of it."""
    n = float(X.shape[0])
    total = np.sum(X, axis=0)
    mean = (0.0 + total) / n
    centred = X - total / n
    correction = np.sum(centred, axis=0)
    centred **= 2
    variance = (np.sum(centred, axis=0) - correction**2 / n) / n
    eps = np.finfo(np.float64).eps
    scale = np.sqrt(variance)
    scale[variance <= n * eps * variance + (n * mean * eps) ** 2] = 1.0
    return mean, scale


def standardize(X: np.ndarray, mean: np.ndarray | None, scale: np.ndarray | None) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if mean is None or scale is None:  # both or neither: no standardiser
        return X
    out = X - mean  # a new array; dividing it in place saves a second copy of X (same values)
    return np.divide(out, scale, out=out)


@dataclass(frozen=True)
class FittedModel:
    """A standardiser (or none) and a predictor, fitted together on one slice of data."""

    predictor: Predictor
    mean: np.ndarray | None
    scale: np.ndarray | None
    params: dict[str, Any]
    importance: np.ndarray

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predictor.predict(standardize(X, self.mean, self.scale))


def fit_model(
    X: np.ndarray,
    y: np.ndarray,
    config: ModelConfig,
    features: Sequence[str],
    eval_set: tuple[np.ndarray, np.ndarray] | None = None,
    live: Live | None = None,
    estimator: Estimator | None = None,
    threads: int | None = None,
) -> FittedModel:
    """Fit the configured estimator; one that logs its own curves reports them to `live`.

    ``estimator`` fits in its place another implementation of the same spec (the Dask engine's);
    ``threads`` caps the fit's threads (`Estimator.fit`).
    """
    mean, scale = fit_standardizer(X) if config.standardize else (None, None)
    estimator = spec(config.estimator) if estimator is None else estimator
    params = estimator_params(config, y)
    scaled_eval = None if eval_set is None else (standardize(eval_set[0], mean, scale), eval_set[1])
    model, importance = estimator.fit(
        standardize(X, mean, scale), y, params, features, eval_set=scaled_eval, live=live, threads=threads
    )
    return FittedModel(Predictor(estimator, model), mean, scale, params, importance)
