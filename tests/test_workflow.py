"""The pull-request workflow: its structure, and its shell steps run for real on a tiny PR.

GitHub's own steps (checkout, setup-python) cannot run here; the checkout is reproduced with git
exactly as actions/checkout leaves it with `fetch-depth: 0` (remote-tracking branches only, a
detached HEAD), so the test also proves that `main` resolves there. `gh` is replaced by a
recording stand-in: there is no GitHub API on this machine.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
import yaml

from helpers.repo import ROOT, clone_repo, env, sh
from helpers.workflow import FAKE_GH
from helpers.workflow import md_table as _table
from helpers.workflow import run_step as _run_step
from helpers.workflow import steps as _steps

WORKFLOW = ROOT / ".github" / "workflows" / "pull-request.yml"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


# --------------------------------------------------------------------------------------------
# Structure
# --------------------------------------------------------------------------------------------


def test_runs_on_pull_requests_to_main_and_may_comment(workflow):
    on = workflow[True]  # YAML 1.1 reads the key `on` as a boolean
    assert on["pull_request"]["branches"] == ["main"]
    assert workflow["permissions"]["pull-requests"] == "write"
    assert workflow["env"]["DVC_NO_ANALYTICS"] == "1"


def test_checks_out_history_and_installs_the_package(workflow):
    steps = _steps(workflow)
    assert steps["actions/checkout"]["with"]["fetch-depth"] == 0  # main must be there to diff against
    assert steps["actions/setup-python"]["with"]["python-version"] == "3.11"
    assert steps["install"]["run"].strip() == "pip install -e ."  # not run here: it would install into this environment


def test_reports_diffs_against_main_in_the_summary_and_a_comment(workflow):
    """What the runner decides and this machine cannot run: the token and the steps' order. What the
    `run:` scripts do is proved by running them (below)."""
    steps = _steps(workflow)
    assert steps["comment"]["env"]["GH_TOKEN"] == "${{ github.token }}"
    order = list(steps)
    assert order.index("pipeline") < order.index("compare") < order.index("comment")


# --------------------------------------------------------------------------------------------
# The steps, run on a tiny pull request
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pull_request(tiny_pipeline, tmp_path_factory) -> Path:
    """An origin with main (the session's tiny pipeline, metrics committed) and a branch that changes a model param."""
    origin = clone_repo(tiny_pipeline.repo, tmp_path_factory.mktemp("origin") / "origin")
    sh(origin, "git", "checkout", "-q", "-b", "feature")
    config = origin / "conf" / "config.yaml"
    config.write_text(config.read_text() + "model:\n  max_depth: 2\n")
    sh(origin, sys.executable, "-m", "fraudpipe.cli", "params")
    sh(origin, "git", "commit", "-q", "-am", "shallower trees")
    return origin


@pytest.mark.integration
@pytest.mark.slow
def test_pipeline_and_compare_steps_write_both_diff_tables_to_the_summary(workflow, pull_request, tmp_path):
    # actions/checkout with fetch-depth 0: every branch as origin/<name>, the PR detached, no local main.
    ci = tmp_path / "checkout"
    sh(tmp_path, "git", "init", "-q", str(ci))
    sh(ci, "git", "remote", "add", "origin", str(pull_request))
    sh(ci, "git", "fetch", "-q", "origin", "+refs/heads/*:refs/remotes/origin/*")
    sh(ci, "git", "checkout", "-q", "--detach", "origin/feature")
    assert sh(ci, "git", "rev-parse", "--verify", "-q", "refs/heads/main", check=False).returncode != 0

    runner_temp = tmp_path / "runner"
    runner_temp.mkdir()
    summary = runner_temp / "step_summary.md"
    summary.write_text("")
    github = {"GITHUB_STEP_SUMMARY": str(summary), "RUNNER_TEMP": str(runner_temp)}
    _run_step(workflow, "pipeline", ci, github)
    _run_step(workflow, "compare", ci, github)

    text = summary.read_text()
    assert text == (runner_temp / "pr-report.md").read_text()  # the comment says the same
    main_metrics = json.loads(sh(ci, "git", "show", "origin/main:reports/metrics.json").stdout)
    pr_metrics = json.loads((ci / "reports/metrics.json").read_text())
    assert main_metrics["average_precision"] != pr_metrics["average_precision"]

    metrics = {(r[0], r[1]): r[2:] for r in _table(text, ["Path", "Metric", "main", "workspace", "Change"])}
    before, after, change = map(float, metrics[("reports/metrics.json", "average_precision")])
    assert before == pytest.approx(main_metrics["average_precision"], abs=1e-5)
    assert after == pytest.approx(pr_metrics["average_precision"], abs=1e-5)
    assert change == pytest.approx(after - before, abs=2e-5)

    params = _table(text, ["Path", "Param", "main", "workspace"])
    main_depth = yaml.safe_load((Path(__file__).resolve().parents[1] / "conf/model/xgboost.yaml").read_text())[
        "max_depth"
    ]
    assert ["params.yaml", "model.max_depth", str(main_depth), "2"] in params
    assert len(params) == 1, params  # nothing else differs from main

    # A PR that changes no parameter gets a sentence, not an empty table.
    (ci / "params.yaml").write_text(sh(ci, "git", "show", "origin/main:params.yaml").stdout)
    summary.write_text("")
    _run_step(workflow, "compare", ci, github)
    text = summary.read_text()
    assert "No parameter changed." in text and "| Param " not in text
    assert _table(text, ["Path", "Metric", "main", "workspace", "Change"])


# --------------------------------------------------------------------------------------------
# The comment step, against a recording stand-in for the GitHub CLI
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("existing", ["", "42"], ids=["first-push", "later-push"])
def test_comment_step_creates_one_comment_then_updates_it(workflow, tmp_path, existing):
    bin_dir, runner_temp = tmp_path / "bin", tmp_path / "runner"
    bin_dir.mkdir()
    runner_temp.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(FAKE_GH)
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    report = runner_temp / "pr-report.md"
    report.write_text("<!-- fraudpipe-pr-report -->\n## Metrics\n")
    calls = tmp_path / "calls.txt"
    _run_step(
        workflow,
        "comment",
        tmp_path,
        {
            "GH_TOKEN": "t",
            "PR": "7",
            "REPO": "acme/fraudpipe",
            "RUNNER_TEMP": str(runner_temp),
            "GH_CALLS": str(calls),
            "EXISTING_COMMENT_ID": existing,
            "PATH": f"{bin_dir}{os.pathsep}{env()['PATH']}",
        },
    )
    lookup, action = calls.read_text().splitlines()
    assert "repos/acme/fraudpipe/issues/7/comments" in lookup and "fraudpipe-pr-report" in lookup
    if existing:
        assert action == f"api --method PATCH repos/acme/fraudpipe/issues/comments/42 -F body=@{report}"
    else:
        assert action == f"pr comment 7 --repo acme/fraudpipe --body-file {report}"
