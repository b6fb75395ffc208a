"""The champion-challenger comparison on the default data: its figures and its time.

The champion is this checkout's bundle with `infer`'s scores of the live period; a challenger is
trained on the same training period with other model settings and scores the same rows, as the
service's shadow would; the first ``--days`` of the live period are the shadow window. Then
`monitoring.challenger.compare_shadow` with conf/'s monitor settings (through params.yaml).

    python benchmarks/challenger.py                          # challenger max_depth=2, n_estimators=20; 14 days
    python benchmarks/challenger.py --set max_depth=6 --days 21

Prints the verdict, its reason, the counts and the seconds the comparison took (best of 3).
Needs the pipeline's outputs (data/split, data/predictions, models/bundle, reports/metrics.json).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
import yaml

from fraudpipe.data.split import SplitConfig
from fraudpipe.io import read_parquet
from fraudpipe.metrics import read_metrics
from fraudpipe.model import ModelConfig, load_bundle, train_bundle
from fraudpipe.monitoring.challenger import Scored, compare_shadow
from fraudpipe.monitoring.config import MonitorConfig
from fraudpipe.monitoring.window import Shadow
from fraudpipe.paths import BUNDLE_DIR, LIVE, METRICS, PREDICTIONS, TRAIN
from fraudpipe.pipeline.loader import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], help="a challenger model setting, key=value (YAML)")
    parser.add_argument("--days", type=int, default=14, help="days of the live period in the shadow window")
    args = parser.parse_args()
    monitor, split = load("monitor", MonitorConfig), load("split", SplitConfig)
    settings = args.set or ["max_depth=2", "n_estimators=20"]
    overrides = {key: yaml.safe_load(value) for key, value in (s.split("=", 1) for s in settings)}
    model = load("model", ModelConfig).model_dump(by_alias=True) | overrides
    champion = load_bundle(BUNDLE_DIR)
    challenger = train_bundle(read_parquet(TRAIN), ModelConfig.parse(model, "model"))
    live, predictions = read_parquet(LIVE), read_parquet(PREDICTIONS)
    days = live["tx_datetime"].dt.floor("D")
    rows = (days < days.min() + pd.Timedelta(days=args.days)).to_numpy()
    window = live[rows].reset_index(drop=True)
    scores = challenger.score(window)
    shadow = Shadow(scores, np.full(len(window), challenger.version, dtype=object), scores >= challenger.threshold)
    ours = Scored(champion.version, predictions["score"].to_numpy()[rows], predictions["alert"].to_numpy()[rows] == 1)
    metrics = read_metrics(METRICS)
    reference_rate = float(np.mean(champion.score(read_parquet(TRAIN)) >= champion.threshold))
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        result = compare_shadow(
            window,
            ours,
            shadow,
            k=int(metrics["card_precision_k"]),
            delay_days=split.delay_days,
            remove_known=split.remove_known_compromised,
            reference_alert_rate=reference_rate,
            alert_rate_change=monitor.prediction.alert_rate_change,
            config=monitor.challenger,
        )
        best = min(best, time.perf_counter() - start)
    print(f"challenger {overrides} on {args.days} live days: {result.verdict} ({best:.2f} s, best of 3)")
    print(f"  {result.reason}")
    print(json.dumps({k: v for k, v in result.metrics.items() if k != "reason"}, indent=1))


if __name__ == "__main__":
    main()
