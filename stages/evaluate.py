"""Stage `evaluate`: score the test period, write metrics and plots, and the quality gate's verdict."""

from fraudpipe.errors import GateFailed
from fraudpipe.evaluation.parity import latency_percentiles, score_parity
from fraudpipe.evaluation.plots import (
    calibration_records,
    confusion_json,
    feature_importance_records,
    precision_recall_records,
    records_json,
    roc_records,
    score_distribution_records,
)
from fraudpipe.gate import gate_verdict, verdict_words
from fraudpipe.io import read_parquet, write_json, write_text
from fraudpipe.metrics import EvaluateConfig, bootstrap_intervals, quality_metrics
from fraudpipe.model import load_bundle
from fraudpipe.paths import BUNDLE_DIR, GATE, METRICS, ONLINE_ROWS, PARITY_SCORES, PLOTS_DIR, TEST
from fraudpipe.pipeline.loader import load
from fraudpipe.pipeline.stage import run
from fraudpipe.scoring.row import RowScorer


def main() -> None:
    config = load("evaluate", EvaluateConfig)
    bundle = load_bundle(BUNDLE_DIR)
    test = read_parquet(TEST)
    scores = bundle.score(test)
    labels = test["tx_fraud"].to_numpy()
    metrics = quality_metrics(test, scores, bundle.threshold, config.card_precision_k)
    metrics |= bootstrap_intervals(test, scores, config.card_precision_k, config.interval)
    gate = gate_verdict(metrics, config.gate)
    row = RowScorer(bundle)  # the service's one-row path, on the online rows the parity stage replayed
    parity, latency = score_parity(read_parquet(ONLINE_ROWS), bundle, row)

    write_json(metrics, METRICS)
    write_json(gate, GATE)
    write_json(parity, PARITY_SCORES)
    write_json(roc_records(labels, scores), PLOTS_DIR / "roc.json")
    write_json(precision_recall_records(labels, scores), PLOTS_DIR / "precision_recall.json")
    write_text(confusion_json(labels, scores, bundle.threshold), PLOTS_DIR / "confusion.json")
    write_text(
        records_json(feature_importance_records(bundle.feature_importance)), PLOTS_DIR / "feature_importance.json"
    )
    write_text(records_json(calibration_records(labels, scores)), PLOTS_DIR / "calibration.json")
    write_text(
        records_json(score_distribution_records(labels, scores, bundle.threshold)),
        PLOTS_DIR / "score_distribution.json",
    )

    k, m = config.card_precision_k, metrics
    print(
        f"evaluate: {bundle.name} on {m['n_test']:,} test rows ({m['n_frauds']:,} frauds, {m['n_test_days']} days): "
        f"AUC {m['roc_auc']:.4f} [{m['roc_auc_ci_low']:.4f}, {m['roc_auc_ci_high']:.4f}], "
        f"AP {m['average_precision']:.4f} "
        f"[{m['average_precision_ci_low']:.4f}, {m['average_precision_ci_high']:.4f}], CP@{k} "
        f"{m['card_precision_at_k']:.4f} "
        f"[{m['card_precision_at_k_ci_low']:.4f}, {m['card_precision_at_k_ci_high']:.4f}] "
        f"({m['ci_level']:.0%} intervals over test days); quality gate {verdict_words(gate)}"
    )
    p50, p99 = latency_percentiles(latency)
    print(
        f"evaluate: the {parity['rows_compared']:,} online rows of the parity replay: max |row path - batch path| "
        f"score {parity['max_abs_score_diff']:.3g}; row path p50 {p50:.3f} ms, p99 {p99:.3f} ms "
        f"({row.fast_path.describe()})"
    )
    for warning in gate["warnings"]:
        print(f"evaluate: warning: {warning['message']}")
    if not gate["passed"] and config.gate.enforce:
        raise GateFailed(
            "quality gate failed: " + "; ".join(gate["failures"]) + f" (see {GATE}). Lower the minimum if it is too "
            "strict for this data, or set evaluate.gate.enforce: false to record the gate without failing"
        )


if __name__ == "__main__":
    run(main, "evaluate")
