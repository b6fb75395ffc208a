"""Logistic regression (scikit-learn), saved as its coefficients and intercept in `linear.json`.

Scoring is expit(X @ coef + intercept) in numpy, the same number scikit-learn's predict_proba
gives, so a bundle needs no pickled estimator.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fraudpipe.errors import BundleError
from fraudpipe.io import write_json
from fraudpipe.model.estimators.base import Estimator, class_weight, normalised

if TYPE_CHECKING:
    from dvclive import Live

    from fraudpipe.model.config import ModelConfig


@dataclass(frozen=True)
class Linear:
    coef: np.ndarray  # float64, one per feature
    intercept: float


class LogisticRegression(Estimator):
    name = "logistic_regression"
    format = "logistic-json"
    file = "linear.json"
    needs = ("C", "max_iter")

    def params(self, config: ModelConfig, positive_weight: float) -> dict[str, Any]:
        return {
            "C": float(config.C),  # type: ignore[arg-type]
            "max_iter": int(config.max_iter),  # type: ignore[arg-type]
            "class_weight": class_weight(positive_weight),
            "random_state": int(config.random_state),
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
    ) -> tuple[Linear, np.ndarray]:
        from sklearn.linear_model import LogisticRegression as SkLogisticRegression

        lr = SkLogisticRegression(**params).fit(X, y)
        return Linear(np.asarray(lr.coef_[0], dtype=np.float64), float(lr.intercept_[0])), normalised(lr.coef_[0])

    def predict(self, model: Linear, X: np.ndarray) -> np.ndarray:
        from scipy.special import expit

        return expit(np.asarray(X, dtype=np.float64) @ model.coef + model.intercept)

    def describe(self, model: Linear) -> dict[str, Any]:
        return {"format": self.format, "file": self.file}

    def save(self, model: Linear, directory: Path) -> None:
        write_json({"coef": model.coef.tolist(), "intercept": model.intercept}, directory / self.file)

    def load(self, directory: Path, entry: Mapping[str, Any], n_features: int, nthread: int | None) -> Linear:
        path = directory / self.file
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            coef = np.array(data["coef"], dtype=np.float64)
            intercept = float(data["intercept"])
        except (ValueError, TypeError, KeyError) as exc:
            raise BundleError(
                f'{path}: expected {{"coef": [numbers], "intercept": number}} ({type(exc).__name__}: {exc})'
            ) from None
        if coef.shape != (n_features,) or not np.isfinite(coef).all() or not np.isfinite(intercept):
            raise BundleError(
                f"{path}: expected {n_features} finite coefficients and a finite intercept, got coef shape {coef.shape}"
            )
        return Linear(coef, intercept)


SPEC = LogisticRegression()
