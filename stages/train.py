"""Stage `train`: fit the configured model on the training period and save the model bundle."""

from pathlib import Path

from dvclive import Live

from fraudpipe.engine import EngineConfig
from fraudpipe.io import atomic_dir, read_parquet
from fraudpipe.model import ModelConfig, save_bundle, training_summary
from fraudpipe.model.estimators.xgboost_dask import check_model, train_on_engine
from fraudpipe.pipeline.stage import load_config, run

TRAIN = Path("data/split/train.parquet")
BUNDLE_DIR = Path("models/bundle")
LIVE_DIR = Path("reports/train")  # dvclive: metrics.json and plots/metrics/*.tsv (no timestamps)


def main() -> None:
    config = load_config("model", ModelConfig)
    engine = load_config("engine", EngineConfig)
    check_model(engine, config)  # before reading data or starting a cluster
    train = read_parquet(TRAIN)
    # dvclive rewrites its files at every step: it writes into a hidden temporary directory
    # (.train.<random>.tmp, git-ignored) that replaces reports/train only when training has ended,
    # so a killed run leaves the previous metrics and plots, never step 18 of 49.
    with atomic_dir(LIVE_DIR) as live_dir, Live(dir=str(live_dir), dvcyaml=False, save_dvc_exp=False) as live:
        bundle = train_on_engine(engine, train, config, live=live)
        for key, value in training_summary(bundle).items():
            live.log_metric(key, value, plot=False)
    with atomic_dir(BUNDLE_DIR) as tmp:
        save_bundle(bundle, tmp)
    sel = bundle.metadata["threshold_selection"]
    print(
        f"train: {config.name} ({engine.name} engine) on {len(train):,} rows ({int(train['tx_fraud'].sum()):,} frauds); "
        f"threshold {bundle.threshold:.4f} ({sel['rule']}, F1 {sel['f1']:.3f} on {sel['n_rows']:,} held-out rows) -> {BUNDLE_DIR}"
    )


if __name__ == "__main__":
    run(main, "train")
