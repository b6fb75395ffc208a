"""ingest_batch, and the value-level bad-input corpus: each malformed batch and its expected outcome.

Every case starts from the same valid CSV-like batch (all strings, the source's own column
names) and breaks it in one way. A case ends either in quarantine — the exact reason per source
row, the rest kept, rows in = kept + quarantined — or in a batch-level error whose type and
message (expectation, column, observed value) are checked. File-level cases (empty file,
truncated line, non-UTF-8 bytes, unreachable database, failing API) belong to the sources.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudpipe.contract import QUARANTINE_DTYPES, TRANSACTION_DTYPES
from fraudpipe.errors import BatchValidationError, DataError
from fraudpipe.ingest import ingest_batch
from fraudpipe.validate import ValidationConfig

N = 40
CONFIG = ValidationConfig(
    max_amount=10_000.0,
    min_datetime="2018-01-01T00:00:00",
    max_datetime="2019-12-31T23:59:59",
    min_rows=30,
    min_fraud_rate=0.01,
    max_fraud_rate=0.2,
)
MAPPING = {
    "transaction_id": "TX_ID",
    "tx_datetime": "WHEN",
    "customer_id": "CUSTOMER",
    "terminal_id": "TERMINAL",
    "tx_amount": "AMOUNT",
    "tx_fraud": "IS_FRAUD",
}
AMOUNT_RULE = "expect_column_values_to_be_between(tx_amount, min=0.0, max=10000.0)"
TIME_RULE = "expect_column_values_to_be_between(tx_datetime, min=2018-01-01T00:00:00, max=2019-12-31T23:59:59)"
UNIQUE = "expect_column_values_to_be_unique(transaction_id)"


def csv_batch() -> pd.DataFrame:
    """40 valid transactions as a CSV source gives them; ids 1000.., 4 frauds (rate 0.1)."""
    return pd.DataFrame(
        {
            "TX_ID": [str(1000 + i) for i in range(N)],
            "WHEN": [f"2018-04-{1 + i // 24:02d} {i % 24:02d}:15:00" for i in range(N)],
            "CUSTOMER": [str(i % 7) for i in range(N)],
            "TERMINAL": [str(i % 11) for i in range(N)],
            "AMOUNT": [f"{10 + i * 1.25:.2f}" for i in range(N)],
            "IS_FRAUD": ["1" if i % 10 == 3 else "0" for i in range(N)],
        },
    ).astype("str")


def put(row: int, column: str, value: str | None) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(raw: pd.DataFrame) -> pd.DataFrame:
        raw.loc[row, column] = value
        return raw

    return change


def copy_row(src: int, dst: int, **overrides: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(raw: pd.DataFrame) -> pd.DataFrame:
        raw.loc[dst] = raw.loc[src]
        for column, value in overrides.items():
            raw.loc[dst, column] = value
        return raw

    return change


def whole_column(column: str, values: list) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(raw: pd.DataFrame) -> pd.DataFrame:
        raw[column] = values
        return raw

    return change


@dataclass(frozen=True)
class Quarantined:
    """Expected outcome: these source rows quarantined with exactly these reasons, all others kept."""

    reasons: dict[int, str]


@dataclass(frozen=True)
class Fails:
    """Expected outcome: the batch is refused with this error, whose message contains all of `says`."""

    error: type[Exception]
    says: tuple[str, ...] = field(default_factory=tuple)


CORPUS: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], Quarantined | Fails]] = {
    # --- quarantined rows: the rest of the batch continues ---
    "negative amount": (put(5, "AMOUNT", "-12.50"), Quarantined({5: AMOUNT_RULE})),
    "amount above maximum": (put(6, "AMOUNT", "25000"), Quarantined({6: AMOUNT_RULE})),
    "non-numeric amount": (
        put(7, "AMOUNT", "12,50 EUR"),
        Quarantined({7: "tx_amount: '12,50 EUR' is not a number"}),
    ),
    "null customer_id": (
        put(8, "CUSTOMER", ""),
        Quarantined({8: "expect_column_values_to_not_be_null(customer_id)"}),
    ),
    "null terminal_id": (
        put(9, "TERMINAL", None),
        Quarantined({9: "expect_column_values_to_not_be_null(terminal_id)"}),
    ),
    "null transaction_id": (
        put(10, "TX_ID", ""),
        Quarantined({10: "expect_column_values_to_not_be_null(transaction_id)"}),
    ),
    "non-integer transaction_id": (
        put(11, "TX_ID", "1011b"),
        Quarantined({11: "transaction_id: '1011b' is not an integer"}),
    ),
    "duplicate transaction id, exact copy": (
        copy_row(12, 30),
        Quarantined({30: f"{UNIQUE}: duplicate of source row 12"}),
    ),
    "duplicate transaction id, rows disagree": (
        copy_row(12, 31, AMOUNT="99.99"),
        Quarantined(
            {
                12: f"{UNIQUE}: transaction_id 1012 shared by rows that disagree",
                31: f"{UNIQUE}: transaction_id 1012 shared by rows that disagree",
            }
        ),
    ),
    "timestamp far in the future": (put(13, "WHEN", "2999-01-01 00:00:00"), Quarantined({13: TIME_RULE})),
    "timestamp far in the past": (put(14, "WHEN", "1970-01-01 00:00:00"), Quarantined({14: TIME_RULE})),
    "timestamp just past the maximum": (put(15, "WHEN", "2020-01-01 00:00:00"), Quarantined({15: TIME_RULE})),
    "unparseable timestamp": (
        put(16, "WHEN", "2018-02-30 10:00:00"),
        Quarantined({16: "tx_datetime: '2018-02-30 10:00:00' is not an ISO 8601 datetime"}),
    ),
    "null timestamp": (put(17, "WHEN", ""), Quarantined({17: "expect_column_values_to_not_be_null(tx_datetime)"})),
    "label 2": (
        put(18, "IS_FRAUD", "2"),
        Quarantined({18: "expect_column_values_to_be_in_set(tx_fraud, value_set=[0, 1])"}),
    ),
    "label not a number": (put(19, "IS_FRAUD", "fraud"), Quarantined({19: "tx_fraud: 'fraud' is not a 0/1 label"})),
    "several faults in one row": (
        lambda raw: put(20, "AMOUNT", "-1")(put(20, "CUSTOMER", "")(raw)),
        Quarantined({20: f"expect_column_values_to_not_be_null(customer_id); {AMOUNT_RULE}"}),
    ),
    # --- batch-level: the stage stops with a message naming expectation, column and value ---
    "missing column": (
        lambda raw: raw.drop(columns=["AMOUNT"]),
        Fails(
            DataError,
            ("expect_column_to_exist", "'tx_amount' (mapped from source column 'AMOUNT')", "'IS_FRAUD'"),
        ),
    ),
    "wrong column type: amount all text": (
        whole_column("AMOUNT", ["twelve"] * N),
        Fails(
            BatchValidationError,
            ("expect_column_values_to_be_of_type(tx_amount)", "expected float64, observed str", "'twelve'"),
        ),
    ),
    "wrong column type: timestamps as numbers": (
        whole_column("WHEN", list(range(1_522_540_800, 1_522_540_800 + N))),
        Fails(
            BatchValidationError,
            ("expect_column_values_to_be_of_type(tx_datetime)", "expected datetime64, observed int64"),
        ),
    ),
    "too few rows": (
        lambda raw: raw.head(12),
        Fails(BatchValidationError, ("expect_table_row_count_to_be_between", "observed 12 valid rows", "min=30")),
    ),
    "too few valid rows": (
        lambda raw: raw.assign(AMOUNT=["-1"] * 15 + list(raw["AMOUNT"][15:])),
        Fails(BatchValidationError, ("expect_table_row_count_to_be_between", "observed 25 valid rows", "min=30")),
    ),
    "fraud rate above range": (
        whole_column("IS_FRAUD", ["1"] * N),
        Fails(
            BatchValidationError,
            ("expect_column_mean_to_be_between(tx_fraud)", "observed fraud rate 1.0", "[0.01, 0.2]"),
        ),
    ),
    "fraud rate below range": (
        whole_column("IS_FRAUD", ["0"] * N),
        Fails(
            BatchValidationError,
            ("expect_column_mean_to_be_between(tx_fraud)", "observed fraud rate 0.0", "[0.01, 0.2]"),
        ),
    ),
}


@pytest.mark.parametrize(("change", "expected"), list(CORPUS.values()), ids=list(CORPUS))
def test_bad_input_corpus(change: Callable[[pd.DataFrame], pd.DataFrame], expected: Quarantined | Fails) -> None:
    raw = change(csv_batch())
    if isinstance(expected, Fails):
        with pytest.raises(expected.error) as err:
            ingest_batch(raw, MAPPING, None, CONFIG)
        for text in expected.says:
            assert text in str(err.value)
        return
    result = ingest_batch(raw, MAPPING, None, CONFIG)
    q = result.quarantined
    assert dict(zip(q["source_row"], q["reason"], strict=True)) == expected.reasons
    assert len(raw) == len(result.kept) + len(q) == result.summary["rows_in"]
    assert result.summary["rows_valid"] == len(raw) - len(expected.reasons)
    # nothing is lost: each quarantined row carries its original values
    for row, original in zip(q["source_row"], q["raw"], strict=True):
        values = raw.iloc[row].to_dict()
        assert json.loads(original) == {k: (None if pd.isna(v) else v) for k, v in values.items()}


def test_clean_batch_is_kept_whole_in_contract_dtypes_and_order() -> None:
    raw = csv_batch().sample(frac=1.0, random_state=0).reset_index(drop=True)  # not sorted by time
    result = ingest_batch(raw, MAPPING, None, CONFIG)
    assert result.kept.dtypes.astype(str).to_dict() == TRANSACTION_DTYPES
    assert result.kept["transaction_id"].tolist() == [int(v) for v in raw["TX_ID"]]  # source order kept
    assert result.kept.index.equals(pd.RangeIndex(N))
    assert result.quarantined.empty
    assert result.quarantined.dtypes.astype(str).to_dict() == QUARANTINE_DTYPES  # same schema when empty
    assert result.summary == {
        "rows_in": N,
        "rows_valid": N,
        "rows_quarantined": 0,
        "expectations_evaluated": 21,
        "expectations_failed": 0,
    }


def test_quarantine_keeps_what_parsed_in_nullable_columns() -> None:
    raw = put(5, "AMOUNT", "-12.50")(put(7, "AMOUNT", "abc")(csv_batch()))
    q = ingest_batch(raw, MAPPING, None, CONFIG).quarantined
    assert q.dtypes.astype(str).to_dict() == QUARANTINE_DTYPES
    assert q["source_row"].tolist() == [5, 7]
    assert q["transaction_id"].tolist() == [1005, 1007]
    assert q["tx_amount"].iloc[0] == -12.5 and np.isnan(q["tx_amount"].iloc[1])


def test_summary_counts_failed_expectations_not_rows() -> None:
    raw = put(5, "AMOUNT", "-1")(put(6, "AMOUNT", "-2")(put(7, "IS_FRAUD", "2")(csv_batch())))
    summary = ingest_batch(raw, MAPPING, None, CONFIG).summary
    assert summary["rows_quarantined"] == 3
    assert summary["expectations_failed"] == 2


def test_native_unlabelled_batch_keeps_nullable_labels() -> None:
    raw = pd.DataFrame(
        {
            "transaction_id": np.arange(N, dtype=np.int64),
            "tx_datetime": pd.date_range("2018-04-01", periods=N, freq="min").astype("datetime64[us]"),
            "customer_id": np.arange(N, dtype=np.int64),
            "terminal_id": np.arange(N, dtype=np.int64),
            "tx_amount": np.full(N, 10.0),
        }
    )
    result = ingest_batch(raw, None, None, CONFIG)
    assert str(result.kept["tx_fraud"].dtype) == "Int8" and result.kept["tx_fraud"].isna().all()
    assert result.summary["rows_valid"] == N


def test_data_docs_are_written_when_asked(tmp_path: Path) -> None:
    ingest_batch(put(5, "AMOUNT", "-1")(csv_batch()), MAPPING, None, CONFIG, tmp_path / "docs")
    assert (tmp_path / "docs" / "index.html").is_file()
    assert len(list((tmp_path / "docs" / "validations").rglob("*.html"))) == 2


def test_raw_values_survive_repeated_source_column_names() -> None:
    raw = put(5, "AMOUNT", "-1")(csv_batch())
    raw.insert(6, "NOTE", "a")
    raw.insert(7, "NOTE", "b", allow_duplicates=True)
    q = ingest_batch(raw, MAPPING, None, CONFIG).quarantined
    assert json.loads(q["raw"].iloc[0])["NOTE"] == "a" and json.loads(q["raw"].iloc[0])["NOTE.1"] == "b"
