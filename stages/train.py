"""Stage `train`: fit the configured model on the training period, save the model bundle, and write
the saved bundle's scores of the training period (what `monitor` compares the current window's
scores with: scored once here, where the model is already loaded)."""

from dvclive import Live

from fraudpipe.engine import EngineConfig
from fraudpipe.features.definitions import FeatureConfig
from fraudpipe.io import atomic_dir, read_parquet, write_parquet
from fraudpipe.model import load_bundle, save_bundle, training_summary, with_features_config
from fraudpipe.model.config import ModelConfig
from fraudpipe.model.engines import check_model
from fraudpipe.model.estimators.xgboost_dask import train_on_engine
from fraudpipe.paths import BUNDLE_DIR, TRAIN, TRAIN_REPORTS, TRAIN_SCORES
from fraudpipe.pipeline.loader import load
from fraudpipe.pipeline.stage import run
from fraudpipe.scoring.batch import predictions


def main() -> None:
    config = load("model", ModelConfig)
    features = load("features", FeatureConfig)  # recorded in the bundle: the service builds its online state
    engine = load("engine", EngineConfig)
    check_model(engine, config)  # before reading data or starting a cluster
    train = read_parquet(TRAIN)
    # dvclive rewrites its files (metrics.json, plots/metrics/*.tsv, no timestamps) at every step: it
    # writes into a hidden temporary directory (.train.<random>.tmp, git-ignored) that replaces
    # reports/train only when training has ended, so a killed run leaves the previous metrics and
    # plots, never step 18 of 49.
    with atomic_dir(TRAIN_REPORTS) as live_dir, Live(dir=str(live_dir), dvcyaml=False, save_dvc_exp=False) as live:
        bundle = train_on_engine(engine, train, config, live=live)
        for key, value in training_summary(bundle).items():
            live.log_metric(key, value, plot=False)
    with atomic_dir(BUNDLE_DIR) as tmp:
        save_bundle(with_features_config(bundle, features), tmp)
    # Scored by the bundle as every reader loads it (its version in each row), not the fitted object.
    write_parquet(predictions(load_bundle(BUNDLE_DIR), train, str(TRAIN)), TRAIN_SCORES)
    sel = bundle.metadata["threshold_selection"]
    print(
        f"train: {config.name} ({engine.name} engine) on {len(train):,} rows "
        f"({int(train['tx_fraud'].sum()):,} frauds); threshold {bundle.threshold:.4f} ({sel['rule']}, "
        f"F1 {sel['f1']:.3f} on {sel['n_rows']:,} held-out rows) -> {BUNDLE_DIR}, its scores -> {TRAIN_SCORES}"
    )


if __name__ == "__main__":
    run(main, "train")
