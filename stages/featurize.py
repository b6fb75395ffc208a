"""Stage `featurize`: clean transactions -> the feature table, and the online state the service loads."""

from pathlib import Path

from fraudpipe.features import FeatureConfig, build_features, feature_names
from fraudpipe.io import atomic_dir, read_parquet, write_parquet
from fraudpipe.online import OnlineState
from fraudpipe.stage import load_params, run

INTERIM = Path("data/interim/transactions.parquet")
RAW_DIR = Path("data/raw")  # customers/terminals locations, when the source has them
FEATURES = Path("data/features/features.parquet")
ONLINE_STATE = Path("data/features/online_state")


def main() -> None:
    config = FeatureConfig.from_dict(load_params("features")["features"])
    tx = read_parquet(INTERIM)
    side = {name: read_parquet(p) if (p := RAW_DIR / f"{name}.parquet").exists() else None for name in ("customers", "terminals")}
    table = build_features(tx, config, side["customers"], side["terminals"])
    state = OnlineState.from_history(tx, config, side["customers"], side["terminals"])
    write_parquet(table, FEATURES)
    with atomic_dir(ONLINE_STATE) as tmp:
        state.save(tmp)
    print(
        f"featurize: {len(table):,} rows, {len(feature_names(config))} features ({config.name}) -> {FEATURES}; "
        f"online state as of {state.as_of} -> {ONLINE_STATE}"
    )


if __name__ == "__main__":
    run(main, "featurize")
