"""Stage `preprocess`: ingest's transactions -> missing-value policy applied, time-ordered, outliers flagged."""

from pathlib import Path

from fraudpipe.data.preprocess import PreprocessConfig, preprocess
from fraudpipe.io import read_parquet, write_json, write_parquet
from fraudpipe.pipeline.stage import load_config, run

RAW = Path("data/raw/transactions.parquet")
INTERIM = Path("data/interim/transactions.parquet")
OUTLIERS = Path("data/interim/amount_outliers.parquet")
QUARANTINE = Path("data/quarantine/preprocess.parquet")
SUMMARY = Path("reports/preprocess/summary.json")


def main() -> None:
    config = load_config("preprocess", PreprocessConfig)
    result = preprocess(read_parquet(RAW), config)
    write_parquet(result.clean, INTERIM)
    write_parquet(result.amount_outliers, OUTLIERS)
    write_parquet(result.quarantined, QUARANTINE)
    write_json(result.summary, SUMMARY)
    s = result.summary
    print(
        f"preprocess: {s['rows_in']:,} rows in, {s['rows_out']:,} kept, {s['rows_quarantined']:,} quarantined "
        f"({QUARANTINE}), {s['values_filled']:,} values filled, {s['amount_outliers_flagged']:,} amount outliers "
        f"flagged ({OUTLIERS})"
    )


if __name__ == "__main__":
    run(main, "preprocess")
