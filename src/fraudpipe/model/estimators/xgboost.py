"""XGBoost: boosted trees, saved in XGBoost's own UBJSON format (`model.ubj`, never pickle).

Scoring uses `inplace_predict`, which skips building a DMatrix: about 0.4 ms for one row, the
case of online scoring. The per-round curves XGBoost records while it trains go to dvclive once the
fit has ended (`log_rounds`).

xgboost itself is imported on first use, through `startup.import_xgboost`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fraudpipe.errors import BundleError
from fraudpipe.model.estimators.base import Estimator, normalised
from fraudpipe.progress import bar
from fraudpipe.startup import import_xgboost

if TYPE_CHECKING:
    from dvclive import Live

    from fraudpipe.model.config import ModelConfig


class XGBoost(Estimator):
    name = "xgboost"
    format = "xgboost-ubjson"
    file = "model.ubj"
    needs = ("n_estimators", "learning_rate")
    logs_curves = True
    dask_tree_methods = ("hist", "approx")  # xgboost.dask: "exact" needs every row in one process

    def params(self, config: ModelConfig, positive_weight: float) -> dict[str, Any]:
        params: dict[str, Any] = {
            "objective": "binary:logistic",
            "eval_metric": ["logloss", "aucpr"],
            "seed": int(config.random_state),
            "eta": config.learning_rate,
            "max_depth": config.max_depth,
            "min_child_weight": config.min_child_weight,
            "subsample": config.subsample,
            "colsample_bytree": config.colsample_bytree,
            "lambda": config.reg_lambda,
            "tree_method": config.tree_method,
            "max_bin": config.max_bin,
            "base_score": config.base_score,
            "scale_pos_weight": positive_weight,
        }
        params = {k: v for k, v in params.items() if v is not None}  # null = XGBoost's default
        return params | {"num_boost_round": int(config.n_estimators)}  # type: ignore[arg-type]

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
        xgb = import_xgboost()
        kwargs = dict(params) | ({} if threads is None else {"nthread": threads})  # the trees do not depend on it
        rounds = kwargs.pop("num_boost_round")
        dtrain = xgb.DMatrix(X, label=y, feature_names=list(features), nthread=threads)
        # The curves are only for dvclive: without `live`, no evaluation at all (the trees are the same).
        callbacks: list[Any] = []
        history: dict[int, dict[str, dict[str, float]]] = {}
        if live is not None:
            evals = [(dtrain, "train")]
            if eval_set is not None:
                validation = xgb.DMatrix(eval_set[0], label=eval_set[1], feature_names=list(features), nthread=threads)
                evals.append((validation, "validation"))
            callbacks.append(_Curves(evals, curve_rounds(rounds), history))
        with bar(rounds, desc="xgboost fit", unit="round") as rounds_bar:
            if not rounds_bar.disable:  # on a terminal only: the trees are the same either way
                callbacks.append(_RoundsBar(rounds_bar))
            booster = xgb.train(kwargs, dtrain, num_boost_round=rounds, verbose_eval=False, callbacks=callbacks)
        if live is not None:
            log_rounds(live, history)
        return booster, importance(booster, features)

    def predict(self, model: Any, X: np.ndarray) -> np.ndarray:
        return np.asarray(model.inplace_predict(X), dtype=np.float64)

    def describe(self, model: Any) -> dict[str, Any]:
        return {"format": self.format, "file": self.file}

    def save(self, model: Any, directory: Path) -> None:
        model.save_model(str(directory / self.file))

    def load(self, directory: Path, entry: Mapping[str, Any], n_features: int, nthread: int | None) -> Any:
        xgb = import_xgboost()
        path = directory / self.file
        with path.open("rb") as f:
            head = f.read(1)
        if head != b"{":  # a UBJSON object; anything else (a pickle, say) is refused unread
            raise BundleError(f"{path}: not an XGBoost UBJSON model (starts with {head!r}, not b'{{')")
        booster = xgb.Booster()
        try:
            booster.load_model(str(path))
        except (xgb.core.XGBoostError, UnicodeDecodeError) as exc:  # XGBoost cannot always decode its own message
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BundleError(f"{path}: not an XGBoost UBJSON model ({first})") from None
        if booster.num_features() != n_features:
            raise BundleError(
                f"{path}: the model takes {booster.num_features()} features, bundle.json lists {n_features}"
            )
        if nthread is not None:
            booster.set_param({"nthread": nthread})
        return booster


#: Points per training curve: XGBoost's aucpr over every training row, at every one of the default
#: 100 rounds, cost train 0.8 s (a third of the stage); the curves' shape needs far fewer.
CURVE_POINTS = 20


def curve_rounds(rounds: int) -> list[int]:
    """The rounds (0-based) the training curves are evaluated at: the first, every
    ``rounds / CURVE_POINTS``-th, and the last (every round when there are at most `CURVE_POINTS`)."""
    every = max(1, rounds // CURVE_POINTS)
    return sorted({0, rounds - 1, *range(every - 1, rounds, every)}) if rounds else []


def log_rounds(live: Live, history: Mapping[int, Mapping[str, Mapping[str, float]]]) -> None:
    """The evaluated rounds (round -> evaluation set -> metric -> value) into dvclive, a step per
    round (the step is the round), in the files dvclive's XGBoost callback writes. Logged once the
    fit has ended rather than by that callback: its step after every round rewrites the summary and
    the report."""
    for step, sets in sorted(history.items()):
        live.step = step
        for name, metrics in sets.items():
            for metric, value in metrics.items():
                live.log_metric(f"{name}/{metric}", value)
    live.make_summary()  # the summary's step after the curves, where the callback's steps put it


def parse_evaluation(line: str) -> dict[str, dict[str, float]]:
    """``Booster.eval_set``'s line (``[7]\ttrain-logloss:0.1\t...``) as evaluation set -> metric -> value."""
    out: dict[str, dict[str, float]] = {}
    for item in line.split()[1:]:  # as XGBoost parses it for its own evaluation log
        key, value = item.rsplit(":", 1)
        name, metric = key.split("-", 1)  # our set names have no "-"; some metric names do
        out.setdefault(name, {})[metric] = float(value)
    return out


def importance(booster: Any, features: Sequence[str]) -> np.ndarray:
    """Each feature's share of the total gain of the splits on it (0 for a feature never split on)."""
    gain = booster.get_score(importance_type="total_gain")
    return normalised(np.array([gain.get(f, 0.0) for f in features]))


def _Curves(evals: list[tuple[Any, str]], rounds: list[int], history: dict[int, Any]) -> Any:
    """A training callback that evaluates ``evals`` after the ``rounds`` listed into ``history``
    (xgboost is imported only when a model is fitted or loaded, so the class is made here)."""
    import_xgboost()
    from xgboost.callback import TrainingCallback

    wanted = set(rounds)

    class Curves(TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            if epoch in wanted:
                history[epoch] = parse_evaluation(model.eval_set(evals, epoch))
            return False  # never stop early

    return Curves()


def _RoundsBar(rounds_bar: Any) -> Any:
    """A training callback that counts boosting rounds on a `progress.bar` (xgboost is imported
    only when a model is fitted or loaded, so the class is made here)."""
    import_xgboost()
    from xgboost.callback import TrainingCallback

    class RoundsBar(TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            rounds_bar.update()
            return False  # never stop early

    return RoundsBar()


SPEC = XGBoost()
