"""Stage `infer`: score the live period with the model bundle (batch), after the gate and feature checks."""

import sys
from pathlib import Path

from fraudpipe.features.definitions import FeatureConfig
from fraudpipe.io import read_parquet, write_json, write_parquet
from fraudpipe.model import load_bundle
from fraudpipe.pipeline.stage import load_params, run
from fraudpipe.scoring.batch import (
    check_features,
    check_gate,
    gate_config,
    read_gate_passed,
    score_live,
    summary,
    throughput,
)

BUNDLE_DIR = Path("models/bundle")
LIVE = Path("data/split/live.parquet")
GATE = Path("reports/gate.json")  # the quality gate's verdict, from evaluate
PREDICTIONS = Path("data/predictions/live.parquet")
SUMMARY = Path("reports/infer/summary.json")  # reproducible: byte-identical on rerun
THROUGHPUT = Path("reports/infer/throughput.json")  # wall-clock: changes on every run


def main() -> None:
    params = load_params("features", "evaluate")  # dvc.yaml declares evaluate.gate only
    gate = gate_config(params["evaluate"])
    features = FeatureConfig.parse(params["features"], "features")
    bundle = load_bundle(BUNDLE_DIR)
    passed = read_gate_passed(GATE)
    warning = check_gate(passed, gate, GATE)
    check_features(bundle, features, BUNDLE_DIR)
    if warning:
        print(f"infer: warning: {warning}", file=sys.stderr)

    scored = score_live(bundle, read_parquet(LIVE), str(LIVE))
    figures = summary(scored.predictions, bundle.threshold, passed)
    speed = throughput(scored)
    write_parquet(scored.predictions, PREDICTIONS)
    write_json(figures, SUMMARY)
    write_json(speed, THROUGHPUT)
    rate = "n/a" if not figures["rows_scored"] else f"{figures['alert_rate']:.2%}"
    print(
        f"infer: {bundle.version} scored {figures['rows_scored']:,} live rows: {figures['alerts']:,} alerts ({rate}) "
        f"at threshold {bundle.threshold:.4f}; {speed['rows_per_s']:,.0f} rows/s -> {PREDICTIONS}"
    )


if __name__ == "__main__":
    run(main, "infer")
