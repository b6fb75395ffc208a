"""Stage `featurize`: clean transactions -> the feature table, and the online state the service loads."""

from pathlib import Path

from fraudpipe.engine import EngineConfig
from fraudpipe.features.dask import featurize
from fraudpipe.features.definitions import FeatureConfig, feature_names
from fraudpipe.features.online import OnlineState
from fraudpipe.io import atomic_dir, read_parquet, read_parquet_if_exists, write_parquet
from fraudpipe.pipeline.stage import load_config, run
from fraudpipe.progress import bar

INTERIM = Path("data/interim/transactions.parquet")
RAW_DIR = Path("data/raw")  # customers/terminals locations, when the source has them
FEATURES = Path("data/features/features.parquet")
ONLINE_STATE = Path("data/features/online_state")


def main() -> None:
    config = load_config("features", FeatureConfig)
    engine = load_config("engine", EngineConfig)
    with bar(4, desc="featurize", unit="step") as steps:
        tx = read_parquet(INTERIM)
        customers = read_parquet_if_exists(RAW_DIR / "customers.parquet")
        terminals = read_parquet_if_exists(RAW_DIR / "terminals.parquet")
        steps.update()
        table = featurize(engine, tx, config, customers, terminals)
        steps.update()
        with atomic_dir(ONLINE_STATE) as tmp:
            as_of = OnlineState.save_history(tx, config, tmp, customers, terminals)
        del tx
        steps.update()
        write_parquet(table, FEATURES)
        steps.update()
    print(
        f"featurize: {len(table):,} rows, {len(feature_names(config))} features ({config.name}, {engine.name} engine) -> {FEATURES}; "
        f"online state as of {as_of} -> {ONLINE_STATE}"
    )


if __name__ == "__main__":
    run(main, "featurize")
