"""Bring your own data, as the README says, in a temporary git repository: a CSV in the common
Kaggle layout (string ids, its own column names and dates, coordinates, a fraud rate unlike the
simulator's) goes from the file to reports/metrics.json with two commands and nothing else."""

from __future__ import annotations

import json
import shlex

import pytest
import yaml

from helpers.kaggle import write_kaggle_csv
from helpers.repo import make_tiny_repo, sh

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_kaggle_layout_file_goes_from_file_to_metrics_with_two_commands(tmp_path):
    repo = make_tiny_repo(tmp_path / "repo")
    csv = write_kaggle_csv(tmp_path / "fraudTrain.csv")

    shown = sh(repo, "fraudpipe", "data", "add", str(csv), "--name", "kaggle").stdout
    assert "trans_num" in shown and "transaction_id = trans_num" in shown
    assert sh(repo, "git", "status", "--porcelain").stdout == "", "showing the proposal must write nothing"
    command = shown.strip().splitlines()[-1].split("To add it: ", 1)[1]

    added = sh(repo, *shlex.split(command)).stdout  # 1: the proposed command, as printed
    assert "split.train_days" in added and "still wrong" not in added, added
    config = yaml.safe_load((repo / "conf/config.yaml").read_text())
    assert {"data": "kaggle"} in config["defaults"] and {"split": "relative"} in config["defaults"]
    assert (repo / "data/external/kaggle.csv.dvc").is_file()
    assert "customer_terminal_distance" in yaml.safe_load((repo / "params.yaml").read_text())["features"]["extras"]

    out = sh(repo, "dvc", "repro", timeout=900).stdout  # 2
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    fraud_rate = metrics["n_frauds"] / metrics["n_test"]
    # data add gave the test period 30 frauds; the split then drops those on cards already known compromised
    assert metrics["n_frauds"] >= 15 and metrics["average_precision"] > 5 * fraud_rate, (metrics, out)
    assert json.loads((repo / "reports/gate.json").read_text())["passed"] is True
    bundle = json.loads((repo / "models/bundle/bundle.json").read_text())
    assert "customer_terminal_distance" in bundle["features"]  # coordinates from the file feed the model
    validation = json.loads((repo / "reports/validation/summary.json").read_text())
    assert validation["rows_quarantined"] == 0 and validation["rows_in"] == validation["rows_valid"]
    assert sh(repo, "dvc", "status").stdout.strip().endswith("Data and pipelines are up to date.")
