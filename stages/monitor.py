"""Stage `monitor`: the training period against the current window (the live period as `infer`
scored it, or what the service scored): data and prediction drift, performance once labels are
known, bias by segment; drift.json and an HTML report."""

from pathlib import Path

from fraudpipe.data.split import SplitConfig
from fraudpipe.errors import MonitoringAlert
from fraudpipe.features.definitions import FeatureConfig
from fraudpipe.io import read_parquet, read_parquet_if_exists, write_json, write_text
from fraudpipe.metrics import read_metrics
from fraudpipe.model import load_bundle
from fraudpipe.monitoring.config import MonitorConfig
from fraudpipe.monitoring.monitor import monitor
from fraudpipe.monitoring.report import feature_records, render
from fraudpipe.monitoring.window import Window, predictions_window, service_log_window
from fraudpipe.pipeline.stage import load_params, run
from fraudpipe.scoring.batch import check_features
from fraudpipe.servicelog import read_service_log

BUNDLE_DIR = Path("models/bundle")
REFERENCE = Path("data/split/train.parquet")  # the training period: features, and the model's scores on them
LIVE = Path("data/split/live.parquet")  # the current window's transactions, labels and features
PREDICTIONS = Path("data/predictions/live.parquet")  # infer's scores and alerts of those rows
HISTORY = Path("data/interim/transactions.parquet")  # the history the service's features start from
TEST_METRICS = Path("reports/metrics.json")  # the test period's figures, the performance baseline
RAW = Path("data/raw")  # customer and terminal locations (regions, distances), when the source has them
DRIFT = Path("reports/monitoring/drift.json")  # the flat metrics, byte-identical on rerun
FEATURES = Path("reports/monitoring/features.json")  # the per-feature table
REPORT = Path("reports/monitoring/report.html")


def current_window(config: MonitorConfig, features: FeatureConfig, version: str) -> Window:
    if config.current == "predictions":
        return predictions_window(read_parquet(LIVE), read_parquet(PREDICTIONS), version)
    journal = Path(config.journal_dir)
    return service_log_window(
        read_service_log(journal),
        read_parquet(HISTORY),
        features,
        version,
        read_parquet_if_exists(RAW / "customers.parquet"),
        read_parquet_if_exists(RAW / "terminals.parquet"),
        source=f"the service log in {journal} (monitor.journal_dir)",
    )


def main() -> None:
    params = load_params("monitor", "split", "features")
    config = MonitorConfig.parse(params["monitor"], "monitor")
    split = SplitConfig.parse(params["split"], "split")
    features = FeatureConfig.parse(params["features"], "features")
    bundle = load_bundle(BUNDLE_DIR)
    check_features(bundle, features, BUNDLE_DIR)
    reference = read_parquet(REFERENCE)
    window = current_window(config, features, bundle.version)

    result = monitor(
        reference,
        bundle.score(reference),
        window.frame,
        window.scores,
        window.alerts,
        features=bundle.features,
        threshold=bundle.threshold,
        test_metrics=read_metrics(TEST_METRICS),
        delay_days=split.delay_days,
        remove_known=split.remove_known_compromised,
        config=config,
        customers=read_parquet_if_exists(RAW / "customers.parquet"),
        model_version=bundle.version,
    )
    write_json(result.metrics, DRIFT)
    write_json(feature_records(result), FEATURES)
    write_text(render(result, window.description), REPORT)
    print(f"monitor: {len(reference):,} reference rows against {window.description} -> {REPORT}\n  {result.summary}")
    if result.metrics["alert"] and config.fail_on_alert:
        raise MonitoringAlert(
            f"{result.summary} (see {REPORT}; monitor.fail_on_alert is true: set it to false to "
            "record alerts without failing)"
        )


if __name__ == "__main__":
    run(main, "monitor")
