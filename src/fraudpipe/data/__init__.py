"""The data side: transactions from a source into the contract, validated, cleaned, and split in time.

- ``sources/``: one class per kind of source (simulator, CSV/Parquet files, SQL, HTTP API, snapshots).
- ``simulate``: the handbook's transaction simulator, the default source.
- ``conform``: a source's own columns mapped and parsed into the transaction contract.
- ``validate``: the Great Expectations validation every batch passes at ingestion, built from:
  ``expectations`` (the suites and their thresholds), ``gx_runner`` (running them, reproducible Data Docs),
  ``validation_results`` (what failed, as quarantine reasons and batch failure messages).
- ``ingest``: conform + validate, with failing rows quarantined under a reason.
- ``preprocess``: the cleaning policy (missing values, outlier flags, time order).
- ``split``: train / delay / test / live periods, by calendar or counted from the end.
"""
