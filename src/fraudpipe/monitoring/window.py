"""The window `monitor` watches, as one table with its scores and alerts.

Two sources (``monitor.current``): ``predictions``, the live period as `infer` scored it, and
``service_log``, the transactions the real-time service actually scored, read from its durable log,
so that monitoring watches production traffic and not only a batch. The service logs its scores,
not its features: they are recomputed here with the training code (`features.build_features`) over
the history the service knew, the batch transactions of the last ``retention_days`` before the
first logged one (the service keeps no more) and the logged transactions themselves, with the
labels the service has received since. A logged transaction replaces a batch row of the same id,
as the service's state does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fraudpipe.contract import (
    COORDINATE_COLUMNS,
    CUSTOMER_ID,
    SECONDS_PER_DAY,
    TERMINAL_ID,
    TRANSACTION_COLUMNS,
    TRANSACTION_ID,
    TX_DATETIME,
    TX_FRAUD,
    canonical_ids,
    id_array,
    id_is_text,
    require_columns,
)
from fraudpipe.errors import DataError
from fraudpipe.features.definitions import FeatureConfig, build_features
from fraudpipe.scoring.batch import PREDICTION_COLUMNS
from fraudpipe.servicelog import SHADOW_ALERT, SHADOW_MODEL, SHADOW_SCORE, ServiceLog


@dataclass(frozen=True)
class Shadow:
    """What a challenger scored in the shadow of the window's rows, row for row: never an answer, only
    the log's record of what it would have answered."""

    scores: np.ndarray  # float64; NaN where no challenger scored the row
    models: np.ndarray  # the challenger's version, "" where none
    alerts: np.ndarray | None  # bool, when the log carries them (shadow_alert)


@dataclass(frozen=True)
class Window:
    """The current window: its rows (contract columns and the model's features), the score and the
    alert each got, one line saying where they come from, and what a challenger scored in the shadow
    (only a service's log has one)."""

    frame: pd.DataFrame
    scores: np.ndarray
    alerts: np.ndarray
    description: str
    shadow: Shadow | None = None


def predictions_window(live: pd.DataFrame, predictions: pd.DataFrame, version: str) -> Window:
    """The live period with `infer`'s scores, which must be of exactly these rows, in order, by this
    bundle: anything else would compare another model's scores or another window's rows."""
    check_predictions(predictions, live, version)
    return Window(
        live,
        predictions["score"].to_numpy(np.float64),
        predictions["alert"].to_numpy(),
        f"the live period as `infer` scored it ({len(live):,} rows)",
    )


def reference_scores(reference: pd.DataFrame, predictions: pd.DataFrame, version: str) -> np.ndarray:
    """The training period's scores as `train` wrote them (the bundle scoring the training period,
    once, where it is loaded anyway): of exactly these rows, in order, by this bundle."""
    check_predictions(predictions, reference, version, "the training period", "data/predictions/train.parquet", "train")
    return predictions["score"].to_numpy(np.float64)


def check_predictions(
    predictions: pd.DataFrame,
    current: pd.DataFrame,
    version: str,
    period: str = "the live period",
    source: str = "data/predictions/live.parquet",
    stage: str = "infer",
) -> None:
    """Refuse scores that are not of ``period``'s rows, in order, by model ``version`` (read from
    ``source``, which ``stage`` writes)."""
    require_columns(predictions, PREDICTION_COLUMNS, f"the predictions ({source})")
    require_columns(current, [TRANSACTION_ID], period)
    rerun = f"rerun the {stage} stage (dvc repro {stage})"
    if len(predictions) != len(current):
        raise DataError(f"the predictions hold {len(predictions):,} rows, {period} {len(current):,}; {rerun}")
    same = predictions[TRANSACTION_ID].reset_index(drop=True).equals(current[TRANSACTION_ID].reset_index(drop=True))
    if not same:
        raise DataError(f"the predictions' transaction_id column is not {period}'s, row for row; {rerun}")
    versions = pd.unique(predictions["model_version"])
    if len(versions) and (len(versions) > 1 or versions[0] != version):
        raise DataError(
            f"the predictions were made by model version(s) {sorted(map(str, versions))}, the bundle is "
            f"{version}; {rerun}"
        )


def service_log_window(
    log: ServiceLog,
    history: pd.DataFrame,
    config: FeatureConfig,
    version: str,
    customers: pd.DataFrame | None = None,
    terminals: pd.DataFrame | None = None,
    source: str = "the service log",
) -> Window:
    """What the service scored with model ``version``, in time order, with the training features and
    the labels received so far (missing where none arrived yet).

    ``history`` is the batch's clean transactions (data/interim). Rows scored by another model version
    (before a redeploy) are not this model's to judge: they are left out and counted in the description;
    none of this version is an error naming the versions found.
    """
    scored = log.scored
    ours = (scored["model_version"] == version).to_numpy(bool)
    if not ours.any():
        found = sorted(map(str, pd.unique(scored["model_version"])))
        raise DataError(
            f"{source} holds no transaction scored by model {version} (found: {found or 'none'}); "
            "serve this bundle, or set monitor.current to predictions to watch the batch"
        )
    logged = scored[ours].reset_index(drop=True)
    if logged[TRANSACTION_ID].duplicated().any():  # the service answers a retried id from its state, never twice
        raise DataError(
            f"{source}: transaction_id {logged[TRANSACTION_ID][logged[TRANSACTION_ID].duplicated()].iloc[0]!r} "
            "was scored twice: not a log written by `fraudpipe serve`"
        )
    logged_ids = canonical_ids(logged[TRANSACTION_ID], TRANSACTION_ID)
    labels = log.labels.drop_duplicates(TRANSACTION_ID, keep="last")
    fraud = pd.Series(labels[TX_FRAUD].to_numpy(), index=canonical_ids(labels[TRANSACTION_ID], TRANSACTION_ID))
    logged[TX_FRAUD] = pd.array(fraud.reindex(logged_ids).to_numpy(), dtype="Int8")

    start = logged[TX_DATETIME].min() - pd.Timedelta(seconds=config.retention_days * SECONDS_PER_DAY)
    before = history[(history[TX_DATETIME] >= start) & (history[TX_DATETIME] <= logged[TX_DATETIME].max())]
    before = before[
        ~pd.Index(canonical_ids(before[TRANSACTION_ID], TRANSACTION_ID)).isin(logged_ids)
    ]  # hashed, not O(n*m)
    columns = [c for c in (*TRANSACTION_COLUMNS, *COORDINATE_COLUMNS) if c in before or c in logged]
    tx = _union(before.reindex(columns=columns), logged.reindex(columns=columns))
    tx["_row"] = np.r_[np.full(len(before), -1), np.arange(len(logged))]  # the logged row, -1 for history
    tx = tx.sort_values([TX_DATETIME, TRANSACTION_ID], kind="stable", ignore_index=True)

    features = build_features(tx.drop(columns="_row"), config, customers, terminals)
    mine = tx["_row"].to_numpy() >= 0
    rows = tx["_row"].to_numpy()[mine]
    frame = features[mine].reset_index(drop=True)
    others = int((~ours).sum())
    described = f"{len(logged):,} transactions the service scored with {version}" + (
        f" ({others:,} scored by other model versions left out)" if others else ""
    )
    return Window(
        frame,
        logged["score"].to_numpy(np.float64)[rows],
        logged["alert"].to_numpy(np.int8)[rows],
        described,
        shadow_of(logged, rows),
    )


def shadow_of(logged: pd.DataFrame, rows: np.ndarray) -> Shadow | None:
    """The challenger's columns of the logged rows ``rows``, when the log has them (a service started
    with ``--shadow`` writes them; an older log has none: no shadow)."""
    if SHADOW_SCORE not in logged:
        return None
    models = logged[SHADOW_MODEL] if SHADOW_MODEL in logged else pd.Series("", index=logged.index)
    alerts = (
        logged[SHADOW_ALERT].astype("boolean").fillna(False).to_numpy(bool)[rows] if SHADOW_ALERT in logged else None
    )
    return Shadow(
        pd.to_numeric(logged[SHADOW_SCORE]).to_numpy(np.float64, na_value=np.nan)[rows],
        np.array([str(m) for m in models.fillna("").tolist()], dtype=object)[rows],
        alerts,
    )


def _union(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """The rows of both, ids in the contract's dtype of their union (int64 only when both are)."""
    both = pd.concat([first, second], ignore_index=True)
    for c in (TRANSACTION_ID, CUSTOMER_ID, TERMINAL_ID):
        if id_is_text(first[c], c) or id_is_text(second[c], c):
            both[c] = id_array(np.r_[canonical_ids(first[c], c), canonical_ids(second[c], c)])
    both[TX_FRAUD] = pd.array(both[TX_FRAUD].to_numpy(dtype=object), dtype="Int8")
    return both
