"""Stage `split`: the feature table -> train / test / live periods (the delay period is unused)."""

from fraudpipe.data.split import SplitConfig, read_periods, split_summary, time_split
from fraudpipe.io import write_json, write_parquet
from fraudpipe.paths import FEATURES, LIVE, SPLIT_SUMMARY, TEST, TRAIN
from fraudpipe.pipeline.loader import load
from fraudpipe.pipeline.stage import run


def main() -> None:
    config = load("split", SplitConfig)
    parts = time_split(read_periods(FEATURES, config), config)
    for table, path in ((parts.train, TRAIN), (parts.test, TEST), (parts.live, LIVE)):
        write_parquet(table, path)
    summary = split_summary(parts)
    write_json(summary, SPLIT_SUMMARY)
    print(
        f"split: train {parts.train_start.date()}..{parts.delay_start.date()} {summary['rows_train']:,} rows "
        f"({summary['frauds_train']:,} frauds); test {parts.test_start.date()}..{parts.live_start.date()} "
        f"{summary['rows_test']:,} rows ({summary['frauds_test']:,} frauds) after removing "
        f"{summary['test_rows_removed_known_frauds']:,} rows of known compromised cards; "
        f"live {summary['rows_live']:,} rows"
    )


if __name__ == "__main__":
    run(main, "split")
