"""Stage `infer`: score the live period with the model bundle (batch), after the gate and feature checks.
Its speed is printed, not written: a wall-clock figure would change a git-tracked file on every run."""

import sys

from fraudpipe.features.definitions import FeatureConfig
from fraudpipe.io import read_parquet, write_json, write_parquet
from fraudpipe.metrics import EvaluateConfig
from fraudpipe.model import load_bundle
from fraudpipe.paths import BUNDLE_DIR, GATE, INFER_SUMMARY, LIVE, PREDICTIONS
from fraudpipe.pipeline.loader import load
from fraudpipe.pipeline.stage import run
from fraudpipe.scoring.batch import check_features, read_gate_passed, respect_gate, score_live, summary, throughput


def main() -> None:
    gate = load("evaluate.gate", EvaluateConfig)  # dvc.yaml declares this key of evaluate only
    features = load("features", FeatureConfig)
    bundle = load_bundle(BUNDLE_DIR)
    passed = read_gate_passed(GATE)
    warning = respect_gate(passed, gate, GATE)
    check_features(bundle, features, BUNDLE_DIR)
    if warning:
        print(f"infer: warning: {warning}", file=sys.stderr)

    scored = score_live(bundle, read_parquet(LIVE), str(LIVE))
    figures = summary(scored.predictions, bundle.threshold, passed)
    speed = throughput(scored)
    write_parquet(scored.predictions, PREDICTIONS)
    write_json(figures, INFER_SUMMARY)
    rate = (
        "n/a: the live period is empty, set split.live_days"
        if not figures["rows_scored"]
        else f"{figures['alert_rate']:.2%}"
    )
    print(
        f"infer: {bundle.version} scored {figures['rows_scored']:,} live rows: {figures['alerts']:,} alerts ({rate}) "
        f"at threshold {bundle.threshold:.4f}; {speed['rows_per_s']:,.0f} rows/s -> {PREDICTIONS}"
    )


if __name__ == "__main__":
    run(main, "infer")
