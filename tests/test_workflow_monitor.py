"""The scheduled monitoring workflow: its structure, and its shell steps run for real.

A tiny origin repository plays GitHub: main holds a reproduced pipeline on stable simulated data,
then new data arrives on main (the simulator with drift in the live period). The job's checkout is
reproduced with git as actions/checkout leaves it for a scheduled run (main checked out, full
history); its `run:` steps then monitor, see the alert, retrain as a DVC experiment, write the
diff against main into the job summary and push a branch for the pull request, which a recording
stand-in for `gh` receives (there is no GitHub API here).
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
from helpers.workflow import FAKE_GH, md_table, run_step, steps

WORKFLOW = ROOT / ".github" / "workflows" / "monitor.yml"
#: The session's tiny pipeline (helpers.repo.PIPELINE_CONF) has two months of history before the
#: handbook's training week and six weeks of live data from 2018-08-15: day 87 counted from 2018-05-20.
FIRST_LIVE_DAY = 87


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_runs_on_a_schedule_and_may_push_a_branch_and_open_a_pull_request(workflow):
    on = workflow[True]  # YAML 1.1 reads the key `on` as a boolean
    assert on["schedule"][0]["cron"] and "workflow_dispatch" in on
    assert workflow["permissions"] == {"contents": "write", "pull-requests": "write"}
    assert workflow["env"]["DVC_NO_ANALYTICS"] == "1"


def test_retrains_only_on_an_alert_and_compares_only_a_retrained_model(workflow):
    """The conditions and order the runner evaluates (not runnable here); what the `run:` scripts do
    is proved by running them on stable and on drifted data (below)."""
    s = steps(workflow)
    assert s["actions/checkout"]["with"]["fetch-depth"] == 0  # main must be there to diff against
    assert s["retrain"]["if"] == "${{ steps.monitor.outputs.alert == '1' }}"
    assert s["compare"]["if"] == "${{ steps.retrain.outcome == 'success' }}"
    assert s["propose"]["if"] == "${{ steps.compare.outcome == 'success' }}"
    assert s["actions/upload-artifact"]["with"]["path"] == "reports/monitoring/"
    order = list(s)
    assert (
        order.index("data")
        < order.index("monitor")
        < order.index("retrain")
        < order.index("compare")
        < order.index("propose")
    )


@pytest.fixture(scope="module")
def origin(tiny_pipeline, tmp_path_factory) -> Path:
    """main: the pipeline reproduced on stable data and committed with its metrics."""
    repo = clone_repo(tiny_pipeline.repo, tmp_path_factory.mktemp("origin") / "origin")
    simulator = yaml.safe_load((repo / "params.yaml").read_text())["data"]["simulator"]
    assert (str(simulator["start_date"]), simulator["n_days"]) == ("2018-05-20", 130)  # FIRST_LIVE_DAY counts from it
    return repo


def _outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line)


def _runner(tmp_path: Path) -> dict[str, str]:
    runner_temp = tmp_path / "runner"
    runner_temp.mkdir()
    files = {"GITHUB_STEP_SUMMARY": runner_temp / "step_summary.md", "GITHUB_OUTPUT": runner_temp / "output.txt"}
    for f in files.values():
        f.write_text("")
    return {"RUNNER_TEMP": str(runner_temp), **{k: str(v) for k, v in files.items()}}


@pytest.mark.integration
def test_stable_data_gives_no_alert(workflow, origin, tmp_path):
    github = _runner(tmp_path)
    run_step(workflow, "data", origin, github)
    run_step(workflow, "monitor", origin, github)  # main is reproduced: nothing reruns
    assert _outputs(Path(github["GITHUB_OUTPUT"])) == {"alert": "0"}
    summary = Path(github["GITHUB_STEP_SUMMARY"]).read_text()
    assert "## Monitoring" in summary and "No alert:" in summary
    assert "reports/monitoring/drift.json" in summary  # the figures, as `dvc metrics show --md` gives them


@pytest.mark.integration
@pytest.mark.slow
def test_drifted_data_alerts_retrains_and_proposes_a_reviewed_change(workflow, origin, tmp_path):
    # New data lands on main: the simulator with every drift knob on from the first live day.
    drift_conf = origin / "conf" / "data" / "simulated_drift.yaml"
    drifted = yaml.safe_load(drift_conf.read_text())
    drifted["simulator"]["drift"]["start_day"] = FIRST_LIVE_DAY
    drift_conf.write_text(yaml.safe_dump(drifted, sort_keys=False))
    config = origin / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("- data: simulated\n", "- data: simulated_drift\n"))
    sh(origin, sys.executable, "-m", "fraudpipe.cli", "params")
    sh(origin, "git", "commit", "-q", "-am", "new data: the live period drifted")

    # actions/checkout on a scheduled run: main checked out with the whole history.
    ci = tmp_path / "checkout"
    sh(tmp_path, "git", "init", "-q", str(ci))
    sh(ci, "git", "remote", "add", "origin", str(origin))
    sh(ci, "git", "fetch", "-q", "origin", "+refs/heads/*:refs/remotes/origin/*")
    sh(ci, "git", "checkout", "-q", "-B", "main", "origin/main")

    github = _runner(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(FAKE_GH)
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    calls = tmp_path / "gh_calls.txt"
    github |= {
        "RUN_ID": "4242",
        "GH_TOKEN": "t",
        "REPO": "acme/fraudpipe",
        "GH_CALLS": str(calls),
        "PATH": f"{bin_dir}{os.pathsep}{env()['PATH']}",
    }

    run_step(workflow, "data", ci, github)
    run_step(workflow, "monitor", ci, github)
    assert _outputs(Path(github["GITHUB_OUTPUT"])) == {"alert": "1"}
    drift = json.loads((ci / "reports/monitoring/drift.json").read_text())
    assert drift["alert"] == 1
    summary = Path(github["GITHUB_STEP_SUMMARY"]).read_text()
    assert "ALERT:" in summary

    run_step(workflow, "retrain", ci, github)
    run_step(workflow, "compare", ci, github)
    summary = Path(github["GITHUB_STEP_SUMMARY"]).read_text()
    assert "## Retrained after the alert: experiment retrain-4242 against main" in summary
    metrics = {(r[0], r[1]): r[2:] for r in md_table(summary, ["Path", "Metric", "main", "workspace", "Change"])}
    assert ("reports/metrics.json", "average_precision") in metrics
    params = md_table(summary, ["Path", "Param", "main", "workspace"])
    assert ["params.yaml", "split.train_start", "2018-07-25", "-"] in params  # DVC shows null as -
    assert ["params.yaml", "split.live_days", "-", "7"] in params

    run_step(workflow, "propose", ci, github)
    branch = "monitor/retrain-4242"
    pushed = sh(origin, "git", "rev-parse", "--verify", "-q", f"refs/heads/{branch}").stdout.strip()
    assert pushed == sh(ci, "git", "rev-parse", branch).stdout.strip()
    retrained = yaml.safe_load(sh(origin, "git", "show", f"{branch}:params.yaml").stdout)
    assert retrained["split"]["train_start"] is None and retrained["split"]["live_days"] == 7
    (call,) = calls.read_text().splitlines()
    assert call == (
        f"pr create --repo acme/fraudpipe --base main --head {branch} --title Retrain after a monitoring alert "
        f"(run 4242) --body-file {github['RUNNER_TEMP']}/retrain-report.md"
    )
