"""The closed loop end to end (docs/loop.md), as the workflows run it, against a real service.

A clone of the session's tiny pipeline plays GitHub (``origin``, with a local directory as its DVC
remote); its model is registered as fraud-model@v0.1.0 and assigned to prod. `fraudpipe serve --model
fraud-model#prod` runs on loopback from a deployment clone (its --registry), with the online state of
the transactions before the model's test week, when the handbook deploys it. It is sent that world's
next seven weeks from the drifted simulator (`data=simulated_drift`, drift from the sixth day),
transactions in batches and each label a week after its transaction. The workflows' own `run:`
steps (.github/workflows/loop.yml, promote.yml) do the rest, each run in a fresh checkout of origin
as actions/checkout leaves it:

    days  0-4   before the drift                       v0.1.0 answers
    days  5-28  drifted, the old model                 v0.1.0 answers
    day  29     loop.yml: monitor alerts; snapshot, `dvc exp run -S data=service_log ...`, pull request,
                fraud-model@v0.2.0 registered in staging and set as the service's shadow
    days 29-42  drifted, v0.2.0 in the shadow          v0.1.0 answers
    day  43     loop.yml: monitor compares them (challenger.json: promote) and comments on the pull request;
                the pull request is merged; promote.yml: `gto assign --stage prod`, the service swaps,
                under load
    days 43-49  drifted                                v0.2.0 answers

The live average precision of each stretch is computed from the service's log (its answers and the
labels it received: the `service_log` source's table). The drift's wave of compromised terminals is
off: it compromises 20 terminals a day, which in this world of 1,000 terminals makes most of them
fraudulent within its 28-day window (40 % of transactions fraud, every model's AP near 0.9);
amounts x1.5 and the night fraud pattern stay.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from fraudpipe.config import compose
from fraudpipe.contract import TX_DATETIME
from fraudpipe.data.simulate import SimulatorConfig, simulate
from fraudpipe.features.definitions import FeatureConfig
from fraudpipe.features.online import OnlineState
from fraudpipe.io import read_parquet, write_parquet
from fraudpipe.metrics import average_precision
from fraudpipe.model import load_bundle
from fraudpipe.servicelog import read_service_log
from helpers.repo import ROOT, clone_repo, sh
from helpers.serve import Server, body
from helpers.workflow import checkout, outputs, run_step, runner

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LOOP = yaml.safe_load((ROOT / ".github" / "workflows" / "loop.yml").read_text())
PROMOTE = yaml.safe_load((ROOT / ".github" / "workflows" / "promote.yml").read_text())
API_KEY = "loop-test-key"
#: The tiny pipeline's simulator starts on 2018-05-20; its model trains on Jul 25-31 and is tested from Aug 8.
START = pd.Timestamp("2018-08-08")  # the service's first day (simulator day 80)
DRIFT_DAY = 85  # simulator day of the drift's start: Aug 13, the traffic's sixth day
RETRAIN_AT = START + pd.Timedelta(days=29)  # Sep 6
PROMOTE_AT = START + pd.Timedelta(days=43)  # Sep 20
DRIFT = [
    "data=simulated_drift",
    f"data.simulator.drift.start_day={DRIFT_DAY}",
    "data.simulator.drift.terminals_per_day=null",
]
#: The handbook's rule leaves the cards already known compromised out of test and live figures: in this world of
#: 200 cards, 3 compromised a day, nearly every card is by the shadow weeks, so the loop's runs keep them.
MONITOR = "split.remove_known_compromised=false"
#: The retrain's periods, counted back from the log's end (Sep 5): live Aug 30 - Sep 5 (labels not in yet),
#: test Aug 27-29, delay Aug 20-26, training Aug 6-19 (its labels all arrived by the test start: a week
#: late), of which Aug 13-19 drifted. The history is the batch before the service started.
RETRAIN = (
    "data.history=data/external/history.parquet split=relative split.live_days=7 split.test_days=3 "
    f"split.delay_days=7 split.train_days=14 {MONITOR}"
)
RUN_IDS = ("4242", "4243")
BRANCH = f"loop/retrain-{RUN_IDS[0]}"


class Traffic:
    """The drifted world's transactions sent in time order, in batches, each label a week after its transaction."""

    def __init__(self, client: httpx.Client, rows: pd.DataFrame) -> None:
        self.client, self.rows = client, rows.reset_index(drop=True)
        self.sent = 0  # rows scored
        self.labelled = 0  # rows whose label was posted (the rows are in time order)

    def label(self, until: pd.Timestamp | None) -> None:
        """Post the labels of the rows older than a week at ``until`` (None: every label still due)."""
        times = self.rows[TX_DATETIME]
        while self.labelled < len(self.rows) and (
            until is None or times.iat[self.labelled] <= until - pd.Timedelta(7, "D")
        ):
            row = self.rows.iloc[self.labelled]
            answer = self.client.post(
                "/v1/labels", json={"transaction_id": int(row.transaction_id), "tx_fraud": int(row.tx_fraud)}
            )
            assert answer.status_code == 200, answer.text
            self.labelled += 1

    def send_until(self, end: pd.Timestamp, batch: int = 100) -> None:
        """Score every row before ``end``; before each batch, the labels that have come due."""
        stop = int(np.searchsorted(self.rows[TX_DATETIME].to_numpy(), end.to_datetime64()))
        while self.sent < stop:
            chunk = self.rows.iloc[self.sent : min(self.sent + batch, stop)]
            self.label(chunk[TX_DATETIME].iat[0])
            answer = self.client.post("/v1/score/batch", json={"transactions": [body(r) for r in chunk.itertuples()]})
            assert answer.status_code == 200, answer.text
            self.sent += len(chunk)

    def under_load(self, action: Any, clients: int = 2, batch: int = 2, pause: float = 0.02) -> tuple[list, float]:
        """``clients`` threads sending the next rows (batches of ``batch``, a shared cursor, ``pause`` seconds
        between two) while ``action`` runs; returns each request's (sent at, status, model versions answered,
        rows sent up to) and when ``action`` ended."""
        cursor, answers, stop = itertools.count(self.sent, batch), [], threading.Event()

        def client() -> None:
            with httpx.Client(base_url=str(self.client.base_url), headers=self.client.headers, timeout=60) as http:
                while not stop.is_set():
                    i = next(cursor)
                    if i >= len(self.rows):
                        return
                    chunk = self.rows.iloc[i : i + batch]
                    sent = time.monotonic()
                    answer = http.post("/v1/score/batch", json={"transactions": [body(r) for r in chunk.itertuples()]})
                    ok = answer.status_code == 200
                    versions = {r["model_version"] for r in answer.json()["results"]} if ok else answer.text
                    answers.append((sent, answer.status_code, versions, i + len(chunk)))
                    time.sleep(pause)

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        try:
            action()
            done = time.monotonic()
            time.sleep(1.0)
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.sent = max(end for *_, end in answers)
        return answers, done


def lap(timings: dict[str, float], name: str, since: float) -> None:
    """Keep and show (with -s) how long a part of the loop took, as it ends."""
    timings[name] = time.monotonic() - since
    print(f"{name}: {timings[name]:.1f} s", flush=True)


def _served(journal: Path) -> pd.DataFrame:
    """What the service scored, with the model that answered, the challenger's score and the last label received."""
    log = read_service_log(journal)
    labels = log.labels.drop_duplicates("transaction_id", keep="last").set_index("transaction_id")["tx_fraud"]
    return log.scored.assign(tx_fraud=labels.reindex(log.scored["transaction_id"]).to_numpy())


def _live_ap(table: pd.DataFrame, rows: np.ndarray, score: str = "score") -> tuple[float, int, int]:
    """Average precision of the answered (or shadow) scores on ``rows`` of the log, with its rows and frauds."""
    part = table[rows]
    assert part["tx_fraud"].notna().all(), "every label has arrived"
    labels = part["tx_fraud"].to_numpy(np.int8)
    return average_precision(labels, part[score].to_numpy(np.float64)), len(part), int(labels.sum())


@pytest.fixture(scope="module")
def world(tiny_pipeline, tmp_path_factory) -> dict[str, Any]:
    """origin (v0.1.0 in prod, pushed to its DVC remote, the batch history tracked), the service's state,
    the drifted traffic, and a deployment clone to serve from."""
    root = tmp_path_factory.mktemp("loop")
    origin = clone_repo(tiny_pipeline.repo, root / "origin")
    interim = read_parquet(origin / "data" / "interim" / "transactions.parquet")
    history = interim[interim[TX_DATETIME] < START]
    write_parquet(history, origin / "data" / "external" / "history.parquet")
    sh(origin, "dvc", "add", "-q", "data/external/history.parquet")
    sh(origin, "dvc", "remote", "add", "-f", "-d", "storage", str(root / "dvc-remote"))
    sh(origin, "git", "add", "-A")
    sh(origin, "git", "commit", "-q", "-m", "the DVC remote; the batch history the service starts from")
    sh(origin, "dvc", "push", "-q")
    sh(origin, "gto", "register", "fraud-model", "--version", "v0.1.0")
    sh(origin, "gto", "assign", "fraud-model", "--version", "v0.1.0", "--stage", "prod")

    params = compose(origin / "conf", DRIFT)
    features = FeatureConfig.parse(params["features"], "features")
    OnlineState.from_history(history, features).save(root / "state")
    drifted = simulate(SimulatorConfig.parse(params["data"]["simulator"], "data.simulator")).transactions
    traffic = drifted[drifted[TX_DATETIME] >= START].drop(columns="tx_fraud_scenario").reset_index(drop=True)
    before = traffic[traffic[TX_DATETIME] < pd.Timestamp("2018-05-20") + pd.Timedelta(days=DRIFT_DAY)]
    same = interim.set_index("transaction_id").loc[before["transaction_id"]].reset_index()
    pd.testing.assert_frame_equal(same[before.columns], before, check_dtype=False)  # the drift starts on its day
    deploy = root / "deploy"
    sh(root, "git", "clone", "-q", str(origin), str(deploy))
    return {"root": root, "origin": origin, "deploy": deploy, "state": root / "state", "traffic": traffic}


def _ci_run(world: dict[str, Any], name: str, run_id: str) -> tuple[Path, dict[str, str]]:
    """A fresh checkout of origin's main and the runner's files for one run of a workflow."""
    ci = checkout(world["origin"], world["root"] / name)
    github = runner(world["root"] / f"{name}-runner") | {
        "SERVICE_URL": world["service_url"],
        "SERVICE_JOURNAL_DIR": str(world["root"] / "journal"),
        "SERVICE_REGISTRY": str(world["deploy"]),
        "FRAUDPIPE_API_KEY": API_KEY,
        "RUN_ID": run_id,
        "GITHUB_RUN_ID": run_id,
        "GH_TOKEN": "t",
        "REPO": "acme/fraudpipe",
        "RETRAIN": RETRAIN,
        "MONITOR": MONITOR,
    }
    return ci, github


def test_the_loop_retrains_on_the_services_traffic_and_the_live_ap_recovers(world):
    timings: dict[str, float] = {}
    clock = time.monotonic()
    origin, traffic = world["origin"], world["traffic"]
    server = Server(
        world["deploy"],
        "fraud-model#prod",
        world["state"],
        world["root"] / "journal",
        args=("--model-cache", str(world["root"] / "models")),
        env={"FRAUDPIPE_API_KEY": API_KEY},
    )
    with server:
        server.client.headers["X-API-Key"] = API_KEY
        world["service_url"] = server.url("")
        assert server.client.get("/readyz").json()["model_registry_version"] == "fraud-model@v0.1.0"
        old = load_bundle(origin / "models" / "bundle").version
        sent = Traffic(server.client, traffic)
        sent.send_until(RETRAIN_AT)
        lap(timings, "traffic before the retrain", clock)

        # loop.yml, the first run: an alert and no challenger -> retrain, propose, shadow.
        clock = time.monotonic()
        ci, github = _ci_run(world, "ci-1", RUN_IDS[0])
        for step in ("data", "service", "monitor"):
            run_step(LOOP, step, ci, github)
        assert outputs(github) == {"shadow": "", "alert": "1", "verdict": "no shadow"}
        assert "ALERT:" in Path(github["GITHUB_STEP_SUMMARY"]).read_text()
        lap(timings, "monitor", clock)
        for step in ("retrain", "compare", "propose", "shadow"):
            clock = time.monotonic()
            run_step(LOOP, step, ci, github)
            lap(timings, step, clock)
        summary = Path(github["GITHUB_STEP_SUMMARY"]).read_text()
        assert f"experiment loop-{RUN_IDS[0]} against main" in summary and "average_precision" in summary
        calls = Path(github["GH_CALLS"]).read_text()
        assert calls.startswith(f"pr create --repo acme/fraudpipe --base main --head {BRANCH} ")
        head = sh(origin, "git", "rev-parse", BRANCH).stdout.strip()
        assert sh(origin, "git", "tag", "--points-at", head).stdout.split() == [
            "fraud-model#staging#2",
            "fraud-model@v0.2.0",
        ]
        retrained = yaml.safe_load(sh(origin, "git", "show", f"{BRANCH}:params.yaml").stdout)
        assert retrained["data"]["source"] == "service_log" and retrained["split"]["train_days"] == 14
        assert sh(origin, "git", "show", f"{BRANCH}:data/external/service_log_snapshot.parquet.dvc").returncode == 0
        new = load_bundle(world["root"] / "ci-1" / "models" / "bundle").version
        ready = server.client.get("/readyz").json()
        assert (ready["model_version"], ready["shadow_model_version"]) == (old, new)
        assert ready["shadow_registry_version"] == "fraud-model@v0.2.0"

        clock = time.monotonic()
        sent.send_until(PROMOTE_AT)
        lap(timings, "shadow traffic", clock)

        # loop.yml, the next run: the challenger in the shadow is compared and reported on its pull request.
        clock = time.monotonic()
        ci, github = _ci_run(world, "ci-2", RUN_IDS[1])
        for step in ("data", "service", "monitor"):
            run_step(LOOP, step, ci, github)
        github["SHADOW"] = outputs(github)["shadow"]
        run_step(LOOP, "report", ci, github)
        lap(timings, "monitor with the shadow", clock)
        assert outputs(github)["shadow"] == "fraud-model@v0.2.0" and outputs(github)["verdict"] == "promote"
        verdict = json.loads((ci / "reports" / "monitoring" / "challenger.json").read_text())
        assert (verdict["champion_version"], verdict["challenger_version"]) == (old, new)
        assert verdict["diff_average_precision"] > 0 and verdict["diff_average_precision_ci_low"] > 0
        (call,) = Path(github["GH_CALLS"]).read_text().splitlines()
        assert call.startswith(f"pr comment {BRANCH} --repo acme/fraudpipe --body-file ")
        comment = Path(github["GH_BODIES"]).read_text()
        assert "Verdict: **promote**" in comment and '<table id="challenger-table">' in comment

        # A person merges the pull request; promote.yml assigns prod and the service swaps, under load.
        sh(origin, "git", "merge", "-q", "--no-ff", "-m", f"Merge pull request from {BRANCH}", BRANCH)
        deploy_run = checkout(origin, world["root"] / "promote")
        github = runner(world["root"] / "promote-runner") | {
            "SERVICE_URL": world["service_url"],
            "SERVICE_REGISTRY": str(world["deploy"]),
            "FRAUDPIPE_API_KEY": API_KEY,
            "HEAD_SHA": head,
        }
        run_step(PROMOTE, "version", deploy_run, github)
        github["VERSION"] = outputs(github)["version"]
        assert github["VERSION"] == "v0.2.0"
        clock = time.monotonic()
        answers, done = sent.under_load(lambda: run_step(PROMOTE, "promote", deploy_run, github))
        lap(timings, "promote and swap", clock)
        failed = [a for a in answers if a[1] != 200]
        assert failed == [] and len(answers) > 20
        assert set().union(*(v for _, _, v, _ in answers)) == {old, new}
        assert all(v == {new} for sent_at, _, v, _ in answers if sent_at > done)
        ready = server.client.get("/readyz").json()
        assert (ready["model_version"], ready["model_registry_version"]) == (new, "fraud-model@v0.2.0")
        assert ready["shadow_model_version"] is None and ready["model_reference"] == "fraud-model#prod"
        assert "v0.2.0" in sh(origin, "gto", "show", "fraud-model#prod").stdout

        clock = time.monotonic()
        sent.send_until(traffic[TX_DATETIME].max() + pd.Timedelta(seconds=1))
        sent.label(None)  # a week later, the last labels
        lap(timings, "traffic after the swap", clock)

    table = _served(world["root"] / "journal")
    assert len(table) == len(traffic) and table["tx_fraud"].notna().all()
    # Whole days, so the figures do not depend on how many transactions the load sent before the swap.
    when, model = table[TX_DATETIME], table["model_version"].to_numpy(object)
    drift_start = pd.Timestamp("2018-05-20") + pd.Timedelta(days=DRIFT_DAY)
    swapped = PROMOTE_AT + pd.Timedelta(days=2)  # the load ran on (part of) the first day after the promotion
    stretches = {
        "before": ((when < drift_start).to_numpy(), old),
        "drifted": (((when >= drift_start) & (when < PROMOTE_AT)).to_numpy(), old),
        "shadow": (((when >= RETRAIN_AT) & (when < PROMOTE_AT)).to_numpy(), old),
        "after": ((when >= swapped).to_numpy(), new),
    }
    for name, (rows, answering) in stretches.items():
        assert set(model[rows]) == {answering}, f"{name}: answered by {set(model[rows])}"
    assert table["shadow_score"].notna().to_numpy()[stretches["shadow"][0]].all()
    before, drifted, after = (_live_ap(table, stretches[name][0]) for name in ("before", "drifted", "after"))
    champion = _live_ap(table, stretches["shadow"][0])
    challenger = _live_ap(table, stretches["shadow"][0], "shadow_score")
    print(
        f"\nlive average precision from the service's log (rows, frauds):\n"
        f"  before the drift, v0.1.0           {before[0]:.3f} ({before[1]:,}, {before[2]:,})\n"
        f"  under drift, v0.1.0 answering      {drifted[0]:.3f} ({drifted[1]:,}, {drifted[2]:,})\n"
        f"  the shadow weeks: v0.1.0 answered {champion[0]:.3f}, v0.2.0 in the shadow {challenger[0]:.3f} "
        f"({champion[1]:,}, {champion[2]:,})\n"
        f"  after the swap (from {swapped:%b %d}), v0.2.0 {after[0]:.3f} ({after[1]:,}, {after[2]:,})\n"
        f"challenger.json: {verdict['verdict']}, AP {verdict['champion_average_precision']:.3f} -> "
        f"{verdict['challenger_average_precision']:.3f}, difference {verdict['diff_average_precision']:+.3f} "
        f"[{verdict['diff_average_precision_ci_low']:+.3f}, {verdict['diff_average_precision_ci_high']:+.3f}] "
        f"on {verdict['n_labelled']:,} labelled shadow rows\n"
        f"swap under load: {len(answers)} requests, {len(failed)} failed\n"
        f"seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items())
    )
    assert drifted[0] < before[0]  # the drift hurts the old model
    assert challenger[0] > champion[0]  # the retrained model ranks the drifted traffic better
    assert after[0] > drifted[0]  # and once it answers, the live AP recovers
