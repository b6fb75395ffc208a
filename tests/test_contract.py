"""fraudpipe.contract: one set of names and dtypes, and time in one unit."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudpipe.contract import (
    KEY_COLUMNS,
    TRANSACTION_COLUMNS,
    TRANSACTION_DTYPES,
    empty_transactions,
    epoch_seconds,
    feature_columns,
)


def test_epoch_seconds_is_the_same_whatever_the_resolution():
    stamps = ["1970-01-01 00:00:00.000", "2018-04-01 00:00:01.000", "2018-04-01 23:59:59.999"]
    expected = np.array([0, 1522540801, 1522627199], dtype=np.int64)  # whole seconds, truncated
    for unit in ("s", "ms", "us", "ns"):
        values = pd.Series(pd.to_datetime(stamps)).astype(f"datetime64[{unit}]")
        np.testing.assert_array_equal(epoch_seconds(values), expected)
    np.testing.assert_array_equal(epoch_seconds(pd.DatetimeIndex(stamps)), expected)


def test_empty_transactions_has_the_contract_columns_and_dtypes():
    frame = empty_transactions()
    assert tuple(frame.columns) == TRANSACTION_COLUMNS
    assert {c: str(t) for c, t in frame.dtypes.items()} == TRANSACTION_DTYPES
    assert len(frame) == 0


def test_feature_columns_are_every_column_but_the_keys_in_table_order():
    table = pd.DataFrame(columns=["transaction_id", "tx_amount", "tx_datetime", "b", "customer_id", "a", "terminal_id", "tx_fraud"])
    assert feature_columns(table) == ["tx_amount", "b", "a"]
    assert "tx_amount" not in KEY_COLUMNS
