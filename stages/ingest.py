"""Stage `ingest`: read the configured source, validate the batch, keep or quarantine each row."""

from pathlib import Path

from fraudpipe.data.ingest import ingest_batch
from fraudpipe.data.sources import SourceConfig, ingest_source
from fraudpipe.data.validate import ValidationConfig
from fraudpipe.io import atomic_dir, write_json, write_parquet
from fraudpipe.pipeline.stage import load_config, run
from fraudpipe.progress import bar

RAW_DIR = Path("data/raw")
QUARANTINE = Path("data/quarantine/ingest.parquet")
DOCS_DIR = Path("reports/validation/docs")
SUMMARY = Path("reports/validation/summary.json")


def main() -> None:
    data = load_config("data", SourceConfig)
    validation = load_config("validation", ValidationConfig)
    source = ingest_source(data)
    with bar(3, desc="ingest", unit="step") as steps:
        batch = source.read()
        steps.update()
        result = ingest_batch(batch, data.columns, data.datetime_format, validation, DOCS_DIR, data.number_format)
        del batch
        steps.update()
        with atomic_dir(RAW_DIR) as tmp:
            write_parquet(result.kept, tmp / "transactions.parquet")
            for name, table in source.side_tables().items():
                write_parquet(table, tmp / f"{name}.parquet")
        write_parquet(result.quarantined, QUARANTINE)
        write_json(result.summary, SUMMARY)
        steps.update()
    print(
        f"ingest: {result.summary['rows_in']:,} rows in, {result.summary['rows_valid']:,} kept, "
        f"{result.summary['rows_quarantined']:,} quarantined ({QUARANTINE})"
    )


if __name__ == "__main__":
    run(main, "ingest")
