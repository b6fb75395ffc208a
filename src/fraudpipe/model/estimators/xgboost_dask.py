"""Training on the configured engine; with `engine: dask`, XGBoost's fit runs on the cluster.

`DaskXGBoost` is the XGBoost spec with its fit replaced by `xgboost.dask.train`: the training rows
are split into partitions across the workers, which build one booster together. Everything else
is the XGBoost spec's own (parameters, `inplace_predict`, the UBJSON file, loading), and
`model.train_bundle` does the rest as for the pandas engine (threshold on held-out days, metadata,
SHA256SUMS), so evaluate, infer and serve cannot tell which engine trained a bundle but by its
``engine`` entry. The per-round curves come back with the booster and go to dvclive as the
in-process fit's do (`xgboost.log_rounds`). What the Dask engine can train
is checked in `model.engines`, which the configuration check imports instead of this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fraudpipe.engine import EngineConfig, cluster, worker_addresses, workers
from fraudpipe.model import Bundle, ModelConfig, train_bundle
from fraudpipe.model.engines import check_model
from fraudpipe.model.estimators.xgboost import XGBoost, curve_rounds, importance, log_rounds

if TYPE_CHECKING:
    from distributed import Client
    from dvclive import Live


class DaskXGBoost(XGBoost):
    """The XGBoost spec, fitted by xgboost.dask on the workers of ``client``."""

    def __init__(self, client: Client, partitions: int) -> None:
        self.client = client
        self.partitions = partitions

    @property
    def engine(self) -> dict[str, Any]:
        """What the bundle records about the fit: the engine and how the rows were spread."""
        return {"name": "dask", "workers": workers(self.client), "partitions": self.partitions}

    def _matrix(self, X: np.ndarray, y: np.ndarray, features: Sequence[str]) -> Any:
        """The rows as a DaskDMatrix whose partition i lives on the i-th worker (round robin, by
        worker name): left to the scheduler, which worker holds which rows varies from run to run,
        and with it XGBoost's merged histograms, so two fits of the same rows would differ."""
        import dask.array as da
        from xgboost import dask as dxgb

        homes = worker_addresses(self.client)
        rows = max(1, -(-len(X) // self.partitions))
        xs, ys = [], []
        for i, start in enumerate(range(0, len(X), rows)):
            home = [homes[i % len(homes)]]
            part_x, part_y = X[start : start + rows], y[start : start + rows]
            xs.append(
                da.from_delayed(self.client.scatter(part_x, workers=home, hash=False), part_x.shape, dtype=X.dtype)
            )
            ys.append(
                da.from_delayed(self.client.scatter(part_y, workers=home, hash=False), part_y.shape, dtype=y.dtype)
            )
        return dxgb.DaskDMatrix(self.client, da.concatenate(xs), da.concatenate(ys), feature_names=list(features))

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
        from xgboost import dask as dxgb

        kwargs = dict(params)
        rounds = kwargs.pop("num_boost_round")
        dtrain = self._matrix(X, y, features)
        evals = []
        if live is not None:  # as the in-process fit: the per-round curves only for dvclive (the trees are the same)
            evals.append((dtrain, "train"))
            if eval_set is not None:
                evals.append((self._matrix(*eval_set, features), "validation"))
        out = dxgb.train(self.client, kwargs, dtrain, num_boost_round=rounds, evals=evals, verbose_eval=False)
        booster, history = out["booster"], out["history"]
        if live is not None:  # the rounds the in-process fit evaluates, out of every round's record
            log_rounds(
                live,
                {
                    step: {
                        name: {metric: values[step] for metric, values in curves.items()}
                        for name, curves in history.items()
                    }
                    for step in curve_rounds(rounds)
                },
            )
        return booster, importance(booster, features)


#: The Dask fit of each estimator `engines.dask_tree_methods()` lists, by `model.estimator`.
DASK_SPECS: Mapping[str, type[DaskXGBoost]] = {DaskXGBoost.name: DaskXGBoost}


def train_on_engine(engine: EngineConfig, train: pd.DataFrame, config: ModelConfig, live: Live | None = None) -> Bundle:
    """`model.train_bundle` on the configured engine; ConfigError when the engine cannot train ``config``."""
    check_model(engine, config)
    if engine.name == "pandas":
        return train_bundle(train, config, live=live)
    with cluster(engine) as client:
        return train_bundle(train, config, live=live, estimator=DASK_SPECS[config.estimator](client, engine.partitions))
