"""Random forest (scikit-learn), stored and scored as flat node arrays (`trees.py`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fraudpipe.model.estimators.base import class_weight
from fraudpipe.model.estimators.trees import TreeEstimator, Trees

if TYPE_CHECKING:
    from dvclive import Live

    from fraudpipe.model.config import ModelConfig


class RandomForest(TreeEstimator):
    name = "random_forest"
    needs = ("n_estimators", "min_samples_leaf")

    def params(self, config: ModelConfig, positive_weight: float) -> dict[str, Any]:
        return {
            "max_depth": config.max_depth,  # null: unlimited
            "min_samples_leaf": config.min_samples_leaf,
            "class_weight": class_weight(positive_weight),
            "random_state": int(config.random_state),
            "n_estimators": int(config.n_estimators),  # type: ignore[arg-type]
            "max_features": config.max_features,  # null: every feature at every split
            "n_jobs": -1,
        }

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        params: Mapping[str, Any],
        features: Sequence[str],
        eval_set: tuple[np.ndarray, np.ndarray] | None = None,
        live: Live | None = None,
        threads: int | None = None,
    ) -> tuple[Trees, np.ndarray]:
        from sklearn.ensemble import RandomForestClassifier

        forest = RandomForestClassifier(**{**params, **({} if threads is None else {"n_jobs": threads})}).fit(X, y)
        return Trees.from_sklearn(forest.estimators_), forest.feature_importances_


SPEC = RandomForest()
