"""Preprocessing: types, duplicates, conflicts, missing values, order, outlier flags, row accounting."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudpipe.preprocess import (
    QUARANTINE_DTYPES,
    PreprocessConfig,
    PreprocessError,
    preprocess,
    reasons,
)
from fraudpipe.contract import TRANSACTION_COLUMNS, TRANSACTION_DTYPES
from fraudpipe.io import write_json, write_parquet

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = PreprocessConfig.from_dict(yaml.safe_load((ROOT / "conf/preprocess/default.yaml").read_text()))


def tx(rows: list[tuple]) -> pd.DataFrame:
    """A raw batch from (id, datetime, customer, terminal, amount, fraud) tuples."""
    frame = pd.DataFrame(rows, columns=list(TRANSACTION_COLUMNS))
    frame["tx_datetime"] = pd.to_datetime(frame["tx_datetime"], format="ISO8601")
    return frame


def accounted(result) -> bool:
    s = result.summary
    return s["rows_in"] == s["rows_out"] + s["duplicates_dropped"] + s["rows_quarantined"]


BASE = [
    (1, "2018-04-01 10:00:00", 10, 100, 12.5, 0),
    (2, "2018-04-01 09:00:00", 11, 101, 30.0, 0),
    (3, "2018-04-02 00:00:00", 10, 102, 99.99, 1),
]


def test_clean_batch_passes_through_typed_and_time_ordered():
    result = preprocess(tx(BASE), DEFAULT)
    assert result.clean["transaction_id"].tolist() == [2, 1, 3]
    assert result.clean.dtypes.astype(str).to_dict() == TRANSACTION_DTYPES
    assert result.quarantined.empty and accounted(result)
    assert result.summary["rows_out"] == 3


def test_time_ties_are_broken_by_transaction_id_whatever_the_input_order():
    rows = [(i, "2018-04-01 12:00:00", i, i, 1.0, 0) for i in (5, 3, 9, 1)] + [(0, "2018-04-01 12:00:01", 1, 1, 1.0, 0)]
    result = preprocess(tx(rows), DEFAULT)
    assert result.clean["transaction_id"].tolist() == [1, 3, 5, 9, 0]
    shuffled = preprocess(tx(rows).sample(frac=1, random_state=3), DEFAULT)
    pd.testing.assert_frame_equal(shuffled.clean, result.clean)


def test_exact_duplicates_are_dropped_and_counted():
    result = preprocess(tx(BASE + [BASE[0], BASE[0], BASE[2]]), DEFAULT)
    assert result.summary["duplicates_dropped"] == 3
    assert result.clean["transaction_id"].tolist() == [2, 1, 3]
    assert result.quarantined.empty and accounted(result)


def test_rows_sharing_an_id_with_different_content_are_all_quarantined():
    changed = (1, "2018-04-01 10:00:00", 10, 100, 13.0, 0)  # same id, another amount
    result = preprocess(tx(BASE + [BASE[0], changed]), DEFAULT)
    assert result.clean["transaction_id"].tolist() == [2, 3]
    # the two identical copies collapse into one (a duplicate), which still conflicts with `changed`
    assert result.summary["duplicates_dropped"] == 1
    assert result.summary["quarantined_conflicting_id"] == 2
    q = result.quarantined
    assert q["reason"].tolist() == ["conflicting_id", "conflicting_id"]
    assert q["input_row"].tolist() == [0, 4]
    assert sorted(q["tx_amount"]) == [12.5, 13.0]
    assert accounted(result)


def test_missing_value_drop_policy_quarantines_with_the_column_in_the_reason():
    rows = BASE + [(4, "2018-04-03", None, 100, 1.0, 0), (5, None, 1, 1, 1.0, 0), (6, "2018-04-03", 1, 1, None, 1)]
    result = preprocess(tx(rows), DEFAULT)
    assert result.clean["transaction_id"].tolist() == [2, 1, 3]
    assert dict(zip(result.quarantined["transaction_id"], result.quarantined["reason"])) == {
        4: "missing_customer_id",
        5: "missing_tx_datetime",
        6: "missing_tx_amount",
    }
    assert result.summary["quarantined_missing_customer_id"] == 1
    assert result.summary["rows_quarantined"] == 3 and accounted(result)


def test_missing_value_fill_policy_fills_and_counts():
    config = PreprocessConfig.from_dict({"missing": {"terminal_id": {"fill": -1}, "tx_fraud": {"fill": 0}}})
    result = preprocess(tx(BASE + [(4, "2018-04-03", 1, None, 1.0, None)]), config)
    row = result.clean.set_index("transaction_id").loc[4]
    assert row["terminal_id"] == -1 and row["tx_fraud"] == 0
    assert result.clean["tx_fraud"].dtype == "int8"
    assert result.summary["values_filled"] == 2 and accounted(result)


def test_missing_value_error_policy_names_column_rows_and_rule():
    config = PreprocessConfig.from_dict({"missing": {"tx_amount": "error"}})
    with pytest.raises(PreprocessError, match=r"'tx_amount'.*1 missing.*rows \[3\].*missing.tx_amount = error"):
        preprocess(tx(BASE + [(4, "2018-04-03", 1, 1, None, 0)]), config)


def test_unlabelled_rows_are_kept_with_a_nullable_label():
    result = preprocess(tx(BASE + [(4, "2018-04-03", 1, 1, 5.0, None)]), DEFAULT)
    assert result.clean["tx_fraud"].dtype == "Int8"
    assert result.clean["tx_fraud"].isna().sum() == 1 and result.summary["rows_out"] == 4


def test_an_unlabelled_batch_without_the_label_column_gets_a_null_label():
    result = preprocess(tx(BASE).drop(columns="tx_fraud"), DEFAULT)
    assert result.clean["tx_fraud"].dtype == "Int8" and result.clean["tx_fraud"].isna().all()


def test_columns_outside_the_contract_are_not_carried():
    """The simulator's scenario column is derived from the label: it must never reach features."""
    result = preprocess(tx(BASE).assign(tx_fraud_scenario=[0, 0, 2]), DEFAULT)
    assert list(result.clean.columns) == list(TRANSACTION_COLUMNS)


def test_a_missing_required_column_is_a_clear_error():
    with pytest.raises(PreprocessError, match=r"required column\(s\) \['terminal_id'\]"):
        preprocess(tx(BASE).drop(columns="terminal_id"), DEFAULT)


def test_types_are_normalised_to_the_contract():
    raw = tx(BASE)
    raw = raw.astype({"transaction_id": "int32", "customer_id": "float64", "terminal_id": "Int64"})
    raw["tx_datetime"] = raw["tx_datetime"].astype("datetime64[ns]").dt.tz_localize("UTC")
    raw["tx_fraud"] = raw["tx_fraud"].astype("float32")
    result = preprocess(raw, DEFAULT)
    assert result.clean.dtypes.astype(str).to_dict() == TRANSACTION_DTYPES
    pd.testing.assert_frame_equal(result.clean, preprocess(tx(BASE), DEFAULT).clean)


def test_values_breaking_the_contract_are_quarantined_as_invalid():
    raw = tx(BASE).astype(str).astype(object)
    raw.loc[len(raw)] = ["4", "2018-04-03T01:00:00", "1", "1", "abc", "0"]
    raw.loc[len(raw)] = ["5", "not a date", "1", "1", "1.0", "0"]
    raw.loc[len(raw)] = ["6", "2018-04-03", "1.5", "1", "1.0", "0"]
    raw.loc[len(raw)] = ["7", "2018-04-03", "1", "1", "-3", "0"]
    raw.loc[len(raw)] = ["8", "2018-04-03", "1", "1", "3", "2"]
    raw.loc[len(raw)] = ["9", "2018-04-03", "1", "1", "inf", "0"]
    result = preprocess(raw, DEFAULT)
    assert result.clean["transaction_id"].tolist() == [2, 1, 3]
    assert result.clean.dtypes.astype(str).to_dict() == TRANSACTION_DTYPES
    assert dict(zip(result.quarantined["input_row"], result.quarantined["reason"])) == {
        3: "invalid_tx_amount",
        4: "invalid_tx_datetime",
        5: "invalid_customer_id",
        6: "invalid_tx_amount",
        7: "invalid_tx_fraud",
        8: "invalid_tx_amount",
    }
    assert result.quarantined.dtypes.astype(str).to_dict() == QUARANTINE_DTYPES
    assert accounted(result)


def test_numeric_datetimes_are_refused_rather_than_guessed():
    raw = tx(BASE).assign(tx_datetime=[1, 2, 3])
    with pytest.raises(PreprocessError, match="'tx_datetime' has dtype int64"):
        preprocess(raw, DEFAULT)


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ({"customer_id": "keep"}, "only allowed for tx_fraud"),
        ({"transaction_id": {"fill": 0}}, "would be invented"),
        ({"tx_amount": "clip"}, "is not a policy"),
        ({"amount": "drop"}, "unknown column"),
    ],
)
def test_bad_missing_value_config_is_refused(missing, message):
    with pytest.raises(PreprocessError, match=message):
        PreprocessConfig.from_dict({"missing": missing})


def test_a_fill_value_that_breaks_the_rule_is_refused():
    config = PreprocessConfig.from_dict({"missing": {"tx_fraud": {"fill": 7}}})
    with pytest.raises(PreprocessError, match="fill value 7 is not a 0 or 1"):
        preprocess(tx(BASE + [(4, "2018-04-03", 1, 1, 1.0, None)]), config)


def test_amount_outliers_are_flagged_not_clipped():
    rows = [(i, f"2018-04-01 00:00:{i:02d}", i, i, 10.0 + i % 5, 0) for i in range(40)]
    rows.append((99, "2018-04-02", 1, 1, 5_000.0, 1))
    result = preprocess(tx(rows), DEFAULT)
    assert result.clean.set_index("transaction_id").loc[99, "tx_amount"] == 5_000.0  # untouched
    assert result.amount_outliers["transaction_id"].tolist() == [99]
    assert result.summary["amount_outliers_flagged"] == 1
    # Q1 = 11, Q3 = 13 over the 41 amounts -> upper fence 13 + 3 * 2 = 19
    assert result.summary["amount_outlier_upper"] == pytest.approx(19.0)
    assert "amount_outlier" not in result.clean.columns  # the interim table stays the contract


def test_summary_has_every_reason_key_and_is_valid_metric_json(tmp_path):
    result = preprocess(tx(BASE), DEFAULT)
    assert [k for k in result.summary if k.startswith("quarantined_")] == [f"quarantined_{r}" for r in reasons()]
    write_json(result.summary, tmp_path / "s.json")
    loaded = json.loads((tmp_path / "s.json").read_text())
    assert all(isinstance(v, (int, float)) for v in loaded.values())


def test_empty_input_gives_empty_typed_outputs():
    result = preprocess(tx([]), DEFAULT)
    assert result.clean.empty and result.summary["rows_in"] == 0
    assert result.clean.dtypes.astype(str).to_dict() == TRANSACTION_DTYPES


def _messy(draw_rows) -> pd.DataFrame:
    frame = pd.DataFrame(draw_rows, columns=list(TRANSACTION_COLUMNS))
    frame["tx_datetime"] = pd.Timestamp("2018-04-01") + pd.to_timedelta(frame["tx_datetime"], unit="s")
    return frame


ROWS = st.lists(
    st.tuples(
        st.integers(0, 8),  # few ids: many duplicates and conflicts
        st.one_of(st.none(), st.integers(0, 5)),  # few seconds: many ties
        st.one_of(st.none(), st.integers(0, 3)),
        st.integers(0, 3),
        st.one_of(st.none(), st.sampled_from([0.0, 1.0, 2.5, -1.0, 1e6])),
        st.one_of(st.none(), st.integers(0, 2)),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(ROWS)
def test_every_row_is_accounted_for_and_the_output_keeps_the_contract(rows):
    raw = _messy(rows)
    result = preprocess(raw, DEFAULT)
    assert accounted(result)
    clean = result.clean
    assert clean["transaction_id"].is_unique
    keys = list(zip(clean["tx_datetime"], clean["transaction_id"]))
    assert keys == sorted(keys)
    assert set(result.quarantined["reason"]) <= set(reasons())
    assert (clean["tx_amount"] >= 0).all() and set(clean["tx_fraud"].dropna()) <= {0, 1}
    # every quarantined or dropped id is gone from the output unless one valid version survived
    assert set(clean["transaction_id"]) | set(result.quarantined["transaction_id"].dropna()) >= set(raw["transaction_id"])
    again = preprocess(raw.iloc[::-1], DEFAULT)
    pd.testing.assert_frame_equal(again.clean, clean)


def test_outputs_are_byte_identical_across_runs(tmp_path):
    rng = np.random.default_rng(0)
    raw = tx(BASE * 3 + [(i, "2018-04-05", int(rng.integers(9)), 1, float(rng.gamma(2, 30)), 0) for i in range(10, 60)])
    for run in ("a", "b"):
        result = preprocess(raw, DEFAULT)
        write_parquet(result.clean, tmp_path / run / "clean.parquet")
        write_parquet(result.quarantined, tmp_path / run / "quarantine.parquet")
    for name in ("clean.parquet", "quarantine.parquet"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_stage_writes_declared_outputs(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"preprocess": params["preprocess"]}))
    write_parquet(tx(BASE + [BASE[1], (1, "2018-04-01", 1, 1, 1.0, 0)]), tmp_path / "data/raw/transactions.parquet")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "stages/preprocess.py")], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "reports/preprocess/summary.json").read_text())
    assert (summary["rows_in"], summary["rows_out"], summary["duplicates_dropped"], summary["rows_quarantined"]) == (5, 2, 1, 2)
    assert len(pd.read_parquet(tmp_path / "data/interim/transactions.parquet")) == 2
    assert pd.read_parquet(tmp_path / "data/quarantine/preprocess.parquet")["reason"].tolist() == ["conflicting_id"] * 2
    assert (tmp_path / "data/interim/amount_outliers.parquet").exists()
