"""Preprocessing: raw transactions -> one clean, typed, time-ordered row per transaction.

Ingest already validated the batch, but this step does not trust it: it is the one place that
enforces the contract's types, so every later stage can. Nothing is lost silently: each input row
ends up kept, dropped as an exact duplicate (counted), or quarantined with a ``reason``, and
``rows_in == rows_out + duplicates_dropped + rows_quarantined`` is checked on every run.

Amount outliers are flagged, never clipped: a large amount is fraud signal. The flags are a
separate table (``CleanResult.amount_outliers``), not a column of the clean table, because the
fences are fitted on the whole batch (test period included) and a column here would flow into the
feature table as a model input with a look-ahead threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from fraudpipe.errors import DataError
from fraudpipe.contract import (
    CUSTOMER_ID,
    DATETIME_DTYPE,
    REQUIRED_COLUMNS,
    TERMINAL_ID,
    TRANSACTION_COLUMNS,
    TRANSACTION_DTYPES,
    TRANSACTION_ID,
    TX_AMOUNT,
    TX_DATETIME,
    TX_FRAUD,
)

REASON = "reason"
#: Position of the row in the input table, so a quarantined value can be traced back to data/raw.
INPUT_ROW = "input_row"
CONFLICTING_ID = "conflicting_id"
ID_COLUMNS = (TRANSACTION_ID, CUSTOMER_ID, TERMINAL_ID)

#: Column dtypes of the quarantine table: the contract's, nullable, so that any rejected row fits.
QUARANTINE_DTYPES: dict[str, str] = {
    INPUT_ROW: "int64",
    TRANSACTION_ID: "Int64",
    TX_DATETIME: DATETIME_DTYPE,
    CUSTOMER_ID: "Int64",
    TERMINAL_ID: "Int64",
    TX_AMOUNT: "float64",
    TX_FRAUD: "Int8",
    REASON: "string",
}
OUTLIER_COLUMNS = (TRANSACTION_ID, TX_DATETIME, TX_AMOUNT)

Action = Literal["drop", "error", "keep", "fill"]


class PreprocessError(DataError):
    """The batch or the configuration cannot be preprocessed; the message names column, rows and rule."""


@dataclass(frozen=True)
class MissingPolicy:
    """What to do with a null in one column: quarantine the row, stop, keep the null, or fill."""

    action: Action
    value: Any = None

    @classmethod
    def parse(cls, column: str, spec: Any) -> MissingPolicy:
        if isinstance(spec, Mapping) and set(spec) == {"fill"}:
            policy = cls("fill", spec["fill"])
        elif spec in ("drop", "error", "keep"):
            policy = cls(spec)
        else:
            raise PreprocessError(
                f"preprocess.missing.{column}: {spec!r} is not a policy; use drop, error, keep or {{fill: value}}"
            )
        if policy.action == "keep" and column != TX_FRAUD:
            raise PreprocessError(
                f"preprocess.missing.{column}: 'keep' is only allowed for {TX_FRAUD} (unlabelled live data); "
                f"the contract has no nulls in {column}"
            )
        if policy.action == "fill" and column in (TRANSACTION_ID, TX_DATETIME):
            raise PreprocessError(f"preprocess.missing.{column}: a filled {column} would be invented; use drop or error")
        if policy.action == "fill" and policy.value is None:
            raise PreprocessError(f"preprocess.missing.{column}: fill needs a non-null value")
        return policy


#: Used for a column the config does not mention.
DEFAULT_POLICIES: dict[str, MissingPolicy] = {c: MissingPolicy("drop") for c in REQUIRED_COLUMNS} | {
    TX_FRAUD: MissingPolicy("keep")
}


@dataclass(frozen=True)
class PreprocessConfig:
    missing: Mapping[str, MissingPolicy] = field(default_factory=lambda: dict(DEFAULT_POLICIES))
    #: Tukey's fences: amounts outside [Q1 - k*IQR, Q3 + k*IQR] are flagged (3 = "far out").
    outlier_iqr_factor: float = 3.0

    @classmethod
    def from_dict(cls, params: Mapping[str, Any]) -> PreprocessConfig:
        spec = dict(params.get("missing") or {})
        unknown = sorted(set(spec) - set(TRANSACTION_COLUMNS))
        if unknown:
            raise PreprocessError(f"preprocess.missing names unknown column(s) {unknown}; columns: {list(TRANSACTION_COLUMNS)}")
        missing = dict(DEFAULT_POLICIES) | {c: MissingPolicy.parse(c, s) for c, s in spec.items()}
        factor = float(params.get("outlier_iqr_factor", 3.0))
        if not factor > 0:
            raise PreprocessError(f"preprocess.outlier_iqr_factor must be > 0, got {factor}")
        return cls(missing=missing, outlier_iqr_factor=factor)


@dataclass(frozen=True)
class CleanResult:
    clean: pd.DataFrame
    quarantined: pd.DataFrame
    summary: dict[str, float]
    amount_outliers: pd.DataFrame


def _coerce_integer(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Nullable Int64 and a mask of present values that are not whole numbers."""
    if pd.api.types.is_integer_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        out = values.astype("Int64")
        return out, pd.Series(False, index=values.index)
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    arr = numbers.to_numpy()
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(arr) & (arr == np.floor(arr)) & (np.abs(arr) < 2.0**63)
    out = pd.Series(np.where(whole, arr, 0).astype(np.int64), index=values.index).astype("Int64").where(whole)
    return out, values.notna() & ~whole


def _coerce_datetime(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values.astype(DATETIME_DTYPE), pd.Series(False, index=values.index)
    if pd.api.types.is_numeric_dtype(values.dtype):
        raise PreprocessError(
            f"column {TX_DATETIME!r} has dtype {values.dtype}; expected datetime64 or ISO 8601 strings "
            "(numbers are ambiguous: map them to datetimes in the source config)"
        )
    parsed = pd.to_datetime(values, errors="coerce", format="ISO8601")
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    parsed = parsed.astype(DATETIME_DTYPE)
    return parsed, values.notna() & parsed.isna()


def _coerce_amount(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    arr = numbers.to_numpy()
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(arr) & (arr >= 0)
    return numbers, values.notna() & ~ok


def _coerce_label(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    out, invalid = _coerce_integer(values)
    bad_value = out.notna() & ~out.isin([0, 1]).fillna(False)
    return out.where(~bad_value).astype("Int8"), invalid | bad_value.astype(bool)


_COERCE = {
    TRANSACTION_ID: _coerce_integer,
    TX_DATETIME: _coerce_datetime,
    CUSTOMER_ID: _coerce_integer,
    TERMINAL_ID: _coerce_integer,
    TX_AMOUNT: _coerce_amount,
    TX_FRAUD: _coerce_label,
}
#: The rule a value broke when its reason is ``invalid_<column>``, for error messages and docs.
RULES = {
    TRANSACTION_ID: "whole number",
    TX_DATETIME: "datetime (ISO 8601)",
    CUSTOMER_ID: "whole number",
    TERMINAL_ID: "whole number",
    TX_AMOUNT: "finite number >= 0",
    TX_FRAUD: "0 or 1",
}


def reasons() -> list[str]:
    """Every quarantine reason, in the order rows are checked (stable keys for the summary)."""
    return [CONFLICTING_ID] + [f"{kind}_{c}" for c in TRANSACTION_COLUMNS for kind in ("missing", "invalid")]


def _fill_value(column: str, value: Any) -> Any:
    coerced, invalid = _COERCE[column](pd.Series([value]))
    if bool(invalid.iloc[0]) or pd.isna(coerced.iloc[0]):
        raise PreprocessError(f"preprocess.missing.{column}: fill value {value!r} is not a {RULES[column]}")
    return coerced.iloc[0]


def _first_rows(mask: pd.Series, limit: int = 5) -> list[int]:
    return np.flatnonzero(mask.to_numpy())[:limit].tolist()


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Contract dtypes once nulls are gone; the label stays nullable only if unlabelled rows remain."""
    label = "Int8" if frame[TX_FRAUD].isna().any() else "int8"
    return frame.astype({**TRANSACTION_DTYPES, TX_FRAUD: label})


def _amount_fences(amount: np.ndarray, factor: float) -> tuple[float, float]:
    if amount.size == 0:
        return float("nan"), float("nan")
    q1, q3 = np.quantile(amount, [0.25, 0.75])
    return float(q1 - factor * (q3 - q1)), float(q3 + factor * (q3 - q1))


def preprocess(tx: pd.DataFrame, config: PreprocessConfig) -> CleanResult:
    """Type, deduplicate, resolve missing values, order by time; quarantine what cannot be kept.

    A row is checked column by column in contract order and quarantined with the first reason
    that applies (``missing_<col>`` under the ``drop`` policy, ``invalid_<col>`` when a present
    value breaks the column's rule). Among the remaining rows exact duplicates are dropped (the
    first copy kept), then every row of a transaction_id that still has several versions is
    quarantined as ``conflicting_id``: there is no telling which version is true.

    Only the contract's columns are carried: anything else (such as the simulator's
    ``tx_fraud_scenario``, which is derived from the label) would otherwise flow into features.
    """
    absent = [c for c in REQUIRED_COLUMNS if c not in tx.columns]
    if absent:
        raise PreprocessError(f"input lacks required column(s) {absent}; the contract needs {list(REQUIRED_COLUMNS)}")
    frame = tx.reset_index(drop=True)
    if TX_FRAUD not in frame.columns:  # an unlabelled batch: the missing-value policy decides
        frame = frame.assign(**{TX_FRAUD: pd.Series(pd.NA, index=frame.index, dtype="Int8")})

    n = len(frame)
    reason = pd.Series(pd.NA, index=frame.index, dtype="string")
    coerced: dict[str, pd.Series] = {}
    filled = 0
    for column in TRANSACTION_COLUMNS:
        raw = frame[column]
        values, invalid = _COERCE[column](raw)
        missing = raw.isna()
        policy = config.missing[column]
        if policy.action == "error" and missing.any():
            raise PreprocessError(
                f"column {column!r}: {int(missing.sum())} missing value(s), first at input rows "
                f"{_first_rows(missing)}; policy preprocess.missing.{column} = error"
            )
        if policy.action == "fill":
            values = values.fillna(_fill_value(column, policy.value))
            filled += int(missing.sum())
        elif policy.action == "drop":
            reason = reason.mask(reason.isna() & missing, f"missing_{column}")
        reason = reason.mask(reason.isna() & invalid, f"invalid_{column}")
        coerced[column] = values
    table = pd.DataFrame(coerced)

    ok = reason.isna().to_numpy()
    kept = table[ok]
    # Only rows whose id repeats can be duplicates or conflicts: checking those alone keeps this
    # fast on millions of rows.
    repeated = kept[TRANSACTION_ID].duplicated(keep=False)
    exact = kept[repeated].duplicated(keep="first").reindex(kept.index, fill_value=False)
    kept = kept[~exact]
    conflicting = kept[TRANSACTION_ID].duplicated(keep=False)
    reason.loc[conflicting[conflicting].index] = CONFLICTING_ID
    kept = kept[~conflicting]

    order = np.lexsort((kept[TRANSACTION_ID].to_numpy(), kept[TX_DATETIME].to_numpy()))
    clean = _typed(kept.iloc[order].reset_index(drop=True))

    bad = reason.notna()
    quarantined = (
        table[bad.to_numpy()]
        .assign(**{REASON: reason[bad], INPUT_ROW: np.flatnonzero(bad.to_numpy())})
        .loc[:, list(QUARANTINE_DTYPES)]
        .astype(QUARANTINE_DTYPES)
        .reset_index(drop=True)
    )

    lower, upper = _amount_fences(clean[TX_AMOUNT].to_numpy(), config.outlier_iqr_factor)
    amount = clean[TX_AMOUNT]
    outliers = clean.loc[(amount < lower) | (amount > upper), list(OUTLIER_COLUMNS)].reset_index(drop=True)

    counts = quarantined[REASON].value_counts()
    duplicates = int(exact.sum())
    summary: dict[str, float] = {
        "rows_in": n,
        "rows_out": len(clean),
        "duplicates_dropped": duplicates,
        "rows_quarantined": len(quarantined),
        **{f"quarantined_{r}": int(counts.get(r, 0)) for r in reasons()},
        "values_filled": filled,
        "amount_outliers_flagged": len(outliers),
        "amount_outlier_lower": lower,
        "amount_outlier_upper": upper,
    }
    if n != len(clean) + duplicates + len(quarantined):
        raise AssertionError(f"row accounting broken: {summary}")
    return CleanResult(clean=clean, quarantined=quarantined, summary=summary, amount_outliers=outliers)
