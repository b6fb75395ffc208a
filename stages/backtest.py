"""Stage `backtest`: the configured model retrained and scored on the prequential folds (fold 0, the
configured split, by the bundle `train` fitted on it when it is that fit)."""

from pathlib import Path

from fraudpipe.data.split import SplitConfig, read_folds
from fraudpipe.evaluation.backtest import backtest
from fraudpipe.io import write_json
from fraudpipe.metrics import MetricConfig
from fraudpipe.model import ModelConfig, load_bundle
from fraudpipe.pipeline.stage import load_params, run

FEATURES = Path("data/features/features.parquet")
BUNDLE_DIR = Path("models/bundle")  # fold 0's fit, when its params and training data are this fold's
BACKTEST = Path("reports/backtest.json")  # reproducible: byte-identical on rerun


def main() -> None:
    params = load_params("split", "model", "evaluate")
    split_config = SplitConfig.parse(params["split"], "split")
    model_config = ModelConfig.parse(params["model"], "model")
    k = MetricConfig.of(params["evaluate"]).card_precision_k  # dvc.yaml declares evaluate.card_precision_k only
    table, last_time = read_folds(FEATURES, split_config)  # the folds' weeks only
    summary, _ = backtest(table, split_config, model_config, k, load_bundle(BUNDLE_DIR), last_time)
    write_json(summary, BACKTEST)
    print(
        f"backtest: {model_config.name} on {summary['n_folds']} folds: "
        f"AUC {summary['roc_auc_fold_mean']:.4f} ± {summary['roc_auc_fold_std']:.4f}, "
        f"AP {summary['average_precision_fold_mean']:.4f} ± {summary['average_precision_fold_std']:.4f}, "
        f"CP@{k} {summary['card_precision_at_k_fold_mean']:.4f} ± {summary['card_precision_at_k_fold_std']:.4f}"
    )


if __name__ == "__main__":
    run(main, "backtest")
