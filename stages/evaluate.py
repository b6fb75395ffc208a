"""Stage `evaluate`: score the test period, write metrics and plots, apply the quality gate."""

from pathlib import Path

from fraudpipe.io import read_parquet, write_json, write_text
from fraudpipe.metrics import EvaluateConfig, GateFailed, batch_throughput, check_gate, quality_metrics, single_row_latency_ms
from fraudpipe.model import ModelConfig, evaluate_prequential, load_bundle
from fraudpipe.plots import (
    calibration_figure,
    confusion_records,
    feature_importance_figure,
    precision_recall_records,
    records_json,
    roc_records,
    save_png,
    score_distribution_figure,
)
from fraudpipe.stage import load_params, run

BUNDLE_DIR = Path("models/bundle")
TEST = Path("data/split/test.parquet")
FEATURES = Path("data/features/features.parquet")  # read only for prequential folds (split.n_folds > 1)
METRICS = Path("reports/metrics.json")  # reproducible: byte-identical on rerun
LATENCY = Path("reports/latency.json")  # wall-clock: changes on every run
PLOTS = Path("reports/plots")


def main() -> None:
    params = load_params("evaluate", "split", "model")
    config = EvaluateConfig.from_dict(params["evaluate"])
    bundle = load_bundle(BUNDLE_DIR)
    test = read_parquet(TEST)
    scores = bundle.score(test)
    labels = test["tx_fraud"].to_numpy()

    metrics = quality_metrics(test, scores, bundle.threshold, config.card_precision_k)
    if int(params["split"].get("n_folds", 1)) > 1:
        from fraudpipe.split import SplitConfig

        split_config = SplitConfig.from_dict(params["split"])
        summary, _ = evaluate_prequential(read_parquet(FEATURES), split_config, ModelConfig.from_dict(params["model"]), config.card_precision_k)
        metrics |= summary
    failures = check_gate(metrics, config.gate_minimums)
    metrics["gate_passed"] = int(not failures)

    X = test[list(bundle.features)].to_numpy(dtype="float64")
    serving = load_bundle(BUNDLE_DIR, nthread=1)  # one thread per worker, as the service loads it
    latency = single_row_latency_ms(serving.predict_proba, X, config.latency_rows) | batch_throughput(bundle.predict_proba, X)

    write_json(metrics, METRICS)
    write_json(latency, LATENCY)
    write_json(roc_records(labels, scores), PLOTS / "roc.json")
    write_json(precision_recall_records(labels, scores), PLOTS / "precision_recall.json")
    write_text(records_json(confusion_records(labels, scores, bundle.threshold)), PLOTS / "confusion.json")
    save_png(feature_importance_figure(bundle.feature_importance, f"Feature importance ({bundle.name})"), PLOTS / "feature_importance.png")
    save_png(calibration_figure(labels, scores), PLOTS / "calibration.png")
    save_png(score_distribution_figure(labels, scores, bundle.threshold), PLOTS / "score_distribution.png")

    k = config.card_precision_k
    print(
        f"evaluate: {bundle.name} on {metrics['n_test']:,} test rows: AUC {metrics['roc_auc']:.4f}, "
        f"AP {metrics['average_precision']:.4f}, CP@{k} {metrics[f'card_precision_at_{k}']:.4f}; "
        f"latency p50 {latency['score_latency_p50_ms']:.3f} ms, p99 {latency['score_latency_p99_ms']:.3f} ms"
    )
    if failures and config.gate_enforce:
        raise GateFailed("quality gate failed: " + "; ".join(failures) + f" (see {METRICS})")


if __name__ == "__main__":
    run(main, "evaluate")
