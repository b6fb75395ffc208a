"""Stage `evaluate`: score the test period, write metrics and plots, apply the quality gate."""

from fraudpipe.contract import TRANSACTION_ID, TX_DATETIME
from fraudpipe.data.split import SplitConfig, periods
from fraudpipe.errors import GateFailed
from fraudpipe.evaluation.plots import (
    calibration_figure,
    confusion_records,
    feature_importance_figure,
    precision_recall_records,
    records_json,
    roc_records,
    save_png,
    score_distribution_figure,
)
from fraudpipe.features.definitions import FeatureConfig
from fraudpipe.features.online import OnlineState, history_since
from fraudpipe.io import read_parquet, read_parquet_if_exists, write_json, write_text
from fraudpipe.metrics import EvaluateConfig, batch_throughput, check_gate, quality_metrics
from fraudpipe.model import load_bundle
from fraudpipe.paths import BUNDLE_DIR, CUSTOMERS, FEATURES, INTERIM, LATENCY, METRICS, PLOTS_DIR, TERMINALS, TEST
from fraudpipe.pipeline.loader import load
from fraudpipe.pipeline.stage import run
from fraudpipe.scoring.online import OnlineScorer, latency_summary, max_abs_difference, replay


def main() -> None:
    config = load("evaluate", EvaluateConfig)
    bundle = load_bundle(BUNDLE_DIR)
    test = read_parquet(TEST)
    scores = bundle.score(test)
    labels = test["tx_fraud"].to_numpy()
    metrics = quality_metrics(test, scores, bundle.threshold, config.card_precision_k)

    # Single transactions through the serving path: history (INTERIM) before the test period, then
    # the first `latency_rows` transactions of the test period replayed one by one (scored, then
    # added). Only the rows the state keeps are read (its retention before the test period, then the
    # test period on), and only the replayed rows' offline features (FEATURES: online/offline parity).
    features = load("features", FeatureConfig)
    times = read_parquet(INTERIM, columns=[TX_DATETIME])[TX_DATETIME]
    test_start = periods(load("split", SplitConfig), times.max()).test_start
    since = history_since(features, times, test_start)
    del times
    transactions = read_parquet(INTERIM, filters=None if since is None else [(TX_DATETIME, ">=", since)])
    before = transactions[TX_DATETIME] < test_start
    state = OnlineState.from_history(
        transactions[before],
        features,
        read_parquet_if_exists(CUSTOMERS),
        read_parquet_if_exists(TERMINALS),
    )
    scorer = OnlineScorer(state, load_bundle(BUNDLE_DIR, nthread=1))  # one thread per worker, as the service loads it
    replayed_rows = transactions[~before].head(config.latency_rows)
    del transactions, before, state
    replayed = replay(scorer, replayed_rows)
    span = [
        (TX_DATETIME, ">=", replayed_rows[TX_DATETIME].min()),
        (TX_DATETIME, "<=", replayed_rows[TX_DATETIME].max()),
    ]
    offline = read_parquet(
        FEATURES, columns=[TRANSACTION_ID, *bundle.features], filters=span if len(replayed_rows) else None
    )
    metrics["online_offline_max_abs_diff"] = max_abs_difference(replayed, offline, list(bundle.features))

    failures = check_gate(metrics, config.gate.minimums)
    metrics["gate_passed"] = int(not failures)
    X = test[list(bundle.features)].to_numpy(dtype="float64")
    latency = latency_summary(replayed.latency_ms) | batch_throughput(bundle.predict_proba, X)

    write_json(metrics, METRICS)
    write_json(latency, LATENCY)
    write_json(roc_records(labels, scores), PLOTS_DIR / "roc.json")
    write_json(precision_recall_records(labels, scores), PLOTS_DIR / "precision_recall.json")
    write_text(records_json(confusion_records(labels, scores, bundle.threshold)), PLOTS_DIR / "confusion.json")
    save_png(
        feature_importance_figure(bundle.feature_importance, f"Feature importance ({bundle.name})"),
        PLOTS_DIR / "feature_importance.png",
    )
    save_png(calibration_figure(labels, scores), PLOTS_DIR / "calibration.png")
    save_png(score_distribution_figure(labels, scores, bundle.threshold), PLOTS_DIR / "score_distribution.png")

    k = config.card_precision_k
    print(
        f"evaluate: {bundle.name} on {metrics['n_test']:,} test rows: AUC {metrics['roc_auc']:.4f}, "
        f"AP {metrics['average_precision']:.4f}, CP@{k} {metrics['card_precision_at_k']:.4f}; "
        f"latency p50 {latency['score_latency_p50_ms']:.3f} ms, p99 {latency['score_latency_p99_ms']:.3f} ms"
    )
    if failures and config.gate.enforce:
        raise GateFailed(
            "quality gate failed: " + "; ".join(failures) + f" (see {METRICS}). Lower the minimum if it is too "
            "strict for this data, or set evaluate.gate.enforce: false to record the gate without failing"
        )


if __name__ == "__main__":
    run(main, "evaluate")
