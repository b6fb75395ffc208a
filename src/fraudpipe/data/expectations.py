"""The two Great Expectations suites every batch passes at ingestion, and their thresholds.

* ``transactions.rows`` on every row: required columns and their types (batch-level; an id
  column is int64 or text, see `contract.ID_COLUMNS`), then
  per-row checks whose failing rows are quarantined — ids not null, transaction_id unique,
  tx_amount in [0, max_amount], tx_datetime not null and in [min_datetime, max_datetime],
  tx_fraud in {0, 1}.
* ``transactions.batch`` on the rows without a row-level failure: row count >= min_rows and,
  when the batch carries labels, fraud rate (mean of tx_fraud) in [min_fraud_rate,
  max_fraud_rate].

The datetime range is checked on whole epoch seconds (helper column ``tx_datetime_epoch_s``):
GX compares datetimes row by row in Python (~9 s on 1.75 M rows), integers vectorised.

``great_expectations`` is imported inside functions only: importing it costs ~4 s, which the
online scoring path must never pay.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import AfterValidator, Field, model_validator

from fraudpipe.config import Config, IsoText, rule_error
from fraudpipe.contract import (
    COORDINATE_COLUMNS,
    CUSTOMER_ID,
    ID_COLUMNS,
    REQUIRED_COLUMNS,
    TERMINAL_ID,
    TRANSACTION_ID,
    TX_AMOUNT,
    TX_DATETIME,
    TX_FRAUD,
    epoch_seconds,
)
from fraudpipe.startup import import_great_expectations

EPOCH_COLUMN = "tx_datetime_epoch_s"
ROW_SUITE = "transactions.rows"
BATCH_SUITE = "transactions.batch"

#: GX type names per contract column. GX compares the dtype's scalar type, so nullable Int64/Int8
#: pass as int64/int8 and any datetime64 resolution passes as datetime64. An id column may be
#: int64 or text (`_gx_type`); the optional coordinates are float64.
_GX_TYPES: dict[str, str] = {
    TRANSACTION_ID: "int64",
    TX_DATETIME: "datetime64",
    CUSTOMER_ID: "int64",
    TERMINAL_ID: "int64",
    TX_AMOUNT: "float64",
    TX_FRAUD: "int8",
    **dict.fromkeys(COORDINATE_COLUMNS, "float64"),
}


def _iso_datetime(value: str) -> str:
    _epoch(value)
    return value


IsoDatetime = Annotated[IsoText, AfterValidator(_iso_datetime)]
Rate = Annotated[float, Field(ge=0, le=1)]


class ValidationConfig(Config):
    """conf/validation/: the suites' thresholds; datetimes as ISO 8601 text, naive UTC like the contract."""

    max_amount: float = Field(ge=0)
    min_datetime: IsoDatetime
    max_datetime: IsoDatetime
    min_rows: int = Field(ge=0)
    min_fraud_rate: Rate
    max_fraud_rate: Rate
    #: above this share of quarantined rows the batch stops (`fraudpipe.data.ingest`)
    max_quarantine_share: Rate

    @model_validator(mode="after")
    def _ranges_are_ordered(self) -> ValidationConfig:
        if self.min_epoch_s > self.max_epoch_s:
            raise rule_error(
                f"must not be after max_datetime ({self.max_datetime})", self.min_datetime, key="min_datetime"
            )
        if self.min_fraud_rate > self.max_fraud_rate:
            raise rule_error(
                f"must be <= max_fraud_rate ({self.max_fraud_rate})", self.min_fraud_rate, key="min_fraud_rate"
            )
        return self

    @property
    def min_epoch_s(self) -> int:
        return _epoch(self.min_datetime)

    @property
    def max_epoch_s(self) -> int:
        return _epoch(self.max_datetime)


def row_expectations(frame: pd.DataFrame, config: ValidationConfig) -> list[Any]:
    gxe = import_great_expectations().expectations

    exps: list[Any] = [gxe.ExpectColumnToExist(column=c) for c in REQUIRED_COLUMNS]
    exps += [
        gxe.ExpectColumnValuesToBeOfType(column=c, type_=_gx_type(frame, c)) for c in _GX_TYPES if c in frame.columns
    ]
    exps += [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in (TRANSACTION_ID, CUSTOMER_ID, TERMINAL_ID)]
    exps += [
        gxe.ExpectColumnValuesToBeUnique(column=TRANSACTION_ID),
        gxe.ExpectColumnValuesToBeBetween(column=TX_AMOUNT, min_value=0.0, max_value=config.max_amount),
        gxe.ExpectColumnValuesToNotBeNull(column=TX_DATETIME),
    ]
    if EPOCH_COLUMN in frame.columns:
        exps.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=EPOCH_COLUMN,
                min_value=config.min_epoch_s,
                max_value=config.max_epoch_s,
                notes=f"tx_datetime in [{config.min_datetime}, {config.max_datetime}], as whole seconds since 1970",
            )
        )
    if TX_FRAUD in frame.columns:
        exps.append(gxe.ExpectColumnValuesToBeInSet(column=TX_FRAUD, value_set=[0, 1]))
    return exps


def _gx_type(frame: pd.DataFrame, column: str) -> str:
    """The type an id column is expected to have: text when conform made it text, else int64."""
    if (
        column in ID_COLUMNS
        and pd.api.types.is_string_dtype(frame[column])
        and not pd.api.types.is_object_dtype(frame[column])
    ):
        return "str"
    return _GX_TYPES[column]


def batch_expectations(kept: pd.DataFrame, config: ValidationConfig) -> list[Any]:
    gxe = import_great_expectations().expectations

    exps: list[Any] = [gxe.ExpectTableRowCountToBeBetween(min_value=config.min_rows)]
    if TX_FRAUD in kept.columns and kept[TX_FRAUD].notna().any():  # unlabelled live data has no rate
        exps.append(
            gxe.ExpectColumnMeanToBeBetween(
                column=TX_FRAUD, min_value=config.min_fraud_rate, max_value=config.max_fraud_rate
            )
        )
    return exps


def with_epoch_column(frame: pd.DataFrame) -> pd.DataFrame:
    """Add whole epoch seconds of tx_datetime (NA where missing) when tx_datetime is a datetime."""
    if TX_DATETIME not in frame.columns or not pd.api.types.is_datetime64_dtype(frame[TX_DATETIME]):
        return frame
    values = frame[TX_DATETIME]
    missing = values.isna().to_numpy()
    seconds = np.where(missing, 0, epoch_seconds(values.fillna(pd.Timestamp(0)))).astype(np.int64)
    # Plain int64 when nothing is missing: GX compares a numpy column in one vectorised step, but
    # calls a Python function per value of a nullable one (a third of ingest at 1.75 million rows).
    return frame.assign(**{EPOCH_COLUMN: pd.arrays.IntegerArray(seconds, missing) if missing.any() else seconds})


def _epoch(value: str) -> int:
    """Whole epoch seconds of an ISO 8601 datetime (an aware one via UTC); ValueError if it is none."""
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ValueError("must be an ISO 8601 datetime") from None
    if ts is pd.NaT:
        raise ValueError("must be an ISO 8601 datetime")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(epoch_seconds(np.array([ts.to_datetime64()]))[0])
