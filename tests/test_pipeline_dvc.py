"""The pipeline under real DVC and git commands, in a temporary copy of the repository."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fraudpipe.config import update_composition
from helpers.repo import clone_repo, make_tiny_repo, ran_stages, sh

pytestmark = pytest.mark.integration


def _stages(repo: Path) -> set[str]:
    return set(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"])


def _repro(repo: Path) -> tuple[set[str], str]:
    proc = sh(repo, "dvc", "repro")
    return ran_stages(proc.stdout), proc.stdout


@pytest.fixture(scope="module")
def built_repo(tiny_pipeline, tmp_path_factory) -> Path:
    """A clone of the session's tiny pipeline (reproduced once and committed)."""
    return clone_repo(tiny_pipeline.repo, tmp_path_factory.mktemp("repo") / "repo")


def test_first_repro_runs_every_stage(tiny_pipeline):
    assert ran_stages(tiny_pipeline.repro_output) == _stages(tiny_pipeline.repo), tiny_pipeline.repro_output


def test_second_repro_reruns_nothing(built_repo):
    ran, out = _repro(built_repo)
    assert ran == set(), out
    assert "Data and pipelines are up to date" in out


def test_ingest_metrics_count_every_row(built_repo):
    summary = yaml.safe_load((built_repo / "reports/validation/summary.json").read_text())
    assert summary["rows_in"] == summary["rows_valid"] + summary["rows_quarantined"]
    kept = pd.read_parquet(built_repo / "data/raw/transactions.parquet")
    assert len(kept) == summary["rows_valid"] > 1000
    assert (built_repo / "data/raw/customers.parquet").exists()
    assert (built_repo / "data/raw/terminals.parquet").exists()
    assert any((built_repo / "reports/validation/docs").rglob("*.html"))


def test_push_then_fresh_clone_pull_is_up_to_date(built_repo, tmp_path):
    remote = tmp_path / "remote"
    sh(built_repo, "dvc", "remote", "add", "--local", "-f", "-d", "tmp", str(remote))
    sh(built_repo, "dvc", "push", "-q")
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(built_repo), str(clone))
    assert not (clone / "data/raw/transactions.parquet").exists()
    sh(clone, "dvc", "remote", "add", "--local", "-f", "-d", "tmp", str(remote))
    sh(clone, "dvc", "pull", "-q")
    pulled = pd.read_parquet(clone / "data/raw/transactions.parquet")
    assert pulled.equals(pd.read_parquet(built_repo / "data/raw/transactions.parquet"))
    status = sh(clone, "dvc", "status")
    assert "Data and pipelines are up to date" in status.stdout, status.stdout
    ran, out = _repro(clone)
    assert ran == set(), out


@pytest.mark.slow
def test_changing_a_tracked_csv_source_reruns_ingest_and_what_follows(tmp_path):
    repo = make_tiny_repo(tmp_path / "repo")
    # Switch the copy to the CSV source and give it a file made by the simulator.
    sh(repo, sys.executable, "-m", "fraudpipe.cli", "params", "data=csv", "evaluate.card_precision_k=50")
    sh(repo, sys.executable, "-m", "fraudpipe.cli", "adopt")  # into conf/: dvc repro refuses a stale params.yaml
    from fraudpipe.data.simulate import SimulatorConfig, simulate

    cfg = yaml.safe_load((repo / "params.yaml").read_text())
    sim_cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "conf/data/simulated.yaml").read_text())[
        "simulator"
    ]
    sim_cfg.update({"n_customers": 100, "n_terminals": 1000, "n_days": 60, "start_date": "2018-07-01"})
    tx = simulate(SimulatorConfig.parse(sim_cfg, "data.simulator")).transactions.drop(columns="tx_fraud_scenario")
    csv = repo / cfg["data"]["path"]
    tx.to_csv(csv, index=False)
    sh(repo, "dvc", "add", "-q", str(csv.relative_to(repo)))
    ran, out = _repro(repo)
    assert "ingest" in ran, out
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "csv source")
    assert _repro(repo)[0] == set()

    extra = tx.tail(1).assign(transaction_id=tx["transaction_id"].max() + 1)
    extra.to_csv(csv, mode="a", header=False, index=False)
    sh(repo, "dvc", "add", "-q", str(csv.relative_to(repo)))
    ran, out = _repro(repo)
    # The new row falls in the live period: every stage up to split reruns, the training and test
    # splits come out byte-identical, so train and evaluate (which reads only the bundle and the
    # test split and the parity replay's rows, which come out byte-identical too) are skipped,
    # while parity, backtest, infer and monitor read the new data;
    # the params did not change, so check_config is skipped.
    assert ran == _stages(repo) - {"train", "evaluate", "check_config"}, out
    assert "Stage 'train' didn't change, skipping" in out and "Stage 'evaluate' didn't change, skipping" in out
    rows = yaml.safe_load((repo / "reports/validation/summary.json").read_text())["rows_in"]
    assert rows == len(tx) + 1


@pytest.mark.slow
def test_sql_snapshot_reruns_only_when_the_database_has_new_rows(tmp_path):
    """A database DVC cannot see: `fraudpipe snapshot` copies it into a tracked file."""
    from fraudpipe.data.simulate import SimulatorConfig, simulate

    db = tmp_path / "warehouse.db"
    sim_cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "conf/data/simulated.yaml").read_text())[
        "simulator"
    ]
    sim_cfg.update({"n_customers": 100, "n_terminals": 1000, "n_days": 60, "start_date": "2018-07-01"})
    tx = simulate(SimulatorConfig.parse(sim_cfg, "data.simulator")).transactions.drop(columns="tx_fraud_scenario")
    tx.iloc[:-1].assign(tx_datetime=tx["tx_datetime"].astype(str)).to_sql(
        "transactions", sqlite3.connect(db), index=False
    )

    repo = make_tiny_repo(tmp_path / "repo")
    sh(
        repo,
        sys.executable,
        "-m",
        "fraudpipe.cli",
        "params",
        "data=sql",
        f"data.url=sqlite:///{db}",
        "evaluate.card_precision_k=50",
    )  # 100 customers: fewer cards a day than the default budget
    sh(repo, sys.executable, "-m", "fraudpipe.cli", "adopt")  # into conf/: dvc repro refuses a stale params.yaml
    sh(repo, "fraudpipe", "snapshot")
    ran, out = _repro(repo)
    assert ran == _stages(repo), out
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "sql source")

    refresh = sh(repo, "fraudpipe", "snapshot")
    assert "unchanged" in refresh.stdout
    ran, out = _repro(repo)
    assert ran == set(), out

    con = sqlite3.connect(db)
    tx.iloc[-1:].assign(tx_datetime=tx["tx_datetime"].astype(str)).to_sql(
        "transactions", con, index=False, if_exists="append"
    )
    con.close()
    refresh = sh(repo, "fraudpipe", "snapshot")
    assert "changed" in refresh.stdout and "unchanged" not in refresh.stdout
    ran, out = _repro(repo)
    assert "ingest" in ran, out
    assert yaml.safe_load((repo / "reports/validation/summary.json").read_text())["rows_in"] == len(tx)


@pytest.mark.slow
def test_a_model_parameter_change_reruns_the_model_stages_not_check_data(built_repo):
    """check_data declares model.threshold_validation_days, the one model key it checks: a change of
    another model key reruns check_config (which reads every group) and the stages after train."""
    params_path = built_repo / "params.yaml"
    original = params_path.read_text()
    rate = yaml.safe_load(original)["model"]["learning_rate"]
    update_composition(built_repo / "conf", {}, {"model.learning_rate": rate + 0.01})  # an edit of conf/
    sh(built_repo, sys.executable, "-m", "fraudpipe.cli", "params")
    try:
        ran, out = _repro(built_repo)
        assert ran == {"check_config", "train", "evaluate", "backtest", "infer", "monitor"}, out
        assert "Stage 'check_data' didn't change, skipping" in out
        assert "Stage 'parity' didn't change, skipping" in out  # its replay has no model
    finally:
        params_path.write_text(original)
        sh(built_repo, "git", "checkout", "HEAD", "--", ".")
        sh(built_repo, "dvc", "checkout", "-q")
    assert _repro(built_repo)[0] == set()


@pytest.mark.slow
def test_changing_features_params_reruns_featurize_and_after_only(built_repo):
    """Each stage depends on exactly the param groups it uses."""
    params_path = built_repo / "params.yaml"
    original = params_path.read_text()
    delay_days = yaml.safe_load(original)["features"]["delay_days"]
    update_composition(built_repo / "conf", {}, {"features.delay_days": delay_days - 1})  # an edit of conf/
    sh(built_repo, sys.executable, "-m", "fraudpipe.cli", "params")
    try:
        ran, out = _repro(built_repo)
        # check_config reads every group; check_data reads neither features nor the features table.
        assert ran == _stages(built_repo) - {"ingest", "preprocess", "check_data"}, out
        assert not ran & {"ingest", "preprocess"}
    finally:
        params_path.write_text(original)
        sh(built_repo, "git", "checkout", "HEAD", "--", ".")  # autostage staged dvc.lock: back to the commit
        sh(built_repo, "dvc", "checkout", "-q")
    assert _repro(built_repo)[0] == set()
