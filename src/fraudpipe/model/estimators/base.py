"""What every estimator spec provides, and the fitted model bound to its spec (`Predictor`).

A spec is one object per estimator: the keyword arguments it gets from a `ModelConfig`, how it is
fitted, how it scores, and how it is written to and read from a bundle without pickle. Code
outside `estimators/` asks the spec and never branches on the estimator's name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    from dvclive import Live

    from fraudpipe.model.config import ModelConfig


class Estimator(ABC):
    """One estimator: its config needs, parameters, fit, predict and bundle file format."""

    #: The `model.estimator` value that selects it (conf/model/<option>.yaml).
    name: ClassVar[str]
    #: `model.format` in bundle.json, and the one file beside bundle.json that holds the model.
    format: ClassVar[str]
    file: ClassVar[str]
    #: ModelConfig keys that must not be null for this estimator.
    needs: ClassVar[tuple[str, ...]] = ()
    #: True when `fit` reports its own training curves to dvclive (boosting rounds); otherwise
    #: training logs one point per curve after the fit, so every estimator leaves curves.
    logs_curves: ClassVar[bool] = False
    #: the tree methods the Dask engine can fit this estimator with (none: pandas engine only)
    dask_tree_methods: ClassVar[tuple[str, ...]] = ()

    @property
    def engine(self) -> dict[str, Any] | None:
        """What a bundle records as its ``engine`` (where the fit ran); None: the stage's own
        process, which is not recorded."""
        return None

    def problems(self, config: ModelConfig) -> dict[str, str]:
        """Config keys this estimator cannot work with, and why (reported as ConfigErrors)."""
        return {key: f"{self.name} needs a value" for key in self.needs if getattr(config, key) is None}

    @abstractmethod
    def params(self, config: ModelConfig, positive_weight: float) -> dict[str, Any]:
        """The keyword arguments the estimator is given (recorded in bundle.json)."""

    @abstractmethod
    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        params: Mapping[str, Any],
        features: Sequence[str],
        eval_set: tuple[np.ndarray, np.ndarray] | None = None,
        live: Live | None = None,
        threads: int | None = None,
    ) -> tuple[Any, np.ndarray]:
        """Fit on standardised rows; the fitted model and a normalised importance per feature.
        ``threads`` caps the threads of an estimator that uses several (None: its library's
        default); the fitted model is the same whatever the cap, and it is never recorded."""

    @abstractmethod
    def predict(self, model: Any, X: np.ndarray) -> np.ndarray:
        """P(fraud) per row of standardised features (float64)."""

    @abstractmethod
    def describe(self, model: Any) -> dict[str, Any]:
        """bundle.json's `model` entry: at least {"format": self.format, "file": self.file}."""

    @abstractmethod
    def save(self, model: Any, directory: Path) -> None:
        """Write `self.file` into the bundle directory."""

    @abstractmethod
    def load(self, directory: Path, entry: Mapping[str, Any], n_features: int, nthread: int | None) -> Any:
        """Read `self.file` back; anything unexpected is a BundleError. `nthread` caps threads."""


@dataclass(frozen=True)
class Predictor:
    """A fitted model and the spec that knows how to score, describe and save it."""

    spec: Estimator
    model: Any

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.spec.predict(self.model, X)

    def describe(self) -> dict[str, Any]:
        return self.spec.describe(self.model)

    def save(self, directory: Path) -> None:
        self.spec.save(self.model, directory)


def class_weight(positive_weight: float) -> dict[int, float] | None:
    """scikit-learn's class_weight for a fraud weight (None when frauds are not up-weighted)."""
    return None if positive_weight == 1.0 else {0: 1.0, 1: positive_weight}


def normalised(values: np.ndarray) -> np.ndarray:
    """|values| scaled to sum 1 (all zeros stay zeros): comparable importances across estimators."""
    values = np.abs(np.asarray(values, dtype=np.float64))
    total = values.sum()
    return values / total if total > 0 else values
