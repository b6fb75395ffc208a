"""Fitting a fraud model, choosing its alert threshold, and the model bundle the service loads.

One interface for XGBoost and the handbook's scikit-learn baselines: `train_bundle` fits the
configured estimator (standardised inputs, class weights, seed from config), chooses the
decision threshold on training-period data only, and returns a `Bundle`; `save_bundle` /
`load_bundle` move it through `models/bundle/` without pickle:

- XGBoost: its native UBJSON (`model.ubj`).
- logistic regression: coefficients and intercept as JSON (`linear.json`).
- decision tree / random forest: every node of every tree (children, feature, threshold,
  P(fraud) of the leaf) in one structured `.npy` array (`trees.npy`, no object fields, loaded
  with `allow_pickle=False`) and the roots in bundle.json; prediction walks the trees in numpy
  exactly as scikit-learn does (float32 inputs compared with float64 thresholds).

The scorer used right after training is the one that is saved and loaded, so what `evaluate`
measures and what the service serves are the same code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from fraudpipe.errors import BundleError
from fraudpipe.contract import TX_DATETIME, TX_FRAUD, feature_columns
from fraudpipe.io import write_json
from fraudpipe.metrics import aggregate_folds, average_precision, quality_metrics, threshold_metrics

if TYPE_CHECKING:
    from dvclive import Live

BUNDLE_FORMAT = 1
BUNDLE_FILE = "bundle.json"
ESTIMATORS = ("xgboost", "logistic_regression", "random_forest", "decision_tree")
THRESHOLD_RULES = ("max_f1", "top_k_per_day")




# --------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class ModelConfig:
    """One option of `conf/model/`. Every option carries every key (Hydra sweeps need that);
    a key that means nothing to an estimator is null in its file and ignored by it."""

    name: str = "xgboost"
    estimator: str = "xgboost"
    random_state: int = 0
    standardize: bool = True
    scale_pos_weight: float | str = 1.0
    n_estimators: int | None = 100
    max_depth: int | None = 6
    learning_rate: float | None = 0.3
    min_child_weight: float | None = 1.0
    subsample: float | None = 1.0
    colsample_bytree: float | None = 1.0
    reg_lambda: float | None = 1.0
    tree_method: str | None = "hist"
    base_score: float | None = None
    min_samples_leaf: int | None = None
    max_features: str | float | None = None
    C: float | None = None
    max_iter: int | None = None
    threshold_rule: str = "max_f1"
    threshold_k: int = 100
    threshold_validation_days: int = 1

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelConfig:
        """Strict: a missing or unknown key is an error, so all options keep the same shape."""
        keys = [f.name for f in dataclasses.fields(cls)]
        missing, unknown = [k for k in keys if k not in d], sorted(set(d) - set(keys))
        if missing or unknown:
            raise BundleError(
                f"model config: missing key(s) {missing}, unknown key(s) {unknown}; every conf/model/ "
                f"option must have exactly {keys}"
            )
        config = cls(**{k: d[k] for k in keys})
        config.validate()
        return config

    def validate(self) -> None:
        problems = []
        if self.estimator not in ESTIMATORS:
            problems.append(f"estimator {self.estimator!r} is not one of {ESTIMATORS}")
        if self.threshold_rule not in THRESHOLD_RULES:
            problems.append(f"threshold_rule {self.threshold_rule!r} is not one of {THRESHOLD_RULES}")
        if self.threshold_k < 1:
            problems.append(f"threshold_k must be >= 1, got {self.threshold_k}")
        if self.threshold_validation_days < 0:
            problems.append(f"threshold_validation_days must be >= 0, got {self.threshold_validation_days}")
        if not (self.scale_pos_weight == "balanced" or (isinstance(self.scale_pos_weight, (int, float)) and self.scale_pos_weight > 0)):
            problems.append(f"scale_pos_weight must be a positive number or 'balanced', got {self.scale_pos_weight!r}")
        needs = {
            "xgboost": ("n_estimators", "learning_rate"),
            "random_forest": ("n_estimators",),
            "logistic_regression": ("C", "max_iter"),
            "decision_tree": (),
        }.get(self.estimator, ())
        problems += [f"{self.estimator} needs {k} (it is null)" for k in needs if getattr(self, k) is None]
        if problems:
            raise BundleError(f"model config {self.name!r}: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def positive_weight(config: ModelConfig, labels: np.ndarray) -> float:
    """The weight of a fraud relative to a genuine transaction ('balanced' = n_genuine / n_fraud)."""
    if config.scale_pos_weight == "balanced":
        n_pos = int(np.sum(labels))
        return float((len(labels) - n_pos) / n_pos)
    return float(config.scale_pos_weight)


def estimator_params(config: ModelConfig, labels: np.ndarray) -> dict[str, Any]:
    """The keyword arguments actually given to the estimator (recorded in bundle.json)."""
    weight = positive_weight(config, labels)
    seed = int(config.random_state)
    if config.estimator == "xgboost":
        params: dict[str, Any] = {
            "objective": "binary:logistic",
            "eval_metric": ["logloss", "aucpr"],
            "seed": seed,
            "eta": config.learning_rate,
            "max_depth": config.max_depth,
            "min_child_weight": config.min_child_weight,
            "subsample": config.subsample,
            "colsample_bytree": config.colsample_bytree,
            "lambda": config.reg_lambda,
            "tree_method": config.tree_method,
            "base_score": config.base_score,
            "scale_pos_weight": weight,
        }
        params = {k: v for k, v in params.items() if v is not None}  # null = XGBoost's default
        return params | {"num_boost_round": int(config.n_estimators)}  # type: ignore[arg-type]
    class_weight = None if weight == 1.0 else {0: 1.0, 1: weight}
    if config.estimator == "logistic_regression":
        return {"C": float(config.C), "max_iter": int(config.max_iter), "class_weight": class_weight, "random_state": seed}  # type: ignore[arg-type]
    tree = {
        "max_depth": config.max_depth,
        "min_samples_leaf": config.min_samples_leaf or 1,
        "class_weight": class_weight,
        "random_state": seed,
    }
    if config.estimator == "random_forest":
        return tree | {"n_estimators": int(config.n_estimators), "max_features": config.max_features or "sqrt", "n_jobs": -1}  # type: ignore[arg-type]
    return tree | {"max_features": config.max_features}


# --------------------------------------------------------------------------------------------
# Scorers: the fitted model in the form that is saved, loaded and served


class Scorer(Protocol):
    def predict(self, X: np.ndarray) -> np.ndarray: ...
    def save(self, directory: Path) -> None: ...
    def describe(self) -> dict[str, Any]: ...


class XGBoostScorer:
    FILE = "model.ubj"

    def __init__(self, booster: Any) -> None:
        self.booster = booster

    def predict(self, X: np.ndarray) -> np.ndarray:
        # inplace_predict skips building a DMatrix: ~0.4 ms for one row (ECOSYSTEM.md).
        return np.asarray(self.booster.inplace_predict(X), dtype=np.float64)

    def save(self, directory: Path) -> None:
        self.booster.save_model(str(directory / self.FILE))

    def describe(self) -> dict[str, Any]:
        return {"format": "xgboost-ubjson", "file": self.FILE}

    @classmethod
    def load(cls, directory: Path, meta: Mapping[str, Any], nthread: int | None) -> XGBoostScorer:
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(str(directory / cls.FILE))
        if nthread is not None:
            booster.set_param({"nthread": nthread})
        return cls(booster)


class LinearScorer:
    FILE = "linear.json"

    def __init__(self, coef: np.ndarray, intercept: float) -> None:
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = float(intercept)

    def predict(self, X: np.ndarray) -> np.ndarray:
        from scipy.special import expit

        return expit(np.asarray(X, dtype=np.float64) @ self.coef + self.intercept)

    def save(self, directory: Path) -> None:
        write_json({"coef": self.coef.tolist(), "intercept": self.intercept}, directory / self.FILE)

    def describe(self) -> dict[str, Any]:
        return {"format": "logistic-json", "file": self.FILE}

    @classmethod
    def load(cls, directory: Path, meta: Mapping[str, Any], nthread: int | None) -> LinearScorer:
        d = json.loads((directory / cls.FILE).read_text(encoding="utf-8"))
        return cls(np.array(d["coef"], dtype=np.float64), d["intercept"])


TREE_DTYPE = np.dtype([("left", "<i4"), ("right", "<i4"), ("feature", "<i4"), ("threshold", "<f8"), ("p_fraud", "<f8")])


class TreesScorer:
    """A decision tree or a forest as flat node arrays; P(fraud) = mean of the trees' leaf values."""

    FILE = "trees.npy"
    CHUNK_ROWS = 4096

    def __init__(self, nodes: np.ndarray, roots: Sequence[int]) -> None:
        self.nodes = nodes
        self.roots = np.asarray(roots, dtype=np.int64)
        self._left = nodes["left"].astype(np.int64)
        self._right = nodes["right"].astype(np.int64)
        self._feature = np.maximum(nodes["feature"], 0).astype(np.int64)  # leaves: any valid column
        self._threshold = nodes["threshold"]
        self._p = nodes["p_fraud"]

    @classmethod
    def from_sklearn(cls, estimators: Sequence[Any]) -> TreesScorer:
        parts, roots, offset = [], [], 0
        for est in estimators:
            t = est.tree_
            nodes = np.zeros(t.node_count, dtype=TREE_DTYPE)
            leaf = t.children_left < 0
            nodes["left"] = np.where(leaf, -1, t.children_left + offset)
            nodes["right"] = np.where(leaf, -1, t.children_right + offset)
            nodes["feature"] = np.where(leaf, -1, t.feature)
            nodes["threshold"] = t.threshold
            value = t.value[:, 0, :]
            nodes["p_fraud"] = value[:, 1] / value.sum(axis=1)
            parts.append(nodes)
            roots.append(offset)
            offset += t.node_count
        return cls(np.concatenate(parts), roots)

    def predict(self, X: np.ndarray) -> np.ndarray:
        # scikit-learn compares float32 inputs with float64 thresholds; do the same for equal scores.
        X32 = np.asarray(X, dtype=np.float32)
        out = np.empty(len(X32), dtype=np.float64)
        for start in range(0, len(X32), self.CHUNK_ROWS):
            chunk = X32[start : start + self.CHUNK_ROWS]
            node = np.broadcast_to(self.roots, (len(chunk), len(self.roots))).copy()
            internal = self._left[node] >= 0
            while internal.any():
                value = np.take_along_axis(chunk, self._feature[node], axis=1)
                step = np.where(value <= self._threshold[node], self._left[node], self._right[node])
                node = np.where(internal, step, node)
                internal = self._left[node] >= 0
            out[start : start + len(chunk)] = self._p[node].sum(axis=1) / len(self.roots)
        return out

    def save(self, directory: Path) -> None:
        np.save(directory / self.FILE, self.nodes, allow_pickle=False)

    def describe(self) -> dict[str, Any]:
        return {"format": "trees-npy", "file": self.FILE, "tree_roots": self.roots.tolist()}

    @classmethod
    def load(cls, directory: Path, meta: Mapping[str, Any], nthread: int | None) -> TreesScorer:
        nodes = np.load(directory / cls.FILE, allow_pickle=False)
        if nodes.dtype != TREE_DTYPE:
            raise BundleError(f"{directory / cls.FILE}: node dtype {nodes.dtype} is not {TREE_DTYPE}")
        return cls(nodes, meta["tree_roots"])


SCORER_FORMATS: dict[str, Any] = {"xgboost-ubjson": XGBoostScorer, "logistic-json": LinearScorer, "trees-npy": TreesScorer}


# --------------------------------------------------------------------------------------------
# Fitting


@dataclass(frozen=True)
class FittedModel:
    """A standardiser (or none) and a scorer, fitted together on one slice of data."""

    scorer: Scorer
    mean: np.ndarray | None
    scale: np.ndarray | None
    params: dict[str, Any]
    importance: np.ndarray

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.scorer.predict(standardize(X, self.mean, self.scale))


def standardize(X: np.ndarray, mean: np.ndarray | None, scale: np.ndarray | None) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    return X if mean is None else (X - mean) / scale


def _normalised(values: np.ndarray) -> np.ndarray:
    values = np.abs(np.asarray(values, dtype=np.float64))
    total = values.sum()
    return values / total if total > 0 else values


def fit_model(
    X: np.ndarray,
    y: np.ndarray,
    config: ModelConfig,
    features: Sequence[str],
    eval_set: tuple[np.ndarray, np.ndarray] | None = None,
    live: Live | None = None,
) -> FittedModel:
    """Fit the configured estimator; XGBoost reports each round to dvclive when `live` is given."""
    mean = scale = None
    if config.standardize:
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(X)
        mean, scale = scaler.mean_, scaler.scale_
    Xs = standardize(X, mean, scale)
    params = estimator_params(config, y)

    if config.estimator == "xgboost":
        import xgboost as xgb

        kwargs = dict(params)
        rounds = kwargs.pop("num_boost_round")
        dtrain = xgb.DMatrix(Xs, label=y, feature_names=list(features))
        evals = [(dtrain, "train")]
        if eval_set is not None:
            evals.append((xgb.DMatrix(standardize(eval_set[0], mean, scale), label=eval_set[1], feature_names=list(features)), "validation"))
        callbacks = []
        if live is not None:
            from dvclive.xgb import DVCLiveCallback

            callbacks.append(DVCLiveCallback(live=live))
        booster = xgb.train(kwargs, dtrain, num_boost_round=rounds, evals=evals, verbose_eval=False, callbacks=callbacks)
        gain = booster.get_score(importance_type="total_gain")
        importance = _normalised(np.array([gain.get(f, 0.0) for f in features]))
        return FittedModel(XGBoostScorer(booster), mean, scale, params, importance)

    if config.estimator == "logistic_regression":
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(**params).fit(Xs, y)
        return FittedModel(LinearScorer(lr.coef_[0], lr.intercept_[0]), mean, scale, params, _normalised(lr.coef_[0]))

    if config.estimator == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        forest = RandomForestClassifier(**params).fit(Xs, y)
        return FittedModel(TreesScorer.from_sklearn(forest.estimators_), mean, scale, params, forest.feature_importances_)

    from sklearn.tree import DecisionTreeClassifier

    tree = DecisionTreeClassifier(**params).fit(Xs, y)
    return FittedModel(TreesScorer.from_sklearn([tree]), mean, scale, params, tree.feature_importances_)


# --------------------------------------------------------------------------------------------
# Threshold selection


def max_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold (alert when score >= it) with the highest F1 on these labels."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(labels, scores)
    precision, recall = precision[:-1], recall[:-1]  # the last point (recall 0) has no threshold
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return float(thresholds[int(np.argmax(f1))])


def top_k_per_day_threshold(scores: np.ndarray, days: np.ndarray, k: int) -> float:
    """The threshold giving on average k alerts a day (a daily review budget) on these days."""
    budget = k * len(np.unique(days))
    ordered = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    return float(ordered[min(budget, len(ordered)) - 1])


def select_threshold(labels: np.ndarray, scores: np.ndarray, days: np.ndarray, rule: str, k: int) -> float:
    if rule == "max_f1":
        return max_f1_threshold(labels, scores)
    if rule == "top_k_per_day":
        return top_k_per_day_threshold(scores, days, k)
    raise BundleError(f"threshold rule {rule!r} is not one of {THRESHOLD_RULES}")


# --------------------------------------------------------------------------------------------
# The bundle


@dataclass(frozen=True)
class Bundle:
    """A trained model ready to score: feature order, standardiser, scorer, threshold, metadata."""

    metadata: Mapping[str, Any]
    scorer: Scorer
    mean: np.ndarray | None
    scale: np.ndarray | None

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(self.metadata["features"])

    @property
    def threshold(self) -> float:
        return float(self.metadata["threshold"])

    @property
    def feature_importance(self) -> dict[str, float]:
        return dict(self.metadata["feature_importance"])

    def check_features(self, names: Sequence[str]) -> None:
        """Refuse to score features other than those the model was trained on, in that order."""
        names, expected = list(names), list(self.features)
        if names == expected:
            return
        missing = [f for f in expected if f not in names]
        extra = [f for f in names if f not in expected]
        detail = f"missing {missing}, unexpected {extra}" if missing or extra else f"same names in a different order: {names}"
        raise BundleError(f"feature list differs from the bundle's ({len(expected)} features {expected}): {detail}")

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(fraud) per row of a 2-D array whose columns are `features`, in order."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != len(self.features):
            raise BundleError(f"expected a 2-D array with {len(self.features)} columns {list(self.features)}, got shape {X.shape}")
        return self.scorer.predict(standardize(X, self.mean, self.scale))

    def score(self, table: pd.DataFrame) -> np.ndarray:
        """P(fraud) for every row of a feature table, after checking its features."""
        self.check_features(feature_columns(table))
        return self.predict_proba(table[list(self.features)].to_numpy(dtype=np.float64))


def table_sha256(table: pd.DataFrame) -> str:
    """A content hash of a table (column names and values), independent of how it is stored."""
    digest = hashlib.sha256("\x1f".join(map(str, table.columns)).encode())
    digest.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    from importlib.metadata import version

    import sklearn
    import xgboost

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit-learn": sklearn.__version__,
        "xgboost": xgboost.__version__,
        "fraudpipe": version("fraudpipe"),
    }


def _period(times: pd.Series) -> dict[str, str]:
    return {"start": times.min().isoformat(), "end": times.max().isoformat()}


def _check_training_table(table: pd.DataFrame, features: Sequence[str]) -> None:
    if not features:
        raise BundleError(f"training table has no feature columns (columns: {list(table.columns)})")
    labels = table[TX_FRAUD]
    if labels.isna().any():
        raise BundleError(f"column {TX_FRAUD!r}: {int(labels.isna().sum())} training rows have no label")
    if labels.nunique() < 2:
        raise BundleError(f"column {TX_FRAUD!r}: training data holds only class {labels.unique().tolist()}; both classes are needed")
    values = table[list(features)].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        cols = [f for f, b in zip(features, bad.any(axis=0)) if b]
        raise BundleError(f"feature column(s) {cols}: {int(bad.any(axis=1).sum())} training rows are NaN or infinite")


def train_bundle(train: pd.DataFrame, config: ModelConfig, live: Live | None = None) -> Bundle:
    """Fit on the training period and choose the threshold without ever looking at test data.

    With `threshold_validation_days` = v > 0, a provisional model is fitted on the training
    period minus its last v days and the threshold is chosen on its scores for those days (an
    honest, out-of-sample choice); the shipped model is then refitted on the whole period with
    the same settings. With v = 0 the threshold is chosen on the final model's in-sample scores.
    dvclive receives the XGBoost curves of the fit that chose the threshold.
    """
    features = feature_columns(train)
    _check_training_table(train, features)
    X = train[features].to_numpy(dtype=np.float64)
    y = train[TX_FRAUD].to_numpy(dtype=np.int8)
    times = train[TX_DATETIME]
    days = times.dt.floor("D").to_numpy()

    v = config.threshold_validation_days
    if v > 0:
        holdout = days > days.max() - np.timedelta64(v, "D")
        if holdout.all() or not y[~holdout].any() or y[~holdout].all():
            raise BundleError(f"threshold_validation_days={v} leaves no usable fitting data in a training period of {len(np.unique(days))} day(s)")
        if not y[holdout].any():
            raise BundleError(
                f"the threshold validation slice (last {v} day(s) of training, {int(holdout.sum())} rows) has no fraud; "
                "raise model.threshold_validation_days or set it to 0"
            )
        provisional = fit_model(X[~holdout], y[~holdout], config, features, eval_set=(X[holdout], y[holdout]), live=live)
        chosen_scores, chosen = provisional.predict(X[holdout]), holdout
        if live is not None and config.estimator != "xgboost":
            log_fit(live, provisional, {"train": (X[~holdout], y[~holdout]), "validation": (X[holdout], y[holdout])})
        final = fit_model(X, y, config, features)
    else:
        final = fit_model(X, y, config, features, live=live)
        chosen_scores, chosen = final.predict(X), np.ones(len(y), dtype=bool)
        if live is not None and config.estimator != "xgboost":
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
        "standardizer": None if final.mean is None else {"mean": final.mean.tolist(), "scale": final.scale.tolist()},
        "model": final.scorer.describe(),
        "params": config.to_dict(),
        "estimator_params": final.params,
        "feature_importance": dict(zip(features, final.importance.tolist())),
        "training": {
            **_period(times),
            "n_rows": int(len(train)),
            "n_frauds": int(y.sum()),
            "data_sha256": table_sha256(train),
        },
        "library_versions": library_versions(),
    }
    return Bundle(metadata, final.scorer, final.mean, final.scale)


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
        **{f"threshold_selection/{k}": sel[k] for k in ("n_rows", "average_precision", "precision", "recall", "f1", "alerts_per_day")},
    }


def save_bundle(bundle: Bundle, directory: str | Path) -> None:
    """Write the bundle's files into `directory` (use fraudpipe.io.atomic_dir around it)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    bundle.scorer.save(directory)
    write_json(bundle.metadata, directory / BUNDLE_FILE)


def load_bundle(directory: str | Path, nthread: int | None = None) -> Bundle:
    """Read a bundle written by `save_bundle`; `nthread` caps XGBoost's threads (service: 1)."""
    directory = Path(directory)
    path = directory / BUNDLE_FILE
    if not path.is_file():
        raise BundleError(f"{path} does not exist: no model bundle in {directory} (run the train stage)")
    meta = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("format_version") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: bundle format {meta.get('format_version')!r}, this code reads format {BUNDLE_FORMAT}")
    model = meta["model"]
    kind = SCORER_FORMATS.get(model["format"])
    if kind is None:
        raise BundleError(f"{path}: unknown model format {model['format']!r}; known {sorted(SCORER_FORMATS)}")
    if not (directory / model["file"]).is_file():
        raise BundleError(f"{directory / model['file']} is missing from the bundle")
    std = meta.get("standardizer")
    mean = None if std is None else np.array(std["mean"], dtype=np.float64)
    scale = None if std is None else np.array(std["scale"], dtype=np.float64)
    return Bundle(meta, kind.load(directory, model, nthread), mean, scale)


# --------------------------------------------------------------------------------------------
# Prequential evaluation (handbook ch. 5)


def evaluate_folds(folds: Sequence[Any], config: ModelConfig, k: int = 100) -> list[dict[str, float]]:
    """Train on each fold's train part and score its test part; one metrics dict per fold."""
    results = []
    for i, parts in enumerate(folds):
        bundle = train_bundle(parts.train, config)
        scores = bundle.score(parts.test)
        results.append({"fold": i} | quality_metrics(parts.test, scores, bundle.threshold, k))
    return results


def evaluate_prequential(
    table: pd.DataFrame, split_config: Any, model_config: ModelConfig, k: int = 100
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Mean and std of every metric over the prequential folds of `split_config`, and the folds."""
    from fraudpipe.split import prequential_folds

    per_fold = evaluate_folds(prequential_folds(table, split_config), model_config, k)
    summary = aggregate_folds([{key: v for key, v in f.items() if key != "fold"} for f in per_fold])
    return summary, per_fold
