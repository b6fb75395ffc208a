"""Stage `preprocess`: the cleaning choices a model depends on, applied to the rows ingest kept.

Ingest owns the contract (parsing, types, ids present and unique, values in range), so nothing
here parses or re-checks it: the input must simply have the contract's columns and dtypes (a
`DataError` otherwise). What this stage adds are modelling choices:

* the missing-value policy of each column (``preprocess.missing``): quarantine the row
  (``drop``, reason ``missing_<column>``), stop (``error``), keep the null (``keep``, for
  ``tx_fraud`` only: unlabelled live transactions) or fill it (``{fill: value}``);
* time order: rows sorted by (tx_datetime, transaction_id), the order the features and
  online scoring rely on; text transaction ids in lexicographic order (Unicode code points, the
  same as UTF-8 bytes), so the order is the same on every machine;
* amount outlier flags: amounts outside Tukey's fences are listed, never clipped (a large amount
  is fraud signal). The flags are a table of their own (``PreprocessResult.amount_outliers``),
  not a column of the output, because the fences are fitted on the whole batch (test period
  included) and such a column would flow into the features as a model input with a look-ahead
  threshold.

Ids may be int64 or text (``contract.ID_DTYPES``); the optional per-transaction coordinates
(``contract.COORDINATE_COLUMNS``) are carried as they are, a missing one (NaN) meaning "not given
with this transaction" (the distance feature then uses the last known one).

Nothing is lost silently: each input row is kept or quarantined (data/quarantine/preprocess.parquet,
the schema every quarantine shares), and ``rows_in == rows_out + rows_quarantined`` is checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BeforeValidator, Field, PlainSerializer, ValidationInfo, field_validator

from fraudpipe.config import Config, rule_error
from fraudpipe.contract import (
    COORDINATE_COLUMNS,
    CUSTOMER_ID,
    DATETIME_DTYPE,
    ID_COLUMNS,
    ID_DTYPES,
    LABEL_TIME_COLUMNS,
    TERMINAL_ID,
    TRANSACTION_COLUMNS,
    TRANSACTION_DTYPES,
    TRANSACTION_ID,
    TX_AMOUNT,
    TX_DATETIME,
    TX_FRAUD,
    canonical_id,
    id_codes,
    quarantine_table,
    require_columns,
)
from fraudpipe.errors import DataError

OUTLIER_COLUMNS = (TRANSACTION_ID, TX_DATETIME, TX_AMOUNT)
#: Every quarantine reason of this stage, in the order the columns are checked.
REASONS: tuple[str, ...] = tuple(f"missing_{c}" for c in TRANSACTION_COLUMNS)
#: Input dtypes accepted per column: the contract's (ids int64 or text; a label column with
#: unlabelled rows is nullable; coordinates, when present, float64).
INPUT_DTYPES: dict[str, tuple[str, ...]] = (
    {c: (t,) for c, t in TRANSACTION_DTYPES.items()}
    | {c: ID_DTYPES for c in ID_COLUMNS}
    | {TX_FRAUD: ("int8", "Int8")}
    | {c: ("float64",) for c in COORDINATE_COLUMNS}
    | {c: (DATETIME_DTYPE,) for c in LABEL_TIME_COLUMNS}
)
#: Optional columns carried as they are, when the input has them: the coordinates, and when each
#: label arrived (the split uses that); the service's answers (``contract.SERVED_COLUMNS``) are not.
CARRIED_COLUMNS: tuple[str, ...] = (*COORDINATE_COLUMNS, *LABEL_TIME_COLUMNS)


@dataclass(frozen=True)
class MissingPolicy:
    """What to do with a null in one column: quarantine the row, stop, keep the null, or fill it."""

    action: Literal["drop", "error", "keep", "fill"]
    value: Any = None  # the fill value


def _policy(spec: Any) -> Any:
    if isinstance(spec, MissingPolicy):
        return spec
    if isinstance(spec, dict) and set(spec) == {"fill"}:
        return MissingPolicy("fill", spec["fill"])
    if isinstance(spec, str) and spec in ("drop", "error", "keep"):
        return MissingPolicy(spec)  # type: ignore[arg-type]
    raise ValueError("must be drop, error, keep or {fill: value}")


#: A policy as conf/ writes it: ``drop``, ``error``, ``keep`` or ``{fill: value}``.
Policy = Annotated[
    MissingPolicy,
    BeforeValidator(_policy),
    PlainSerializer(lambda p: {"fill": p.value} if p.action == "fill" else p.action),
]


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


#: What a fill value must be, per column that may be filled (the contract's rule for that column).
_FILL_RULES = {
    CUSTOMER_ID: ("a whole number or a string (an id)", lambda v: _whole(v) or isinstance(v, str)),
    TERMINAL_ID: ("a whole number or a string (an id)", lambda v: _whole(v) or isinstance(v, str)),
    TX_AMOUNT: (
        "a finite number >= 0",
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0,
    ),
    TX_FRAUD: ("0 or 1", lambda v: _whole(v) and v in (0, 1)),
}


class MissingConfig(Config):
    """``preprocess.missing``: one policy per contract column."""

    transaction_id: Policy
    tx_datetime: Policy
    customer_id: Policy
    terminal_id: Policy
    tx_amount: Policy
    tx_fraud: Policy

    @field_validator("*")
    @classmethod
    def _fits_the_column(cls, policy: MissingPolicy, info: ValidationInfo) -> MissingPolicy:
        column = str(info.field_name)
        if policy.action == "keep" and column != TX_FRAUD:
            raise ValueError(
                f"'keep' is only for {TX_FRAUD} (unlabelled live data): the contract has no nulls in {column}"
            )
        if policy.action == "fill":
            if column not in _FILL_RULES:
                raise ValueError(f"a filled {column} would be invented: use drop or error")
            what, ok = _FILL_RULES[column]
            if not ok(policy.value):
                raise rule_error(f"the fill value must be {what}", policy.value, key="fill")
        return policy


class PreprocessConfig(Config):
    """conf/preprocess/."""

    missing: MissingConfig
    #: Tukey's fences: amounts outside [Q1 - k*IQR, Q3 + k*IQR] are flagged (3 = "far out")
    outlier_iqr_factor: float = Field(gt=0)


@dataclass(frozen=True)
class PreprocessResult:
    clean: pd.DataFrame
    quarantined: pd.DataFrame
    summary: dict[str, float]
    amount_outliers: pd.DataFrame


def check_input(tx: pd.DataFrame) -> None:
    """DataError unless ``tx`` has the contract's columns (and any coordinate columns) in the
    contract's dtypes (what ingest writes)."""
    require_columns(tx, TRANSACTION_COLUMNS, "the input (ingest's output)")
    columns = [*TRANSACTION_COLUMNS, *(c for c in CARRIED_COLUMNS if c in tx.columns)]
    wrong = {c: str(tx[c].dtype) for c in columns if str(tx[c].dtype) not in INPUT_DTYPES[c]}
    if wrong:
        expected = {c: " or ".join(INPUT_DTYPES[c]) for c in wrong}
        raise DataError(
            f"input column dtypes {wrong} break the contract (expected {expected}); preprocess reads what ingest writes"
        )


def _first_rows(mask: np.ndarray, limit: int = 5) -> list[int]:
    return np.flatnonzero(mask)[:limit].tolist()


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Contract dtypes once nulls are gone (ids keep theirs: int64 or text); the label stays
    nullable only if unlabelled rows remain."""
    label = "Int8" if frame[TX_FRAUD].isna().any() else "int8"
    others = {c: t for c, t in TRANSACTION_DTYPES.items() if c not in ID_COLUMNS}
    return frame.astype({**others, TX_FRAUD: label})


def _amount_fences(amount: np.ndarray, factor: float) -> tuple[float, float]:
    if amount.size == 0:
        return float("nan"), float("nan")
    q1, q3 = np.quantile(amount, [0.25, 0.75])
    return float(q1 - factor * (q3 - q1)), float(q3 + factor * (q3 - q1))


def preprocess(tx: pd.DataFrame, config: PreprocessConfig) -> PreprocessResult:
    """Apply the missing-value policy, order by time, flag amount outliers.

    A row with nulls under ``drop`` is quarantined with the reason of its first such column, in
    contract order. Only the contract's columns are carried: anything else (such as the
    simulator's ``tx_fraud_scenario``, which is derived from the label, or the service's answers)
    would otherwise flow into the features. The coordinate columns and the label arrival times
    (``CARRIED_COLUMNS``), when present, are carried unchanged.
    """
    check_input(tx)
    source = tx.reset_index(drop=True)
    frame = source[list(TRANSACTION_COLUMNS)]
    coordinates = source[[c for c in CARRIED_COLUMNS if c in source.columns]]
    n = len(frame)
    reason = pd.Series(None, index=frame.index, dtype="object")
    columns: dict[str, pd.Series] = {}
    filled = 0
    for column in TRANSACTION_COLUMNS:
        values = frame[column]
        missing = values.isna().to_numpy()
        policy: MissingPolicy = getattr(config.missing, column)
        if missing.any():
            if policy.action == "error":
                raise DataError(
                    f"column {column!r}: {int(missing.sum())} missing value(s), first at input rows "
                    f"{_first_rows(missing)}; policy preprocess.missing.{column} = error"
                )
            if policy.action == "fill":  # an id column with nulls is text: the fill is the id's key
                values = values.fillna(canonical_id(policy.value) if column in ID_COLUMNS else policy.value)
                filled += int(missing.sum())
            elif policy.action == "drop":
                reason = reason.mask(reason.isna().to_numpy() & missing, f"missing_{column}")
        columns[column] = values
    table = pd.DataFrame(columns)
    if len(coordinates.columns):
        table = pd.concat([table, coordinates], axis=1)

    bad = reason.notna().to_numpy()
    kept = table[~bad]
    order = np.lexsort((id_codes(kept[TRANSACTION_ID], TRANSACTION_ID, ordered=True), kept[TX_DATETIME].to_numpy()))
    clean = _typed(kept.iloc[order].reset_index(drop=True))
    quarantined = quarantine_table(source, frame, reason, np.flatnonzero(bad))

    lower, upper = _amount_fences(clean[TX_AMOUNT].to_numpy(), config.outlier_iqr_factor)
    amount = clean[TX_AMOUNT]
    outliers = clean.loc[(amount < lower) | (amount > upper), list(OUTLIER_COLUMNS)].reset_index(drop=True)

    counts = quarantined["reason"].value_counts()
    summary: dict[str, float] = {
        "rows_in": n,
        "rows_out": len(clean),
        "rows_quarantined": len(quarantined),
        **{f"quarantined_{r}": int(counts.get(r, 0)) for r in REASONS},
        "values_filled": filled,
        "amount_outliers_flagged": len(outliers),
        "amount_outlier_lower": lower,
        "amount_outlier_upper": upper,
    }
    if n != len(clean) + len(quarantined):
        raise AssertionError(f"row accounting broken: {summary}")
    return PreprocessResult(clean=clean, quarantined=quarantined, summary=summary, amount_outliers=outliers)
