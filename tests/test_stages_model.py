"""The train, evaluate, parity and backtest stage scripts, run for real in a temporary directory: outputs
reproducible, each stage reading only the params dvc.yaml declares for it, one-line failures.

The scripts run in the test's process (tests/helpers/stages.py), but the one killed mid-training:
tests/test_stages.py runs each as a process of its own for the exit code and the one-line error."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from fraudpipe.metrics import INTERVAL_KEYS
from helpers.model import ROOT, declared, only_declared, stage_workdir, write_params
from helpers.stages import run_stage_in_process

FOLD_KEY = ("n_folds", "_fold_mean", "_fold_std")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A working directory after the train and parity stages (2 backtest folds, 200 replayed rows)."""
    work = stage_workdir(tmp_path_factory.mktemp("w") / "w", split__n_folds=2, evaluate__latency_rows=200)
    for name in ("train", "parity"):
        proc = run_stage_in_process(work, name)
        assert proc.returncode == 0, proc.stderr
    return work


def _copy(trained: Path, tmp_path: Path) -> Path:
    work = tmp_path / "w"
    shutil.copytree(trained, work)
    return work


def test_train_evaluate_and_backtest_are_reproducible(trained, tmp_path):
    work = _copy(trained, tmp_path)
    files = (
        "models/bundle/model.ubj",
        "models/bundle/bundle.json",
        "reports/train/metrics.json",
        "reports/metrics.json",
        "reports/gate.json",
        "reports/parity.json",
        "reports/parity_scores.json",
        "data/parity/online.parquet",
        "reports/plots/roc.json",
        "reports/plots/feature_importance.json",
        "reports/plots/calibration.json",
        "reports/plots/score_distribution.json",
        "reports/backtest.json",
    )
    runs = []
    for _ in range(2):
        for name in ("train", "parity", "evaluate", "backtest"):
            proc = run_stage_in_process(work, name)
            assert proc.returncode == 0, proc.stderr
        runs.append({p: (work / p).read_bytes() for p in files})
    assert runs[0] == runs[1]
    assert runs[0]["models/bundle/bundle.json"] == (trained / "models/bundle/bundle.json").read_bytes()

    metrics = json.loads((work / "reports/metrics.json").read_text())
    # the test period's quality only: the folds are backtest's, the gate, parity and wall clock have files of their own
    assert list(metrics) == [
        "roc_auc",
        "average_precision",
        "card_precision_at_k",
        "card_precision_k",
        "precision",
        "recall",
        "f1",
        "accuracy",
        "threshold",
        "n_test",
        "n_frauds",
        *INTERVAL_KEYS,
    ]
    assert all(isinstance(v, (int, float)) for v in metrics.values()), metrics
    assert json.loads((work / "reports/gate.json").read_text()) == {"passed": True, "warnings": [], "failures": []}
    parity = json.loads((work / "reports/parity.json").read_text())
    assert parity == {"max_abs_feature_diff": 0.0, "rows_compared": 200}  # the service's features are training's
    scores = json.loads((work / "reports/parity_scores.json").read_text())
    assert scores["rows_compared"] == 200 and scores["max_abs_score_diff"] <= 1e-6  # ... scored as the batch path does
    # Wall-clock figures differ on every run: no stage writes one (benchmarks/scoring.py measures them).
    reports = sorted(p.name for p in (work / "reports").rglob("*.json"))
    assert not [name for name in reports if "latency" in name or "throughput" in name], reports
    roc = json.loads((work / "reports/plots/roc.json").read_text())
    assert roc[0]["fpr"] == 0 and all(np.isfinite(r["threshold"]) for r in roc)
    confusion = json.loads((work / "reports/plots/confusion.json").read_text())
    assert len(confusion) == metrics["n_test"] and sum(r["actual"] for r in confusion) == metrics["n_frauds"]
    importance = json.loads((work / "reports/plots/feature_importance.json").read_text())
    shares = [r["importance"] for r in importance]
    assert shares == sorted(shares, reverse=True) and sum(shares) == pytest.approx(1, abs=1e-4)
    calibration = json.loads((work / "reports/plots/calibration.json").read_text())
    assert sum(r["rows"] for r in calibration) == metrics["n_test"]
    histogram = json.loads((work / "reports/plots/score_distribution.json").read_text())
    assert sum(r["rows"] for r in histogram if r["class"] == "fraud") == metrics["n_frauds"]
    assert {r["threshold"] for r in histogram} == {round(metrics["threshold"], 6)}
    assert not list((work / "reports/plots").glob("*.png"))

    folds = json.loads((work / "reports/backtest.json").read_text())
    assert folds["n_folds"] == 2 and folds["card_precision_k"] == metrics["card_precision_k"]
    assert all(k in ("n_folds", "card_precision_k") or k.endswith(FOLD_KEY) for k in folds)
    assert {"average_precision_fold_mean", "average_precision_fold_std", "card_precision_at_k_fold_mean"} <= set(folds)


@pytest.mark.parametrize("stage", ["train", "evaluate", "parity", "backtest"])
def test_a_stage_reads_only_the_params_dvc_yaml_declares(stage, trained, tmp_path):
    """dvc.yaml decides what reruns: a stage that read an undeclared key would go stale silently."""
    work = _copy(trained, tmp_path)
    full = yaml.safe_load((work / "params.yaml").read_text())
    write_params(work, only_declared(full, stage))
    proc = run_stage_in_process(work, stage)
    assert proc.returncode == 0, proc.stderr


def test_evaluate_parity_and_backtest_declare_what_they_need():
    assert "model" not in declared("evaluate")  # the bundle carries the model's params
    assert set(declared("backtest")) == {"split", "model", "evaluate.card_precision_k"}
    assert set(declared("parity")) == {"evaluate.latency_rows", "split", "features"}


def test_a_failing_gate_stops_evaluate_after_writing_reports(trained, tmp_path):
    work = _copy(trained, tmp_path)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["evaluate"] |= {"gate": {"enforce": True, "judge": "interval", "minimums": {"average_precision": 0.99}}}
    write_params(work, params)
    proc = run_stage_in_process(work, "evaluate")
    assert proc.returncode == 1
    m = json.loads((work / "reports/metrics.json").read_text())
    assert m["average_precision_ci_high"] < 0.99  # confidently below
    failure = (
        f"average_precision = {m['average_precision']:.4f} is below the minimum 0.99, and so is its 95% interval "
        f"[{m['average_precision_ci_low']:.4f}, {m['average_precision_ci_high']:.4f}] "
        "(evaluate.gate.minimums.average_precision)"
    )
    assert failure in proc.stderr and "(see reports/gate.json)" in proc.stderr
    assert "set evaluate.gate.enforce: false to record the gate without failing" in proc.stderr
    assert "Traceback" not in proc.stderr
    gate = {"passed": False, "warnings": [], "failures": [failure]}
    assert json.loads((work / "reports/gate.json").read_text()) == gate

    params["evaluate"]["gate"]["enforce"] = False
    write_params(work, params)
    assert run_stage_in_process(work, "evaluate").returncode == 0  # not enforced: reported, not fatal


def test_an_inconclusive_metric_passes_evaluate_with_a_warning_and_judged_by_point_fails(trained, tmp_path):
    work = _copy(trained, tmp_path)
    assert run_stage_in_process(work, "evaluate").returncode == 0
    m = json.loads((work / "reports/metrics.json").read_text())
    assert m["roc_auc_ci_low"] < m["roc_auc"] < m["roc_auc_ci_high"]
    minimum = round((m["roc_auc"] + m["roc_auc_ci_high"]) / 2, 4)  # above the value, inside the interval
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["evaluate"] |= {"gate": {"enforce": True, "judge": "interval", "minimums": {"roc_auc": minimum}}}
    write_params(work, params)
    proc = run_stage_in_process(work, "evaluate")
    assert proc.returncode == 0, proc.stderr
    gate = json.loads((work / "reports/gate.json").read_text())
    assert gate["passed"] is True and gate["failures"] == []
    (warning,) = gate["warnings"]
    assert (warning["metric"], warning["value"], warning["minimum"]) == ("roc_auc", m["roc_auc"], minimum)
    assert (warning["ci_low"], warning["ci_high"], warning["n_frauds"]) == (
        m["roc_auc_ci_low"],
        m["roc_auc_ci_high"],
        m["n_frauds"],
    )
    assert "quality gate passed with 1 inconclusive metric" in proc.stdout
    assert f"evaluate: warning: {warning['message']}" in proc.stdout.splitlines()

    params["evaluate"]["gate"]["judge"] = "point"
    write_params(work, params)
    proc = run_stage_in_process(work, "evaluate")
    assert proc.returncode == 1
    assert (
        f"roc_auc = {m['roc_auc']:.4f} is below the minimum {minimum:g} (evaluate.gate.minimums.roc_auc)" in proc.stderr
    )
    assert json.loads((work / "reports/gate.json").read_text())["warnings"] == []


@pytest.mark.parametrize(
    ("stage", "group", "change", "message"),
    [
        ("train", "model", {"max_depth": 0}, "stage 'train' failed: model.max_depth: must be >= 1, got 0"),
        (
            "train",
            "model",
            {"n_estimators": None},
            "stage 'train' failed: model.n_estimators: xgboost needs a value, got None",
        ),
        (
            "evaluate",
            "evaluate",
            {"gate": {"enforce": True, "judge": "interval", "minimums": {"auc": 0.5}}},
            "stage 'evaluate' failed: evaluate.gate.minimums.auc: not a metric of the test period "
            "(known: roc_auc, average_precision, card_precision_at_k,",
        ),
        (
            "parity",
            "evaluate",
            {"latency_rows": -1},
            "stage 'parity' failed: evaluate.latency_rows: must be >= 0, got -1",
        ),
        (
            "backtest",
            "evaluate",
            {"card_precision_k": 0},
            "stage 'backtest' failed: evaluate.card_precision_k: must be >= 1, got 0",
        ),
    ],
)
def test_a_bad_config_fails_the_stage_in_one_line(stage, group, change, message, trained, tmp_path):
    work = _copy(trained, tmp_path)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params[group] |= change
    write_params(work, params)
    proc = run_stage_in_process(work, stage)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().startswith(message), proc.stderr


def test_a_killed_training_leaves_the_previous_reports_intact(trained, tmp_path):
    """dvclive rewrites metrics.json at every step: killed mid-training, the git-tracked
    reports/train must still be the previous run's, whole; the next run clears the leftovers."""
    work = _copy(trained, tmp_path)
    before = {p.relative_to(work): p.read_bytes() for p in (work / "reports/train").rglob("*") if p.is_file()}
    assert Path("reports/train/metrics.json") in before
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["model"] |= {"n_estimators": 20_000, "learning_rate": 0.001}  # slow: minutes, not seconds
    write_params(work, params)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "stages/train.py")], cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 240
        partial: list[Path] = []
        while not partial and time.monotonic() < deadline and proc.poll() is None:
            partial = list((work / "reports").glob(".train.*.tmp/metrics.json"))  # a step was logged
            time.sleep(0.05)
        assert partial, "training ended (or never logged a step) before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    after = {p.relative_to(work): p.read_bytes() for p in (work / "reports/train").rglob("*") if p.is_file()}
    assert after == before
    assert [p.name for p in (work / "reports").glob(".train.*.tmp")]  # the leftover is hidden and git-ignored ...
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "--no-index", partial[0].relative_to(work).as_posix()],
        cwd=ROOT,
        capture_output=True,
    )
    assert ignored.returncode == 0
    write_params(work, yaml.safe_load((trained / "params.yaml").read_text()))
    assert run_stage_in_process(work, "train").returncode == 0
    assert not list((work / "reports").glob(".train.*.tmp"))  # ... and the next run removes it
    assert {p.relative_to(work): p.read_bytes() for p in (work / "reports/train").rglob("*") if p.is_file()} == before
