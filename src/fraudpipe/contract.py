"""The transaction contract every source is mapped onto.

Everything downstream of ingestion may rely on these names and dtypes, so they live in one
place instead of being restated by each module.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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
COORDINATE_COLUMNS: tuple[str, str, str, str] = ("customer_x", "customer_y", "terminal_x", "terminal_y")

#: Beside a transaction, from a source that records them (the service's log, ``data=service_log``):
#: when its label arrived, on the wall clock (``label_received_at``, as the service logged it) and on
#: the transactions' own time axis (``label_known_at``: the newest transaction time the service had
#: seen when the label came, which the split's periods are cut on); NaT where no label arrived or
#: its arrival is not recorded. Carried through preprocess and featurize, never model inputs.
LABEL_RECEIVED_AT = "label_received_at"
LABEL_KNOWN_AT = "label_known_at"
LABEL_TIME_COLUMNS: tuple[str, str] = (LABEL_RECEIVED_AT, LABEL_KNOWN_AT)
#: The service's answer to a logged transaction (missing for a row it did not score): kept in the
#: ingested table (data/raw) for monitoring and the champion/challenger comparison, dropped by
#: preprocess, so no feature table carries them.
SERVED_SCORE, SERVED_ALERT, SERVED_THRESHOLD, SERVED_MODEL = (
    "served_score",
    "served_alert",
    "served_threshold",
    "served_model",
)
SERVED_COLUMNS: tuple[str, ...] = (SERVED_SCORE, SERVED_ALERT, SERVED_THRESHOLD, SERVED_MODEL)
#: The dtypes of the columns a source may carry beside the contract's (all nullable).
BESIDE_DTYPES: dict[str, str] = {
    LABEL_RECEIVED_AT: DATETIME_DTYPE,
    LABEL_KNOWN_AT: DATETIME_DTYPE,
    SERVED_SCORE: "float64",
    SERVED_ALERT: "boolean",
    SERVED_THRESHOLD: "float64",
    SERVED_MODEL: "str",
}
BESIDE_COLUMNS: tuple[str, ...] = tuple(BESIDE_DTYPES)

SECONDS_PER_DAY = 86_400


def epoch_seconds(values: pd.Series | pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    """Whole seconds since 1970 as int64, whatever the datetime resolution of the input."""
    arr = np.asarray(values, dtype="datetime64[s]")
    return arr.astype(np.int64)


def canonical_id(value: object) -> str:
    """The key of an identifier wherever it comes from: an integer and its canonical text are the
    same key ("7" and 7), any other text is itself ("007", "5e3", "card-12") without its surrounding
    whitespace (``strip_ids``). Keyed state (online features, the service) uses it, so an id sent as
    JSON text finds the history an int64 column built."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, str)):
        raise DataError(f"an identifier must be an integer or a string, got {value!r}")
    return value.strip() if isinstance(value, str) else str(int(value))


def strip_ids(values: pd.Series) -> tuple[pd.Series, int]:
    """Surrounding whitespace is not part of an id: " 123" and "123" are one card (a padded export
    column would otherwise split a card's history in two). Returns the ids stripped and how many
    changed, which ingest reports. Values that are not text are left as they are."""
    if isinstance(values.dtype, pd.StringDtype):
        stripped = values.str.strip()
    elif values.dtype == object:
        stripped = values.map(lambda v: v.strip() if isinstance(v, str) else v)
    else:
        return values, 0
    present = values.notna().to_numpy()
    changed = present & (values.to_numpy(dtype=object) != stripped.to_numpy(dtype=object))
    return stripped, int(changed.sum())


def id_is_text(values: pd.Series, column: str) -> bool:
    """Whether a column of ids is text (True) or integers (False); DataError for any other dtype.

    Integer dtypes (``int64`` is what ingest writes) and pandas' text dtypes are accepted; a column of
    Python objects is not, since "7" and 7 in it would be two values for one key.
    """
    dtype = values.dtype
    if isinstance(dtype, pd.StringDtype):
        return True
    if pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        return False
    raise DataError(f"column {column!r} has dtype {dtype}: ids are int64 or str (contract.ID_DTYPES)")


def id_codes(values: pd.Series, column: str, *, ordered: bool = False) -> np.ndarray:
    """int64 codes of a column of ids, equal exactly where the ids are equal, for grouping and sorting
    by id without Python objects. An integer column is its own codes. A text column is numbered by
    ``pd.factorize``: in order of first appearance, or with ``ordered`` in lexicographic (Unicode
    code point, the same as UTF-8 byte) order, so that sorting by the codes sorts by the text."""
    if not id_is_text(values, column):
        return values.to_numpy(np.int64)
    codes, _ = pd.factorize(values, sort=ordered)
    return codes.astype(np.int64, copy=False)


def canonical_ids(values: pd.Series, column: str) -> np.ndarray:
    """``canonical_id`` of every value of a column of ids, vectorised: an object array of str."""
    if id_is_text(values, column):
        return values.str.strip().to_numpy(dtype=object)
    return pc.cast(pa.array(values.to_numpy(np.int64)), pa.string()).to_numpy(zero_copy_only=False)


def id_array(keys: Sequence[str] | np.ndarray) -> np.ndarray | pd.api.extensions.ExtensionArray:
    """The column of ids whose keys (``canonical_id``) are ``keys``, in the contract's dtype: int64
    when every key is a canonical integer (the decimal text of a 64-bit integer), else text."""
    text = pa.array(keys, type=pa.string())
    if not len(text):
        return np.zeros(0, dtype=np.int64)
    try:
        numbers = pc.cast(text, pa.int64())  # also takes forms such as "007", hence the round trip
    except (pa.ArrowInvalid, ValueError):  # not digits, or beyond 64 bits
        return pd.array(text.to_numpy(zero_copy_only=False), dtype="str")
    if pc.all(pc.equal(pc.cast(numbers, pa.string()), text)).as_py():
        return numbers.to_numpy()
    return pd.array(text.to_numpy(zero_copy_only=False), dtype="str")


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
#: Columns that are never model inputs: the keys, the coordinates (inputs of the distance
#: feature, which a feature table does not carry; excluded here too so that a table that does
#: carry them cannot turn them into inputs by accident) and the columns beside the contract (when
#: labels arrived, the service's answers: a feature table carries the first, never the second).
NON_FEATURE_COLUMNS: tuple[str, ...] = KEY_COLUMNS + COORDINATE_COLUMNS + BESIDE_COLUMNS


def require_columns(table: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """DataError naming the columns ``what`` (a table a stage reads) lacks, and those it has."""
    absent = [c for c in columns if c not in table.columns]
    if absent:
        names = [str(c) for c in table.columns]
        shown = ", ".join(names[:8]) + (f", ... ({len(names) - 8} more)" if len(names) > 8 else "")
        raise DataError(f"{what} lacks column(s) {absent}; it has {shown}")


def feature_columns(table: pd.DataFrame) -> list[str]:
    """The model inputs of a feature table, in order: every column but ``NON_FEATURE_COLUMNS``."""
    return [c for c in table.columns if c not in NON_FEATURE_COLUMNS]
