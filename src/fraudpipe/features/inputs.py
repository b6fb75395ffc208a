"""What the features read, checked: the transaction table, and the coordinates of the distance feature.

``check_transactions`` holds a table to what every feature relies on (columns present, keys and
times not missing, ids int64 or text, rows in ``(tx_datetime, transaction_id)`` order; see
``features.definitions`` "Order and ties"), so a bad table ends in one DataError naming its rows.

Locations. The customer-terminal distance is Euclidean in the coordinates it is given (for
latitude/longitude a rough distance in degrees, not kilometres). The coordinates of each side come
from the transaction itself when the table carries ``contract.COORDINATE_COLUMNS`` (real data:
per-transaction customer and merchant positions); a row without them (NaN) uses the last ones an
earlier row of the same customer (terminal) carried, and failing that the side table. A table
without the columns uses the side tables ``customers``/``terminals`` (id, x, y) alone (the simulator).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudpipe.contract import (
    COORDINATE_COLUMNS,
    CUSTOMER_ID,
    REQUIRED_COLUMNS,
    TERMINAL_ID,
    TRANSACTION_ID,
    TX_AMOUNT,
    TX_DATETIME,
    canonical_ids,
    epoch_seconds,
    id_codes,
    id_is_text,
    require_columns,
)
from fraudpipe.errors import DataError

#: The feature that reads locations; its name is kept here, where the messages about its inputs cite it.
CUSTOMER_TERMINAL_DISTANCE = "customer_terminal_distance"
LOCATION_COLUMNS = ("x", "y")  # of a side table, beside its id
#: Per side of the distance, its per-transaction coordinate columns (x, y) in the contract.
COORDINATES: dict[str, tuple[str, str]] = {CUSTOMER_ID: COORDINATE_COLUMNS[:2], TERMINAL_ID: COORDINATE_COLUMNS[2:]}


def _rows(tx: pd.DataFrame, mask: np.ndarray, limit: int = 5) -> str:
    where = np.flatnonzero(mask)
    ids = tx[TRANSACTION_ID].to_numpy()[where[:limit]].tolist() if TRANSACTION_ID in tx else []
    return f"{len(where)} row(s), e.g. positions {where[:limit].tolist()} (transaction_id {ids})"


def check_transactions(tx: pd.DataFrame) -> np.ndarray:
    """Epoch seconds of ``tx`` after checking what the features rely on; DataError otherwise."""
    require_columns(tx, REQUIRED_COLUMNS, "the transactions")
    for column in (TRANSACTION_ID, CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT, TX_DATETIME):
        na = tx[column].isna().to_numpy()
        if na.any():
            raise DataError(f"column {column!r} is missing in {_rows(tx, na)}: features need a value")
    for column in (TRANSACTION_ID, CUSTOMER_ID, TERMINAL_ID):
        id_is_text(tx[column], column)  # int64 or text
    if not pd.api.types.is_datetime64_dtype(tx[TX_DATETIME].dtype):
        raise DataError(f"column {TX_DATETIME!r} must be datetime64 (naive), got {tx[TX_DATETIME].dtype}")
    stamp = tx[TX_DATETIME].to_numpy().astype("datetime64[us]").astype(np.int64)
    if len(tx) > 1:
        dt = np.diff(stamp)
        bad = dt < 0
        tie = np.flatnonzero(dt == 0)  # same time: ids must increase (numbers, or text in code point order)
        ids = tx[TRANSACTION_ID]
        bad[tie] = ~np.asarray(ids.iloc[tie].to_numpy() < ids.iloc[tie + 1].to_numpy(), dtype=bool)
        if bad.any():
            raise DataError(
                f"transactions must be sorted by ({TX_DATETIME}, {TRANSACTION_ID}) with unique ids "
                f"(preprocess does this); out of order at {_rows(tx, np.r_[False, bad])}"
            )
    return epoch_seconds(tx[TX_DATETIME].to_numpy())


def _keys(ids: pd.Series, column: str) -> np.ndarray:
    """Ids as lookup keys: int64 as they are, text as ``canonical_ids`` (so "7" finds 7 in the other table)."""
    return canonical_ids(ids, column) if id_is_text(ids, column) else ids.to_numpy(np.int64)


def check_location_table(table: pd.DataFrame | None, key: str, what: str) -> pd.DataFrame:
    """A side table of locations (``key``, x, y), checked; DataError when absent or ids repeat."""
    if table is None or not {key, *LOCATION_COLUMNS} <= set(table.columns):
        x, y = COORDINATES[key]
        raise DataError(
            f"feature {CUSTOMER_TERMINAL_DISTANCE!r} needs {what} locations, per transaction ({x}, {y}: "
            f"map them in data.columns) or as a table ({key}, x, y), and the source provides neither: "
            f"remove it from features.extras or use a source with locations"
        )
    if not table[key].is_unique:
        dup = table[key][table[key].duplicated()].unique()[:5].tolist()
        raise DataError(f"{what} locations: {key} must be unique, repeated e.g. {dup}")
    return table


def locations(ids: pd.Series, table: pd.DataFrame | None, key: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    """x, y of each id from a side table of locations; DataError when the table or an id is missing."""
    table = check_location_table(table, key, what)
    if id_is_text(table[key], key) or id_is_text(ids, key):  # compare canonical text, never numbers; each id once
        codes, uniques = pd.factorize(ids)
        index = pd.Index(_keys(table[key], key), dtype="str")
        pos = index.get_indexer(pd.Index(_keys(pd.Series(uniques, dtype=ids.dtype), key), dtype="str"))[codes]
    else:
        pos = pd.Index(table[key].to_numpy(np.int64)).get_indexer(ids.to_numpy(np.int64))
    if (pos < 0).any():
        unknown = pd.unique(np.asarray(ids.to_numpy())[pos < 0])
        raise DataError(f"{len(unknown)} {key}(s) have no {what} location, e.g. {unknown[:5].tolist()}")
    return table["x"].to_numpy(np.float64)[pos], table["y"].to_numpy(np.float64)[pos]


def transaction_locations(
    tx: pd.DataFrame, key: str, table: pd.DataFrame | None, codes: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """x, y of one side (``key``: customer_id or terminal_id) of each transaction (see "Locations").

    ``codes`` are ``contract.id_codes`` of ``tx[key]`` when the caller has them. DataError for a
    coordinate column without its pair, half a pair in a row, an infinite coordinate, or a row
    whose location is known from nowhere.
    """
    what = key.removesuffix("_id")
    columns = COORDINATES[key]
    present = [c for c in columns if c in tx.columns]
    if not present:
        return locations(tx[key], table, key, what)
    if len(present) == 1:
        absent = next(c for c in columns if c not in present)
        raise DataError(
            f"the transactions have column {present[0]!r} but not {absent!r}: {what} coordinates come in pairs"
        )
    x, y = (np.array(tx[c].to_numpy(np.float64, na_value=np.nan)) for c in columns)
    missing = np.isnan(x)
    half = missing != np.isnan(y)
    if half.any():
        raise DataError(
            f"{what} coordinates {columns[0]!r}, {columns[1]!r}: one of the pair is missing in {_rows(tx, half)}"
        )
    infinite = np.isinf(x) | np.isinf(y)
    if infinite.any():
        raise DataError(
            f"{what} coordinates {columns[0]!r}, {columns[1]!r} must be finite; not in {_rows(tx, infinite)}"
        )
    if missing.any():  # the last coordinates an earlier row of the same id carried
        filled = (
            pd.DataFrame({"x": x, "y": y})
            .groupby(id_codes(tx[key], key) if codes is None else codes, sort=False)
            .ffill()
        )
        x, y = filled["x"].to_numpy(np.float64, copy=True), filled["y"].to_numpy(np.float64, copy=True)
        unknown = np.isnan(x)
        if unknown.any():
            if table is None:
                raise DataError(
                    f"feature {CUSTOMER_TERMINAL_DISTANCE!r}: {what} coordinates ({columns[0]}, {columns[1]}) are "
                    f"missing in {_rows(tx, unknown)}, no earlier transaction of the same {key} has them and the "
                    f"source has no {what} locations table"
                )
            x[unknown], y[unknown] = locations(tx[key][unknown], table, key, what)
    return x, y
