"""fraudpipe.contract: one set of names and dtypes, and time in one unit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudpipe.contract import (
    COORDINATE_COLUMNS,
    KEY_COLUMNS,
    TRANSACTION_COLUMNS,
    TRANSACTION_DTYPES,
    canonical_id,
    canonical_ids,
    empty_transactions,
    epoch_seconds,
    feature_columns,
    id_array,
    id_codes,
    strip_ids,
)
from fraudpipe.errors import DataError


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
    table = pd.DataFrame(
        columns=["transaction_id", "tx_amount", "tx_datetime", "b", "customer_id", "a", "terminal_id", "tx_fraud"]
    )
    assert feature_columns(table) == ["tx_amount", "b", "a"]
    assert "tx_amount" not in KEY_COLUMNS


def test_coordinates_are_never_feature_columns():
    table = pd.DataFrame(
        columns=["transaction_id", "customer_x", "tx_amount", "terminal_y", "terminal_x", "customer_y", "a"]
    )
    assert feature_columns(table) == ["tx_amount", "a"]
    assert not set(COORDINATE_COLUMNS) & set(KEY_COLUMNS)  # not keys either: feature tables do not carry them


ODD = ["7", "007", "-0", "+7", " 7", "1_000", "5e3", "١٢", "9223372036854775808", "a,b", "é", ""]


def test_id_array_is_int64_only_when_every_key_is_a_canonical_integer():
    assert id_array([]).dtype == np.int64
    both = id_array(["7", "-12", "0", str(-(2**63)), str(2**63 - 1)])
    assert both.dtype == np.int64 and both.tolist() == [7, -12, 0, -(2**63), 2**63 - 1]
    for odd in ODD[1:]:
        column = id_array(["7", odd])
        assert str(column.dtype) == "str" and list(column) == ["7", odd], odd  # the text, never a number


def test_canonical_ids_is_canonical_id_of_each_value():
    ints = pd.Series([7, -3, 0, 2**63 - 1], dtype="int64")
    text = pd.Series(ODD, dtype="str")
    assert canonical_ids(ints, "c").tolist() == [canonical_id(v) for v in ints] == ["7", "-3", "0", str(2**63 - 1)]
    assert canonical_ids(text, "c").tolist() == [canonical_id(v) for v in ODD] == [v.strip() for v in ODD]
    assert id_array(canonical_ids(ints, "c")).tolist() == ints.tolist()  # the keys give back the column


def test_id_codes_group_equal_ids_and_order_text_by_code_point():
    text = pd.Series(["b", "7", "007", "b", "a,b", "é", "Z", "7"], dtype="str")
    codes = id_codes(text, "c")
    assert codes.dtype == np.int64 and codes.tolist() == [0, 1, 2, 0, 3, 4, 5, 1]
    ordered = id_codes(text, "c", ordered=True)
    assert [v for _, v in sorted(zip(ordered, text))] == sorted(text)  # sorting by the codes sorts the text
    ints = pd.Series([5, -1, 5], dtype="int64")
    assert id_codes(ints, "c").tolist() == id_codes(ints, "c", ordered=True).tolist() == [5, -1, 5]
    for bad in (pd.Series([7, "7"], dtype=object), pd.Series([1.0]), pd.Series([True])):
        with pytest.raises(DataError, match=r"column 'c' has dtype .*: ids are int64 or str"):
            id_codes(bad, "c")


def test_surrounding_whitespace_is_not_part_of_an_id():
    assert canonical_id(" 123 ") == canonical_id(123) == "123"
    assert canonical_id("\tcard-7 ") == "card-7"
    ids, changed = strip_ids(pd.Series([" 1", "2", None, "3\n", "a b"], dtype="str"))
    assert ids.tolist()[:2] == ["1", "2"] and ids.tolist()[3:] == ["3", "a b"] and changed == 2
    untouched, none = strip_ids(pd.Series([1, 2], dtype="int64"))
    assert untouched.tolist() == [1, 2] and none == 0
