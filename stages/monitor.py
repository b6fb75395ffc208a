"""Stage `monitor`: the training period against the live period as `infer` scored it: data and
prediction drift, performance once labels are known, bias by segment; drift.json and an HTML report."""

from pathlib import Path

from fraudpipe.drift import MonitorConfig, check_predictions, monitor
from fraudpipe.metrics import read_metrics
from fraudpipe.errors import MonitoringAlert
from fraudpipe.io import read_parquet, read_parquet_if_exists, write_json, write_text
from fraudpipe.model import load_bundle
from fraudpipe.monitor_report import feature_records, render
from fraudpipe.split import SplitConfig
from fraudpipe.stage import load_params, run

BUNDLE_DIR = Path("models/bundle")
REFERENCE = Path("data/split/train.parquet")  # the training period: features, and the model's scores on them
LIVE = Path("data/split/live.parquet")  # the current window's transactions, labels and features
PREDICTIONS = Path("data/predictions/live.parquet")  # infer's scores and alerts of those rows
TEST_METRICS = Path("reports/metrics.json")  # the test period's figures, the performance baseline
RAW = Path("data/raw")  # customer locations (regions), when the source has them
DRIFT = Path("reports/monitoring/drift.json")  # the flat metrics, byte-identical on rerun
FEATURES = Path("reports/monitoring/features.json")  # the per-feature table
REPORT = Path("reports/monitoring/report.html")


def main() -> None:
    params = load_params("monitor", "split")
    config = MonitorConfig.parse(params["monitor"], "monitor")
    split = SplitConfig.parse(params["split"], "split")
    bundle = load_bundle(BUNDLE_DIR)
    reference = read_parquet(REFERENCE)
    current = read_parquet(LIVE)
    predictions = read_parquet(PREDICTIONS)
    check_predictions(predictions, current, bundle.version)

    result = monitor(
        reference, bundle.score(reference), current, predictions["score"].to_numpy(), predictions["alert"].to_numpy(),
        features=bundle.features, threshold=bundle.threshold, test_metrics=read_metrics(TEST_METRICS),
        delay_days=split.delay_days, remove_known=split.remove_known_compromised, config=config,
        customers=read_parquet_if_exists(RAW / "customers.parquet"), model_version=bundle.version,
    )
    write_json(result.metrics, DRIFT)
    write_json(feature_records(result), FEATURES)
    write_text(render(result), REPORT)
    print(f"monitor: {len(reference):,} reference rows against {len(current):,} current rows -> {REPORT}\n  {result.summary}")
    if result.metrics["alert"] and config.fail_on_alert:
        raise MonitoringAlert(f"{result.summary} (see {REPORT}; monitor.fail_on_alert is true: set it to false to "
                              "record alerts without failing)")


if __name__ == "__main__":
    run(main, "monitor")
