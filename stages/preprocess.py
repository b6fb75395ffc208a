"""Stage `preprocess`: ingest's transactions -> missing-value policy applied, time-ordered, outliers flagged."""

from fraudpipe.data.preprocess import PreprocessConfig, preprocess
from fraudpipe.io import read_parquet, write_json, write_parquet
from fraudpipe.paths import AMOUNT_OUTLIERS, INTERIM, PREPROCESS_QUARANTINE, PREPROCESS_SUMMARY, RAW_TRANSACTIONS
from fraudpipe.pipeline.loader import load
from fraudpipe.pipeline.stage import run


def main() -> None:
    config = load("preprocess", PreprocessConfig)  # a config mistake is reported before any data is read
    result = preprocess(read_parquet(RAW_TRANSACTIONS), config)
    write_parquet(result.clean, INTERIM)
    write_parquet(result.amount_outliers, AMOUNT_OUTLIERS)
    write_parquet(result.quarantined, PREPROCESS_QUARANTINE)
    write_json(result.summary, PREPROCESS_SUMMARY)
    s = result.summary
    print(
        f"preprocess: {s['rows_in']:,} rows in, {s['rows_out']:,} kept, {s['rows_quarantined']:,} quarantined "
        f"({PREPROCESS_QUARANTINE}), {s['values_filled']:,} values filled, {s['amount_outliers_flagged']:,} amount "
        f"outliers flagged ({AMOUNT_OUTLIERS})"
    )


if __name__ == "__main__":
    run(main, "preprocess")
