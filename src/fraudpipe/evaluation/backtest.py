"""Prequential backtest (handbook ch. 5): the model retrained on shifted periods, mean and std.

One test period gives one number; a week more or less of fraud moves it by more than many model
changes do. The backtest trains the configured model on each fold of `split.prequential_folds`
(fold k = the configured split shifted back k test periods), scores the fold's test period with
its own threshold, and reports every metric's mean and sample std over the folds. The folds are
independent of the shipped bundle: this measures the recipe (features + model config), not one fit.
Fold 0 is the configured split itself, so the bundle `train` fitted on it, when it was fitted
with this model config on these rows (`model.fitted_on`), stands in for that fold's fit.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from fraudpipe.data.split import SplitConfig, SplitParts, iter_folds
from fraudpipe.metrics import aggregate_folds, quality_metrics
from fraudpipe.model import Bundle, ModelConfig, fitted_on, train_bundle
from fraudpipe.progress import progress


def evaluate_folds(
    folds: Iterable[SplitParts], config: ModelConfig, k: int, trained: Bundle | None = None
) -> list[dict[str, float]]:
    """Train on each fold's train part and score its test part; one metrics dict per fold. Each
    fold is dropped before the next is taken (`split.iter_folds` then holds one at a time).
    ``trained``: a bundle used for fold 0 instead of a fit, if it is that fit (`fitted_on`)."""
    results = []
    for i, parts in enumerate(folds):
        if i == 0 and trained is not None and fitted_on(trained, parts.train, config):
            bundle = trained
        else:
            bundle = train_bundle(parts.train, config)
        scores = bundle.score(parts.test)
        results.append({"fold": i, **quality_metrics(parts.test, scores, bundle.threshold, k)})
        del parts, bundle, scores
    return results


def backtest(
    table: pd.DataFrame,
    split_config: SplitConfig,
    model_config: ModelConfig,
    k: int,
    trained: Bundle | None = None,
    last_time: pd.Timestamp | None = None,
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """`n_folds` and `<metric>_fold_mean` / `_fold_std` over the folds of `split_config`, the
    budget `card_precision_k`, and the per-fold metrics (``trained`` as in `evaluate_folds`;
    ``last_time`` as in `split.iter_folds`, for a table from `split.read_folds`)."""
    folds = progress(
        iter_folds(table, split_config, last_time), desc="backtest folds", total=split_config.n_folds, unit="fold"
    )
    per_fold = evaluate_folds(folds, model_config, k, trained)
    summary = aggregate_folds(
        [{key: v for key, v in f.items() if key not in ("fold", "card_precision_k")} for f in per_fold]
    )
    return summary | {"card_precision_k": int(k)}, per_fold
