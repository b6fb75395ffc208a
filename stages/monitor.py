"""Stage `monitor`: the training period against the current window (the live period as `infer`
scored it, or what the service scored): data and prediction drift, performance once labels are
known, bias by segment, and champion against the challenger the service scored in the shadow; drift.json,
challenger.json (the promotion verdict), an HTML report, and this run's point in the monitoring history."""

from fraudpipe.data.split import SplitConfig
from fraudpipe.errors import MonitoringAlert
from fraudpipe.features.definitions import FeatureConfig
from fraudpipe.io import read_parquet, read_parquet_if_exists, write_json, write_text
from fraudpipe.metrics import read_metrics
from fraudpipe.model import read_bundle_metadata
from fraudpipe.monitoring.challenger import Scored, compare_shadow
from fraudpipe.monitoring.config import MonitorConfig
from fraudpipe.monitoring.history import add_point, history_point, read_history
from fraudpipe.monitoring.monitor import monitor
from fraudpipe.monitoring.report import feature_records, render
from fraudpipe.monitoring.window import Window, predictions_window, reference_scores, service_log_window
from fraudpipe.paths import (
    BUNDLE_DIR,
    CHALLENGER,
    CUSTOMERS,
    DRIFT,
    INTERIM,
    LIVE,
    METRICS,
    MONITOR_FEATURES,
    MONITOR_HISTORY,
    MONITOR_REPORT,
    PREDICTIONS,
    TERMINALS,
    TRAIN,
    TRAIN_SCORES,
)
from fraudpipe.pipeline.loader import load
from fraudpipe.pipeline.stage import run
from fraudpipe.scoring.batch import check_features

# The reference is the training period (TRAIN: features; TRAIN_SCORES: the model's scores of them,
# which `train` wrote, so this stage reads the bundle's metadata and never loads the model); the
# current window is LIVE with infer's PREDICTIONS, or the service's log on top of the INTERIM
# history; METRICS (the test period's figures) is the performance baseline; CUSTOMERS and
# TERMINALS give regions and distances, when the source has them. MONITOR_HISTORY is this stage's own
# output, kept between runs (persist: true): the stage puts its point in place of the one of the same
# window and model, so a rerun with nothing changed rewrites the same bytes.


def current_window(config: MonitorConfig, features: FeatureConfig, version: str) -> Window:
    if config.current == "predictions":
        return predictions_window(read_parquet(LIVE), read_parquet(PREDICTIONS), version)
    return service_log_window(  # a journal directory or Redis: the reader of data=service_log
        config.read_log(),
        read_parquet(INTERIM),
        features,
        version,
        read_parquet_if_exists(CUSTOMERS),
        read_parquet_if_exists(TERMINALS),
        source=f"the service log in {config.log_where} (monitor.log)",
    )


def main() -> None:
    config = load("monitor", MonitorConfig)
    split = load("split", SplitConfig)
    features = load("features", FeatureConfig)
    bundle = read_bundle_metadata(BUNDLE_DIR)
    check_features(bundle, features, BUNDLE_DIR)
    reference = read_parquet(TRAIN)
    window = current_window(config, features, bundle.version)

    result = monitor(
        reference,
        reference_scores(reference, read_parquet(TRAIN_SCORES), bundle.version),
        window.frame,
        window.scores,
        window.alerts,
        features=bundle.features,
        threshold=bundle.threshold,
        test_metrics=read_metrics(METRICS),
        delay_days=split.delay_days,
        remove_known=split.remove_known_compromised,
        config=config,
        customers=read_parquet_if_exists(CUSTOMERS),
        model_version=bundle.version,
    )
    comparison = compare_shadow(
        window.frame,
        Scored(bundle.version, window.scores, window.alerts.astype(bool)),
        window.shadow,
        k=int(result.metrics["card_precision_k"]),
        delay_days=split.delay_days,
        remove_known=split.remove_known_compromised,
        reference_alert_rate=result.metrics["reference_alert_rate"],
        alert_rate_change=config.prediction.alert_rate_change,
        config=config.challenger,
    )
    write_json(result.metrics, DRIFT)
    write_json(comparison.metrics, CHALLENGER)
    write_json(feature_records(result), MONITOR_FEATURES)
    write_text(render(result, window.description, comparison), MONITOR_REPORT)
    write_json(add_point(read_history(MONITOR_HISTORY), history_point(result)), MONITOR_HISTORY)
    print(
        f"monitor: {len(reference):,} reference rows against {window.description} -> {MONITOR_REPORT}\n"
        f"  {result.summary}\n  challenger: {comparison.reason}"
    )
    if result.metrics["alert"] and config.fail_on_alert:
        raise MonitoringAlert(
            f"{result.summary} (see {MONITOR_REPORT}; monitor.fail_on_alert is true: set it to false to "
            "record alerts without failing)"
        )


if __name__ == "__main__":
    run(main, "monitor")
