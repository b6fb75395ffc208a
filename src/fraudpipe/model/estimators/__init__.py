"""The estimator registry: `model.estimator` in conf/model/ names one spec below.

Adding an estimator is one module here exposing `SPEC` (an `Estimator`), its line in `SPECS`, and
a conf/model/<option>.yaml; nothing else in the code names estimators.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from fraudpipe.model.estimators import decision_tree, logistic_regression, random_forest, xgboost
from fraudpipe.model.estimators.base import Estimator, Predictor

SPECS: Mapping[str, Estimator] = MappingProxyType(
    {spec.name: spec for spec in (xgboost.SPEC, logistic_regression.SPEC, random_forest.SPEC, decision_tree.SPEC)}
)
NAMES: tuple[str, ...] = tuple(SPECS)


def spec(name: str) -> Estimator:
    """The spec of a configured estimator (ModelConfig has already refused unknown names)."""
    return SPECS[name]


__all__ = ["NAMES", "SPECS", "Estimator", "Predictor", "spec"]
