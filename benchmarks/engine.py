"""Benchmark: featurize and train on the pandas engine against the Dask engine, by data size.

The simulator grows by customers and terminals (and the frauds with them: compromised terminals
and customers per day) over the default 183 days, so a size is the default data scaled up; the
transaction count is what the simulator draws (about 1.77 million at scale 1). For each size the
data is simulated once and written to a scratch directory; each engine then runs in a fresh
Python process (so peak memory is its own), which reads the data (not timed) and times:

- featurize: the feature table of the default features (`engine_features.featurize`);
- train: the default XGBoost model (hist trees) on the default split's training week
  (`engine_training`) on both engines; the pandas engine's fit of the same settings with exact
  trees (the default before issue 20, which the Dask engine cannot train) is timed beside it;
- for the Dask engine, starting the LocalCluster (each stage starts its own: counted once per
  stage in "featurize+train") and the peak RSS of its workers; for both, the client's peak RSS;
- the test week's average precision of each engine's model (the quality must not depend on it).

    python benchmarks/engine.py                      # 1 million transactions
    python benchmarks/engine.py --sizes 1e6 4e6 1e7  # the series; --json FILE keeps the figures

``run(sizes)`` returns the figures as a dict (`benchmarks/run.py` calls it). Wall-clock figures
only: nothing here is a DVC metric.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ROWS = 1_773_682  # the default simulator's expected transaction count (conf/data/simulated.yaml)
ENGINES = ("pandas", "dask")


def _params() -> dict:
    from fraudpipe.config import compose

    return compose(ROOT / "conf")


def simulator_for(rows: float, params: dict) -> dict:
    """The default simulator scaled to about ``rows`` transactions."""
    simulator = params["data"]["simulator"]
    scale = rows / DEFAULT_ROWS
    fraud = simulator["fraud"] | {
        "terminals_per_day": max(1, round(simulator["fraud"]["terminals_per_day"] * scale)),
        "customers_per_day": max(1, round(simulator["fraud"]["customers_per_day"] * scale)),
    }
    return simulator | {
        "n_customers": max(1, round(simulator["n_customers"] * scale)),
        "n_terminals": max(1, round(simulator["n_terminals"] * scale)),
        "fraud": fraud,
    }


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def measure(engine_name: str, data: Path) -> dict:
    """One engine on the data in ``data`` (run in a fresh process by `run`)."""
    import pandas as pd

    from fraudpipe.data.split import SplitConfig, time_split
    from fraudpipe.engine import EngineConfig, cluster
    from fraudpipe.features.dask import build_features_dask
    from fraudpipe.features.definitions import FeatureConfig, build_features
    from fraudpipe.metrics import average_precision
    from fraudpipe.model import ModelConfig, train_bundle
    from fraudpipe.model.estimators.xgboost_dask import DaskXGBoost

    params = _params()
    tx = pd.read_parquet(data / "transactions.parquet")
    customers, terminals = pd.read_parquet(data / "customers.parquet"), pd.read_parquet(data / "terminals.parquet")
    features = FeatureConfig.parse(params["features"], "features")
    split = SplitConfig.parse(params["split"], "split")
    hist = ModelConfig.parse(params["model"], "model")
    exact = hist.replace(tree_method="exact", max_bin=None)
    engine = EngineConfig.parse(params["engine"] | {"name": engine_name}, "engine")
    out: dict = {"engine": engine_name, "rows": len(tx)}

    def quality(bundle) -> float:
        return average_precision(parts.test["tx_fraud"].to_numpy(), bundle.score(parts.test))

    if engine_name == "pandas":
        t0 = time.perf_counter()
        table = build_features(tx, features, customers, terminals)
        out["featurize_s"] = time.perf_counter() - t0
        parts = time_split(table, split)
        del table
        t0 = time.perf_counter()
        bundle = train_bundle(parts.train, hist)
        out["train_s"] = time.perf_counter() - t0
        out["average_precision"] = quality(bundle)
        t0 = time.perf_counter()
        out["average_precision_exact"] = quality(train_bundle(parts.train, exact))
        out["train_exact_s"] = time.perf_counter() - t0
        out["start_s"] = 0.0
    else:
        t0 = time.perf_counter()
        with cluster(engine) as client:
            out["start_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            table = build_features_dask(client, tx, features, customers, terminals, engine.partitions)
            out["featurize_s"] = time.perf_counter() - t0
            parts = time_split(table, split)
            del table
            t0 = time.perf_counter()
            bundle = train_bundle(parts.train, hist, estimator=DaskXGBoost(client, engine.partitions))
            out["train_s"] = time.perf_counter() - t0
            out["average_precision"] = quality(bundle)
            peaks = client.run(_peak_rss_gib)
            out["worker_peak_rss_gib"] = max(peaks.values())
            out["workers_peak_rss_gib_sum"] = sum(peaks.values())
            t0 = time.perf_counter()
        out["stop_s"] = time.perf_counter() - t0
    out["train_rows"] = len(parts.train)
    out["client_peak_rss_gib"] = _peak_rss_gib()
    # as the two stages run it: each starts (and stops) its own cluster
    out["featurize_train_s"] = out["featurize_s"] + out["train_s"] + 2 * (out["start_s"] + out.get("stop_s", 0.0))
    return out


def run(sizes: list[float] | tuple[float, ...] = (1e6,), engines: tuple[str, ...] = ENGINES) -> dict:
    """Figures per size (transactions asked for) and engine, as ``{"sizes": [{...}, ...]}``."""
    from fraudpipe.data.simulate import SimulatorConfig, simulate
    from fraudpipe.io import write_parquet

    params = _params()
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    results = []
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="fraudpipe-engine-") as tmp:
            data = Path(tmp)
            t0 = time.perf_counter()
            sim = simulate(SimulatorConfig.parse(simulator_for(size, params), "data.simulator"))
            write_parquet(sim.transactions.drop(columns="tx_fraud_scenario"), data / "transactions.parquet")
            write_parquet(sim.customers, data / "customers.parquet")
            write_parquet(sim.terminals, data / "terminals.parquet")
            entry = {"size": size, "rows": len(sim.transactions), "simulate_s": time.perf_counter() - t0, "engines": {}}
            del sim
            for engine in engines:
                proc = subprocess.run(
                    [sys.executable, __file__, "--measure", engine, str(data)],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if proc.returncode != 0:
                    raise RuntimeError(f"{engine} at {size:g} rows failed:\n{proc.stderr[-3000:]}")
                entry["engines"][engine] = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append(entry)
    return {"machine": {"cpus": os.cpu_count(), "engine": params["engine"]}, "sizes": results}


def table(figures: dict) -> str:
    """The figures as a Markdown table."""
    lines = [
        "| rows | engine | cluster start s | featurize s | train s (hist) | featurize+train s (as stages) | "
        "client peak GiB | worker peak GiB | AP test | pandas, exact trees: train s / AP |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in figures["sizes"]:
        for name, f in entry["engines"].items():
            worker = f"{f['worker_peak_rss_gib']:.2f}" if "worker_peak_rss_gib" in f else "-"
            exact = f"{f['train_exact_s']:.1f} / {f['average_precision_exact']:.4f}" if "train_exact_s" in f else "-"
            lines.append(
                f"| {entry['rows']:,} | {name} | {f['start_s']:.1f} | {f['featurize_s']:.1f} | {f['train_s']:.1f} | "
                f"{f['featurize_train_s']:.1f} | {f['client_peak_rss_gib']:.2f} | {worker} | "
                f"{f['average_precision']:.4f} | {exact} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e6], help="transactions per run (simulator scale)")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--measure", nargs=2, metavar=("ENGINE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], Path(args.measure[1]))))
        return
    figures = run(args.sizes, tuple(args.engines))
    print(table(figures))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
