"""conform.to_contract: mapping source columns onto the contract and parsing values cell by cell."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from fraudpipe.contract import COORDINATE_COLUMNS, TRANSACTION_COLUMNS, TRANSACTION_DTYPES, canonical_id
from fraudpipe.data.conform import NumberFormat, dates_only, source_columns, to_contract
from fraudpipe.errors import DataError

ID = "an identifier (an integer or text)"
ISO = "an ISO 8601 datetime (data.datetime_format is null)"
DATE_ONLY = (
    "a date without a time of day "
    "(if the source holds dates only, set data.datetime_format to a date format such as '%Y-%m-%d')"
)
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
    assert out.reasons.tolist()[2:] == [
        f"customer_id: 9007199254740994.0 is not {ID}",
        f"customer_id: 3.5 is not {ID}",
        "",
    ]
    assert out.counts == {f"customer_id is not {ID}": 2}


def test_large_integer_ids_stay_exact_next_to_missing_cells_and_as_text() -> None:
    raw = text(3)
    raw["TX_ID"] = ["9007199254740993", "", "-9223372036854775808"]
    out = to_contract(raw, MAPPING, None)
    assert out.frame["transaction_id"].tolist() == [9007199254740993, pd.NA, -9223372036854775808]
    assert (out.reasons == "").all()  # a missing id is the suite's not-null rule, not a parse failure
    raw["TX_ID"] = ["9007199254740993", "x", "9223372036854775808"]  # text, and an integer beyond int64
    out = to_contract(raw, MAPPING, None)
    assert out.frame["transaction_id"].tolist() == ["9007199254740993", "x", "9223372036854775808"]


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("AMOUNT", "abc", "tx_amount: 'abc' is not a number"),
        ("WHEN", "31/02/2018", f"tx_datetime: '31/02/2018' is not {ISO}"),
        ("WHEN", "2018-04-01", f"tx_datetime: '2018-04-01' is {DATE_ONLY}"),
        ("IS_FRAUD", "yes", "tx_fraud: 'yes' is not a 0/1 label"),
        ("IS_FRAUD", "300", "tx_fraud: '300' is not a 0/1 label"),
    ],
    ids=["amount-text", "date-text", "date-only", "label-text", "label-overflow"],
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
    assert out.reasons[1] == f"tx_datetime: 'yesterday' is not {ISO}; tx_amount: '1,5' is not a number"


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
    assert out.reasons.tolist() == ["", "", "", f"customer_id: 4.5 is not {ID}", ""]


def test_datetime_format_is_used_when_given() -> None:
    raw = text(2)
    raw["WHEN"] = ["01/04/2018 10:30", "2018-04-01 10:30"]
    out = to_contract(raw, MAPPING, "%d/%m/%Y %H:%M")
    assert out.frame.at[0, "tx_datetime"] == pd.Timestamp("2018-04-01 10:30")
    assert (
        out.reasons[1] == "tx_datetime: '2018-04-01 10:30' is not a datetime in data.datetime_format '%d/%m/%Y %H:%M'"
    )


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


# --- identifiers: opaque keys -----------------------------------------------------------------


def ids_of(values: list, column: str = "CUSTOMER") -> pd.Series:
    raw = text(len(values))
    raw[column] = pd.Series(values, dtype="str") if all(v is None or isinstance(v, str) for v in values) else values
    return to_contract(raw, MAPPING, None).frame[{v: k for k, v in MAPPING.items()}[column]]


def test_leading_zeros_make_another_card_and_the_column_text() -> None:
    out = ids_of(["007", "7", "7", "0", "-3"])
    assert str(out.dtype) == "str"
    assert out.tolist() == ["007", "7", "7", "0", "-3"]
    assert out.nunique() == 4 and out.iloc[0] != out.iloc[1]  # "007" and "7" are two cards


@pytest.mark.parametrize("value", ["5e3", "1.0", "+7", "-0", "0x1F", "1_000", "7 7"])
def test_text_that_looks_numeric_is_never_parsed_as_a_number(value: str) -> None:
    out = ids_of(["1", value, "3", "4", "5"])
    assert str(out.dtype) == "str" and out.tolist() == ["1", value, "3", "4", "5"]


def test_surrounding_whitespace_is_not_part_of_an_id() -> None:
    out = ids_of(["1", " 7", "3\t", "4", "5"])
    assert str(out.dtype) == "int64" and out.tolist() == [1, 7, 3, 4, 5]
    assert ids_of(["card-1 ", "card-1", "a", "b", "c"]).nunique() == 4


def test_canonical_integers_are_int64_and_give_back_their_text() -> None:
    values = ["0", "-12", "9223372036854775807", "7", "123"]
    out = ids_of(values)
    assert out.dtype == np.int64 and [str(v) for v in out] == values


def test_hashes_names_and_uuids_are_kept_exactly() -> None:
    values = [
        "9f86d081884c7d65",
        "Kirlin and Sons, Inc.",
        "4f1c8e1a-7c2b-4c55-9d3e-0b3f5a6c7d8e",
        "ÉPICERIE \u00e9",
        "9f86d081884c7d65",
    ]
    out = ids_of(values, "TERMINAL")
    assert out.tolist() == values and str(out.dtype) == "str"


def test_blank_text_ids_stay_missing_in_a_text_column() -> None:
    out = ids_of(["a", "", "  ", None, "b"])
    assert out.isna().tolist() == [False, True, True, True, False]


def test_json_numbers_and_strings_are_one_key_when_the_text_is_canonical() -> None:
    """An API may send 7 and "7" for the same card: one key, as `contract.canonical_id` says."""
    raw = native().astype({"customer_id": object})
    raw["customer_id"] = [7, "7", 8.0, 9, "10"]
    out = to_contract(raw, None, None)
    assert out.frame["customer_id"].dtype == np.int64 and out.frame["customer_id"].tolist() == [7, 7, 8, 9, 10]
    assert [canonical_id(v) for v in raw["customer_id"][:2]] == ["7", "7"]
    raw["customer_id"] = [7, "7", "007", 2**64, "x"]  # one text id: the whole column is text
    out = to_contract(raw, None, None)
    assert out.frame["customer_id"].tolist() == ["7", "7", "007", str(2**64), "x"]


def test_json_values_that_are_no_ids_are_bad_cells() -> None:
    raw = native().astype({"terminal_id": object})
    raw["terminal_id"] = [1, True, {"id": 3}, 4.5, 5]
    out = to_contract(raw, None, None)
    assert out.reasons.tolist() == [
        "",
        f"terminal_id: True is not {ID}",
        f"terminal_id: {{'id': 3}} is not {ID}",
        f"terminal_id: 4.5 is not {ID}",
        "",
    ]


def test_unsigned_integers_beyond_int64_are_text() -> None:
    raw = native()
    raw["terminal_id"] = np.array([1, 2, 3, 4, 2**63 + 1], dtype=np.uint64)
    out = to_contract(raw, None, None).frame["terminal_id"]
    assert out.tolist() == ["1", "2", "3", "4", str(2**63 + 1)]


# --- numbers in the file's format -------------------------------------------------------------


def test_decimal_and_thousands_apply_to_amounts_and_coordinates_never_to_ids() -> None:
    raw = text(4).assign(
        AMOUNT=["1.020", "1.020,5", "12", "1.02"],
        TX_ID=["1.020", "2", "3", "4"],
        cx=["4,5", "-0,25", "1", "2"],
        cy=["1", "2", "3", "4"],
        tx=["1", "2", "3", "4"],
        ty=["1", "2", "3", "4"],
    )
    mapping = MAPPING | {"customer_x": "cx", "customer_y": "cy", "terminal_x": "tx", "terminal_y": "ty"}
    out = to_contract(raw, mapping, None, NumberFormat(decimal=",", thousands="."))
    assert out.frame["tx_amount"].tolist()[:3] == [1020.0, 1020.5, 12.0]
    assert out.reasons.tolist() == ["", "", "", "tx_amount: '1.02' is not a number"]  # not grouped by threes
    assert out.frame["transaction_id"].tolist() == ["1.020", "2", "3", "4"]
    assert out.frame["customer_x"].tolist() == [4.5, -0.25, 1.0, 2.0]


def test_without_a_number_format_a_thousands_separator_is_a_bad_cell() -> None:
    raw = text(2).assign(AMOUNT=["1,020.50", "3.5"])
    assert to_contract(raw, MAPPING, None).reasons.tolist() == ["tx_amount: '1,020.50' is not a number", ""]
    out = to_contract(raw, MAPPING, None, NumberFormat(thousands=","))
    assert out.frame["tx_amount"].tolist() == [1020.5, 3.5]


# --- dates without a time ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        (None, False),
        ("ISO8601", False),
        ("mixed", False),
        ("%Y-%m-%d", True),
        ("%d/%m/%Y", True),
        ("%Y-%m-%d %H:%M", False),
        ("%d.%m.%Y %I%p", False),
        ("%Y%m%dT%H%M%S", False),
    ],
)
def test_a_format_without_time_fields_means_dates_only(fmt, expected) -> None:
    assert dates_only(fmt) is expected


def test_a_date_without_a_time_is_quarantined_unless_dates_are_expected() -> None:
    raw = text(3)
    raw["WHEN"] = ["2019-01-01", "2019-01-01T00:00:00", "20190101T1030"]
    out = to_contract(raw, MAPPING, None)
    assert out.reasons.tolist() == [f"tx_datetime: '2019-01-01' is {DATE_ONLY}", "", ""]
    assert out.counts == {
        "tx_datetime is a date without a time of day "
        "(data.datetime_format: '%Y-%m-%d' if the source holds dates only)": 1
    }
    raw["WHEN"] = ["2019-01-01", "2019-01-02", "2019-01-03"]
    out = to_contract(raw, MAPPING, "%Y-%m-%d")
    assert (out.reasons == "").all() and out.frame["tx_datetime"].iloc[0] == pd.Timestamp("2019-01-01")


def test_native_date_values_are_dates_without_a_time_too() -> None:
    raw = native(3).astype({"tx_datetime": object})
    raw["tx_datetime"] = [dt.date(2018, 4, 1), dt.datetime(2018, 4, 1, 10, 30), None]
    out = to_contract(raw, None, None)
    assert out.reasons.tolist() == [f"tx_datetime: 2018-04-01 is {DATE_ONLY}", "", ""]
    assert to_contract(raw, None, "%Y-%m-%d").reasons.iloc[0] == ""


# --- coordinates ------------------------------------------------------------------------------


def test_coordinates_follow_the_contract_as_float64_when_the_source_has_them() -> None:
    raw = native().assign(customer_x=1.5, customer_y="2.5", terminal_x=3, terminal_y=4.0)
    out = to_contract(raw, None, None).frame
    assert list(out.columns) == [*TRANSACTION_COLUMNS, *COORDINATE_COLUMNS]
    assert out[list(COORDINATE_COLUMNS)].dtypes.astype(str).tolist() == ["float64"] * 4
    assert list(to_contract(native(), None, None).frame.columns) == list(TRANSACTION_COLUMNS)  # none: none


def test_some_coordinates_without_the_others_are_an_error() -> None:
    with pytest.raises(
        DataError, match=r"coordinate column\(s\) \['customer_x', 'customer_y'\] but not \['terminal_x', 'terminal_y'\]"
    ):
        to_contract(native().assign(customer_x=1.0, customer_y=2.0), None, None)


def test_mapped_coordinates_must_exist() -> None:
    mapping = {"customer_x": "lon", "customer_y": "lat", "terminal_x": "merch_long", "terminal_y": "merch_lat"}
    with pytest.raises(DataError, match=r"'terminal_x' \(mapped from source column 'merch_long'\)"):
        to_contract(native().assign(lon=1.0, lat=2.0, merch_lat=3.0), mapping, None)


def test_categorical_columns_are_parsed_as_their_values() -> None:
    """A Parquet file written from pandas categories reads back as categories."""
    raw = native(4).assign(
        customer_id=pd.Categorical(["007", "7", "007", None]), terminal_id=pd.Categorical([3, 1, 3, 2])
    )
    out = to_contract(raw, None, None).frame
    assert out["customer_id"].tolist()[:3] == ["007", "7", "007"] and pd.isna(out["customer_id"].iloc[3])
    assert out["terminal_id"].dtype == np.int64 and out["terminal_id"].tolist() == [3, 1, 3, 2]
