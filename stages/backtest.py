"""Stage `backtest`: the configured model retrained and scored on the prequential folds (fold 0, the
configured split, by the bundle `train` fitted on it when it is that fit)."""

from fraudpipe.data.split import SplitConfig, read_folds
from fraudpipe.evaluation.backtest import backtest
from fraudpipe.io import write_json
from fraudpipe.metrics import EvaluateConfig
from fraudpipe.model import load_bundle
from fraudpipe.model.config import ModelConfig
from fraudpipe.paths import BACKTEST, BUNDLE_DIR, FEATURES
from fraudpipe.pipeline.loader import load
from fraudpipe.pipeline.stage import run


def main() -> None:
    split_config = load("split", SplitConfig)
    model_config = load("model", ModelConfig)
    k = load("evaluate.card_precision_k", EvaluateConfig)  # dvc.yaml declares this key of evaluate only
    table, last_time = read_folds(FEATURES, split_config)  # the folds' weeks only
    # The bundle is fold 0's fit, when its params and training data are this fold's.
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
