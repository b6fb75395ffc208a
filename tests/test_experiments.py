"""The experiment workflow of docs/daily-use.md, end to end, in a temporary git repository on tiny data.

`dvc exp run` recomposes params.yaml from the copy's conf/ (Hydra), so the overrides below land in
conf/config.yaml and every experiment starts from exactly the committed baseline.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml

from fraudpipe.config import compose
from helpers.repo import clone_repo, env, ran_stages, sh

#: The fixture runs three experiments before the first test: over the default timeout on a loaded machine.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]

#: The baseline is the session's tiny pipeline (helpers.repo.PIPELINE_CONF): one backtest fold, the
#: gate not enforced, conf/model/xgboost.yaml's depth, which every experiment below changes.
BASELINE_DEPTH = 5
AP = "reports/metrics.json:average_precision"
UPSTREAM = ("ingest", "preprocess", "featurize", "check_data", "split")
QUEUE_TIMEOUT_S = (
    600  # two queued runs take about 30 s here, minutes on a loaded machine; the queue is known to hang (DVC #8165)
)


@dataclass
class Experiments:
    repo: Path
    single_output: str  # `dvc exp run -S model.max_depth=3`
    sweep_logs: dict[str, str]  # `dvc queue logs <name>` of each queued run
    runs: dict[str, dict]  # experiment name -> {"params": model params, "metrics": reports/metrics.json}
    baseline_metrics: dict


def _queue_status(repo: Path) -> dict[str, str]:
    """Task name -> Queued / Running / Success / Failed, from `dvc queue status`."""
    out = sh(repo, "dvc", "queue", "status", timeout=60).stdout
    tasks = out.split("\n\n")[0].splitlines()[1:]  # the task table, then a blank line and the workers
    return {row[1]: row[-1] for row in map(str.split, tasks) if len(row) >= 3}


def _queue_logs(repo: Path, names) -> str:
    names = list(names)
    logs = (sh(repo, "dvc", "queue", "logs", name, check=False, timeout=60) for name in names)
    return "\n".join(f"--- dvc queue logs {name}\n{log.stdout}{log.stderr}" for name, log in zip(names, logs))


def _start_queue(repo: Path) -> None:
    """`dvc queue start`, its output to a file: the worker is forked from it and would keep a
    captured stdout pipe open until it exits, so reading from a pipe would wait for the worker."""
    log = repo.parent / "queue-start.log"  # outside the repository: the workspace stays clean
    with log.open("wb") as out:
        proc = subprocess.run(
            ["dvc", "queue", "start", "-j", "1"],
            cwd=repo,
            env=env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
    assert proc.returncode == 0, log.read_text()
    assert "Started '1' new experiments task queue worker" in log.read_text()


def _wait_for_queue(repo: Path, expected: int) -> dict[str, str]:
    """Poll until every queued task ended; fail with the tasks' logs on failure or timeout."""
    deadline = time.monotonic() + QUEUE_TIMEOUT_S
    while True:
        status = _queue_status(repo)
        if len(status) >= expected and not {"Queued", "Running"} & set(status.values()):
            break
        if time.monotonic() > deadline:
            pytest.fail(f"queue still busy after {QUEUE_TIMEOUT_S} s: {status}\n{_queue_logs(repo, status)}")
        time.sleep(2)
    if any(s != "Success" for s in status.values()):
        pytest.fail(f"queued experiments failed: {status}\n{_queue_logs(repo, status)}")
    return status


def _processes_in(repo: Path) -> list[psutil.Process]:
    """Live processes working inside `repo` (queue workers and their runs): only ones this test started."""
    found = []
    for proc in psutil.process_iter(["cwd", "status"]):
        cwd = proc.info["cwd"]
        if cwd and proc.info["status"] != psutil.STATUS_ZOMBIE and Path(cwd).is_relative_to(repo):
            found.append(proc)
    return found


def _stop_queue(repo: Path) -> None:
    """Stop the Celery workers (they idle on after the queue empties), then make sure they are gone."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        sh(repo, "dvc", "queue", "stop", "--kill", check=False, timeout=60)
    deadline = time.monotonic() + 15
    while (left := _processes_in(repo)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for proc in left:
        proc.kill()


def _experiments(repo: Path) -> dict[str, dict]:
    """The baseline's experiments from `dvc exp show --json`: name -> model params and metrics."""
    rows = json.loads(sh(repo, "dvc", "exp", "show", "--json", "--no-pager").stdout)
    baseline = next(row for row in rows if row["rev"] != "workspace")
    runs = {}
    for exp in baseline["experiments"] or []:
        for rev in exp["revs"]:
            data = rev["data"]
            runs[rev["name"]] = {
                "params": data["params"]["params.yaml"]["data"]["model"],
                "metrics": data["metrics"]["reports/metrics.json"]["data"],
            }
    return runs


@pytest.fixture(scope="module")
def experiments(tiny_pipeline, tmp_path_factory) -> Experiments:
    repo = clone_repo(tiny_pipeline.repo, tmp_path_factory.mktemp("exp").resolve() / "repo")
    assert yaml.safe_load((repo / "params.yaml").read_text())["model"]["max_depth"] == BASELINE_DEPTH
    baseline_metrics = json.loads((repo / "reports/metrics.json").read_text())

    single = sh(repo, "dvc", "exp", "run", "-S", "model.max_depth=3").stdout
    sh(repo, "dvc", "exp", "run", "-S", "model.max_depth=2,4", "--queue")
    try:
        _start_queue(repo)
        status = _wait_for_queue(repo, expected=2)
        logs = {name: sh(repo, "dvc", "queue", "logs", name, timeout=60).stdout for name in status}
    finally:
        _stop_queue(repo)
    assert not _processes_in(repo), "queue workers survived `dvc queue stop --kill`"
    return Experiments(repo, single, logs, _experiments(repo), baseline_metrics)


def test_changing_a_model_param_reruns_train_evaluate_backtest_infer_and_monitor_only(experiments):
    outputs = {"exp run -S model.max_depth=3": experiments.single_output} | experiments.sweep_logs
    assert len(outputs) == 3
    for name, out in outputs.items():
        # check_config reads every group (check_data only model.threshold_validation_days);
        # infer scores the live period with the new bundle, and monitor watches its scores;
        # parity's replay has no model (evaluate scores its online rows)
        assert ran_stages(out) == {"check_config", "train", "evaluate", "backtest", "infer", "monitor"}, (
            f"{name}:\n{out}"
        )
        for stage in (*UPSTREAM, "parity"):
            assert f"Stage '{stage}' didn't change, skipping" in out, f"{name}:\n{out}"


def test_the_sweep_and_the_single_run_are_experiments_with_different_metrics(experiments):
    runs = experiments.runs
    assert sorted(run["params"]["max_depth"] for run in runs.values()) == [2, 3, 4]
    precisions = {name: run["metrics"]["average_precision"] for name, run in runs.items()}
    assert len(set(precisions.values())) == len(runs) >= 2, precisions


def test_exp_show_sorts_experiments_by_a_metric(experiments):
    table = sh(
        experiments.repo,
        "dvc",
        "exp",
        "show",
        "--no-pager",
        "--md",
        "--sort-by",
        AP,
        "--sort-order",
        "desc",
        "--drop",
        ".*",
        "--keep",
        "Experiment|^average_precision$|model.max_depth",
    ).stdout
    shown = re.findall(r"\[([^\]]+)\]", table)
    expected = sorted(experiments.runs, key=lambda n: experiments.runs[n]["metrics"]["average_precision"], reverse=True)
    assert shown == expected, table
    header = [cell.strip() for cell in table.splitlines()[0].strip("|").split("|")]
    assert header == ["Experiment", "average_precision", "model.max_depth"], table


def test_applying_the_best_experiment_puts_its_params_and_metrics_in_the_workspace(experiments):
    repo, runs = experiments.repo, experiments.runs
    best = max(runs, key=lambda n: runs[n]["metrics"]["average_precision"])
    sh(repo, "dvc", "exp", "apply", best)

    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["model"] == runs[best]["params"]
    assert json.loads((repo / "reports/metrics.json").read_text()) == runs[best]["metrics"]

    diff = sh(repo, "dvc", "metrics", "diff", "--md").stdout.splitlines()
    assert [c.strip() for c in diff[0].strip("|").split("|")] == ["Path", "Metric", "HEAD", "workspace", "Change"]
    assert re.fullmatch(r"\|[-|]+\|", diff[1]), diff[1]
    before, after = experiments.baseline_metrics["average_precision"], runs[best]["metrics"]["average_precision"]
    assert before != after
    row = next(line for line in diff if re.match(r"\|\s*reports/metrics.json\s*\|\s*average_precision\s*\|", line))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[2]) == pytest.approx(before, abs=1e-5) and float(cells[3]) == pytest.approx(after, abs=1e-5)

    params_diff = sh(repo, "dvc", "params", "diff", "--md").stdout
    depth = runs[best]["params"]["max_depth"]
    assert re.search(
        rf"\|\s*params.yaml\s*\|\s*model.max_depth\s*\|\s*{BASELINE_DEPTH}\s*\|\s*{depth}\s*\|", params_diff
    ), params_diff

    # Keep it: conf/ adopts the experiment, so the committed conf/ and params.yaml agree.
    adopted = sh(repo, "fraudpipe", "adopt").stdout
    assert f"model.max_depth: {depth}" in adopted, adopted
    assert compose(repo / "conf") == params
    assert ran_stages(sh(repo, "dvc", "repro").stdout) == {"check_config"}  # it depends on conf/
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "adopt the best experiment")
    assert sh(repo, "dvc", "status").stdout.strip().endswith("Data and pipelines are up to date.")


def test_a_bad_override_fails_the_experiment_with_one_line_naming_the_key(experiments):
    """Runs last: it leaves a failed experiment's params in the workspace."""
    repo = experiments.repo
    # Two mistakes in two groups: the first stage names both, before anything else runs.
    out_of_range = sh(repo, "dvc", "exp", "run", "-S", "model.max_depth=0", "-S", "split.test_days=0", check=False)
    text = out_of_range.stdout + out_of_range.stderr
    assert out_of_range.returncode != 0
    assert "stage 'check_config' failed: params.yaml: every problem" in text, text
    assert "model.max_depth: must be >= 1, got 0" in text and "split.test_days: must be >= 1, got 0" in text, text
    assert "Running stage 'ingest'" not in text
    assert "Traceback" not in text
    # Hydra refuses `-S model.max_dept=3` itself; with `+` it adds the key, and the model refuses it.
    typo = sh(repo, "dvc", "exp", "run", "-S", "+model.max_dept=3", check=False)
    text = typo.stdout + typo.stderr
    assert typo.returncode != 0
    assert "model.max_dept: unknown key (did you mean 'max_depth'?" in text, text
