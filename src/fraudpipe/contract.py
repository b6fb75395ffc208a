"""The transaction contract every source is mapped onto.

Everything downstream of ingestion may rely on these names and dtypes, so they live in one
place instead of being restated by each module.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from fraudpipe.errors import DataError

TRANSACTION_ID = "transaction_id"
TX_DATETIME = "tx_datetime"
CUSTOMER_ID = "customer_id"
TERMINAL_ID = "terminal_id"
TX_AMOUNT = "tx_amount"
TX_FRAUD = "tx_fraud"

#: pandas 3 parses strings to microsecond resolution; we use the same everywhere so that no
#: module silently changes resolution (and so that epoch arithmetic has one unit).
DATETIME_DTYPE = "datetime64[us]"

#: Column -> dtype of a labelled batch. ``tx_fraud`` becomes nullable ``Int8`` when a batch
#: holds unlabelled (live) transactions.
TRANSACTION_DTYPES: dict[str, str] = {
    TRANSACTION_ID: "int64",
    TX_DATETIME: DATETIME_DTYPE,
    CUSTOMER_ID: "int64",
    TERMINAL_ID: "int64",
    TX_AMOUNT: "float64",
    TX_FRAUD: "int8",
}
TRANSACTION_COLUMNS: tuple[str, ...] = tuple(TRANSACTION_DTYPES)
REQUIRED_COLUMNS: tuple[str, ...] = TRANSACTION_COLUMNS[:-1]  # labels may be absent (live data)

#: Identifiers are opaque keys, never numbers: a column of them is ``int64`` when every id is a
#: canonical integer (digits, an optional "-", no leading zero), so that ``str(id)`` gives back the
#: source's text exactly, and text (``str``) otherwise: "007" and "7" stay two cards, "5e3" is
#: never 5000. ``canonical_id`` is the one way an id from anywhere (a table, a request) becomes a key.
ID_COLUMNS: tuple[str, ...] = (TRANSACTION_ID, CUSTOMER_ID, TERMINAL_ID)
ID_DTYPES: tuple[str, ...] = ("int64", "str")

#: Optional per-transaction coordinates (x = longitude, y = latitude for geographic data), for
#: the customer-terminal distance feature; sources map them like the required columns.
COORDINATE_COLUMNS: tuple[str, ...] = ("customer_x", "customer_y", "terminal_x", "terminal_y")

SECONDS_PER_DAY = 86_400


def epoch_seconds(values: pd.Series | pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    """Whole seconds since 1970 as int64, whatever the datetime resolution of the input."""
    arr = np.asarray(values, dtype="datetime64[s]")
    return arr.astype(np.int64)


def canonical_id(value: object) -> str:
    """The key of an identifier wherever it comes from: an integer and its canonical text are the
    same key ("7" and 7), any other text is itself ("007", "5e3", "card-12"). Keyed state (online
    features, the service) uses it, so an id sent as JSON text finds the history an int64 column built."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, str)):
        raise DataError(f"an identifier must be an integer or a string, got {value!r}")
    return value if isinstance(value, str) else str(int(value))


def empty_transactions() -> pd.DataFrame:
    """A zero-row frame with the contract's columns and dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in TRANSACTION_DTYPES.items()})


#: The one schema of every quarantine table (data/quarantine/<stage>.parquet): the contract's
#: columns, nullable so that a row keeps whatever of it parsed, ids as text (``canonical_id``'s
#: key, whichever dtype the kept rows' ids have); ``source_row``, the row's position
#: in the stage's input; ``reason``; and ``raw``, the input row's values as a JSON object. Fixed,
#: so that an empty quarantine has the same Parquet schema as a full one.
QUARANTINE_DTYPES: dict[str, str] = {
    **{c: "str" if c in ID_COLUMNS else {"int8": "Int8"}.get(t, t) for c, t in TRANSACTION_DTYPES.items()},
    "source_row": "int64",
    "reason": "str",
    "raw": "str",
}


def quarantine_table(raw: pd.DataFrame, parsed: pd.DataFrame, reasons: pd.Series, rows: np.ndarray) -> pd.DataFrame:
    """Rows ``rows`` (positions) of a stage's input in the quarantine schema.

    ``raw`` is the input as the stage read it, ``parsed`` the same rows in contract columns (what
    parsed of them) and ``reasons`` why each row is quarantined, both by position.
    """
    out = parsed.iloc[rows].reset_index(drop=True)
    out["source_row"] = rows.astype(np.int64)
    out["reason"] = reasons.iloc[rows].to_numpy()
    out["raw"] = _raw_json(raw.iloc[rows])
    return out.astype(QUARANTINE_DTYPES)[list(QUARANTINE_DTYPES)]


def _raw_json(raw: pd.DataFrame) -> list[str]:
    if raw.empty:
        return []
    if not raw.columns.is_unique:  # JSON objects need unique keys: number the repeats, drop nothing
        seen: dict[str, int] = {}
        names = []
        for c in map(str, raw.columns):
            seen[c] = seen.get(c, 0) + 1
            names.append(c if seen[c] == 1 else f"{c}.{seen[c] - 1}")
        raw = raw.set_axis(names, axis=1)
    text = raw.reset_index(drop=True).to_json(
        orient="records", lines=True, date_format="iso", date_unit="us", force_ascii=False, default_handler=str
    )
    lines = text.split("\n")  # not splitlines(): JSON escapes "\n" but not e.g. U+2028 in values
    return lines[:-1] if lines and lines[-1] == "" else lines


#: Columns every feature table carries beside its features. The model's
#: inputs are all other columns, in table order; ``tx_amount`` is itself a feature and comes first.
KEY_COLUMNS: tuple[str, ...] = (TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, TX_FRAUD)


def require_columns(table: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """DataError naming the columns ``what`` (a table a stage reads) lacks, and those it has."""
    absent = [c for c in columns if c not in table.columns]
    if absent:
        names = [str(c) for c in table.columns]
        shown = ", ".join(names[:8]) + (f", ... ({len(names) - 8} more)" if len(names) > 8 else "")
        raise DataError(f"{what} lacks column(s) {absent}; it has {shown}")


def feature_columns(table: pd.DataFrame) -> list[str]:
    """The model inputs of a feature table, in order."""
    return [c for c in table.columns if c not in KEY_COLUMNS]
