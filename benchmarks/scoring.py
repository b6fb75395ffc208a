"""Scoring speed on this checkout's pipeline outputs: the figures no stage writes.

Wall-clock figures differ on every run, so the stages keep them out of git and out of `dvc metrics
diff` (a rerun with nothing changed leaves `git status` clean); they are measured here instead,
with the stages' own calls on their own inputs (run `dvc repro` first):

- batch: `Bundle.predict_proba` on the test period's feature rows in one call, best of 3 (evaluate's call);
- online: the test period's first ``evaluate.latency_rows`` transactions replayed one by one through
  the service's `OnlineScorer` on top of the history before them (the parity stage's replay), p50/p99;
- infer: `score_live` on the live period (the infer stage's call), rows per second.

    python benchmarks/scoring.py             # prints the figures
    python benchmarks/scoring.py --json F    # also writes them to F as JSON (benchmarks/run.py)
    python benchmarks/scoring.py --root DIR  # another reproduced checkout
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from fraudpipe.contract import TX_DATETIME
from fraudpipe.data.split import SplitConfig, periods
from fraudpipe.evaluation.parity import latency_summary, split_replay
from fraudpipe.features.definitions import FeatureConfig
from fraudpipe.features.online import OnlineState, history_since
from fraudpipe.io import read_parquet, read_parquet_if_exists
from fraudpipe.metrics import EvaluateConfig, batch_throughput
from fraudpipe.model import load_bundle
from fraudpipe.paths import BUNDLE_DIR, CUSTOMERS, INTERIM, LIVE, PARAMS, TERMINALS, TEST
from fraudpipe.pipeline.loader import load
from fraudpipe.scoring.batch import score_live, throughput
from fraudpipe.scoring.online import OnlineScorer, replay

ROOT = Path(__file__).resolve().parents[1]


def batch_figures(root: Path) -> dict[str, float]:
    bundle = load_bundle(root / BUNDLE_DIR)
    X = read_parquet(root / TEST, columns=list(bundle.features)).to_numpy(dtype="float64")
    return {"batch_rows": len(X)} | batch_throughput(bundle.predict_proba, X)


def online_figures(root: Path) -> dict[str, float]:
    """The parity stage's replay, timed per transaction: history lookup, features, one-row score."""
    params = root / PARAMS
    features = load("features", FeatureConfig, params)
    scorer = OnlineScorer(load_bundle(root / BUNDLE_DIR, nthread=1), features)  # one thread, as the service
    times = read_parquet(root / INTERIM, columns=[TX_DATETIME])[TX_DATETIME]
    test_start = periods(load("split", SplitConfig, params), times.max()).test_start
    since = history_since(features, times, test_start)
    transactions = read_parquet(root / INTERIM, filters=None if since is None else [(TX_DATETIME, ">=", since)])
    history, replayed = split_replay(transactions, test_start, load("evaluate.latency_rows", EvaluateConfig, params))
    customers, terminals = read_parquet_if_exists(root / CUSTOMERS), read_parquet_if_exists(root / TERMINALS)
    state = OnlineState.from_history(history, features, customers, terminals)
    return latency_summary(replay(scorer, state, replayed).latency_ms, scorer.fast_path)


def infer_figures(root: Path) -> dict[str, float]:
    scored = score_live(load_bundle(root / BUNDLE_DIR), read_parquet(root / LIVE), str(LIVE))
    return {f"infer_{key}": value for key, value in throughput(scored).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures to this file as JSON")
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the reproduced checkout to measure (default: this one)"
    )
    args = parser.parse_args()
    figures = batch_figures(args.root) | online_figures(args.root) | infer_figures(args.root)
    figures = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in figures.items()}
    for key, value in figures.items():
        print(f"{key}: {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
