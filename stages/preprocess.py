"""Stage `preprocess`: raw transactions -> typed, deduplicated, time-ordered; the rest quarantined."""

from pathlib import Path

from fraudpipe.io import read_parquet, write_json, write_parquet
from fraudpipe.preprocess import PreprocessConfig, preprocess
from fraudpipe.stage import load_params, run

RAW = Path("data/raw/transactions.parquet")
INTERIM = Path("data/interim/transactions.parquet")
OUTLIERS = Path("data/interim/amount_outliers.parquet")
QUARANTINE = Path("data/quarantine/preprocess.parquet")
SUMMARY = Path("reports/preprocess/summary.json")


def main() -> None:
    config = PreprocessConfig.from_dict(load_params("preprocess")["preprocess"])
    result = preprocess(read_parquet(RAW), config)
    write_parquet(result.clean, INTERIM)
    write_parquet(result.amount_outliers, OUTLIERS)
    write_parquet(result.quarantined, QUARANTINE)
    write_json(result.summary, SUMMARY)
    s = result.summary
    print(
        f"preprocess: {s['rows_in']:,} rows in, {s['rows_out']:,} kept, {s['duplicates_dropped']:,} exact "
        f"duplicates dropped, {s['rows_quarantined']:,} quarantined ({QUARANTINE}), "
        f"{s['amount_outliers_flagged']:,} amount outliers flagged ({OUTLIERS})"
    )


if __name__ == "__main__":
    run(main, "preprocess")
