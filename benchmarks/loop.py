"""Benchmark: the time from a monitoring alert to the retrained model serving, on the default data.

In a temporary clone of this repository's HEAD (its DVC cache hard-linked from ``--cache``, so the
default pipeline's outputs are there without a rerun; this checkout is never written), the default
model is registered (fraud-model@v1.0.0, prod) and `fraudpipe serve --model fraud-model#prod` runs on
loopback from the default online state (as of 2018-09-30). It is sent ``--days`` days of the drifted
simulator after the default data (the same customers and terminals, new transactions; batches of
100 over HTTP), each label a week after its transaction. Then, as .github/workflows/loop.yml runs
them (the same Hydra overrides: its RETRAIN), each step is timed:

- monitor (before the alert, not in the total): `dvc repro --single-item monitor` on the service's log;
- snapshot: `fraudpipe params data=service_log ...`, `fraudpipe snapshot` (the log -> Parquet, dvc add);
- retrain: `dvc exp run -S data=service_log ...`, every stage after the data changed, each stage's time;
- register: `dvc exp branch`, `fraudpipe adopt`, `dvc repro` (check_config), commit, `gto register`,
  `gto assign --stage staging`;
- shadow: POST /v1/admin/model {"shadow": "fraud-model#staging"} until it answers;
- swap: `gto assign --stage prod`, POST /v1/admin/model {"model": "fraud-model#prod", "shadow": null}.

Left out, because no machine decides them: the review of the pull request and the weeks of labelled
shadow traffic it rests on; and the network (`dvc push`, `git push`: a local clone has no remote).

    python benchmarks/loop.py                                   # about 5 minutes on 2 cores
    python benchmarks/loop.py --cache /work/main/.dvc/cache     # another checkout's DVC cache
    python benchmarks/loop.py --days 4 --json out.json
    python benchmarks/loop.py --retrain split.n_folds=1         # the retrain without the prequential folds
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import yaml

from fraudpipe.config import compose
from fraudpipe.contract import TX_DATETIME
from fraudpipe.data.simulate import SimulatorConfig, simulate
from fraudpipe.model import load_bundle

ROOT = Path(__file__).resolve().parents[1]
RETRAIN = yaml.safe_load((ROOT / ".github" / "workflows" / "loop.yml").read_text())["env"]["RETRAIN"]
#: Traffic ids start here: above every id of the default data (1.75 M transactions).
ID_OFFSET = 100_000_000
LABEL_DELAY = pd.Timedelta(days=7)


def env(**extra: str) -> dict[str, str]:
    out = dict(os.environ, DVC_NO_ANALYTICS="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), **extra)
    out["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{out.get('PATH', '')}"
    for key, value in (("NAME", "fraudpipe benchmark"), ("EMAIL", "bench@fraudpipe.invalid")):
        out.setdefault(f"GIT_AUTHOR_{key}", value)
        out.setdefault(f"GIT_COMMITTER_{key}", value)
    return out


def run(cwd: Path, *args: str) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env(PYTHONPATH=str(cwd / "src")), capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def clone(work: Path, cache: Path) -> Path:
    """HEAD of this repository with the pipeline's outputs checked out of ``cache`` (hard links)."""
    repo = work / "repo"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    run(work, "git", "clone", "-q", "--no-checkout", str(ROOT), str(repo))
    run(repo, "git", "checkout", "-q", "-B", "bench", head.strip())
    shutil.copytree(cache, repo / ".dvc" / "cache", copy_function=os.link)
    run(repo, "dvc", "checkout", "-q")
    if not (repo / "models" / "bundle").exists():
        raise SystemExit(f"{cache} lacks this HEAD's pipeline outputs: dvc repro first, or give --cache")
    return repo


def traffic(repo: Path, days: int) -> pd.DataFrame:
    """``days`` days after the default data from the drifted simulator (drift from the first of them)."""
    n_days = compose(repo / "conf")["data"]["simulator"]["n_days"]
    overrides = [
        "data=simulated_drift",
        f"data.simulator.n_days={n_days + days}",
        f"data.simulator.drift.start_day={n_days}",
    ]
    params = compose(repo / "conf", overrides)
    simulator = params["data"]["simulator"]
    tx = simulate(SimulatorConfig.parse(simulator, "data.simulator")).transactions.drop(columns="tx_fraud_scenario")
    start = pd.Timestamp(simulator["start_date"]) + pd.Timedelta(days=n_days)
    rows = tx[tx[TX_DATETIME] >= start].reset_index(drop=True)
    return rows.assign(transaction_id=rows["transaction_id"] + ID_OFFSET)


def body(row: Any) -> dict[str, Any]:
    return {
        "transaction_id": int(row.transaction_id),
        "customer_id": int(row.customer_id),
        "terminal_id": int(row.terminal_id),
        "tx_datetime": pd.Timestamp(row.tx_datetime).isoformat(),
        "tx_amount": float(row.tx_amount),
    }


def send(client: httpx.Client, rows: pd.DataFrame, batch: int = 100) -> int:
    """Every row in batches, and before each the labels that are a week old by then; returns the labels sent."""
    times, labelled = rows[TX_DATETIME].to_numpy(), 0
    for start in range(0, len(rows), batch):
        due = int(np.searchsorted(times, times[start] - LABEL_DELAY.to_timedelta64(), side="right"))
        for row in rows.iloc[labelled:due].itertuples():
            answer = client.post(
                "/v1/labels", json={"transaction_id": int(row.transaction_id), "tx_fraud": int(row.tx_fraud)}
            )
            answer.raise_for_status()
        labelled = max(labelled, due)
        chunk = rows.iloc[start : start + batch]
        client.post("/v1/score/batch", json={"transactions": [body(r) for r in chunk.itertuples()]}).raise_for_status()
    return labelled


def start_service(repo: Path, work: Path, port: int) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "fraudpipe.cli", "serve", "--model", "fraud-model#prod",
        "--model-cache", str(work / "models"), "--journal-dir", str(work / "journal"), "--port", str(port),
        "--log-level", "warning",
    ]  # fmt: skip
    log = open(work / "serve.log", "w")  # noqa: SIM115 (the service's lifetime, closed with the process)
    proc = subprocess.Popen(command, cwd=repo, env=env(PYTHONPATH=str(repo / "src")), stdout=log, stderr=log)
    end = time.monotonic() + 600
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"fraudpipe serve exited {proc.returncode}:\n{(work / 'serve.log').read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("fraudpipe serve not ready after 600 s")


def retrain(repo: Path, overrides: list[str]) -> dict[str, float]:
    """`dvc exp run` as loop.yml runs it; each stage's seconds, from when DVC starts it to the next."""
    args = ["dvc", "exp", "run", "--name", "loop-bench", *(a for o in overrides for a in ("-S", o))]
    proc = subprocess.Popen(
        args,
        cwd=repo,
        env=env(PYTHONPATH=str(repo / "src")),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    stages, current, since, output = {}, None, time.monotonic(), []
    for line in proc.stdout:
        output.append(line)
        if line.startswith("Running stage '"):
            now = time.monotonic()
            if current:
                stages[current] = round(now - since, 2)
            current, since = line.split("'")[1], now
    if proc.wait():
        raise SystemExit(f"dvc exp run exited {proc.returncode}:\n{''.join(output[-30:])}")
    if current:
        stages[current] = round(time.monotonic() - since, 2)
    return stages


def timed(figures: dict[str, Any], name: str, action: Any) -> Any:
    start = time.monotonic()
    out = action()
    figures[f"{name}_seconds"] = round(time.monotonic() - start, 2)
    print(f"  {name:<10} {figures[f'{name}_seconds']:8.1f} s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=8, help="days of traffic the service logs before the alert")
    parser.add_argument("--cache", type=Path, default=ROOT / ".dvc" / "cache", help="a DVC cache with HEAD's outputs")
    parser.add_argument(
        "--retrain", default="", help="Hydra overrides added to loop.yml's RETRAIN, e.g. split.n_folds=1"
    )
    parser.add_argument("--port", type=int, default=8391)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="fraudpipe-loop-bench-"))
    service = None
    try:
        repo = clone(work, args.cache)
        run(repo, "gto", "register", "fraud-model", "--version", "v1.0.0")
        run(repo, "gto", "assign", "fraud-model", "--version", "v1.0.0", "--stage", "prod")
        rows = traffic(repo, args.days)
        service = start_service(repo, work, args.port)
        client = httpx.Client(base_url=f"http://127.0.0.1:{args.port}", timeout=600)
        start = time.monotonic()
        labels = send(client, rows)
        figures: dict[str, Any] = {"rows_logged": len(rows), "labels_logged": labels, "days_logged": args.days}
        print(
            f"the service logged {len(rows):,} transactions and {labels:,} labels in {time.monotonic() - start:.0f} s"
        )
        journal = str(work / "journal")

        def monitor() -> int:
            run(repo, "fraudpipe", "params", "monitor.current=service_log", f"monitor.log={journal}")
            run(repo, "dvc", "repro", "--single-item", "monitor")
            return int(json.loads((repo / "reports/monitoring/drift.json").read_text())["alert"])

        figures["alert"] = timed(figures, "monitor", monitor)
        overrides = ["data=service_log", f"data.log={journal}", *RETRAIN.split(), *args.retrain.split()]

        def snapshot() -> None:
            run(repo, "fraudpipe", "params", *overrides)
            run(repo, "fraudpipe", "snapshot")
            run(repo, "git", "add", "data/external")

        def register() -> str:
            run(repo, "dvc", "exp", "branch", "loop-bench", "loop/bench")
            run(repo, "git", "checkout", "-q", "-f", "loop/bench")
            run(repo, "dvc", "checkout", "-q")
            run(repo, "fraudpipe", "adopt")
            run(repo, "dvc", "repro")
            run(repo, "git", "commit", "-q", "-am", "conf/ composes to the retrain's parameters (fraudpipe adopt)")
            run(repo, "gto", "register", "fraud-model", "loop/bench", "--bump-minor")
            run(repo, "gto", "assign", "fraud-model", "--version", "v1.1.0", "--stage", "staging")
            return load_bundle(repo / "models" / "bundle").version

        def admin(payload: dict[str, Any]) -> dict[str, Any]:
            answer = client.post("/v1/admin/model", json=payload)
            answer.raise_for_status()
            return answer.json()

        def swap() -> dict[str, Any]:
            run(repo, "gto", "assign", "fraud-model", "--version", "v1.1.0", "--stage", "prod")
            return admin({"model": "fraud-model#prod", "shadow": None})

        print("from the alert to the new model serving:")
        timed(figures, "snapshot", snapshot)
        figures["retrain_stages"] = timed(figures, "retrain", lambda: retrain(repo, overrides))
        version = timed(figures, "register", register)
        timed(figures, "shadow", lambda: admin({"shadow": "fraud-model#staging"}))
        assert client.get("/readyz").json()["shadow_model_version"] == version
        timed(figures, "swap", swap)
        ready = client.get("/readyz").json()
        assert (ready["model_version"], ready["model_registry_version"]) == (version, "fraud-model@v1.1.0"), ready
        steps = ("snapshot", "retrain", "register", "shadow", "swap")
        figures["alert_to_serving_seconds"] = round(sum(figures[f"{s}_seconds"] for s in steps), 2)
        print(f"  {'total':<10} {figures['alert_to_serving_seconds']:8.1f} s (fraud-model@v1.1.0 = {version} answers)")
        print("  retrain by stage: " + ", ".join(f"{k} {v:.1f}" for k, v in figures["retrain_stages"].items()))
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))
    finally:
        if service is not None:
            service.terminate()
            service.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
