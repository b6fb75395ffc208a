"""The daily habits, as a user has them, in a temporary git repository on tiny data: edit conf/ and
`dvc repro`; rerun with nothing changed; use the service; try an experiment that fails. An edit is
never silently ignored, and git stays clean when nothing changed."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

from helpers.repo import clone_repo, ran_stages, sh

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def repo(tiny_pipeline, tmp_path_factory) -> Path:
    """A clone of the session's tiny pipeline (reproduced and committed once; one backtest fold, the
    gate not enforced: its floors are for the full-size data)."""
    return clone_repo(tiny_pipeline.repo, tmp_path_factory.mktemp("habits") / "repo")


def _git_changes(repo: Path) -> str:
    return sh(repo, "git", "status", "--porcelain").stdout


def _restore(repo: Path) -> None:
    sh(repo, "git", "checkout", "-q", "HEAD", "--", ".")
    sh(repo, "dvc", "checkout", "-q")


@pytest.mark.slow
def test_every_stage_rerun_leaves_git_clean_and_no_wall_clock_metric(repo):
    """What `make pipeline` does in a fresh clone: every stage runs again; nothing tracked changes.
    The whole pipeline once more: the slow lane's; the fast lane has each stage's rerun byte-identical
    (test_preprocess, test_model_bundle, test_scoring_batch, test_stages, ...), no wall-clock figure
    declared (test_dvc_yaml) and `dvc plots show` (test_plots_offline)."""
    out = sh(repo, "dvc", "repro", "--force").stdout
    assert "Running stage 'monitor'" in out
    assert _git_changes(repo) == ""
    metrics = sh(repo, "dvc", "metrics", "show", "--json").stdout
    assert "latency" not in metrics and "throughput" not in metrics
    sh(repo, "dvc", "plots", "show", "-q")
    assert (repo / "dvc_plots" / "index.html").is_file()
    assert _git_changes(repo) == ""  # dvc_plots/ is git-ignored


def test_using_the_service_leaves_monitor_up_to_date(repo):
    """Its log is monitor's dependency only when monitor.current is service_log."""
    with sqlite3.connect(repo / "serving" / "journal.sqlite3") as db:
        db.execute("create table transactions (transaction_id text)")
    try:
        status = sh(repo, "dvc", "status").stdout
        assert "Data and pipelines are up to date" in status, status
    finally:
        (repo / "serving" / "journal.sqlite3").unlink()


def test_an_edit_of_conf_stops_dvc_repro_in_one_line_until_params_yaml_is_recomposed(repo):
    default = repo / "conf" / "monitor" / "default.yaml"
    default.write_text(default.read_text().replace("report_max_plots: 12", "report_max_plots: 11"))
    try:
        stale = sh(repo, "dvc", "repro", check=False)
        assert stale.returncode != 0
        lines = [line for line in stale.stderr.splitlines() if line.startswith("stage ")]
        assert lines == [
            "stage 'check_config' failed: params.yaml is not what conf/ composes to (monitor.report_max_plots: 12 "
            "in params.yaml, 11 from conf/): run `fraudpipe params` to recompose it from conf/ (after a failed "
            "`dvc exp run` this restores the workspace) or `fraudpipe adopt` to write its values into conf/, then "
            "`dvc repro`"
        ], stale.stderr
        assert "Running stage 'ingest'" not in stale.stdout and "Traceback" not in stale.stderr
        assert (repo / "reports/check/config.json").is_file()  # a failed check keeps its record

        sh(repo, sys.executable, "-m", "fraudpipe.cli", "params")
        assert ran_stages(sh(repo, "dvc", "repro").stdout) == {"check_config", "monitor"}
    finally:
        _restore(repo)


def test_a_failed_experiment_leaves_params_yaml_only_and_the_next_repro_says_how_to_restore_it(repo):
    failed = sh(repo, "dvc", "exp", "run", "-S", "+model.max_dept=3", check=False)
    text = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "model.max_dept: unknown key (did you mean 'max_depth'?" in text, text
    assert "stay in params.yaml until `fraudpipe params` recomposes it from conf/" in text, text
    assert _git_changes(repo) == " M params.yaml\n"  # reports/check/config.json kept (persist)

    again = sh(repo, "dvc", "repro", check=False)
    assert again.returncode != 0
    assert "(model.max_dept: 3 in params.yaml, (absent) from conf/): run `fraudpipe params`" in again.stderr
    sh(repo, sys.executable, "-m", "fraudpipe.cli", "params")
    assert ran_stages(sh(repo, "dvc", "repro").stdout) == set()
    assert _git_changes(repo) == ""
