"""`conf/model/`: the model group's configuration.

Every option carries every key (a Hydra sweep over the group needs that); a key that means
nothing to an estimator is null in its file and ignored by it. conf/ holds the values; this model
holds their types and ranges, and asks the chosen estimator's spec which keys it cannot do without.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Self

from pydantic import Field, PlainValidator, model_validator

from fraudpipe.config import Config, rule_errors
from fraudpipe.model.estimators import NAMES, spec

PositiveInt = Annotated[int, Field(ge=1)]
Fraction = Annotated[float, Field(gt=0, le=1)]


def _positive_weight(value: Any) -> float | str:
    if value == "balanced" and isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    raise ValueError("must be a positive number or 'balanced'")


def _max_features(value: Any) -> int | float | str | None:
    """scikit-learn's max_features: 'sqrt', 'log2', a count >= 1, a fraction in (0, 1], or null."""
    if value is None or (isinstance(value, str) and value in ("sqrt", "log2")):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, float) and 0 < value <= 1:
        return value
    raise ValueError("must be 'sqrt', 'log2', a whole number >= 1, a fraction in (0, 1], or null")


class ModelConfig(Config):
    """One option of conf/model/ (xgboost.yaml documents each key)."""

    name: str
    estimator: Literal[NAMES]  # type: ignore[valid-type]
    random_state: Annotated[int, Field(ge=0, lt=2**32)]
    standardize: bool
    #: weight of a fraud vs a genuine transaction; 'balanced' = n_genuine / n_fraud.
    scale_pos_weight: Annotated[float | str, PlainValidator(_positive_weight)]
    n_estimators: PositiveInt | None
    max_depth: PositiveInt | None
    learning_rate: Annotated[float, Field(gt=0)] | None
    min_child_weight: Annotated[float, Field(ge=0)] | None
    subsample: Fraction | None
    colsample_bytree: Fraction | None
    reg_lambda: Annotated[float, Field(ge=0)] | None
    tree_method: Literal["auto", "exact", "approx", "hist"] | None
    #: bins per feature of hist and approx trees (XGBoost's max_bin; exact trees have none).
    max_bin: Annotated[int, Field(ge=2)] | None
    base_score: Annotated[float, Field(gt=0, lt=1)] | None
    min_samples_leaf: PositiveInt | None
    max_features: Annotated[int | float | str | None, PlainValidator(_max_features)]
    C: Annotated[float, Field(gt=0)] | None
    max_iter: PositiveInt | None
    threshold_rule: Literal["max_f1", "top_k_per_day"]
    threshold_k: PositiveInt
    threshold_validation_days: Annotated[int, Field(ge=0)]

    @model_validator(mode="after")
    def _estimator_needs(self) -> Self:
        problems = spec(self.estimator).problems(self)
        if problems:
            raise rule_errors([(key, rule, getattr(self, key)) for key, rule in problems.items()])
        return self

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some keys changed, validated like a conf/ file (sweeps, benchmarks)."""
        return type(self).parse(self.to_dict() | changes, "model")
