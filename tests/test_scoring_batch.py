"""Batch scoring of the live period: the library (`fraudpipe.scoring.batch`) and the `infer` stage run
for real on a small simulated month, after the real train and evaluate stages."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from fraudpipe.contract import TX_DATETIME
from fraudpipe.data.split import SplitConfig, time_split
from fraudpipe.errors import BundleError, DataError, GateFailed
from fraudpipe.features.definitions import FeatureConfig
from fraudpipe.features.online import OnlineState
from fraudpipe.gate import GateConfig, gate_verdict
from fraudpipe.io import read_parquet, read_parquet_if_exists, write_json, write_parquet
from fraudpipe.metrics import threshold_metrics
from fraudpipe.model import load_bundle
from fraudpipe.scoring.batch import (
    PREDICTION_COLUMNS,
    alerts,
    check_features,
    predictions,
    read_gate_passed,
    respect_gate,
    summary,
)
from fraudpipe.scoring.online import OnlineScorer, replay
from helpers.model import only_declared, stage_workdir, write_params
from helpers.stages import assert_one_line_failure, run_stage

LIVE = "data/split/live.parquet"
PREDICTIONS = "data/predictions/live.parquet"
SUMMARY = "reports/infer/summary.json"


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> Path:
    """A working directory after the real train and evaluate stages, with the live period split off
    (three days after the test period)."""
    work = stage_workdir(tmp_path_factory.mktemp("w") / "w")
    params = yaml.safe_load((work / "params.yaml").read_text())
    parts = time_split(
        read_parquet(work / "data/features/features.parquet"), SplitConfig.parse(params["split"], "split")
    )
    write_parquet(parts.live, work / LIVE)
    for stage in ("train", "parity", "evaluate"):
        proc = run_stage(work, stage)
        assert proc.returncode == 0, f"{stage}: {proc.stderr}"
    assert json.loads((work / "reports/gate.json").read_text()) == {"passed": True, "warnings": [], "failures": []}
    return work


def _copy(evaluated: Path, tmp_path: Path) -> Path:
    work = tmp_path / "w"
    shutil.copytree(evaluated, work)
    return work


def _edit(work: Path, path: str, change) -> None:
    data = (
        yaml.safe_load((work / path).read_text()) if path.endswith(".yaml") else json.loads((work / path).read_text())
    )
    change(data)
    (work / path).write_text(yaml.safe_dump(data, sort_keys=False) if path.endswith(".yaml") else json.dumps(data))


@pytest.fixture(scope="module")
def inferred(evaluated, tmp_path_factory) -> Path:
    work = _copy(evaluated, tmp_path_factory.mktemp("inferred"))
    proc = run_stage(work, "infer")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # the gate passed: no warning
    return work


def test_the_predictions_are_the_bundle_s_scores_of_the_live_table_in_its_order(inferred):
    live = read_parquet(inferred / LIVE)
    bundle = load_bundle(inferred / "models/bundle")
    out = read_parquet(inferred / PREDICTIONS)
    assert len(live) > 300
    assert list(out.columns) == list(PREDICTION_COLUMNS)
    assert [str(t) for t in out.dtypes] == ["int64", "float64", "int8", "str"]
    np.testing.assert_array_equal(out["transaction_id"].to_numpy(), live["transaction_id"].to_numpy())
    np.testing.assert_array_equal(out["score"].to_numpy(), bundle.score(live))  # evaluate's call, bit for bit
    assert out["score"].between(0, 1).all() and out["score"].nunique() > 10
    assert set(out["model_version"]) == {bundle.version}
    assert bundle.version.startswith("xgboost-")


def test_alerts_follow_the_threshold_rule_of_the_metrics(inferred):
    out = read_parquet(inferred / PREDICTIONS)
    threshold = load_bundle(inferred / "models/bundle").threshold
    np.testing.assert_array_equal(out["alert"].to_numpy(), (out["score"].to_numpy() >= threshold).astype(np.int8))
    assert 0 < out["alert"].sum() < len(out)
    # the same alerts that precision and recall count: metrics.threshold_metrics on the labelled live rows
    labels = read_parquet(inferred / LIVE)["tx_fraud"].to_numpy(dtype=bool)
    hits = int((out["alert"].to_numpy(dtype=bool) & labels).sum())
    counted = threshold_metrics(labels, out["score"].to_numpy(), threshold)
    assert counted["precision"] == pytest.approx(hits / out["alert"].sum())
    assert counted["recall"] == pytest.approx(hits / labels.sum())
    # a score exactly at the threshold is an alert
    np.testing.assert_array_equal(alerts(np.array([np.nextafter(threshold, 0), threshold, 1.0]), threshold), [0, 1, 1])
    assert alerts(np.array([0.5]), 0.5).dtype == np.int8


def test_the_summary_file_and_no_wall_clock_figure(inferred):
    out = read_parquet(inferred / PREDICTIONS)
    figures = json.loads((inferred / SUMMARY).read_text())
    bundle = load_bundle(inferred / "models/bundle")
    assert figures == {
        "rows_scored": len(out),
        "alerts": int(out["alert"].sum()),
        "alert_rate": pytest.approx(out["alert"].mean()),
        "score_mean": pytest.approx(out["score"].mean()),
        "threshold": bundle.threshold,
        "gate_passed": 1,
    }
    assert all(isinstance(v, (int, float)) for v in figures.values())  # DVC metrics: numbers only
    assert sorted(p.name for p in (inferred / SUMMARY).parent.iterdir()) == ["summary.json"]  # rows/s: stdout only


def test_outputs_are_byte_identical_across_runs(inferred, tmp_path):
    work = _copy(inferred, tmp_path)
    (work / PREDICTIONS).unlink()
    (work / SUMMARY).unlink()
    proc = run_stage(work, "infer")
    assert proc.returncode == 0, proc.stderr
    for path in (PREDICTIONS, SUMMARY):
        assert (work / path).read_bytes() == (inferred / path).read_bytes(), path


def test_batch_scores_equal_the_online_path_transaction_by_transaction(inferred):
    """The service's path: the live period replayed in order through online features (history up to
    the live period, labels fed as they come) and the bundle's one-row scoring."""
    params = yaml.safe_load((inferred / "params.yaml").read_text())
    transactions = read_parquet(inferred / "data/interim/transactions.parquet")
    live_start = read_parquet(inferred / LIVE)[TX_DATETIME].min()
    before = transactions[TX_DATETIME] < live_start
    features = FeatureConfig.parse(params["features"], "features")
    state = OnlineState.from_history(
        transactions[before],
        features,
        read_parquet_if_exists(inferred / "data/raw/customers.parquet"),
        read_parquet_if_exists(inferred / "data/raw/terminals.parquet"),
    )
    scorer = OnlineScorer(load_bundle(inferred / "models/bundle", nthread=1), features)
    replayed = replay(scorer, state, transactions[~before])
    out = read_parquet(inferred / PREDICTIONS)
    np.testing.assert_array_equal(replayed.transaction_ids, out["transaction_id"].to_numpy())
    np.testing.assert_allclose(replayed.scores, out["score"].to_numpy(), rtol=0, atol=1e-6)


def test_an_empty_live_period_writes_empty_outputs(evaluated, tmp_path):
    work = _copy(evaluated, tmp_path)
    write_parquet(read_parquet(work / LIVE).iloc[:0], work / LIVE)
    proc = run_stage(work, "infer")
    assert proc.returncode == 0, proc.stderr
    out = read_parquet(work / PREDICTIONS)
    assert len(out) == 0 and list(out.columns) == list(PREDICTION_COLUMNS)
    assert [str(t) for t in out.dtypes] == ["int64", "float64", "int8", "str"]
    figures = json.loads((work / SUMMARY).read_text())
    assert (figures["rows_scored"], figures["alerts"], figures["alert_rate"], figures["score_mean"]) == (
        0,
        0,
        None,
        None,
    )
    assert "scored 0 live rows" in proc.stdout


def test_a_failed_gate_is_refused_when_enforced(evaluated, tmp_path):
    work = _copy(evaluated, tmp_path)
    _edit(work, "reports/gate.json", lambda g: g.update(passed=False))
    _edit(work, "params.yaml", lambda p: p["evaluate"]["gate"].update(enforce=True))
    line = assert_one_line_failure(
        run_stage(work, "infer"),
        "infer",
        "failed its quality gate",
        "passed false in reports/gate.json",
        "evaluate.gate.enforce is true",
        "evaluate.gate.enforce: false",
    )
    assert "GateFailed" not in line
    assert not (work / PREDICTIONS).exists() and not (work / SUMMARY).exists()


def test_a_failed_gate_not_enforced_scores_with_one_warning(evaluated, tmp_path):
    work = _copy(evaluated, tmp_path)
    _edit(work, "reports/gate.json", lambda g: g.update(passed=False))
    _edit(work, "params.yaml", lambda p: p["evaluate"]["gate"].update(enforce=False))
    (work / "reports/metrics.json").unlink()  # the gate's file decides, not the metrics
    proc = run_stage(work, "infer")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        "infer: warning: the model bundle failed its quality gate (passed false in reports/gate.json); "
        "scoring anyway because evaluate.gate.enforce is false"
    ]
    assert len(read_parquet(work / PREDICTIONS)) == len(read_parquet(work / LIVE))
    assert json.loads((work / SUMMARY).read_text())["gate_passed"] == 0


def test_a_bundle_whose_features_the_feature_code_does_not_produce_is_refused(evaluated, tmp_path):
    work = _copy(evaluated, tmp_path)
    _edit(work, "params.yaml", lambda p: p["features"].update(customer_windows=[1, 7]))
    assert_one_line_failure(
        run_stage(work, "infer"),
        "infer",
        "models/bundle does not fit the feature code",
        "features group",
        "feature list differs",
        "missing ['customer_id_nb_tx_30day_window'",
        "dvc repro train",
    )
    assert not (work / PREDICTIONS).exists()


@pytest.mark.parametrize("damage", ["tampered", "truncated", "missing"])
def test_a_damaged_bundle_is_refused(evaluated, tmp_path, damage):
    work = _copy(evaluated, tmp_path)
    model = work / "models/bundle/model.ubj"
    data = model.read_bytes()
    if damage == "tampered":
        model.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    elif damage == "truncated":
        model.write_bytes(data[: len(data) // 2])
    else:
        shutil.rmtree(work / "models/bundle")
    said = (
        ["no model bundle in models/bundle"]
        if damage == "missing"
        else ["model.ubj does not match its sha256 in SHA256SUMS"]
    )
    assert_one_line_failure(run_stage(work, "infer"), "infer", *said)
    assert not (work / PREDICTIONS).exists()


def test_the_stage_reads_only_the_params_dvc_yaml_declares(evaluated, tmp_path):
    work = _copy(evaluated, tmp_path)
    full = yaml.safe_load((work / "params.yaml").read_text())
    declared = only_declared(full, "infer")
    assert set(declared) == {"features", "evaluate"} and set(declared["evaluate"]) == {"gate"}
    write_params(work, declared)
    proc = run_stage(work, "infer")
    assert proc.returncode == 0, proc.stderr


# --- the library, on the same small world ------------------------------------------------------


def test_text_ids_stay_text(evaluated):
    live = read_parquet(evaluated / LIVE)
    live["transaction_id"] = pd.array([f"tx-{i:05d}" for i in live["transaction_id"]], dtype="str")
    out = predictions(load_bundle(evaluated / "models/bundle"), live)
    assert str(out["transaction_id"].dtype) == "str"
    assert out["transaction_id"].tolist() == live["transaction_id"].tolist()


def test_a_live_table_without_a_needed_column_is_a_data_error(evaluated):
    bundle = load_bundle(evaluated / "models/bundle")
    live = read_parquet(evaluated / LIVE)
    with pytest.raises(DataError, match=r"data/split/live.parquet lacks column\(s\) \['tx_amount'\]"):
        predictions(bundle, live.drop(columns="tx_amount"), "data/split/live.parquet")
    with pytest.raises(BundleError, match=r"unexpected \['extra'\]"):
        predictions(bundle, live.assign(extra=1.0))


def test_check_features_passes_for_the_config_the_bundle_was_trained_with(evaluated):
    params = yaml.safe_load((evaluated / "params.yaml").read_text())
    bundle = load_bundle(evaluated / "models/bundle")
    check_features(bundle, FeatureConfig.parse(params["features"], "features"), "models/bundle")
    other = FeatureConfig.parse(params["features"] | {"extras": []}, "features")
    with pytest.raises(BundleError, match=r"unexpected \[\]"):
        check_features(bundle, other, "models/bundle")


def test_the_gate_verdict_and_its_config(tmp_path):
    metrics = tmp_path / "gate.json"
    with pytest.raises(DataError, match="does not exist: run the evaluate stage first"):
        read_gate_passed(metrics)
    for content, said in (
        ("{", "not JSON"),
        ('{"roc_auc": 0.9}', "passed must be true or false, got None"),
        ('{"passed": 1}', "got 1"),
        ('{"passed": "true"}', "got 'true'"),
    ):
        metrics.write_text(content)
        with pytest.raises(DataError, match=said):
            read_gate_passed(metrics)
    floor = GateConfig.parse({"enforce": True, "judge": "point", "minimums": {"roc_auc": 0.75}}, "evaluate.gate")
    write_json(gate_verdict({"roc_auc": 0.9}, floor), metrics)  # what evaluate writes
    assert read_gate_passed(metrics) is True
    write_json(gate_verdict({"roc_auc": 0.7}, floor), metrics)
    assert read_gate_passed(metrics) is False
    assert json.loads(metrics.read_text())["failures"] == [
        "roc_auc = 0.7000 is below the minimum 0.75 (evaluate.gate.minimums.roc_auc)"
    ]

    enforced = GateConfig.parse({"enforce": True, "judge": "interval", "minimums": {}}, "evaluate.gate")
    relaxed = GateConfig.parse({"enforce": False, "judge": "interval", "minimums": {}}, "evaluate.gate")
    assert respect_gate(True, enforced, metrics) is None and respect_gate(True, relaxed, metrics) is None
    with pytest.raises(GateFailed, match=re.escape("evaluate.gate.enforce is true")):
        respect_gate(False, enforced, metrics)
    assert "scoring anyway" in respect_gate(False, relaxed, metrics)


def test_the_summary_of_a_batch():
    table = pd.DataFrame(
        {"transaction_id": [1, 2, 3, 4], "score": [0.1, 0.9, 0.5, 0.2], "alert": np.array([0, 1, 1, 0], np.int8)}
    )
    assert summary(table, 0.5, True) == {
        "rows_scored": 4,
        "alerts": 2,
        "alert_rate": 0.5,
        "score_mean": pytest.approx(0.425),
        "threshold": 0.5,
        "gate_passed": 1,
    }
