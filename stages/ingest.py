"""Stage `ingest`: read the configured source, validate the batch, keep or quarantine each row."""

from fraudpipe.data.ingest import ingest_batch
from fraudpipe.data.sources import DataConfig, ServiceLogSource, ingest_source
from fraudpipe.data.validate import ValidationConfig
from fraudpipe.io import atomic_dir, write_json, write_parquet
from fraudpipe.paths import INGEST_QUARANTINE, RAW_DIR, RAW_TRANSACTIONS, VALIDATION_DOCS, VALIDATION_SUMMARY
from fraudpipe.pipeline.loader import load
from fraudpipe.pipeline.stage import run
from fraudpipe.progress import bar


def main() -> None:
    data = load("data", DataConfig)
    validation = load("validation", ValidationConfig)
    source = ingest_source(data)
    with bar(3, desc="ingest", unit="step") as steps:
        batch = source.read()
        steps.update()
        result = ingest_batch(
            batch, data.columns, data.datetime_format, validation, VALIDATION_DOCS, data.number_format
        )
        del batch
        steps.update()
        with atomic_dir(RAW_DIR) as tmp:
            write_parquet(result.kept, tmp / RAW_TRANSACTIONS.relative_to(RAW_DIR))
            for name, table in source.side_tables().items():
                write_parquet(table, tmp / f"{name}.parquet")
        write_parquet(result.quarantined, INGEST_QUARANTINE)
        joined = source.counts.to_dict() if isinstance(source, ServiceLogSource) else {}  # what came from where
        write_json(result.summary | joined, VALIDATION_SUMMARY)
        steps.update()
    print(
        f"ingest: {result.summary['rows_in']:,} rows in, {result.summary['rows_valid']:,} kept, "
        f"{result.summary['rows_quarantined']:,} quarantined ({INGEST_QUARANTINE})"
        + "".join(f"; {key.removeprefix('service_log_')} {value:,}" for key, value in joined.items())
    )


if __name__ == "__main__":
    run(main, "ingest")
