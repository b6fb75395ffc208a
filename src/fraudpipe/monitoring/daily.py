"""The model's work day by day, as a fraud analyst counts it: how many transactions it flagged (the
alert rate) and how many of the flagged ones were fraud (precision, on the rows whose labels are
known), for the reference and the current window alike, so the report draws one against the other."""

from __future__ import annotations

import numpy as np
import pandas as pd

DAILY_COLUMNS = ("sample", "day", "n", "alert_rate", "n_alerted_labelled", "n_alerted_frauds", "precision")


def daily_table(
    times: pd.Series, alerts: np.ndarray, labels: np.ndarray, known: np.ndarray, sample: str
) -> pd.DataFrame:
    """One row per calendar day with transactions: rows, alert rate, alerted rows whose label is
    known, the frauds among them, and precision (null on a day without one: nothing to judge)."""
    if not len(times):
        return pd.DataFrame(columns=list(DAILY_COLUMNS))
    alerted = np.asarray(alerts).astype(bool)
    judged = alerted & np.asarray(known, dtype=bool)
    frame = pd.DataFrame(
        {
            "day": pd.to_datetime(times).dt.floor("D").to_numpy(),
            "alerted": alerted,
            "judged": judged,
            "hit": judged & (np.asarray(labels) == 1),
        }
    )
    per_day = frame.groupby("day", sort=True).agg(
        n=("alerted", "size"), alerts=("alerted", "sum"), judged=("judged", "sum"), hits=("hit", "sum")
    )
    judged_count = per_day["judged"].to_numpy(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(judged_count > 0, per_day["hits"].to_numpy(np.float64) / judged_count, np.nan)
    return pd.DataFrame(
        {
            "sample": sample,
            "day": per_day.index,
            "n": per_day["n"].to_numpy(np.int64),
            "alert_rate": per_day["alerts"].to_numpy(np.float64) / per_day["n"].to_numpy(np.float64),
            "n_alerted_labelled": judged_count.astype(np.int64),
            "n_alerted_frauds": per_day["hits"].to_numpy(np.int64),
            "precision": precision,
        },
        columns=list(DAILY_COLUMNS),
    )
