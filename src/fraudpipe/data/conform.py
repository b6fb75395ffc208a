"""Map a source's raw batch onto the transaction contract, cell by cell.

Sources hand over their own column names and, for text formats, nothing but strings. Parsing
here never raises for one bad cell: the value becomes missing and its row gets a reason, so that
ingestion can quarantine that row and keep the rest. Only what makes the whole batch unusable
raises (a required column that is not there, a mapped column that appears twice).

Identifiers are opaque keys (`contract.ID_COLUMNS`): a column of them is ``int64`` when every id
is a canonical integer (``contract.canonical_id``: "7", 7 and 7.0 are one key), and text
otherwise, for the whole column: "007" stays "007", "5e3" is never 5000.

Numbers written as text honour the source's `NumberFormat` (a CSV file's ``decimal`` and
``thousands``); a date without a time of day in the datetime column is a bad cell unless the
source's ``datetime_format`` says the source holds dates only.

A column in which *no* non-missing value parses is not a column of bad cells but a column of the
wrong type (amounts that are all text, dates given as numbers): it is passed on unchanged, so
that the type expectation of the validation suite reports it as a batch-level failure instead
of quarantining every row.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api import types as ptypes

from fraudpipe.errors import DataError
from fraudpipe.contract import (
    BESIDE_DTYPES,
    COORDINATE_COLUMNS,
    DATETIME_DTYPE,
    ID_COLUMNS,
    REQUIRED_COLUMNS,
    TRANSACTION_COLUMNS,
    TX_AMOUNT,
    TX_DATETIME,
    TX_FRAUD,
    id_array,
    strip_ids,
)

#: Integers written as text (labels); anything else must be a number with an integral value.
_INTEGER_TEXT = r"\s*[+-]?\d+\s*"
#: Floats represent every integer up to 2**53 exactly; beyond that an id read as float is unsafe.
_MAX_EXACT_FLOAT_INT = 2**53
_INT64 = np.iinfo(np.int64)
#: strftime directives of a time of day: a datetime_format without any of them holds dates only.
_TIME_DIRECTIVE = re.compile(r"%[-#]?[HIMSfpXcTRr]")
#: pandas formats that are not strftime patterns: with them, as with none, a datetime has a time.
_INFERRED_FORMATS = frozenset({"ISO8601", "mixed"})
#: A time of day in a parsed text value: "10:15" (or "1015" after ISO 8601's "T").
_HAS_TIME = r":|\d[Tt]\d"


@dataclass(frozen=True)
class NumberFormat:
    """How a text source writes numbers: the decimal mark and the thousands separator (if any),
    as pandas.read_csv's ``decimal`` and ``thousands`` say them (CSV: ``data.options``)."""

    decimal: str = "."
    thousands: str | None = None

    @property
    def is_plain(self) -> bool:
        return self.decimal == "." and self.thousands is None

    def pattern(self) -> str:
        """A number in this format: digits grouped by threes when there is a separator."""
        grouped = rf"\d{{1,3}}(?:{re.escape(self.thousands)}\d{{3}})+|\d+" if self.thousands else r"\d+"
        mark = re.escape(self.decimal)
        return rf"\s*[+-]?(?:(?:{grouped})(?:{mark}\d*)?|{mark}\d+)(?:[eE][+-]?\d+)?\s*"

    def to_plain(self, text: pd.Series) -> pd.Series:
        """``text`` rewritten with "." as decimal mark and no separators; NA where it is no number."""
        ok = text.str.fullmatch(self.pattern()).fillna(False).astype(bool)
        plain = text.where(ok).str.strip()
        if self.thousands:
            plain = plain.str.replace(self.thousands, "", regex=False)
        return plain.str.replace(self.decimal, ".", regex=False)


@dataclass(frozen=True)
class Conformed:
    """The batch in contract columns; per row why a value did not parse ("" when none), and how
    many rows each kind of parse failure hit (e.g. ``"tx_amount is not a number": 12``)."""

    frame: pd.DataFrame
    reasons: pd.Series
    counts: Mapping[str, int]
    #: ids whose surrounding whitespace was removed (``contract.strip_ids``), summed over id columns
    ids_stripped: int = 0


def source_columns(columns: Mapping[str, str] | None) -> dict[str, str]:
    """Contract column -> source column; a contract column the mapping leaves out keeps its name.

    ``columns`` is ``data.columns``, whose keys `SourceConfig` has checked to be contract columns
    (or the optional coordinate columns, which are returned only when mapped).
    """
    mapping = dict(columns or {})
    assert set(mapping) <= set(TRANSACTION_COLUMNS) | set(COORDINATE_COLUMNS), f"unchecked columns mapping {mapping}"
    return {c: str(mapping.get(c, c)) for c in TRANSACTION_COLUMNS} | {
        c: str(mapping[c]) for c in COORDINATE_COLUMNS if c in mapping
    }


def dates_only(datetime_format: str | None) -> bool:
    """Whether ``datetime_format`` describes dates without a time of day (e.g. "%Y-%m-%d")."""
    return (
        datetime_format is not None
        and datetime_format not in _INFERRED_FORMATS
        and not _TIME_DIRECTIVE.search(datetime_format)
    )


def to_contract(
    raw: pd.DataFrame,
    columns: Mapping[str, str] | None,
    datetime_format: str | None,
    number_format: NumberFormat = NumberFormat(),
) -> Conformed:
    """Select, rename and parse ``raw`` into the contract; bad cells become NA plus a reason.

    The result has a RangeIndex: label i is row i of ``raw``, which is how rows are traced back
    to the source. ``tx_fraud`` is optional (live data is unlabelled): absent, it becomes an
    all-NA nullable Int8 column; it is int8 only when every row is labelled. Coordinate columns
    (`contract.COORDINATE_COLUMNS`) follow the contract's columns, as float64, when the source
    has all four (mapped, or under their own names). Columns beside the contract
    (`contract.BESIDE_COLUMNS`) follow under their own names, in their dtypes, when the source has them.
    """
    mapping = _with_coordinates(source_columns(columns), raw, columns)
    _check_columns(raw, mapping)
    n = len(raw)
    number: Callable[[pd.Series], pd.Series | None] = lambda s: _to_float64(s, number_format)  # noqa: E731
    parsers: dict[str, Callable[[pd.Series], pd.Series | None]] = {
        **{c: _to_id for c in ID_COLUMNS},
        TX_DATETIME: lambda s: _to_datetime(s, datetime_format),
        TX_AMOUNT: number,
        TX_FRAUD: _to_label,
        **{c: number for c in COORDINATE_COLUMNS},
    }
    what = {
        **{c: "an identifier (an integer or text)" for c in ID_COLUMNS},
        TX_DATETIME: (
            f"a datetime in data.datetime_format {datetime_format!r}"
            if datetime_format
            else "an ISO 8601 datetime (data.datetime_format is null)"
        ),
        TX_AMOUNT: "a number",
        TX_FRAUD: "a 0/1 label",
        **{c: "a number" for c in COORDINATE_COLUMNS},
    }
    out: dict[str, pd.Series] = {}
    messages: dict[int, list[str]] = {}
    counts: dict[str, int] = {}
    ids_stripped = 0

    def report(rows: np.ndarray, kind: str, message: Callable[[int], str]) -> None:
        for pos in np.flatnonzero(rows):
            messages.setdefault(int(pos), []).append(message(int(pos)))
        if rows.any():
            counts[kind] = counts.get(kind, 0) + int(rows.sum())

    for name, source in mapping.items():
        if source not in raw.columns:  # only tx_fraud may be absent (checked above)
            out[name] = pd.Series(pd.NA, index=pd.RangeIndex(n), dtype="Int8")
            continue
        values = _blank_to_na(_plain(raw[source].reset_index(drop=True)))
        if name in ID_COLUMNS:
            values, stripped = strip_ids(values)
            ids_stripped += stripped
        parsed = parsers[name](values)
        present = values.notna().to_numpy()
        if parsed is None or (present.any() and not parsed.notna().to_numpy()[present].any()):
            out[name] = values  # wrong type as a whole: the type expectation reports it
            continue
        if name == TX_DATETIME and not dates_only(datetime_format):
            undated = present & parsed.notna().to_numpy() & _date_only(values)
            if undated.any():
                parsed = parsed.mask(undated)
                kind = f"{name} is a date without a time of day (data.datetime_format: '%Y-%m-%d' if the source holds dates only)"
                report(
                    undated,
                    kind,
                    lambda pos: (
                        f"{name}: {_show(values.iat[pos])} is a date without a time of day (if the source "
                        "holds dates only, set data.datetime_format to a date format such as '%Y-%m-%d')"
                    ),
                )
        else:
            undated = np.zeros(n, dtype=bool)
        bad = present & parsed.isna().to_numpy() & ~undated
        report(bad, f"{name} is not {what[name]}", lambda pos: f"{name}: {_show(values.iat[pos])} is not {what[name]}")
        out[name] = parsed
    frame = pd.DataFrame(out, index=pd.RangeIndex(n))
    for name in BESIDE_DTYPES:
        if name in raw.columns:
            frame[name] = _beside(raw[name].reset_index(drop=True), name)
    return Conformed(frame, _reasons(n, messages), counts, ids_stripped)


def _beside(values: pd.Series, name: str) -> pd.Series:
    """A column beside the contract (`contract.BESIDE_DTYPES`: when a label arrived, the service's
    answer), under its own name: only a source that writes it typed has it (the service log), so a
    value of another type is the source's bug, not a bad cell."""
    try:
        return values.astype(BESIDE_DTYPES[name])
    except (TypeError, ValueError) as exc:
        raise DataError(f"column {name!r} ({values.dtype}) is not {BESIDE_DTYPES[name]}: {exc}") from None


def _with_coordinates(mapping: dict[str, str], raw: pd.DataFrame, columns: Mapping[str, str] | None) -> dict[str, str]:
    """Coordinates are all four or none: mapped ones must all be there, unmapped ones are taken
    under their own names only when all four are."""
    mapped = [c for c in COORDINATE_COLUMNS if c in (columns or {})]
    if mapped:
        return mapping  # `SourceConfig` has checked that all four are mapped; _check_columns that they exist
    own = [c for c in COORDINATE_COLUMNS if c in raw.columns]
    if own and len(own) < len(COORDINATE_COLUMNS):
        absent = [c for c in COORDINATE_COLUMNS if c not in own]
        raise DataError(
            f"the source has coordinate column(s) {own} but not {absent}: coordinates come as all four of "
            f"{list(COORDINATE_COLUMNS)} or none; map them in data.columns or rename the source's columns"
        )
    return mapping | {c: c for c in own}


def _check_columns(raw: pd.DataFrame, mapping: Mapping[str, str]) -> None:
    duplicated = sorted({str(c) for c in raw.columns[raw.columns.duplicated()]} & set(mapping.values()))
    if duplicated:
        used = {s: c for c, s in mapping.items() if s in duplicated}
        raise DataError(
            f"the source has more than one column named {duplicated} (mapped to {sorted(used.values())}); "
            "cannot tell which to use: rename one of them in the source, or map the contract column to another "
            "column in data.columns"
        )
    missing = [c for c in (*REQUIRED_COLUMNS, *COORDINATE_COLUMNS) if c in mapping and mapping[c] not in raw.columns]
    if missing:
        details = ", ".join(
            f"{c!r}" + (f" (mapped from source column {mapping[c]!r})" if mapping[c] != c else "") for c in missing
        )
        raise DataError(
            f"expect_column_to_exist failed: required column(s) {details} missing; "
            f"the source has columns {[str(c) for c in raw.columns]}: set "
            + ", ".join(f"data.columns.{c}" for c in missing)
            + " to one of them"
        )


def _reasons(n: int, messages: Mapping[int, list[str]]) -> pd.Series:
    if not messages:
        return pd.Series("", index=pd.RangeIndex(n), dtype="str")
    arr = np.full(n, "", dtype=object)
    for pos, msgs in messages.items():
        arr[pos] = "; ".join(msgs)
    return pd.Series(arr, index=pd.RangeIndex(n), dtype="str")


def _show(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, np.generic):
        value = value.item()
    return str(value)


def _plain(values: pd.Series) -> pd.Series:
    """A categorical column (a Parquet file written from pandas categories) as its values."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.astype(values.dtype.categories.dtype)
    return values


def _blank_to_na(values: pd.Series) -> pd.Series:
    """An empty text cell is a missing value (as in CSV), not a malformed one."""
    if not _is_text(values):
        return values
    blank = values.astype("str").str.strip().eq("").fillna(False).astype(bool)
    return values.mask(blank) if blank.any() else values


def _is_text(values: pd.Series) -> bool:
    return ptypes.is_string_dtype(values) or ptypes.is_object_dtype(values)


# --- identifiers ------------------------------------------------------------------------------


def _to_id(values: pd.Series) -> pd.Series | None:
    """int64 (Int64 while a cell is bad) when every id is a canonical integer, else text (``str``).

    Native integers are integers; native floats count as integers when integral and exact (up to
    2**53), and are bad cells otherwise; text is an integer only in canonical form. A cell of any
    other kind (a boolean, a JSON object) is a bad cell.
    """
    if ptypes.is_bool_dtype(values):
        return None
    if ptypes.is_integer_dtype(values):
        if ptypes.is_unsigned_integer_dtype(values) and values.max() > _INT64.max:
            return values.astype("str")  # canonical integers beyond int64: their text is the key
        return _int64(values.astype("Int64"))
    if ptypes.is_float_dtype(values):
        return _int64(_integral_floats(values.astype("float64")))
    if isinstance(values.dtype, pd.StringDtype):
        return _text_ids(values)
    if ptypes.is_object_dtype(values):
        return _object_ids(values)
    return None


def _text_ids(values: pd.Series) -> pd.Series:
    """int64 when every present id is a canonical integer (`contract.id_array`'s rule), else text."""
    present = values.notna().to_numpy()
    ids = id_array(values[present].to_numpy())
    if ids.dtype != np.int64:
        return values.astype("str")
    out = pd.Series(pd.NA, index=values.index, dtype="Int64")
    out[present] = ids
    return _int64(out)


def _object_ids(values: pd.Series) -> pd.Series:
    """Python objects (an API's JSON): ints, integral floats and strings; the rest are bad cells.
    Each id becomes its text, then the one rule of `_text_ids` decides int64 or text."""
    keys = [_object_key(value) for value in values.tolist()]
    return _text_ids(pd.Series([None if k is None else str(k) for k in keys], index=values.index, dtype="str"))


def _object_key(value: object) -> int | str | None:
    """One cell's id: an int or a str; None when missing or not an id."""
    if value is None or value is pd.NA or isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        ok = math.isfinite(number) and number.is_integer() and abs(number) <= _MAX_EXACT_FLOAT_INT
        return int(value) if ok else None
    return value if isinstance(value, str) else None


def _int64(values: pd.Series) -> pd.Series:
    return values.astype("int64") if not values.hasnans else values


# --- numbers, labels, datetimes ---------------------------------------------------------------


def _integers(values: pd.Series) -> pd.Series | None:
    """Exact nullable Int64 of integral values (text, integers or integral floats), or None."""
    if ptypes.is_bool_dtype(values):
        return None
    if ptypes.is_integer_dtype(values):
        return values.astype("Int64")
    if ptypes.is_float_dtype(values):
        return _integral_floats(values.astype("float64"))
    if not _is_text(values):
        return None
    fast = _arrow_cast(values, pa.int64())  # clean text parses exactly, in one vectorised pass
    if fast is not None:
        return fast.astype("Int64")
    text = values.astype("str")
    result = pd.Series(pd.NA, index=values.index, dtype="Int64")
    is_int = text.str.fullmatch(_INTEGER_TEXT).fillna(False).astype(bool)
    if is_int.any():
        ints = pd.to_numeric(text[is_int].str.strip(), errors="coerce")
        if ptypes.is_integer_dtype(ints) and not ptypes.is_unsigned_integer_dtype(ints):
            result[is_int] = ints.astype("Int64")
        else:  # some exceed int64: parse one by one so the rest stay exact
            result[is_int] = [int(v) if -(2**63) <= int(v) < 2**63 else pd.NA for v in text[is_int]]
    rest = ~is_int & values.notna()
    if rest.any():
        floats = pd.to_numeric(values[rest], errors="coerce").astype("float64")
        result[rest] = _integral_floats(floats)
    return result


def _integral_floats(values: pd.Series) -> pd.Series:
    ok = values.notna() & (values % 1 == 0) & (values.abs() <= _MAX_EXACT_FLOAT_INT)
    return values.where(ok).astype("Int64")


def _to_float64(values: pd.Series, number_format: NumberFormat) -> pd.Series | None:
    if ptypes.is_bool_dtype(values) or not (ptypes.is_numeric_dtype(values) or _is_text(values)):
        return None
    if isinstance(values.dtype, pd.StringDtype) and not number_format.is_plain:  # a text file's numbers
        values = number_format.to_plain(values.astype("str"))
    fast = _arrow_cast(values, pa.float64())
    if fast is not None:
        return fast.astype("float64")
    return pd.to_numeric(values, errors="coerce").astype("float64")


def _arrow_cast(values: pd.Series, to: pa.DataType) -> pd.Series | None:
    """Arrow parses a clean text column ~40x faster than pd.to_numeric; None if any cell fails."""
    if not isinstance(values.dtype, pd.StringDtype):
        return None
    try:
        parsed = pc.cast(pa.array(values), to)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    return pd.Series(parsed.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get), index=values.index)


def _to_label(values: pd.Series) -> pd.Series | None:
    """Labels need only be integers that fit int8 here; the suite checks that they are 0 or 1."""
    if ptypes.is_bool_dtype(values):
        parsed = values.astype("Int8")
    else:
        integers = _integers(values)
        if integers is None:
            return None
        info = np.iinfo(np.int8)
        parsed = integers.where(integers.between(info.min, info.max)).astype("Int8")
    return parsed.astype("int8") if not parsed.hasnans else parsed


def _to_datetime(values: pd.Series, datetime_format: str | None) -> pd.Series | None:
    """Timezone-aware values are converted to UTC and made naive, like the rest of the contract."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").dt.tz_localize(None).astype(DATETIME_DTYPE)
    if ptypes.is_datetime64_dtype(values):
        return values.astype(DATETIME_DTYPE)
    if not _is_text(values):
        return None
    parsed = pd.to_datetime(values, format=datetime_format or "ISO8601", errors="coerce", utc=True)
    return parsed.dt.tz_localize(None).astype(DATETIME_DTYPE)


def _date_only(values: pd.Series) -> np.ndarray:
    """Cells that hold a date without a time of day: text with no time in it, or a date object."""
    if isinstance(values.dtype, pd.StringDtype):
        return ~values.str.contains(_HAS_TIME, regex=True).fillna(True).astype(bool).to_numpy()
    if ptypes.is_object_dtype(values):
        return np.array(
            [
                (isinstance(v, dt.date) and not isinstance(v, dt.datetime))
                or (isinstance(v, str) and re.search(_HAS_TIME, v) is None)
                for v in values.tolist()
            ],
            dtype=bool,
        )
    return np.zeros(len(values), dtype=bool)
