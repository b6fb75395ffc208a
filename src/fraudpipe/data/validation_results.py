"""GX's results read back: failed row-level expectations as quarantine reasons per row, batch-level
ones as messages that name the column, what was observed and the setting to change."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from fraudpipe.contract import (
    COORDINATE_COLUMNS,
    ID_COLUMNS,
    ID_DTYPES,
    TRANSACTION_COLUMNS,
    TRANSACTION_ID,
    TX_AMOUNT,
    TX_DATETIME,
    TX_FRAUD,
)
from fraudpipe.data.expectations import EPOCH_COLUMN

#: The setting to look at when a column has the wrong type as a whole.
_TYPE_HINTS: dict[str, str] = {
    **{c: f"check data.columns.{c}" for c in (*ID_COLUMNS, TX_FRAUD, *COORDINATE_COLUMNS)},
    TX_DATETIME: (
        "set data.datetime_format to the values' strftime format (e.g. '%d/%m/%Y %H:%M', or '%Y-%m-%d' "
        "for dates without a time), or check data.columns.tx_datetime"
    ),
    TX_AMOUNT: "check data.columns.tx_amount and, for a CSV file, data.options.decimal and data.options.thousands",
}

#: An amount with a currency sign or code before or after it: "$12.50", "12.50 EUR".
_CURRENCY = re.compile(r"\s*(?:[^\d\s.,+-]{1,3}\s*[+-]?\d[\d.,]*|[+-]?\d[\d.,]*\s*[^\d\s.,+-]{1,3})\s*")
#: A datetime written as a number: seconds, milli-, micro- or nanoseconds since 1970 (not 20180401,
#: which a datetime format reads).
_EPOCH = re.compile(r"\s*[+-]?(?:\d{9,11}|\d{13}|\d{16}|\d{19})(?:\.\d*)?\s*")

_UNIQUE = "expect_column_values_to_be_unique"
_ORDER = (
    "expect_column_to_exist",
    "expect_column_values_to_be_of_type",
    "expect_column_values_to_not_be_null",
    _UNIQUE,
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
    "expect_table_row_count_to_be_between",
    "expect_column_mean_to_be_between",
)
_BATCH_LEVEL = {
    "expect_column_to_exist",
    "expect_column_values_to_be_of_type",
    "expect_table_row_count_to_be_between",
    "expect_column_mean_to_be_between",
}


def collect(
    results: Iterable[Any],
    frame: pd.DataFrame,
    reasons: dict[Any, list[str]],
    failures: list[str],
    counts: dict[str, int],
) -> None:
    """Turn failed expectations into row reasons (row-level, counted per expectation in
    ``counts``) or failure messages (batch-level)."""
    failed = sorted((r for r in results if not r.success), key=_suite_order)
    batch_level = [r for r in failed if r.expectation_config.type in _BATCH_LEVEL]
    for res in batch_level:  # first: a missing or mistyped column explains the errors below
        cfg = res.expectation_config
        failures.append(_batch_message(cfg.type, cfg.kwargs, res.result or {}, frame))
    broken = {r.expectation_config.kwargs.get("column") for r in batch_level}
    for res in failed:
        cfg = res.expectation_config
        kind, kwargs, result = cfg.type, cfg.kwargs, res.result or {}
        if kind in _BATCH_LEVEL:
            continue
        error = _exception_message(res.exception_info)
        if error is not None:
            if kwargs.get("column") not in broken:
                failures.append(f"{_label(kind, kwargs)} could not be evaluated: {error}")
            continue
        index = result.get("unexpected_index_list")
        if index is None or len(index) != result.get("unexpected_count"):
            failures.append(f"{_label(kind, kwargs)} failed but GX did not list the failing rows")
            continue
        label = _label(kind, kwargs)
        if kind == _UNIQUE:
            duplicates = _duplicate_reasons(frame, index)
            for row, reason in duplicates.items():
                reasons.setdefault(row, []).append(f"{label}: {reason}")
            if duplicates:
                counts[label] = counts.get(label, 0) + len(duplicates)
        else:
            for row in index:
                reasons.setdefault(row, []).append(label)
            counts[label] = counts.get(label, 0) + len(index)


def _suite_order(res: Any) -> tuple[int, int]:
    """Reasons read in suite order (GX returns results in its own metric order)."""
    cfg = res.expectation_config
    column = cfg.kwargs.get("column")
    column = TX_DATETIME if column == EPOCH_COLUMN else column
    rank = _ORDER.index(cfg.type) if cfg.type in _ORDER else len(_ORDER)
    return rank, TRANSACTION_COLUMNS.index(column) if column in TRANSACTION_COLUMNS else -1


def _duplicate_reasons(frame: pd.DataFrame, index: list[Any]) -> dict[Any, str]:
    """Rows sharing a transaction_id: later exact copies point at the first; disagreeing ids lose all."""
    rows = frame.loc[index, [c for c in TRANSACTION_COLUMNS if c in frame.columns]]
    rows = rows.loc[frame.index[frame.index.isin(rows.index)]]  # source order, not GX's order
    ids = rows[TRANSACTION_ID]
    distinct = ~rows.duplicated(keep="first")
    agree = distinct.groupby(ids).transform("sum") == 1
    first = pd.Series(rows.index, index=rows.index).groupby(ids).transform("first")
    out: dict[Any, str] = {}
    for row, tid, ok, first_row in zip(rows.index, ids, agree, first, strict=True):
        if not ok:
            out[row] = f"transaction_id {tid!r} shared by rows that disagree"
        elif row != first_row:
            out[row] = f"duplicate of source row {first_row}"
    return out


def _label(kind: str, kwargs: Mapping[str, Any]) -> str:
    """The reason text of an expectation: its type, the contract column and the rule."""
    column = kwargs.get("column")
    if column == EPOCH_COLUMN:
        lo, hi = (_iso(kwargs.get("min_value")), _iso(kwargs.get("max_value")))
        return f"{kind}({TX_DATETIME}, min={lo}, max={hi})"
    if kind.endswith("_to_be_between"):
        return f"{kind}({column}, min={kwargs.get('min_value')}, max={kwargs.get('max_value')})"
    if kind.endswith("_to_be_in_set"):
        return f"{kind}({column}, value_set={list(kwargs.get('value_set', []))})"
    return f"{kind}({column})" if column else kind


def _batch_message(kind: str, kwargs: Mapping[str, Any], result: Mapping[str, Any], frame: pd.DataFrame) -> str:
    column = kwargs.get("column")
    observed = result.get("observed_value")
    if kind == "expect_column_to_exist":
        return f"{kind}({column}): column missing; the batch has columns {[str(c) for c in frame.columns]}"
    if kind == "expect_column_values_to_be_of_type":
        sample = frame[column].dropna().head(3).tolist() if column in frame.columns else []
        expected = " or ".join(ID_DTYPES) if column in ID_COLUMNS else kwargs.get("type_")
        return (
            f"{kind}({column}): expected {expected}, observed {observed} (first values {sample}); "
            f"{_type_hint(str(column), sample)}"
        )
    if kind == "expect_table_row_count_to_be_between":
        return f"{kind}: observed {observed} valid rows, allowed min={kwargs.get('min_value')} (validation.min_rows)"
    if kind == "expect_column_mean_to_be_between":
        return (
            f"{kind}({column}): observed fraud rate {observed}, allowed "
            f"[{kwargs.get('min_value')}, {kwargs.get('max_value')}]; if the rate is right for this data, "
            "set validation.min_fraud_rate / validation.max_fraud_rate, else check data.columns.tx_fraud"
        )
    return f"{_label(kind, kwargs)}: observed {observed}"


def _type_hint(column: str, sample: list[Any]) -> str:
    """What to change when ``column`` has the wrong type as a whole, judged on its first values:
    amounts with a currency and datetimes written as numbers need the file changed, not a setting."""
    text = [str(v) for v in sample]
    if text and column == TX_AMOUNT and all(_CURRENCY.fullmatch(v) for v in text):
        return (
            "the amounts carry a currency sign or code, which no reader option strips: write plain numbers in "
            "the file, or map data.columns.tx_amount to a column of them"
        )
    if text and column == TX_DATETIME and all(_EPOCH.fullmatch(v) for v in text):
        return (
            "the datetimes are numbers (seconds since 1970?), which no strftime format reads: write them as "
            "ISO 8601 datetimes in the file (pandas: pd.to_datetime(values, unit='s')), or map "
            "data.columns.tx_datetime to a column of datetimes"
        )
    return _TYPE_HINTS.get(column, "check data.columns")


def _exception_message(info: Mapping[str, Any] | None) -> str | None:
    """GX reports exceptions flat or keyed by metric; return the first message, if any."""
    if not info:
        return None
    if "raised_exception" in info:
        return str(info.get("exception_message")) if info.get("raised_exception") else None
    for value in info.values():
        if isinstance(value, Mapping) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None


def expectation_counts(validation: Any) -> tuple[int, int]:
    stats = validation.statistics
    return int(stats["evaluated_expectations"]), int(stats["unsuccessful_expectations"])


def reason_series(index: pd.Index, reasons: Mapping[Any, list[str]]) -> pd.Series:
    if not reasons:
        return pd.Series("", index=index, dtype="str")
    out = pd.Series("", index=index, dtype="object")
    labels = list(reasons)
    out.loc[labels] = ["; ".join(reasons[k]) for k in labels]
    return out.astype("str")


def _iso(seconds: Any) -> str:
    return pd.Timestamp(int(seconds), unit="s").isoformat()
