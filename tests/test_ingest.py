"""ingest_batch, and the value-level bad-input corpus: each malformed batch and its expected outcome.

Every case starts from the same valid CSV-like batch (all strings, the source's own column
names) and breaks it in one way. A case ends either in quarantine — the exact reason per source
row, the rest kept, rows in = kept + quarantined — or in a batch-level error whose type and
message (expectation, column, observed value) are checked. File-level cases (empty file,
truncated line, non-UTF-8 bytes, unreachable database, failing API) belong to the sources.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudpipe.contract import QUARANTINE_DTYPES, TRANSACTION_DTYPES
from fraudpipe.data.ingest import ingest_batch
from fraudpipe.data.sources import ApiSource, ingest_source, make_source, refresh_snapshot
from fraudpipe.errors import BatchValidationError, DataError
from helpers.ingest import CONFIG, MAPPING, N, csv_batch
from helpers.sources import data_config

AMOUNT_RULE = "expect_column_values_to_be_between(tx_amount, min=0.0, max=10000.0)"
TIME_RULE = "expect_column_values_to_be_between(tx_datetime, min=2018-01-01T00:00:00, max=2019-12-31T23:59:59)"
UNIQUE = "expect_column_values_to_be_unique(transaction_id)"
DATE_ONLY = (
    "a date without a time of day "
    "(if the source holds dates only, set data.datetime_format to a date format such as '%Y-%m-%d')"
)


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


def repeat_column(column: str, value: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """A second column of the same name, as a file with a repeated header gives it."""

    def change(raw: pd.DataFrame) -> pd.DataFrame:
        raw.insert(len(raw.columns), column, value, allow_duplicates=True)
        return raw

    return change


def whole_column(column: str, values: list) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(raw: pd.DataFrame) -> pd.DataFrame:
        raw[column] = values
        return raw

    return change


@dataclass(frozen=True)
class Quarantined:
    """Expected outcome: these source rows quarantined with exactly these reasons, all others kept;
    ``ids``: contract id column -> (its kept dtype, a value it must hold)."""

    reasons: dict[int, str]
    ids: dict[str, tuple[str, object]] = field(default_factory=dict)


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
    "transaction_id that is not an integer: the column is text": (
        put(11, "TX_ID", "1011b"),
        Quarantined({}, ids={"transaction_id": ("str", "1011b")}),
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
        Quarantined(
            {16: "tx_datetime: '2018-02-30 10:00:00' is not an ISO 8601 datetime (data.datetime_format is null)"}
        ),
    ),
    "null timestamp": (put(17, "WHEN", ""), Quarantined({17: "expect_column_values_to_not_be_null(tx_datetime)"})),
    "label 2": (
        put(18, "IS_FRAUD", "2"),
        Quarantined({18: "expect_column_values_to_be_in_set(tx_fraud, value_set=[0, 1])"}),
    ),
    "label not a number": (put(19, "IS_FRAUD", "fraud"), Quarantined({19: "tx_fraud: 'fraud' is not a 0/1 label"})),
    "date without a time of day": (
        put(21, "WHEN", "2018-04-02"),
        Quarantined({21: f"tx_datetime: '2018-04-02' is {DATE_ONLY}"}),
    ),
    # --- ids are opaque keys: kept, as text when any id is not a canonical integer ---
    "customer ids that are card hashes": (
        whole_column("CUSTOMER", [f"{(i % 7) * 2654435761:016x}" for i in range(N)]),
        Quarantined({}, ids={"customer_id": ("str", f"{2654435761:016x}")}),
    ),
    "an id with leading zeros is another card than its digits": (
        lambda raw: put(3, "CUSTOMER", "007")(put(4, "CUSTOMER", "7")(raw)),
        Quarantined({}, ids={"customer_id": ("str", "007")}),
    ),
    "an id in exponent notation is text, not 5000": (
        put(5, "TERMINAL", "5e3"),
        Quarantined({}, ids={"terminal_id": ("str", "5e3")}),
    ),
    "a merchant name as terminal id": (
        put(6, "TERMINAL", "Kirlin and Sons, Inc."),
        Quarantined({}, ids={"terminal_id": ("str", "Kirlin and Sons, Inc.")}),
    ),
    "duplicate text transaction id, rows disagree": (
        lambda raw: copy_row(12, 31, AMOUNT="99.99")(whole_column("TX_ID", [f"t{i:03d}" for i in range(N)])(raw)),
        Quarantined(
            {
                12: f"{UNIQUE}: transaction_id 't012' shared by rows that disagree",
                31: f"{UNIQUE}: transaction_id 't012' shared by rows that disagree",
            },
            ids={"transaction_id": ("str", "t000")},
        ),
    ),
    "several faults in one row": (
        lambda raw: put(20, "AMOUNT", "-1")(put(20, "CUSTOMER", "")(raw)),
        Quarantined({20: f"expect_column_values_to_not_be_null(customer_id); {AMOUNT_RULE}"}),
    ),
    # --- batch-level: the stage stops with a message naming expectation, column and value ---
    "more rows quarantined than validation.max_quarantine_share": (
        lambda raw: raw.assign(
            AMOUNT=["n/a"] * 15 + ["-1"] * 6 + list(raw["AMOUNT"][21:]),
            IS_FRAUD=[*raw["IS_FRAUD"][:21], "yes", *raw["IS_FRAUD"][22:]],
        ),
        Fails(
            BatchValidationError,
            (
                "22 of 40 rows (55.0%) would be quarantined, more than validation.max_quarantine_share = 0.5 allows",
                f"commonest reasons: tx_amount is not a number (15 rows), {AMOUNT_RULE} (6 rows), "
                "tx_fraud is not a 0/1 label (1 row)",
                "raise validation.max_quarantine_share",
            ),
        ),
    ),
    "a mapped column appears twice": (
        repeat_column("AMOUNT", "99.00"),
        Fails(DataError, ("more than one column named ['AMOUNT'] (mapped to ['tx_amount'])", "rename one")),
    ),
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
    for column, (dtype, value) in expected.ids.items():
        assert str(result.kept[column].dtype) == dtype and value in set(result.kept[column])
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
        "ids_whitespace_stripped": 0,
    }


def test_ids_with_stray_whitespace_are_the_same_cards_and_counted() -> None:
    raw = csv_batch()
    padded = raw.assign(CUSTOMER=[f" {v}" if i % 5 == 0 else v for i, v in enumerate(raw["CUSTOMER"])])
    padded.loc[3, "TERMINAL"] = f"{raw.loc[3, 'TERMINAL']}\t"
    plain, stripped = ingest_batch(raw, MAPPING, None, CONFIG), ingest_batch(padded, MAPPING, None, CONFIG)
    assert stripped.kept.equals(plain.kept)  # the same int64 ids: one card, not two
    assert stripped.kept["customer_id"].nunique() == plain.kept["customer_id"].nunique()
    assert stripped.summary["ids_whitespace_stripped"] == len(range(0, N, 5)) + 1
    assert stripped.summary["rows_quarantined"] == 0


def test_text_ids_with_stray_whitespace_stay_one_key() -> None:
    raw = csv_batch().assign(CUSTOMER=[f"card-{i % 7:03d}" + ("  " if i % 2 else "") for i in range(N)])
    result = ingest_batch(raw, MAPPING, None, CONFIG)
    assert result.kept["customer_id"].nunique() == 7
    assert result.summary["ids_whitespace_stripped"] == N // 2


def test_quarantine_keeps_what_parsed_in_nullable_columns() -> None:
    raw = put(5, "AMOUNT", "-12.50")(put(7, "AMOUNT", "abc")(csv_batch()))
    q = ingest_batch(raw, MAPPING, None, CONFIG).quarantined
    assert q.dtypes.astype(str).to_dict() == QUARANTINE_DTYPES
    assert q["source_row"].tolist() == [5, 7]
    assert q["transaction_id"].tolist() == ["1005", "1007"]  # ids are text in every quarantine
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


def test_text_ids_are_kept_as_text_and_quarantined_as_text() -> None:
    raw = csv_batch().assign(CUSTOMER=[f"card-{i % 7:03d}" for i in range(N)])
    raw.loc[5, "AMOUNT"] = "-1"
    result = ingest_batch(raw, MAPPING, None, CONFIG)
    assert result.kept.dtypes.astype(str).to_dict() == TRANSACTION_DTYPES | {"customer_id": "str"}
    assert result.kept["customer_id"].iloc[0] == "card-000"
    q = result.quarantined
    assert q.dtypes.astype(str).to_dict() == QUARANTINE_DTYPES
    assert (q["transaction_id"].iloc[0], q["customer_id"].iloc[0]) == ("1005", "card-005")


def test_coordinates_are_carried_after_the_contract() -> None:
    raw = csv_batch().assign(LON=[f"{4 + i / 100:.2f}" for i in range(N)], LAT="50.85", MLON="4.35", MLAT="50.84")
    mapping = MAPPING | {"customer_x": "LON", "customer_y": "LAT", "terminal_x": "MLON", "terminal_y": "MLAT"}
    kept = ingest_batch(raw, mapping, None, CONFIG).kept
    assert list(kept.columns) == [*TRANSACTION_DTYPES, "customer_x", "customer_y", "terminal_x", "terminal_y"]
    assert kept["customer_x"].iloc[1] == 4.01 and kept["terminal_y"].dtype == np.float64


# --- ids from every kind of source: the same keys whether they come as text or as numbers ----------

SOURCE_COLUMNS = {
    "transaction_id": "tx",
    "tx_datetime": "when",
    "customer_id": "card",
    "terminal_id": "pos",
    "tx_amount": "amount",
    "tx_fraud": "label",
}
CARDS = ["007", "7", "5e3", "9f86d081884c7d65"]


def id_records() -> list[dict]:
    return [
        {
            "tx": str(uuid.UUID(int=1000 + i)),
            "when": f"2018-04-01 {i % 24:02d}:15:00",
            "card": CARDS[i % 4],
            "pos": i % 11,
            "amount": 10.5 + i,
            "label": int(i % 10 == 3),
        }
        for i in range(N)
    ]


def read_csv_source(tmp_path: Path, records: list[dict], http_server) -> pd.DataFrame:
    pd.DataFrame(records).to_csv(tmp_path / "t.csv", index=False)
    return make_source(data_config("csv", path=str(tmp_path / "t.csv"), columns=SOURCE_COLUMNS)).read()


def read_parquet_source(tmp_path: Path, records: list[dict], http_server) -> pd.DataFrame:
    pd.DataFrame(records).to_parquet(tmp_path / "t.parquet")
    return make_source(data_config("parquet", path=str(tmp_path / "t.parquet"), columns=SOURCE_COLUMNS)).read()


def read_sql_snapshot(tmp_path: Path, records: list[dict], http_server) -> pd.DataFrame:
    with sqlite3.connect(tmp_path / "w.db") as con:
        pd.DataFrame(records).to_sql("transactions", con, index=False)
    config = data_config(
        "sql", url=f"sqlite:///{tmp_path / 'w.db'}", snapshot=str(tmp_path / "s.parquet"), columns=SOURCE_COLUMNS
    )
    refresh_snapshot(config)
    return ingest_source(config).read()


def read_api_snapshot(tmp_path: Path, records: list[dict], http_server) -> pd.DataFrame:
    url = http_server.serve_pages("/tx", records, default_size=15)
    config = data_config("api", url=url, snapshot=str(tmp_path / "a.parquet"), columns=SOURCE_COLUMNS)
    refresh_snapshot(config)
    return ingest_source(config).read()


READERS = [read_csv_source, read_parquet_source, read_sql_snapshot, read_api_snapshot]


@pytest.mark.parametrize("read", READERS, ids=["csv", "parquet", "sql", "api"])
def test_text_ids_are_the_same_keys_from_every_source(tmp_path, http_server, read) -> None:
    result = ingest_batch(read(tmp_path, id_records(), http_server), SOURCE_COLUMNS, None, CONFIG)
    kept = result.kept.sort_values("transaction_id", ignore_index=True)
    assert result.summary["rows_quarantined"] == 0
    assert (str(kept["transaction_id"].dtype), str(kept["customer_id"].dtype), str(kept["terminal_id"].dtype)) == (
        "str",
        "str",
        "int64",
    )
    assert kept["transaction_id"].tolist() == sorted(r["tx"] for r in id_records())
    assert sorted(set(kept["customer_id"])) == sorted(CARDS)  # "007" and "7" two cards, "5e3" text


@pytest.mark.parametrize("read", READERS[2:], ids=["sql", "api"])
def test_an_api_sending_7_and_the_text_7_means_one_card(tmp_path, http_server, read) -> None:
    records = [r | {"card": 7 if i % 2 else "7"} for i, r in enumerate(id_records())]
    if read is read_sql_snapshot:
        records = [r | {"card": str(r["card"])} for r in records]  # one SQL column has one type
    kept = ingest_batch(read(tmp_path, records, http_server), SOURCE_COLUMNS, None, CONFIG).kept
    assert kept["customer_id"].dtype == np.int64 and set(kept["customer_id"]) == {7}
    direct = ApiSource.from_config(data_config("api", url=http_server.serve_pages("/direct", records)))
    assert set(ingest_batch(direct.read(), SOURCE_COLUMNS, None, CONFIG).kept["customer_id"]) == {7}


def test_a_snapshot_of_text_ids_does_not_depend_on_the_sources_row_order(tmp_path, http_server) -> None:
    records = id_records()
    first = read_api_snapshot(tmp_path / "a", records, http_server)
    second = read_api_snapshot(tmp_path / "b", records[::-1], http_server)
    assert (tmp_path / "a" / "a.parquet").read_bytes() == (tmp_path / "b" / "a.parquet").read_bytes()
    assert first["tx"].tolist() == sorted(r["tx"] for r in records) and len(second) == N
