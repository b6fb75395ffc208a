"""Stage `split`: the feature table -> train / test / live periods (the delay period is unused)."""

from pathlib import Path

from fraudpipe.data.split import SplitConfig, read_periods, split_summary, time_split
from fraudpipe.io import write_json, write_parquet
from fraudpipe.pipeline.stage import load_config, run

FEATURES = Path("data/features/features.parquet")
SPLIT_DIR = Path("data/split")
SUMMARY = Path("reports/split/summary.json")


def main() -> None:
    config = load_config("split", SplitConfig)
    parts = time_split(read_periods(FEATURES, config), config)
    for name in ("train", "test", "live"):
        write_parquet(getattr(parts, name), SPLIT_DIR / f"{name}.parquet")
    summary = split_summary(parts)
    write_json(summary, SUMMARY)
    print(
        f"split: train {parts.train_start.date()}..{parts.delay_start.date()} {summary['rows_train']:,} rows "
        f"({summary['frauds_train']:,} frauds); test {parts.test_start.date()}..{parts.live_start.date()} "
        f"{summary['rows_test']:,} rows ({summary['frauds_test']:,} frauds) after removing "
        f"{summary['test_rows_removed_known_frauds']:,} rows of known compromised cards; live {summary['rows_live']:,} rows"
    )


if __name__ == "__main__":
    run(main, "split")
