"""Batch scoring of the live period: the predictions table, its summary, and the checks before it.

A batch of predictions is only worth handing on when the model behind it may be used and scores
the features this code computes, so two checks come first: the quality gate's verdict from
`evaluate` (refused when `evaluate.gate.enforce` is true, a warning otherwise) and the bundle's
feature list against the one the configured feature code produces. Scores come from
`Bundle.score`, the call `evaluate` measures; the service computes the same features online and
scores them with the same model (`scoring.online`; the `parity` stage and its tests hold it to
this path).

The output contract (monitoring reads it): `PREDICTION_COLUMNS`, one row per live transaction in
the live table's order; `alert` is ``score >= threshold``, the rule every metric of this project
uses. The summary holds numbers only (DVC metrics); the model version is a column of the table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fraudpipe.contract import TRANSACTION_ID, feature_columns, require_columns
from fraudpipe.errors import BundleError, DataError, GateFailed
from fraudpipe.features.definitions import FeatureConfig, feature_names
from fraudpipe.gate import GateConfig
from fraudpipe.metrics import read_metrics
from fraudpipe.model import Bundle, BundleFacts

#: The predictions table, in column order: ids as in the live table (int64 or text), P(fraud) as
#: float64, the alert as int8 0/1, the bundle's version as text.
PREDICTION_COLUMNS: tuple[str, ...] = (TRANSACTION_ID, "score", "alert", "model_version")


def read_gate_passed(path: str | Path) -> bool:
    """The quality gate's verdict on the bundle, as `evaluate` recorded it (reports/gate.json's ``passed``)."""
    passed = read_metrics(path).get("passed")
    if not isinstance(passed, bool):
        raise DataError(
            f"{path}: passed must be true or false, got {passed!r}; rerun the evaluate stage (dvc repro evaluate)"
        )
    return passed


def respect_gate(passed: bool, gate: GateConfig, source: str | Path) -> str | None:
    """None when the gate passed; a warning to print when it failed and is not enforced; GateFailed
    when it failed and is enforced (an unvetted model's alerts must not reach anyone)."""
    if passed:
        return None
    if gate.enforce:
        raise GateFailed(
            f"the model bundle failed its quality gate (passed false in {source}) and evaluate.gate.enforce "
            "is true, so its scores are not written; improve the model, lower evaluate.gate.minimums, or set "
            "evaluate.gate.enforce: false to score with a warning"
        )
    return (
        f"the model bundle failed its quality gate (passed false in {source}); scoring anyway because "
        "evaluate.gate.enforce is false"
    )


def check_features(bundle: BundleFacts, config: FeatureConfig, source: str | Path) -> None:
    """Refuse a bundle trained on features other than those `config` makes (train/serve skew)."""
    try:
        bundle.check_features(feature_names(config))
    except BundleError as exc:
        raise BundleError(
            f"{source} does not fit the feature code of params.yaml's features group: {exc}; retrain "
            "(dvc repro train) or set features to what the bundle was trained on"
        ) from None


def alerts(scores: np.ndarray, threshold: float) -> np.ndarray:
    """The alert of each score as int8 0/1: ``score >= threshold``, as metrics and training count them."""
    return (np.asarray(scores, dtype=np.float64) >= threshold).astype(np.int8)


def predictions(bundle: Bundle, live: pd.DataFrame, source: str = "the live table") -> pd.DataFrame:
    """One row per transaction of ``live``, in its order: id, score, alert, model version."""
    require_columns(live, [TRANSACTION_ID, *bundle.features], source)
    if live.empty:  # some estimators refuse zero rows: check the columns, score nothing
        bundle.check_features(feature_columns(live))
        scores = np.zeros(0, dtype=np.float64)
    else:
        scores = np.asarray(bundle.score(live), dtype=np.float64)
    return pd.DataFrame(
        {
            TRANSACTION_ID: live[TRANSACTION_ID].reset_index(drop=True),  # its dtype kept: int64 or text
            "score": scores,
            "alert": alerts(scores, bundle.threshold),
            "model_version": pd.array([bundle.version] * len(live), dtype="str"),
        }
    )


@dataclass(frozen=True)
class Scored:
    """The predictions and the wall-clock seconds scoring took (throughput only: not reproducible)."""

    predictions: pd.DataFrame
    seconds: float


def score_live(bundle: Bundle, live: pd.DataFrame, source: str = "the live table") -> Scored:
    start = time.perf_counter()
    table = predictions(bundle, live, source)
    return Scored(table, time.perf_counter() - start)


def summary(table: pd.DataFrame, threshold: float, gate_passed: bool) -> dict[str, float]:
    """Flat, reproducible figures of one batch (DVC metrics: numbers only). Rates of an empty batch
    are undefined: NaN, written as null."""
    n = len(table)
    n_alerts = int(table["alert"].sum())
    return {
        "rows_scored": n,
        "alerts": n_alerts,
        "alert_rate": n_alerts / n if n else float("nan"),
        "score_mean": float(table["score"].mean()) if n else float("nan"),
        "threshold": float(threshold),
        "gate_passed": int(gate_passed),
    }


def throughput(scored: Scored) -> dict[str, float]:
    """Rows per second of the scoring call (wall clock: a file of its own)."""
    n = len(scored.predictions)
    return {
        "rows": n,
        "seconds": scored.seconds,
        "rows_per_s": n / scored.seconds if n and scored.seconds > 0 else float("nan"),
    }
