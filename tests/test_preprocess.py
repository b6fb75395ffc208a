"""Preprocessing: the missing-value policy, time order, outlier flags and row accounting on contract rows."""

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

from fraudpipe.contract import QUARANTINE_DTYPES, TRANSACTION_COLUMNS, TRANSACTION_DTYPES
from fraudpipe.data.preprocess import REASONS, PreprocessConfig, preprocess
from fraudpipe.errors import ConfigError, DataError
from fraudpipe.io import write_json, write_parquet
from helpers.ingest import CONFIG, MAPPING, csv_batch

ROOT = Path(__file__).resolve().parents[1]
CONF = yaml.safe_load((ROOT / "conf/preprocess/default.yaml").read_text())
DEFAULT = PreprocessConfig.parse(CONF, "preprocess")


def config(**missing) -> PreprocessConfig:
    """The default config with some columns' missing-value policies changed."""
    return PreprocessConfig.parse(CONF | {"missing": CONF["missing"] | missing}, "preprocess")


def tx(rows: list[tuple]) -> pd.DataFrame:
    """Rows as ingest writes them, from (id, datetime, customer, terminal, amount, fraud) tuples."""
    frame = pd.DataFrame(rows, columns=list(TRANSACTION_COLUMNS))
    labelled = frame["tx_fraud"].notna().all()
    return frame.astype({**TRANSACTION_DTYPES, "tx_fraud": "int8" if labelled else "Int8"})


def accounted(result) -> bool:
    s = result.summary
    return s["rows_in"] == s["rows_out"] + s["rows_quarantined"] == len(result.clean) + len(result.quarantined)


BASE = [
    (1, "2018-04-01 10:00:00", 10, 100, 12.5, 0),
    (2, "2018-04-01 09:00:00", 11, 101, 30.0, 0),
    (3, "2018-04-02 00:00:00", 10, 102, 99.99, 1),
]


def test_contract_rows_pass_through_time_ordered_and_unchanged():
    result = preprocess(tx(BASE), DEFAULT)
    assert result.clean["transaction_id"].tolist() == [2, 1, 3]
    assert result.clean.dtypes.astype(str).to_dict() == TRANSACTION_DTYPES
    pd.testing.assert_frame_equal(result.clean, tx(BASE).iloc[[1, 0, 2]].reset_index(drop=True))
    assert result.quarantined.empty and accounted(result)


def test_time_ties_are_broken_by_transaction_id_whatever_the_input_order():
    rows = [(i, "2018-04-01 12:00:00", i, i, 1.0, 0) for i in (5, 3, 9, 1)] + [(0, "2018-04-01 12:00:01", 1, 1, 1.0, 0)]
    result = preprocess(tx(rows), DEFAULT)
    assert result.clean["transaction_id"].tolist() == [1, 3, 5, 9, 0]
    shuffled = preprocess(tx(rows).sample(frac=1, random_state=3), DEFAULT)
    pd.testing.assert_frame_equal(shuffled.clean, result.clean)


def text_tx(rows: list[tuple]) -> pd.DataFrame:
    """Like ``tx``, with the id columns as text (what ingest writes for ids that are not all canonical integers)."""
    frame = tx([(0, r[1], 0, 0, *r[4:]) for r in rows])
    return frame.assign(
        **{
            c: pd.array([r[i] for r in rows], dtype="str")
            for i, c in ((0, "transaction_id"), (2, "customer_id"), (3, "terminal_id"))
        }
    )


def test_text_transaction_ids_break_time_ties_in_code_point_order_whatever_the_input_order():
    ids = ["9", "10", "7", "007", "a,b", "Z", "é", "0x1f"]
    rows = [(i, "2018-04-01 12:00:00", "card, 1", "m", 1.0, 0) for i in ids] + [
        ("0", "2018-04-01 12:00:01", "c", "m", 1.0, 0)
    ]
    result = preprocess(text_tx(rows), DEFAULT)
    assert (
        result.clean["transaction_id"].tolist()
        == [*sorted(ids), "0"]
        == ["007", "0x1f", "10", "7", "9", "Z", "a,b", "é", "0"]
    )
    assert {c: str(result.clean[c].dtype) for c in ("transaction_id", "customer_id", "terminal_id")} == dict.fromkeys(
        ("transaction_id", "customer_id", "terminal_id"), "str"
    )
    for seed in range(3):
        pd.testing.assert_frame_equal(
            preprocess(text_tx(rows).sample(frac=1, random_state=seed), DEFAULT).clean, result.clean
        )


def test_coordinates_are_carried_and_checked():
    coords = {
        "customer_x": [1.0, np.nan, 3.0],
        "customer_y": [4.0, np.nan, 6.0],
        "terminal_x": [7.0, 8.0, 9.0],
        "terminal_y": [0.5, 0.25, 0.125],
    }
    result = preprocess(tx(BASE).assign(**coords), DEFAULT)
    assert list(result.clean.columns) == [*TRANSACTION_COLUMNS, *coords]
    assert result.clean["customer_x"].tolist()[1:] == [1.0, 3.0] and np.isnan(
        result.clean["customer_x"].iat[0]
    )  # in time order
    with pytest.raises(DataError, match=r"\{'terminal_y': 'str'\}.*'terminal_y': 'float64'"):
        preprocess(tx(BASE).assign(**coords | {"terminal_y": ["1", "2", "3"]}), DEFAULT)


def test_a_filled_id_in_a_text_column_is_the_id_as_text():
    rows = [("t1", "2018-04-01", None, "m1", 1.0, 0), ("t2", "2018-04-02", "c, 2", None, 1.0, 0)]
    result = preprocess(text_tx(rows), config(customer_id={"fill": 7}, terminal_id={"fill": "unknown, merchant"}))
    assert result.clean["customer_id"].tolist() == ["7", "c, 2"] and result.clean["terminal_id"].tolist() == [
        "m1",
        "unknown, merchant",
    ]
    assert result.clean["customer_id"].dtype == "str" and result.summary["values_filled"] == 2


def test_drop_policy_quarantines_in_the_shared_schema_with_the_column_in_the_reason():
    rows = [*BASE, (4, None, 1, 1, 1.0, 0), (5, "2018-04-03", 1, 1, None, 1), (6, None, 1, 1, None, 0)]
    result = preprocess(tx(rows), DEFAULT)
    assert result.clean["transaction_id"].tolist() == [2, 1, 3]
    q = result.quarantined
    assert q.dtypes.astype(str).to_dict() == QUARANTINE_DTYPES
    assert q["source_row"].tolist() == [3, 4, 5]  # positions in data/raw/transactions.parquet
    assert q["reason"].tolist() == ["missing_tx_datetime", "missing_tx_amount", "missing_tx_datetime"]  # first column
    assert json.loads(q["raw"].iloc[1]) == {
        "transaction_id": 5,
        "tx_datetime": "2018-04-03T00:00:00.000000",
        "customer_id": 1,
        "terminal_id": 1,
        "tx_amount": None,
        "tx_fraud": 1,
    }
    assert (result.summary["quarantined_missing_tx_datetime"], result.summary["quarantined_missing_tx_amount"]) == (
        2,
        1,
    )
    assert result.summary["rows_quarantined"] == 3 and accounted(result)


def test_fill_policy_fills_and_counts():
    result = preprocess(
        tx([*BASE, (4, "2018-04-03", 1, 2, None, None)]), config(tx_amount={"fill": 0.0}, tx_fraud={"fill": 0})
    )
    row = result.clean.set_index("transaction_id").loc[4]
    assert row["tx_amount"] == 0.0 and row["tx_fraud"] == 0
    assert result.clean["tx_fraud"].dtype == "int8"
    assert result.summary["values_filled"] == 2 and result.quarantined.empty and accounted(result)


def test_error_policy_names_column_rows_and_rule():
    with pytest.raises(DataError, match=r"'tx_amount'.*1 missing.*rows \[3\].*missing.tx_amount = error"):
        preprocess(tx([*BASE, (4, "2018-04-03", 1, 1, None, 0)]), config(tx_amount="error"))


def test_unlabelled_rows_are_kept_with_a_nullable_label():
    result = preprocess(tx([*BASE, (4, "2018-04-03", 1, 1, 5.0, None)]), DEFAULT)
    assert result.clean["tx_fraud"].dtype == "Int8"
    assert result.clean["tx_fraud"].isna().sum() == 1 and result.summary["rows_out"] == 4


def test_drop_policy_on_the_label_quarantines_unlabelled_rows():
    result = preprocess(tx([*BASE, (4, "2018-04-03", 1, 1, 5.0, None)]), config(tx_fraud="drop"))
    assert result.quarantined["reason"].tolist() == ["missing_tx_fraud"]
    assert result.clean["tx_fraud"].dtype == "int8" and accounted(result)


def test_columns_outside_the_contract_are_not_carried():
    """The simulator's scenario column is derived from the label: it must never reach features."""
    result = preprocess(tx(BASE).assign(tx_fraud_scenario=[0, 0, 2]), DEFAULT)
    assert list(result.clean.columns) == list(TRANSACTION_COLUMNS)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.drop(columns="terminal_id"), r"lacks column\(s\) \['terminal_id'\]"),
        (lambda f: f.drop(columns="tx_fraud"), r"lacks column\(s\) \['tx_fraud'\]"),
        (
            lambda f: f.astype({"customer_id": "float64"}),
            r"\{'customer_id': 'float64'\}.*'customer_id': 'int64 or str'",
        ),
        (lambda f: f.astype({"tx_datetime": str}), r"'tx_datetime': 'str'.*datetime64\[us\]"),
        (lambda f: f.astype({"tx_fraud": "float32"}), r"'tx_fraud': 'float32'.*'int8 or Int8'"),
    ],
)
def test_input_that_breaks_the_contract_is_refused_not_reparsed(mutate, message):
    """Parsing and types are ingest's: preprocess says what is wrong instead of repairing it."""
    with pytest.raises(DataError, match=message):
        preprocess(mutate(tx(BASE)), DEFAULT)


def test_what_ingest_keeps_passes_unchanged_but_for_order():
    """Rules live in one place: rows that passed ingest meet everything preprocess relies on."""
    from fraudpipe.data.ingest import ingest_batch

    raw = csv_batch().sample(frac=1.0, random_state=0).reset_index(drop=True)
    kept = ingest_batch(pd.concat([raw, raw.iloc[:3]], ignore_index=True), MAPPING, None, CONFIG).kept  # + duplicates
    result = preprocess(kept, DEFAULT)
    assert result.quarantined.empty and result.summary["rows_out"] == len(kept) == len(raw)
    order = kept.sort_values(["tx_datetime", "transaction_id"], ignore_index=True)
    pd.testing.assert_frame_equal(result.clean, order)


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
    assert [k for k in result.summary if k.startswith("quarantined_")] == [f"quarantined_{r}" for r in REASONS]
    assert list(result.summary)[:3] == ["rows_in", "rows_out", "rows_quarantined"]
    write_json(result.summary, tmp_path / "s.json")
    loaded = json.loads((tmp_path / "s.json").read_text())
    assert all(isinstance(v, (int, float)) for v in loaded.values())


def test_empty_input_gives_empty_typed_outputs():
    result = preprocess(tx([]), DEFAULT)
    assert result.clean.empty and result.summary["rows_in"] == 0
    assert result.clean.dtypes.astype(str).to_dict() == TRANSACTION_DTYPES
    assert result.quarantined.dtypes.astype(str).to_dict() == QUARANTINE_DTYPES


# --- configuration ---------------------------------------------------------------------------


def test_the_conf_option_round_trips():
    assert DEFAULT.to_dict() == CONF
    assert DEFAULT.missing.tx_fraud.action == "keep" and DEFAULT.outlier_iqr_factor == 3.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"outlier_iqr_factr": 3.0}, "preprocess.outlier_iqr_factr: unknown key (did you mean 'outlier_iqr_factor'?"),
        ({"outlier_iqr_factor": 0}, "preprocess.outlier_iqr_factor: must be > 0, got 0"),
        ({"outlier_iqr_factor": "3"}, "preprocess.outlier_iqr_factor: must be a number, got '3'"),
        (
            {"missing": CONF["missing"] | {"amount": "drop"}},
            "preprocess.missing.amount: unknown key (did you mean 'tx_amount'?",
        ),
        (
            {"missing": {k: v for k, v in CONF["missing"].items() if k != "tx_fraud"}},
            "preprocess.missing.tx_fraud: missing key",
        ),
        (
            {"missing": CONF["missing"] | {"tx_amount": "clip"}},
            "preprocess.missing.tx_amount: must be drop, error, keep or {fill: value}, got 'clip'",
        ),
        (
            {"missing": CONF["missing"] | {"customer_id": "keep"}},
            "preprocess.missing.customer_id: 'keep' is only for tx_fraud",
        ),
        (
            {"missing": CONF["missing"] | {"transaction_id": {"fill": 0}}},
            "preprocess.missing.transaction_id: a filled transaction_id would be invented",
        ),
        (
            {"missing": CONF["missing"] | {"tx_fraud": {"fill": 7}}},
            "preprocess.missing.tx_fraud.fill: the fill value must be 0 or 1, got 7",
        ),
        (
            {"missing": CONF["missing"] | {"tx_amount": {"fill": -1.0}}},
            "preprocess.missing.tx_amount.fill: the fill value must be a finite number >= 0, got -1.0",
        ),
    ],
)
def test_bad_config_names_the_full_key_and_the_value(change, message):
    with pytest.raises(ConfigError) as err:
        PreprocessConfig.parse(CONF | change, "preprocess")
    assert message in str(err.value)


# --- properties ------------------------------------------------------------------------------

ROWS = st.lists(
    st.tuples(
        st.integers(0, 5),  # few seconds: many ties
        st.integers(0, 3),
        st.integers(0, 3),
        st.one_of(st.none(), st.sampled_from([0.0, 1.0, 2.5, 1e6])),
        st.one_of(st.none(), st.integers(0, 1)),
    ),
    max_size=40,
)
POLICIES = st.fixed_dictionaries(
    {
        "tx_amount": st.sampled_from(["drop", {"fill": 0.0}]),
        "tx_fraud": st.sampled_from(["drop", "keep", {"fill": 0}]),
    }
)


@settings(max_examples=150, deadline=None)
@given(ROWS, POLICIES, st.randoms(use_true_random=False))
def test_every_row_is_accounted_for_and_the_output_keeps_the_contract(rows, policies, random):
    ids = random.sample(range(1000), len(rows))  # ingest guarantees unique ids
    raw = tx(
        [(i, pd.Timestamp("2018-04-01") + pd.Timedelta(seconds=s), c, t, a, f) for i, (s, c, t, a, f) in zip(ids, rows)]
    )
    result = preprocess(raw, config(**policies))
    assert accounted(result)
    clean = result.clean
    keys = list(zip(clean["tx_datetime"], clean["transaction_id"]))
    assert keys == sorted(keys)
    assert clean["tx_amount"].notna().all()
    if policies["tx_fraud"] != "keep":
        assert clean["tx_fraud"].notna().all()
    dropped = (raw["tx_amount"].isna() & (policies["tx_amount"] == "drop")) | (
        raw["tx_fraud"].isna() & (policies["tx_fraud"] == "drop")
    )
    assert set(clean["transaction_id"]) == set(raw.loc[~dropped, "transaction_id"])
    assert set(result.quarantined["reason"]) <= set(REASONS)
    quarantined_ids = set(result.quarantined["transaction_id"].astype(int))  # ids are text in every quarantine
    assert set(clean["transaction_id"]).isdisjoint(quarantined_ids)
    assert set(clean["transaction_id"]) | quarantined_ids == set(ids)
    pd.testing.assert_frame_equal(preprocess(raw.iloc[::-1], config(**policies)).clean, clean)


def test_outputs_are_byte_identical_across_runs(tmp_path):
    rng = np.random.default_rng(0)
    rows = BASE + [(i, "2018-04-05", int(rng.integers(9)), 1, float(rng.gamma(2, 30)), 0) for i in range(10, 60)]
    raw = tx([*rows, (99, "2018-04-06", 1, 1, None, 0)])
    for run in ("a", "b"):
        result = preprocess(raw, DEFAULT)
        write_parquet(result.clean, tmp_path / run / "clean.parquet")
        write_parquet(result.quarantined, tmp_path / run / "quarantine.parquet")
    for name in ("clean.parquet", "quarantine.parquet"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_stage_writes_declared_outputs(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"preprocess": params["preprocess"]}))
    write_parquet(tx([*BASE, (4, "2018-04-03", 1, 1, None, 0)]), tmp_path / "data/raw/transactions.parquet")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "stages/preprocess.py")], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "reports/preprocess/summary.json").read_text())
    assert (summary["rows_in"], summary["rows_out"], summary["rows_quarantined"]) == (4, 3, 1)
    assert len(pd.read_parquet(tmp_path / "data/interim/transactions.parquet")) == 3
    assert pd.read_parquet(tmp_path / "data/quarantine/preprocess.parquet")["reason"].tolist() == ["missing_tx_amount"]
    assert (tmp_path / "data/interim/amount_outliers.parquet").exists()


def test_stage_refuses_a_bad_config_in_one_line(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump({"preprocess": params["preprocess"] | {"outlier_iqr_factor": -1.0}})
    )
    proc = subprocess.run(
        [sys.executable, str(ROOT / "stages/preprocess.py")], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == "stage 'preprocess' failed: preprocess.outlier_iqr_factor: must be > 0, got -1.0"
