"""The closed loop's workflows (.github/workflows/loop.yml, promote.yml): their structure, and the steps
tests/test_loop.py does not reach run for real against a service on loopback: a shadow that is not a
registered version (nothing to comment on), and a pull request closed without merging (its version
leaves staging, the service drops its shadow). tests/test_loop.py runs the rest end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fraudpipe.model import load_bundle
from helpers.repo import ROOT, clone_repo, sh
from helpers.serve import Server
from helpers.workflow import checkout, outputs, run_step, runner, steps

LOOP = yaml.safe_load((ROOT / ".github" / "workflows" / "loop.yml").read_text())
PROMOTE = yaml.safe_load((ROOT / ".github" / "workflows" / "promote.yml").read_text())


def test_the_loop_runs_daily_beside_the_service_and_may_push_and_propose():
    assert LOOP[True]["schedule"][0]["cron"] and "workflow_dispatch" in LOOP[True]  # YAML 1.1 reads `on` as True
    assert LOOP["permissions"] == {"contents": "write", "pull-requests": "write"}
    (job,) = LOOP["jobs"].values()
    assert job["runs-on"] == ["self-hosted", "fraudpipe-serving"]  # it reads the journal, reaches the admin route
    assert {"SERVICE_URL", "SERVICE_JOURNAL_DIR", "SERVICE_REGISTRY", "FRAUDPIPE_API_KEY"} <= set(LOOP["env"])
    assert LOOP["env"]["FRAUDPIPE_API_KEY"] == "${{ secrets.FRAUDPIPE_API_KEY }}"
    assert LOOP["concurrency"]["group"] == PROMOTE["concurrency"]["group"]  # one change to the service at a time


def test_a_retrain_needs_an_alert_and_no_challenger_under_review():
    """The conditions the runner evaluates (not runnable here); tests/test_loop.py runs the scripts."""
    s = steps(LOOP)
    assert s["actions/checkout"]["with"] == {"fetch-depth": 0, "fetch-tags": True}
    assert s["report"]["if"] == "${{ steps.service.outputs.shadow != '' }}"
    assert s["retrain"]["if"] == "${{ steps.monitor.outputs.alert == '1' && steps.service.outputs.shadow == '' }}"
    assert s["compare"]["if"] == "${{ steps.retrain.outcome == 'success' }}"
    assert s["propose"]["if"] == "${{ steps.compare.outcome == 'success' }}"
    assert s["shadow"]["if"] == "${{ steps.propose.outcome == 'success' }}"
    assert "dvc exp run" in s["retrain"]["run"] and "data=service_log" in s["retrain"]["run"]
    assert "dvc repro --single-item monitor" in s["monitor"]["run"]
    order = [k for k in s if not k.startswith("actions/")]
    assert order == ["install", "data", "service", "monitor", "report", "retrain", "compare", "propose", "shadow"]


def test_a_merge_promotes_and_a_close_withdraws():
    assert PROMOTE[True] == {"pull_request": {"types": ["closed"], "branches": ["main"]}}
    (job,) = PROMOTE["jobs"].values()
    assert job["if"] == "${{ startsWith(github.event.pull_request.head.ref, 'loop/') }}"
    s = steps(PROMOTE)
    assert s["version"]["env"]["HEAD_SHA"] == "${{ github.event.pull_request.head.sha }}"
    assert s["promote"]["if"] == "${{ github.event.pull_request.merged }}"
    assert s["withdraw"]["if"] == "${{ !github.event.pull_request.merged }}"
    assert (
        "--stage prod" in s["promote"]["run"] and '"model": "fraud-model#prod", "shadow": null' in s["promote"]["run"]
    )


def test_the_pull_request_workflow_leaves_the_loops_pull_requests_to_the_loop():
    """A loop/ branch trains on the service's log, which a hosted runner cannot read; loop.yml posted its diff."""
    pull_request = yaml.safe_load((ROOT / ".github" / "workflows" / "pull-request.yml").read_text())
    (job,) = pull_request["jobs"].values()
    assert job["if"] == "${{ !startsWith(github.head_ref, 'loop/') }}"


@pytest.mark.integration
def test_a_closed_pull_request_withdraws_its_version_from_staging_and_the_shadow(tiny_pipeline, tmp_path):
    origin = clone_repo(tiny_pipeline.repo, tmp_path / "origin")
    sh(origin, "gto", "register", "fraud-model", "--version", "v0.1.0")
    sh(origin, "gto", "assign", "fraud-model", "--version", "v0.1.0", "--stage", "staging")
    head = sh(origin, "git", "rev-parse", "HEAD").stdout.strip()
    server = Server(
        origin,
        origin / "models" / "bundle",
        origin / "data" / "features" / "online_state",
        tmp_path / "journal",
        args=("--shadow", "fraud-model#staging", "--model-cache", str(tmp_path / "models")),
        env={"FRAUDPIPE_API_KEY": "k"},
    )
    with server:
        service = {
            "SERVICE_URL": server.url(""),
            "SERVICE_JOURNAL_DIR": str(tmp_path / "journal"),
            "SERVICE_REGISTRY": "",
            "FRAUDPIPE_API_KEY": "k",
        }
        ci = checkout(origin, tmp_path / "ci")
        github = runner(tmp_path / "loop-runner") | service | {"GH_TOKEN": "t", "REPO": "acme/fraudpipe"}
        run_step(LOOP, "service", ci, github)
        assert outputs(github) == {"shadow": "fraud-model@v0.1.0"}
        github["SHADOW"] = "fraud-model@v0.1.0"
        reported = run_step(LOOP, "report", ci, github)  # no loop/ branch holds that version: nothing to comment on
        assert "no loop/ branch at fraud-model@v0.1.0" in reported.stdout
        assert Path(github["GH_CALLS"]).read_text() == ""

        github = runner(tmp_path / "promote-runner") | service | {"HEAD_SHA": head}
        run_step(PROMOTE, "version", ci, github)
        github["VERSION"] = outputs(github)["version"]
        assert github["VERSION"] == "v0.1.0"
        withdrawn = run_step(PROMOTE, "withdraw", ci, github)
        assert '"shadow":null' in withdrawn.stdout
        ready = server.client.get("/readyz").json()
        assert (
            ready["shadow_model_version"] is None
            and ready["model_version"] == load_bundle(origin / "models" / "bundle").version
        )
    assert sh(origin, "gto", "show", "fraud-model#staging", "--version").stdout.strip() == ""
    assert "fraud-model#staging!#2" in sh(origin, "git", "tag").stdout.split()  # pushed to origin
