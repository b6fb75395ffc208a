"""conform.to_contract: mapping source columns onto the contract and parsing values cell by cell."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudpipe.conform import source_columns, to_contract
from fraudpipe.errors import DataError
from fraudpipe.contract import TRANSACTION_COLUMNS, TRANSACTION_DTYPES

MAPPING = {
    "transaction_id": "TX_ID",
    "tx_datetime": "WHEN",
    "customer_id": "CUSTOMER",
    "terminal_id": "TERMINAL",
    "tx_amount": "AMOUNT",
    "tx_fraud": "IS_FRAUD",
}


def native(n: int = 5) -> pd.DataFrame:
    """A small batch already in the contract (what the simulator or a typed Parquet file gives)."""
    return pd.DataFrame(
        {
            "transaction_id": np.arange(n, dtype=np.int64),
            "tx_datetime": pd.date_range("2018-04-01", periods=n, freq="h").astype("datetime64[us]"),
            "customer_id": np.arange(n, dtype=np.int64) % 3,
            "terminal_id": np.arange(n, dtype=np.int64) % 4,
            "tx_amount": np.linspace(1.0, 50.0, n),
            "tx_fraud": np.zeros(n, dtype=np.int8),
        }
    )


def text(n: int = 5) -> pd.DataFrame:
    """The same batch as a CSV source gives it: every column a string, the source's own names."""
    return native(n).astype("str").rename(columns=MAPPING)


def test_native_batch_passes_through_with_contract_dtypes() -> None:
    raw = native()
    out = to_contract(raw, {}, None)
    assert list(out.frame.columns) == list(TRANSACTION_COLUMNS)
    assert out.frame.dtypes.astype(str).to_dict() == TRANSACTION_DTYPES
    pd.testing.assert_frame_equal(out.frame, raw)
    assert (out.reasons == "").all() and len(out.reasons) == len(raw)


def test_text_batch_with_own_column_names_is_mapped_and_parsed() -> None:
    raw = text().assign(EXTRA="dropped")
    out = to_contract(raw, MAPPING, None)
    pd.testing.assert_frame_equal(out.frame, native())
    assert (out.reasons == "").all()


def test_identity_mapping_fills_in_columns_the_mapping_leaves_out() -> None:
    assert source_columns({"tx_amount": "AMOUNT"}) == {
        **{c: c for c in TRANSACTION_COLUMNS},
        "tx_amount": "AMOUNT",
    }
    assert source_columns(None) == {c: c for c in TRANSACTION_COLUMNS}


def test_float_ids_are_exact_integers_up_to_2_53_only() -> None:
    """Beyond 2**53 a float no longer tells neighbouring integers apart: such an id is refused."""
    raw = native()
    raw["customer_id"] = np.array([2.0**53, -(2.0**53), 2.0**53 + 2, 3.5, 7.0])
    out = to_contract(raw, None, None)
    assert out.frame["customer_id"].tolist()[:2] == [2**53, -(2**53)]
    assert out.reasons.tolist()[2:] == ["customer_id: 9007199254740994.0 is not an integer", "customer_id: 3.5 is not an integer", ""]


def test_large_integer_ids_stay_exact_even_next_to_bad_cells() -> None:
    raw = text(3)
    raw["TX_ID"] = ["9007199254740993", "x", "-9223372036854775808"]
    out = to_contract(raw, MAPPING, None)
    assert out.frame["transaction_id"].tolist() == [9007199254740993, pd.NA, -9223372036854775808]
    assert out.reasons.tolist() == ["", "transaction_id: 'x' is not an integer", ""]


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("TX_ID", "12a", "transaction_id: '12a' is not an integer"),
        ("CUSTOMER", "1.5", "customer_id: '1.5' is not an integer"),
        ("TERMINAL", "99999999999999999999", "terminal_id: '99999999999999999999' is not an integer"),
        ("AMOUNT", "abc", "tx_amount: 'abc' is not a number"),
        ("WHEN", "31/02/2018", "tx_datetime: '31/02/2018' is not an ISO 8601 datetime"),
        ("IS_FRAUD", "yes", "tx_fraud: 'yes' is not a 0/1 label"),
        ("IS_FRAUD", "300", "tx_fraud: '300' is not a 0/1 label"),
    ],
    ids=["id-text", "id-fraction", "id-overflow", "amount-text", "date-text", "label-text", "label-overflow"],
)
def test_a_bad_cell_becomes_missing_with_a_reason(column: str, value: str, reason: str) -> None:
    raw = text()
    raw.loc[2, column] = value
    out = to_contract(raw, MAPPING, None)
    contract = {v: k for k, v in MAPPING.items()}[column]
    assert out.reasons.tolist() == ["", "", reason, "", ""]
    assert pd.isna(out.frame.at[2, contract])
    assert out.frame[contract].notna().sum() == 4  # the other cells parsed


def test_several_bad_cells_in_one_row_are_joined() -> None:
    raw = text()
    raw.loc[1, ["AMOUNT", "WHEN"]] = ["1,5", "yesterday"]
    out = to_contract(raw, MAPPING, None)
    assert out.reasons[1] == "tx_datetime: 'yesterday' is not an ISO 8601 datetime; tx_amount: '1,5' is not a number"


def test_blank_text_cells_are_missing_values_not_malformed_ones() -> None:
    raw = text()
    raw.loc[0, "CUSTOMER"] = "  "
    raw.loc[1, "AMOUNT"] = ""
    out = to_contract(raw, MAPPING, None)
    assert (out.reasons == "").all()
    assert pd.isna(out.frame.at[0, "customer_id"]) and np.isnan(out.frame.at[1, "tx_amount"])
    assert str(out.frame["customer_id"].dtype) == "Int64"  # nullable while a value is missing


def test_a_column_where_nothing_parses_is_passed_on_as_the_wrong_type() -> None:
    raw = text()
    raw["AMOUNT"] = ["a", "b", "c", "d", "e"]
    out = to_contract(raw, MAPPING, None)
    assert out.frame["tx_amount"].tolist() == ["a", "b", "c", "d", "e"]  # for the type expectation
    assert (out.reasons == "").all()


def test_datetimes_given_as_numbers_are_the_wrong_type() -> None:
    raw = native()
    raw["tx_datetime"] = np.arange(5) * 3600 + 1_522_540_800
    out = to_contract(raw, None, None)
    assert out.frame["tx_datetime"].dtype == np.int64


def test_missing_required_column_names_contract_and_source_columns() -> None:
    raw = text().drop(columns=["AMOUNT"])
    with pytest.raises(DataError) as err:
        to_contract(raw, MAPPING, None)
    message = str(err.value)
    assert "'tx_amount' (mapped from source column 'AMOUNT')" in message
    assert "['TX_ID', 'WHEN', 'CUSTOMER', 'TERMINAL', 'IS_FRAUD']" in message
    assert "expect_column_to_exist" in message


def test_a_mapped_column_that_appears_twice_is_ambiguous() -> None:
    raw = native()
    raw.columns = ["transaction_id", "tx_datetime", "customer_id", "tx_amount", "tx_amount", "tx_fraud"]
    with pytest.raises(DataError, match=r"more than one column named \['tx_amount'\]"):
        to_contract(raw, {"terminal_id": "tx_datetime"}, None)


def test_labels_are_optional_for_live_data() -> None:
    out = to_contract(native().drop(columns=["tx_fraud"]), None, None)
    assert str(out.frame["tx_fraud"].dtype) == "Int8" and out.frame["tx_fraud"].isna().all()


def test_partly_labelled_batch_keeps_nullable_labels() -> None:
    raw = text()
    raw.loc[3, "IS_FRAUD"] = ""
    out = to_contract(raw, MAPPING, None)
    assert str(out.frame["tx_fraud"].dtype) == "Int8"
    assert out.frame["tx_fraud"].isna().tolist() == [False, False, False, True, False]


def test_boolean_labels_become_int8() -> None:
    raw = native().assign(tx_fraud=[True, False, False, True, False])
    out = to_contract(raw, None, None)
    assert out.frame["tx_fraud"].dtype == np.int8 and out.frame["tx_fraud"].tolist() == [1, 0, 0, 1, 0]


def test_label_two_is_left_to_the_validation_suite() -> None:
    raw = text()
    raw.loc[0, "IS_FRAUD"] = "2"
    out = to_contract(raw, MAPPING, None)
    assert out.frame.at[0, "tx_fraud"] == 2 and out.reasons[0] == ""


def test_integral_float_ids_are_accepted_and_fractions_are_not() -> None:
    raw = native().assign(customer_id=[1.0, np.nan, 3.0, 4.5, 5.0])  # what SQL NULLs turn ids into
    out = to_contract(raw, None, None)
    assert out.frame["customer_id"].tolist() == [1, pd.NA, 3, pd.NA, 5]
    assert out.reasons.tolist() == ["", "", "", "customer_id: 4.5 is not an integer", ""]


def test_datetime_format_is_used_when_given() -> None:
    raw = text(2)
    raw["WHEN"] = ["01/04/2018 10:30", "2018-04-01 10:30"]
    out = to_contract(raw, MAPPING, "%d/%m/%Y %H:%M")
    assert out.frame.at[0, "tx_datetime"] == pd.Timestamp("2018-04-01 10:30")
    assert out.reasons[1] == "tx_datetime: '2018-04-01 10:30' is not a datetime in format '%d/%m/%Y %H:%M'"


def test_timezones_are_converted_to_naive_utc() -> None:
    raw = text(2)
    raw["WHEN"] = ["2018-04-01T12:00:00+02:00", "2018-04-01T12:00:00Z"]
    out = to_contract(raw, MAPPING, None)
    assert out.frame["tx_datetime"].tolist() == [pd.Timestamp("2018-04-01 10:00"), pd.Timestamp("2018-04-01 12:00")]
    aware = native(2).assign(tx_datetime=pd.date_range("2018-04-01 12:00", periods=2, freq="h", tz="Europe/Brussels"))
    out = to_contract(aware, None, None)
    assert out.frame["tx_datetime"].dtype == "datetime64[us]"
    assert out.frame.at[0, "tx_datetime"] == pd.Timestamp("2018-04-01 10:00")


def test_rows_are_labelled_by_position_in_the_raw_batch() -> None:
    raw = text().set_axis(list("vwxyz"))
    raw.loc["x", "AMOUNT"] = "??"
    out = to_contract(raw, MAPPING, None)
    assert out.frame.index.equals(pd.RangeIndex(5)) and out.reasons.index.equals(pd.RangeIndex(5))
    assert out.reasons[2] == "tx_amount: '??' is not a number"
