"""Snapshots make a database or an API visible to DVC.

DVC can only hash files, so `fraudpipe snapshot` copies the live source into a Parquet file that
`ingest` depends on. The copy is deterministic (rows sorted by transaction id, fixed writer
settings): a refresh that brings no new rows leaves the bytes, hence every later stage, unchanged.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from fraudpipe.data.conform import source_columns
from fraudpipe.contract import TRANSACTION_ID
from fraudpipe.errors import ConfigError
from fraudpipe.io import write_parquet
from fraudpipe.data.sources.api import ApiConfig, ApiSource
from fraudpipe.data.sources.base import SnapshotResult, Source, SourceConfig, SourceError
from fraudpipe.data.sources.files import ParquetSource
from fraudpipe.data.sources.service_log import ServiceLogConfig, ServiceLogSource, ServiceLogTable
from fraudpipe.data.sources.sql import SqlConfig, SqlSource

#: Sources DVC cannot see, hence read through a snapshot: each one's maker, by its ``source`` key
#: (the config of that key is of that kind's class, which the tagged union guarantees, not the types).
#: The service's log is snapshotted alone (`service_log.log_table`); its history is a source DVC sees.
LIVE_SOURCES: dict[str, Callable[[Any], Source]] = {
    "sql": SqlSource.from_config,
    "api": ApiSource.from_config,
    "service_log": ServiceLogTable.from_config,
}
LiveConfig = SqlConfig | ApiConfig | ServiceLogConfig


def snapshot_source(config: LiveConfig) -> Source:
    """The snapshot file of a SQL/API source, as the source `ingest` reads; for the service's log,
    the snapshot joined with the configured history."""
    if isinstance(config, ServiceLogConfig):
        return ServiceLogSource.from_snapshot(config)
    return ParquetSource(
        Path(config.snapshot),
        label=f"{config.source} snapshot",
        missing_hint="Run `fraudpipe snapshot` to copy the source into it (and `dvc add` it), or `dvc pull` it.",
    )


def sort_for_snapshot(raw: pd.DataFrame, id_column: str, where: str) -> pd.DataFrame:
    """Rows in transaction-id order (stable), so the source's row order cannot change the bytes."""
    if id_column not in raw.columns:
        raise SourceError(
            where,
            f"the transaction-id column {id_column!r} (data.columns.{TRANSACTION_ID}) is not among the source's "
            f"columns {list(raw.columns)}",
            "Fix data.columns or the query.",
        )
    try:
        ordered = raw.sort_values(id_column, kind="stable", na_position="last")
    except TypeError:  # ids of mixed types (e.g. JSON numbers and strings): order them as text
        ordered = raw.sort_values(id_column, kind="stable", na_position="last", key=lambda s: s.astype(str))
    return ordered.reset_index(drop=True)


def arrow_safe(raw: pd.DataFrame) -> pd.DataFrame:
    """Columns Parquet can hold: a column of mixed Python types (e.g. an API sending 12.5 and "12.5")
    becomes text, missing values kept, so conform quarantines the bad rows instead of the
    snapshot failing as a whole. An integral JSON number (7.0) becomes "7", as conform reads it
    from the API directly, so an id keeps its key through the snapshot."""
    out = raw.copy()
    for name in out.columns[out.dtypes == object]:
        try:
            pa.array(out[name], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            column = out[name]
            out[name] = column.map(_text, na_action="ignore").where(column.notna(), None)
    return out


def _text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def refresh_snapshot(config: SourceConfig, source: Source | None = None) -> SnapshotResult:
    """Read the live SQL/API source of ``config`` (the `data` group) into its ``snapshot`` file.

    The file is replaced only when its bytes would change, so an unchanged source does not even
    touch its timestamp.
    """
    if not isinstance(config, LiveConfig):
        raise ConfigError(
            f"data.source: only {', '.join(LIVE_SOURCES)} sources have snapshots (a file source is tracked "
            f"directly with `dvc add`; the simulator needs neither), got {config.source!r}"
        )
    if source is None:
        source = LIVE_SOURCES[config.source](config)
    path = Path(config.snapshot)
    id_column = source_columns(config.columns)[TRANSACTION_ID]
    table = arrow_safe(sort_for_snapshot(source.read(), id_column, getattr(source, "where", f"{config.source} source")))

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as tmp:
        fresh = Path(tmp) / path.name
        write_parquet(table, fresh)
        changed = not path.is_file() or path.read_bytes() != fresh.read_bytes()
        if changed:
            os.replace(fresh, path)
    return SnapshotResult(path=path, rows=len(table), changed=changed)
