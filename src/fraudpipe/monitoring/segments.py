"""Who the model serves worse, and whether its scores mean what they say: bias as alert rate, recall
and precision per segment (transaction amount, customer history, and customer location when the
source gives customers coordinates), the largest gap between the groups of a segment, and calibration
as mean score against observed fraud rate per score decile.

Groups are named for what they are on any data ("under 20", "new since training"), never by codes;
only the location, which exists on the simulator's map alone, names map cells by compass point."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise

import numpy as np
import pandas as pd

from fraudpipe.contract import CUSTOMER_ID, id_codes, require_columns
from fraudpipe.metrics import threshold_metrics

SEGMENT_COLUMNS = ("segment", "group", "n", "alert_rate", "n_labelled", "frauds", "recall", "precision")
GAP_COLUMNS = ("segment", "recall_gap", "alert_rate_gap", "flagged")
#: The segments' names: what a group of each is, on any data.
AMOUNT, HISTORY, LOCATION = "transaction amount", "customer history", "customer location (map)"
NEW, SEEN = "new since training", "seen in training"


def amount_bands(amounts: np.ndarray, edges: Sequence[float]) -> pd.Categorical:
    """The band of each amount, ``under e0``, ``e0 to e1``, ..., ``en and over``, as categories in that order."""
    labels = [f"under {edges[0]:g}"] + [f"{a:g} to {b:g}" for a, b in pairwise(edges)] + [f"{edges[-1]:g} and over"]
    codes = np.searchsorted(np.asarray(edges, dtype=np.float64), np.asarray(amounts, dtype=np.float64), side="right")
    return pd.Categorical.from_codes(codes, categories=labels)


def _cell_name(col: int, row: int, grid: int) -> str:
    """A map cell by compass point (west/east, south/north; centre on a 3 x 3 grid), else by position."""
    if grid == 1:
        return "the whole map"
    if grid > 3:
        return f"column {col + 1}, row {row + 1} of {grid}"
    across = ("west", "centre", "east") if grid == 3 else ("west", "east")
    up = ("south", "centre", "north") if grid == 3 else ("south", "north")
    parts = [up[row], across[col]]
    return "-".join(p for p in parts if p != "centre") or "centre"


def regions(customer_ids: pd.Series, customers: pd.DataFrame, grid: int) -> np.ndarray:
    """Each transaction's customer location: the cell of a ``grid`` x ``grid`` grid over the customers'
    bounding box, named by compass point and coordinate ranges. A customer without a location: ``unknown``."""
    require_columns(customers, [CUSTOMER_ID, "x", "y"], "the customer locations (data/raw/customers.parquet)")
    x, y = customers["x"].to_numpy(np.float64), customers["y"].to_numpy(np.float64)
    names = np.full(len(customers) + 1, "unknown", dtype=object)
    x_edges = np.linspace(x.min(), x.max(), grid + 1)
    y_edges = np.linspace(y.min(), y.max(), grid + 1)
    col = np.clip(np.searchsorted(x_edges, x, side="right") - 1, 0, grid - 1)
    row = np.clip(np.searchsorted(y_edges, y, side="right") - 1, 0, grid - 1)
    names[:-1] = [
        f"{_cell_name(c, r, grid)} (x {x_edges[c]:.0f}-{x_edges[c + 1]:.0f}, y {y_edges[r]:.0f}-{y_edges[r + 1]:.0f})"
        for c, r in zip(col, row)
    ]
    position = pd.Index(customers[CUSTOMER_ID]).get_indexer(customer_ids)  # -1 (not found) -> "unknown"
    return names[position]


def customer_age(customer_ids: pd.Series, reference_ids: pd.Series) -> np.ndarray:
    """``seen in training`` for a customer the reference period saw, ``new since training`` otherwise."""
    both = pd.concat([reference_ids, customer_ids], ignore_index=True)
    codes = id_codes(both, CUSTOMER_ID)
    seen = np.isin(codes[len(reference_ids) :], codes[: len(reference_ids)])
    return np.where(seen, SEEN, NEW).astype(object)


def segment_table(
    segments: Mapping[str, np.ndarray | pd.Categorical],
    alerts: np.ndarray,
    labels: np.ndarray,
    known: np.ndarray,
    min_frauds: int,
) -> pd.DataFrame:
    """Per segment and group (a categorical's groups in its order, others sorted; empty groups left
    out): rows, alert rate and, on the labelled rows, frauds, recall and precision (recall null
    below ``min_frauds`` frauds, precision null without an alert)."""
    alerts = np.asarray(alerts).astype(bool)
    labels = np.asarray(labels)
    rows = []
    for segment, groups in segments.items():
        order = list(groups.categories) if isinstance(groups, pd.Categorical) else sorted(pd.unique(groups))
        codes, found = pd.factorize(np.asarray(groups, dtype=object))  # compared as codes, not objects
        position = {group: i for i, group in enumerate(found)}
        for group in order:
            if group not in position:
                continue
            rows_in = codes == position[group]
            lab = rows_in & known
            frauds = int(labels[lab].sum())
            alerted = int(alerts[lab].sum())
            figures = threshold_metrics(labels[lab], alerts[lab].astype(np.float64), 0.5)
            rows.append(
                {
                    "segment": segment,
                    "group": str(group),
                    "n": int(rows_in.sum()),
                    "alert_rate": float(alerts[rows_in].mean()),
                    "n_labelled": int(lab.sum()),
                    "frauds": frauds,
                    "recall": figures["recall"] if frauds >= min_frauds else float("nan"),
                    "precision": figures["precision"] if alerted else float("nan"),
                }
            )
    return pd.DataFrame(rows, columns=list(SEGMENT_COLUMNS))


def largest_gaps(table: pd.DataFrame) -> dict[str, float]:
    """The largest difference between two groups of one segment: of recall (groups with a recall)
    and of alert rate; NaN when no segment has two comparable groups."""
    out = {}
    for column, key in (("recall", "max_segment_recall_gap"), ("alert_rate", "max_segment_alert_rate_gap")):
        spread = (
            table.dropna(subset=[column])
            .groupby("segment")[column]
            .agg(lambda s: s.max() - s.min() if len(s) > 1 else np.nan)
        )
        out[key] = float(spread.max()) if spread.notna().any() else float("nan")
    return out


def segment_gaps(table: pd.DataFrame, limit: float) -> pd.DataFrame:
    """Per segment, the gap between its best and worst group in recall (groups with a recall) and in
    alert rate; ``flagged`` when either exceeds ``limit`` (the report marks it; it never alerts)."""
    rows = []
    for segment, part in table.groupby("segment", sort=False):
        recall, alert_rate = part["recall"].dropna(), part["alert_rate"].dropna()
        recall_gap = float(recall.max() - recall.min()) if len(recall) > 1 else float("nan")
        rate_gap = float(alert_rate.max() - alert_rate.min()) if len(alert_rate) > 1 else float("nan")
        flagged = bool(recall_gap > limit or rate_gap > limit)  # NaN compares false: no gap, no flag
        rows.append({"segment": segment, "recall_gap": recall_gap, "alert_rate_gap": rate_gap, "flagged": flagged})
    return pd.DataFrame(rows, columns=list(GAP_COLUMNS))


CALIBRATION_COLUMNS = ("sample", "decile", "n", "mean_score", "fraud_rate")


def calibration(scores: np.ndarray, labels: np.ndarray, bins: int, sample: str) -> pd.DataFrame:
    """Mean score and observed fraud rate per score decile (``bins`` equal-width bins of the
    predicted probability, the last one closed): a calibrated model has them equal. Empty bins
    are left out. Bins of the score's value, not of its rank: most scores share one low value, so
    rank deciles would all describe that value."""
    scores = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    labels = np.asarray(labels, dtype=np.float64)
    which = np.minimum((scores * bins).astype(np.int64), bins - 1)
    n = np.bincount(which, minlength=bins)
    score_sum = np.bincount(which, weights=scores, minlength=bins)
    fraud_sum = np.bincount(which, weights=labels, minlength=bins)
    rows = [
        {
            "sample": sample,
            "decile": i + 1,
            "n": int(n[i]),
            "mean_score": float(score_sum[i] / n[i]),
            "fraud_rate": float(fraud_sum[i] / n[i]),
        }
        for i in range(bins)
        if n[i]
    ]
    return pd.DataFrame(rows, columns=list(CALIBRATION_COLUMNS))
