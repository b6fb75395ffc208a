"""Where transactions come from: one class per kind of source, one contract (`Source`).

`make_source` builds the live source of any kind; `ingest_source` is what the `ingest` stage
reads, which for a database or an API is its DVC-tracked snapshot (see `snapshot`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fraudpipe.sources.api import ApiSource
from fraudpipe.sources.base import SnapshotResult, Source, SourceError, redact_url
from fraudpipe.sources.files import CsvSource, ParquetSource
from fraudpipe.sources.simulated import SimulatedSource
from fraudpipe.sources.snapshot import LIVE_SOURCES, refresh_snapshot, snapshot_source
from fraudpipe.sources.sql import SqlSource

SOURCES = {
    "simulated": SimulatedSource,
    "csv": CsvSource,
    "parquet": ParquetSource,
    "sql": SqlSource,
    "api": ApiSource,
}

__all__ = [
    "ApiSource",
    "CsvSource",
    "ParquetSource",
    "SimulatedSource",
    "SnapshotResult",
    "Source",
    "SourceError",
    "SqlSource",
    "ingest_source",
    "make_source",
    "redact_url",
    "refresh_snapshot",
]


def make_source(cfg: Mapping[str, Any]) -> Source:
    """The live source described by ``cfg`` (= params["data"])."""
    kind = cfg.get("source")
    if kind not in SOURCES:
        raise SourceError(
            f"data.source {kind!r}",
            f"unknown kind of source; known: {', '.join(SOURCES)}",
            "Pick one with `-S data=<kind>`.",
        )
    return SOURCES[kind].from_config(cfg)


def ingest_source(cfg: Mapping[str, Any]) -> Source:
    """The source `ingest` reads: the file or simulator itself, or a SQL/API source's snapshot."""
    if cfg.get("source") in LIVE_SOURCES:
        return snapshot_source(cfg)
    return make_source(cfg)
