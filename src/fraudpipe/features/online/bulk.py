"""Bulk loading: many transactions into the online state's per-key histories at once.

``OnlineState.from_history`` and ``restore`` fill an empty state from a table in arrival order:
one group-by per key instead of a Python call per row (``update`` is the one-by-one path).
``history_since`` tells a caller which rows of a long table such a state would keep.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from fraudpipe.contract import (
    CUSTOMER_ID,
    SECONDS_PER_DAY,
    TERMINAL_ID,
    TRANSACTION_ID,
    TX_AMOUNT,
    TX_FRAUD,
    canonical_ids,
    id_codes,
    id_is_text,
)
from fraudpipe.features.definitions import FeatureConfig, split_cents
from fraudpipe.features.inputs import transaction_locations
from fraudpipe.features.online.history import CustomerHistory, TerminalHistory
from fraudpipe.progress import progress


def _keyed(ids: pd.Series, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(codes, keys): each row's code and each code's ``canonical_id``, so ``keys[codes]`` are the rows' keys."""
    id_is_text(ids, column)  # int64 or text, nothing else
    codes, uniques = pd.factorize(ids)
    return codes.astype(np.int64, copy=False), canonical_ids(pd.Series(uniques, dtype=ids.dtype), column)


def _groups(codes: np.ndarray, what: str) -> Iterable[np.ndarray]:
    """The row positions of each code, in arrival order, codes in ascending order (a progress bar of ``what``)."""
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return progress(np.split(order, bounds) if len(order) else [], desc=f"online state: {what}", unit=what[:-1])


def history_since(
    config: FeatureConfig, times: pd.Series, until: pd.Timestamp, *, late_days: int = 0
) -> pd.Timestamp | None:
    """The earliest transaction time that ``OnlineState.from_history`` of the rows before ``until``
    keeps (the retention back from the last of them), so that a caller reads only those rows of a
    long history; None when every row counts (the distance feature remembers each id's last
    location, however old)."""
    before = times[(times < until).to_numpy()]
    if config.needs_locations or before.empty:
        return None
    return before.max().floor("s") - pd.Timedelta(seconds=(config.retention_days + late_days) * SECONDS_PER_DAY)


def last_locations(tx: pd.DataFrame, key: str, table: pd.DataFrame | None) -> dict[str, tuple[float, float]]:
    """Each ``key`` id's location in its last row, found as offline (``transaction_locations``, with its errors)."""
    codes = id_codes(tx[key], key)
    x, y = transaction_locations(tx, key, table, codes)
    _, from_end = np.unique(codes[::-1], return_index=True)
    last = len(codes) - 1 - from_end  # each id's last row
    ids = canonical_ids(tx[key].iloc[last], key)
    return dict(zip(ids.tolist(), zip(x[last].tolist(), y[last].tolist())))


def fill_histories(
    customers: dict[str, CustomerHistory],
    terminals: dict[str, TerminalHistory],
    labels: dict[str, int | None],
    terminal_of: dict[str, str],
    tx: pd.DataFrame,
    t: np.ndarray,
    seq: np.ndarray,
) -> None:
    """Add the rows of ``tx`` (arrival order; ``t`` their epoch seconds, ``seq`` their arrival
    numbers) to empty per-key histories, and each one's label and terminal to ``labels`` and
    ``terminal_of``."""
    tid = canonical_ids(tx[TRANSACTION_ID], TRANSACTION_ID)
    (customer, customer_keys), (terminal, terminal_keys) = (_keyed(tx[c], c) for c in (CUSTOMER_ID, TERMINAL_ID))
    amount = tx[TX_AMOUNT].to_numpy(np.float64)
    if TX_FRAUD in tx:
        given = tx[TX_FRAUD].astype("Int8")
        fraud = [None if na else int(f) for f, na in zip(given.fillna(0).tolist(), given.isna().tolist())]
        frauds = (given.fillna(0).to_numpy(np.int64) == 1).astype(np.int64)
    else:
        fraud, frauds = [None] * len(t), np.zeros(len(t), dtype=np.int64)
    cents, residual = split_cents(amount)
    labels.update(zip(tid.tolist(), fraud))
    terminal_of.update(zip(tid.tolist(), terminal_keys[terminal].tolist()))
    for rows in _groups(customer, "customers"):
        c = customers.setdefault(customer_keys[customer[rows[0]]], CustomerHistory())
        c.times += t[rows].tolist()
        c.tids += tid[rows].tolist()
        c.seqs += seq[rows].tolist()
        c.amounts += amount[rows].tolist()
        c.cents += cents[rows].tolist()
        c.residuals += residual[rows].tolist()
        c.terminals += terminal_keys[terminal[rows]].tolist()
    for rows in _groups(terminal, "terminals"):
        h = terminals.setdefault(terminal_keys[terminal[rows[0]]], TerminalHistory())
        h.times += t[rows].tolist()
        h.tids += tid[rows].tolist()
        h.frauds += frauds[rows].tolist()
