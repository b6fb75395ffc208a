"""Training a bundle: fit on the training period, choose the threshold, record what was done.

The threshold is chosen on training-period data only, and the metadata holds everything needed
to tell two bundles apart (params, data hash, library versions) but no time stamp, so the same
params and data give byte-identical bundles.
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fraudpipe.contract import TX_DATETIME, TX_FRAUD, feature_columns, require_columns
from fraudpipe.errors import ConfigError, DataError
from fraudpipe.metrics import average_precision, threshold_metrics
from fraudpipe.model.bundle import BUNDLE_FORMAT, Bundle
from fraudpipe.model.config import ModelConfig
from fraudpipe.model.estimators import Estimator, spec
from fraudpipe.model.fit import FittedModel, fit_model, threads_per_fit
from fraudpipe.model.threshold import select_threshold

if TYPE_CHECKING:
    from dvclive import Live


def table_sha256(table: pd.DataFrame) -> str:
    """A content hash of a table (column names and values), independent of how it is stored."""
    digest = hashlib.sha256("\x1f".join(map(str, table.columns)).encode())
    digest.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    from importlib.metadata import version

    import xgboost

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit-learn": version("scikit-learn"),  # the installed one, without importing it (and scipy)
        "xgboost": xgboost.__version__,
        "fraudpipe": version("fraudpipe"),
    }


def _period(times: pd.Series) -> dict[str, str]:
    return {"start": times.min().isoformat(), "end": times.max().isoformat()}


def _check_training_table(table: pd.DataFrame, features: Sequence[str]) -> None:
    require_columns(table, (TX_DATETIME, TX_FRAUD), "the training table")
    if not features:
        raise DataError(f"training table has no feature columns (columns: {list(table.columns)})")
    labels = table[TX_FRAUD]
    if labels.isna().any():
        raise DataError(f"column {TX_FRAUD!r}: {int(labels.isna().sum())} training rows have no label")
    if labels.nunique() < 2:
        raise DataError(
            f"column {TX_FRAUD!r}: training data holds only class {labels.unique().tolist()}; both classes are needed"
        )
    values = table[list(features)].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        cols = [f for f, b in zip(features, bad.any(axis=0)) if b]
        raise DataError(f"feature column(s) {cols}: {int(bad.any(axis=1).sum())} training rows are NaN or infinite")


def train_bundle(
    train: pd.DataFrame, config: ModelConfig, live: Live | None = None, *, estimator: Estimator | None = None
) -> Bundle:
    """Fit on the training period and choose the threshold without ever looking at test data.

    With `threshold_validation_days` = v > 0, a provisional model is fitted on the training
    period minus its last v days and the threshold is chosen on its scores for those days (an
    honest, out-of-sample choice); the shipped model is fitted on the whole period with the same
    settings, at the same time (`_fit_both`). With v = 0 the threshold is chosen on the final
    model's in-sample scores.
    dvclive receives the curves of the fit that chose the threshold.

    ``estimator`` fits in place of the configured spec (the Dask engine's `DaskXGBoost`: same
    model, files and predictions); its ``engine`` description is recorded as ``engine`` in the
    metadata. A bundle without that key was trained in the stage's process (the pandas engine),
    so the default bundle stays byte-identical to one trained before engines existed.
    """
    features = feature_columns(train)
    _check_training_table(train, features)
    X = train[features].to_numpy(dtype=np.float64)
    y = train[TX_FRAUD].to_numpy(dtype=np.int8)
    times = train[TX_DATETIME]
    days = times.dt.floor("D").to_numpy()
    own_curves = spec(config.estimator).logs_curves

    v = config.threshold_validation_days
    if v > 0:
        holdout = days > days.max() - np.timedelta64(v, "D")
        if holdout.all() or not y[~holdout].any() or y[~holdout].all():
            raise ConfigError(
                f"model.threshold_validation_days: {v} leaves no usable fitting data in a training period of "
                f"{len(np.unique(days))} day(s); lower it or lengthen split.train_days"
            )
        if not y[holdout].any():
            raise ConfigError(
                f"model.threshold_validation_days: the threshold validation slice "
                f"(last {v} day(s) of training, {int(holdout.sum())} rows) has no fraud; "
                "raise model.threshold_validation_days or set it to 0"
            )
        provisional, final = _fit_both(X, y, holdout, config, features, live, estimator)
        chosen_scores, chosen = provisional.predict(X[holdout]), holdout
        if live is not None and not own_curves:
            log_fit(live, provisional, {"train": (X[~holdout], y[~holdout]), "validation": (X[holdout], y[holdout])})
    else:
        final = fit_model(X, y, config, features, live=live, estimator=estimator)
        chosen_scores, chosen = final.predict(X), np.ones(len(y), dtype=bool)
        if live is not None and not own_curves:
            log_fit(live, final, {"train": (X, y)})

    threshold = select_threshold(y[chosen], chosen_scores, days[chosen], config.threshold_rule, config.threshold_k)
    at = threshold_metrics(y[chosen], chosen_scores, threshold)
    n_days = len(np.unique(days[chosen]))
    metadata = {
        "format_version": BUNDLE_FORMAT,
        "name": config.name,
        "estimator": config.estimator,
        "features": list(features),
        "threshold": threshold,
        "threshold_selection": {
            "rule": config.threshold_rule,
            "k": config.threshold_k,
            "validation_days": v,
            "period": _period(times[chosen]),
            "n_rows": int(chosen.sum()),
            "n_frauds": int(y[chosen].sum()),
            "average_precision": average_precision(y[chosen], chosen_scores),
            **at,
            "alerts_per_day": float(np.sum(chosen_scores >= threshold) / n_days),
        },
        "standardizer": (
            None
            if final.mean is None or final.scale is None
            else {"mean": final.mean.tolist(), "scale": final.scale.tolist()}
        ),
        "model": final.predictor.describe(),
        "params": config.to_dict(),
        "estimator_params": final.params,
        "feature_importance": dict(zip(features, final.importance.tolist())),
        "training": {
            **_period(times),
            "n_rows": len(train),
            "n_frauds": int(y.sum()),
            "data_sha256": table_sha256(train),
        },
        "library_versions": library_versions(),
    }
    engine = None if estimator is None else estimator.engine
    if engine is not None:
        metadata["engine"] = engine
    return Bundle(metadata, final.predictor, final.mean, final.scale)


def _fit_both(
    X: np.ndarray,
    y: np.ndarray,
    holdout: np.ndarray,
    config: ModelConfig,
    features: Sequence[str],
    live: Live | None,
    estimator: Estimator | None,
) -> tuple[FittedModel, FittedModel]:
    """The provisional fit (without the held-out days) and the final fit (every row) at the same
    time, each on its share of the CPUs: they are independent, a fit releases the GIL while it
    trains, and a fit's model does not depend on its thread cap. The Dask engine's fits run one
    after the other, on the cluster's workers."""
    fit_provisional = partial(
        fit_model, X[~holdout], y[~holdout], config, features, eval_set=(X[holdout], y[holdout]), live=live
    )
    fit_final = partial(fit_model, X, y, config, features)
    if estimator is not None:
        return fit_provisional(estimator=estimator), fit_final(estimator=estimator)
    threads = threads_per_fit(2)
    with ThreadPoolExecutor(max_workers=1) as pool:
        provisional = pool.submit(fit_provisional, threads=threads)
        final = fit_final(threads=threads)
        return provisional.result(), final


def fitted_on(bundle: Bundle, train: pd.DataFrame, config: ModelConfig) -> bool:
    """Whether ``bundle`` is what ``train_bundle(train, config)`` returns: the same model config and
    training rows, by its recorded params and data hash (the fit is deterministic), so a caller
    that needs that fit can use the bundle instead of fitting again."""
    return bundle.metadata.get("params") == config.to_dict() and bundle.metadata.get("training", {}).get(
        "data_sha256"
    ) == table_sha256(train)


def log_fit(live: Live, fitted: FittedModel, slices: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """One point per curve for fits without boosting rounds, so every model leaves curves in
    `plots/metrics/<slice>/` (a declared DVC plots output must exist whatever the estimator)."""
    from sklearn.metrics import log_loss

    for name, (X, y) in slices.items():
        scores = fitted.predict(X)
        live.log_metric(f"{name}/logloss", float(log_loss(y, scores, labels=[0, 1])))
        live.log_metric(f"{name}/average_precision", average_precision(y, scores))


def training_summary(bundle: Bundle) -> dict[str, float]:
    """Flat numbers about a fit worth logging next to its curves (dvclive summary)."""
    sel = bundle.metadata["threshold_selection"]
    return {
        "threshold": bundle.threshold,
        "n_train": bundle.metadata["training"]["n_rows"],
        "n_train_frauds": bundle.metadata["training"]["n_frauds"],
        **{
            f"threshold_selection/{k}": sel[k]
            for k in ("n_rows", "average_precision", "precision", "recall", "f1", "alerts_per_day")
        },
    }
