"""Stage `featurize`: clean transactions -> the feature table, and the online state the service loads."""

from fraudpipe.engine import EngineConfig
from fraudpipe.features.dask import featurize
from fraudpipe.features.definitions import FeatureConfig, feature_names
from fraudpipe.features.online import OnlineState
from fraudpipe.io import atomic_dir, read_parquet, read_parquet_if_exists, write_parquet
from fraudpipe.paths import CUSTOMERS, FEATURES, INTERIM, ONLINE_STATE, TERMINALS
from fraudpipe.pipeline.loader import load
from fraudpipe.pipeline.stage import run
from fraudpipe.progress import bar


def main() -> None:
    config = load("features", FeatureConfig)
    engine = load("engine", EngineConfig)
    with bar(4, desc="featurize", unit="step") as steps:
        tx = read_parquet(INTERIM)
        customers = read_parquet_if_exists(CUSTOMERS)
        terminals = read_parquet_if_exists(TERMINALS)
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
        f"featurize: {len(table):,} rows, {len(feature_names(config))} features ({config.name}, "
        f"{engine.name} engine) -> {FEATURES}; "
        f"online state as of {as_of} -> {ONLINE_STATE}"
    )


if __name__ == "__main__":
    run(main, "featurize")
