"""validate: the Great Expectations suites, row reasons, batch failures and Data Docs."""

from __future__ import annotations

import datetime
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from fraudpipe.data.validate import ValidationConfig, validate
from fraudpipe.errors import BatchValidationError, ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ValidationConfig(
    max_amount=1000.0,
    min_datetime="2018-01-01T00:00:00",
    max_datetime="2018-12-31T23:59:59",
    min_rows=10,
    min_fraud_rate=0.01,
    max_fraud_rate=0.5,
    max_quarantine_share=1.0,
)
AMOUNT_RULE = "expect_column_values_to_be_between(tx_amount, min=0.0, max=1000.0)"
TIME_RULE = "expect_column_values_to_be_between(tx_datetime, min=2018-01-01T00:00:00, max=2018-12-31T23:59:59)"
UNIQUE = "expect_column_values_to_be_unique(transaction_id)"
ROW_EXPECTATIONS = 19  # 5 columns exist, 6 types, 3 ids not null, unique, amount, datetime not null + range, label
BATCH_EXPECTATIONS = 2  # row count, fraud rate
FRAUD_RATE_HINT = (
    "; if the rate is right for this data, set validation.min_fraud_rate / validation.max_fraud_rate, "
    "else check data.columns.tx_fraud"
)


def batch(n: int = 20) -> pd.DataFrame:
    """A valid contract batch (as conform returns it), indexed like rows of a larger raw batch."""
    return pd.DataFrame(
        {
            "transaction_id": np.arange(100, 100 + n, dtype=np.int64),
            "tx_datetime": pd.date_range("2018-04-01", periods=n, freq="h").astype("datetime64[us]"),
            "customer_id": np.arange(n, dtype=np.int64) % 3,
            "terminal_id": np.arange(n, dtype=np.int64) % 4,
            "tx_amount": np.linspace(1.0, 50.0, n),
            "tx_fraud": (np.arange(n) % 5 == 0).astype(np.int8),
        },
        index=np.arange(n) * 2,  # rows 1, 3, ... went to quarantine while parsing
    )


def reasons_of(outcome) -> dict:
    return {k: v for k, v in outcome.row_reasons.items() if v}


def test_config_from_the_validation_conf_group() -> None:
    group = yaml.safe_load((ROOT / "conf" / "validation" / "default.yaml").read_text())
    config = ValidationConfig.parse(group, "validation")
    assert config.max_amount == group["max_amount"] and config.min_rows == group["min_rows"]
    assert config.min_epoch_s == 946_684_800  # 2000-01-01
    assert config.to_dict() == group


def test_config_takes_yaml_dates_as_iso_text() -> None:
    """Unquoted in YAML, 2018-01-01T00:00:00 is a datetime and 2018-01-01 a date."""
    d = CONFIG.to_dict() | {"min_datetime": datetime.datetime(2018, 1, 1), "max_datetime": datetime.date(2018, 12, 31)}
    config = ValidationConfig.parse(d, "validation")
    assert (config.min_datetime, config.max_datetime) == ("2018-01-01T00:00:00", "2018-12-31")
    assert config.min_epoch_s == CONFIG.min_epoch_s


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_amout": 1.0}, "validation.max_amout: unknown key (did you mean 'max_amount'?"),
        ({"max_amount": -1.0}, "validation.max_amount: must be >= 0, got -1.0"),
        ({"min_rows": "10"}, "validation.min_rows: must be a whole number, got '10'"),
        (
            {"min_datetime": "2019-01-01T00:00:00"},
            "validation.min_datetime: must not be after max_datetime (2018-12-31T23:59:59), got '2019-01-01T00:00:00'",
        ),
        ({"max_datetime": "soon"}, "validation.max_datetime: must be an ISO 8601 datetime, got 'soon'"),
        ({"min_fraud_rate": 0.6}, "validation.min_fraud_rate: must be <= max_fraud_rate (0.5), got 0.6"),
        ({"max_fraud_rate": 1.5}, "validation.max_fraud_rate: must be <= 1, got 1.5"),
    ],
)
def test_config_refuses_bad_thresholds_naming_key_and_value(change: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        ValidationConfig.parse(CONFIG.to_dict() | change, "validation")
    assert message in str(err.value)


def test_clean_batch_passes_every_expectation() -> None:
    frame = batch()
    outcome = validate(frame, CONFIG)
    assert outcome.row_reasons.index.equals(frame.index) and (outcome.row_reasons == "").all()
    assert outcome.batch_failures == ()
    assert outcome.expectations_evaluated == ROW_EXPECTATIONS + BATCH_EXPECTATIONS
    assert outcome.expectations_failed == 0
    outcome.raise_for_batch_failures()  # does not raise


def test_row_level_failures_name_expectation_and_column_by_row_label() -> None:
    frame = batch().astype({"customer_id": "Int64", "terminal_id": "Int64", "transaction_id": "Int64"})
    frame.loc[2, "tx_amount"] = -0.01
    frame.loc[4, "tx_amount"] = 1000.01
    frame.loc[6, "customer_id"] = pd.NA
    frame.loc[8, "terminal_id"] = pd.NA
    frame.loc[10, "transaction_id"] = pd.NA
    frame.loc[12, "tx_datetime"] = pd.NaT
    frame.loc[14, "tx_datetime"] = pd.Timestamp("2019-01-01 00:00:00")
    frame.loc[16, "tx_fraud"] = 2
    frame.loc[18, ["tx_amount", "customer_id"]] = [-1.0, pd.NA]
    outcome = validate(frame, CONFIG)
    assert reasons_of(outcome) == {
        2: AMOUNT_RULE,
        4: AMOUNT_RULE,
        6: "expect_column_values_to_not_be_null(customer_id)",
        8: "expect_column_values_to_not_be_null(terminal_id)",
        10: "expect_column_values_to_not_be_null(transaction_id)",
        12: "expect_column_values_to_not_be_null(tx_datetime)",
        14: TIME_RULE,
        16: "expect_column_values_to_be_in_set(tx_fraud, value_set=[0, 1])",
        18: f"expect_column_values_to_not_be_null(customer_id); {AMOUNT_RULE}",
    }
    assert outcome.batch_failures == ()
    assert outcome.expectations_failed == 7  # counted per expectation, not per row


def test_datetime_bounds_are_inclusive_to_the_second() -> None:
    frame = batch()
    frame.loc[0, "tx_datetime"] = pd.Timestamp("2018-01-01 00:00:00")
    frame.loc[2, "tx_datetime"] = pd.Timestamp("2017-12-31 23:59:59")
    frame.loc[4, "tx_datetime"] = pd.Timestamp("2018-12-31 23:59:59")
    frame.loc[6, "tx_datetime"] = pd.Timestamp("2019-01-01 00:00:00")
    assert reasons_of(validate(frame, CONFIG)) == {2: TIME_RULE, 6: TIME_RULE}


def test_exact_duplicates_keep_the_first_copy() -> None:
    frame = batch()
    frame.loc[6] = frame.loc[2]
    frame.loc[8] = frame.loc[2]
    assert reasons_of(validate(frame, CONFIG)) == {
        6: f"{UNIQUE}: duplicate of source row 2",
        8: f"{UNIQUE}: duplicate of source row 2",
    }


def test_ids_shared_by_rows_that_disagree_quarantine_every_copy() -> None:
    frame = batch()
    frame.loc[6, "transaction_id"] = frame.loc[2, "transaction_id"]  # same id, other values
    frame.loc[10] = frame.loc[2]  # an exact copy does not make the conflict go away
    reason = f"{UNIQUE}: transaction_id 101 shared by rows that disagree"
    assert reasons_of(validate(frame, CONFIG)) == {2: reason, 6: reason, 10: reason}


def test_column_of_the_wrong_type_is_a_batch_failure() -> None:
    frame = batch().astype({"tx_amount": "str"})
    outcome = validate(frame, CONFIG)
    assert len(outcome.batch_failures) == 1  # the value checks it breaks are not reported again
    assert outcome.batch_failures[0].startswith(
        "expect_column_values_to_be_of_type(tx_amount): expected float64, observed str (first values ['1.0', "
    )
    with pytest.raises(BatchValidationError, match=r"to_be_of_type\(tx_amount\): expected float64, observed str"):
        outcome.raise_for_batch_failures()


def test_missing_column_is_a_batch_failure() -> None:
    outcome = validate(batch().drop(columns=["terminal_id"]), CONFIG)
    assert len(outcome.batch_failures) == 1
    assert outcome.batch_failures[0].startswith("expect_column_to_exist(terminal_id): column missing; the batch has")


def test_too_few_valid_rows_is_a_batch_failure() -> None:
    frame = batch(12)
    frame.loc[[0, 2, 4], "tx_amount"] = -1.0  # 12 rows, 9 valid, min_rows 10
    outcome = validate(frame, CONFIG)
    assert len(reasons_of(outcome)) == 3
    assert outcome.batch_failures == (
        "expect_table_row_count_to_be_between: observed 9 valid rows, allowed min=10 (validation.min_rows)",
    )


@pytest.mark.parametrize(("labels", "observed"), [(0, "0.0"), (1, "1.0")])
def test_fraud_rate_out_of_range_is_a_batch_failure(labels: int, observed: str) -> None:
    outcome = validate(batch().assign(tx_fraud=np.int8(labels)), CONFIG)
    assert outcome.batch_failures == (
        f"expect_column_mean_to_be_between(tx_fraud): observed fraud rate {observed}, "
        f"allowed [0.01, 0.5]{FRAUD_RATE_HINT}",
    )


def test_fraud_rate_is_measured_on_valid_rows_only() -> None:
    frame = batch().assign(tx_fraud=np.int8(0))
    frame.loc[0, "tx_fraud"] = 1
    frame.loc[2, ["tx_fraud", "tx_amount"]] = [1, -1.0]  # a fraud on an invalid row does not count
    outcome = validate(frame, ValidationConfig.parse(CONFIG.to_dict() | {"min_fraud_rate": 0.06}, "validation"))
    assert outcome.batch_failures == (
        f"expect_column_mean_to_be_between(tx_fraud): observed fraud rate {1 / 19}, "
        f"allowed [0.06, 0.5]{FRAUD_RATE_HINT}",
    )


def test_unlabelled_batch_has_no_fraud_rate() -> None:
    frame = batch().assign(tx_fraud=pd.array([pd.NA] * 20, dtype="Int8"))
    outcome = validate(frame, CONFIG)
    assert outcome.batch_failures == () and (outcome.row_reasons == "").all()
    assert outcome.expectations_evaluated == ROW_EXPECTATIONS + 1


def test_data_docs_are_written_and_byte_identical_on_rerun(tmp_path: Path) -> None:
    frame = batch()
    frame.loc[2, "tx_amount"] = -5.0
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "stale.html").write_text("from an earlier run")
    validate(frame, CONFIG, docs)
    first = {p.relative_to(docs): p.read_bytes() for p in docs.rglob("*") if p.is_file()}
    validate(frame, CONFIG, docs)
    second = {p.relative_to(docs): p.read_bytes() for p in docs.rglob("*") if p.is_file()}
    assert first == second
    names = {p.as_posix() for p in first}
    assert "index.html" in names and "stale.html" not in names
    pages = [n for n in names if n.startswith("validations/")]
    assert sorted(n.split("/")[1:3] for n in pages) == [["transactions", "batch"], ["transactions", "rows"]]
    assert not any(n.endswith((".gif", ".otf")) for n in names)  # unused bundled assets pruned
    rows_page = next(first[Path(n)] for n in pages if "/rows/" in n).decode()
    assert "tx_amount" in rows_page
    assert set(re.findall(r"\d{8}T\d{6}\.\d{6}Z", rows_page)) == {"19700101T000000.000000Z"}  # no wall clock


def test_data_docs_directory_may_be_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # stages pass paths relative to the repository root
    validate(batch(), CONFIG, Path("reports/validation/docs"))
    assert (tmp_path / "reports" / "validation" / "docs" / "index.html").is_file()


def test_importing_the_pipeline_modules_does_not_import_great_expectations() -> None:
    code = (
        "import sys, fraudpipe.data.ingest, fraudpipe.data.validate, fraudpipe.data.conform; "
        "sys.exit('great_expectations' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
