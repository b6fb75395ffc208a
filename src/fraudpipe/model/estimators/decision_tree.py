"""Decision tree (scikit-learn), stored and scored as a flat node array (`trees.py`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fraudpipe.model.estimators.base import class_weight
from fraudpipe.model.estimators.trees import TreeEstimator, Trees

if TYPE_CHECKING:
    from dvclive import Live

    from fraudpipe.model.config import ModelConfig


class DecisionTree(TreeEstimator):
    name = "decision_tree"
    needs = ("min_samples_leaf",)

    def params(self, config: ModelConfig, positive_weight: float) -> dict[str, Any]:
        return {
            "max_depth": config.max_depth,  # null: unlimited
            "min_samples_leaf": config.min_samples_leaf,
            "class_weight": class_weight(positive_weight),
            "random_state": int(config.random_state),
            "max_features": config.max_features,  # null: every feature
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
        from sklearn.tree import DecisionTreeClassifier

        tree = DecisionTreeClassifier(**params).fit(X, y)
        return Trees.from_sklearn([tree]), tree.feature_importances_


SPEC = DecisionTree()
