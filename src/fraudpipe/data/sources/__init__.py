"""Where transactions come from: one class per kind of source, one contract (`Source`).

The `data` config group is `DataConfig`: the model of each kind, tagged by the ``source`` key.
`make_source` builds the live source of any kind; `ingest_source` is what the `ingest` stage
reads, which for a database or an API is its DVC-tracked snapshot (see `snapshot`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, get_args

from pydantic import Field

from fraudpipe.data.sources.api import ApiConfig, ApiSource
from fraudpipe.data.sources.base import SnapshotResult, Source, SourceConfig, SourceError, redact_url
from fraudpipe.data.sources.files import CsvConfig, CsvSource, ParquetConfig, ParquetSource
from fraudpipe.data.sources.service_log import JoinCounts, ServiceLogConfig, ServiceLogSource
from fraudpipe.data.sources.simulated import SimulatedConfig, SimulatedSource
from fraudpipe.data.sources.snapshot import LiveConfig, refresh_snapshot, snapshot_source
from fraudpipe.data.sources.sql import SqlConfig, SqlSource

#: The `data` group: the model of the source's kind, picked by its ``source`` key (pydantic's
#: tagged union: a mistake names ``data.source`` or the key of that kind's model).
DataConfig = Annotated[
    SimulatedConfig | CsvConfig | ParquetConfig | SqlConfig | ApiConfig | ServiceLogConfig,
    Field(discriminator="source"),
]
#: The config model of each kind of source, by its ``source`` key.
CONFIGS: dict[str, type[SourceConfig]] = {
    get_args(config.model_fields["source"].annotation)[0]: config for config in get_args(get_args(DataConfig)[0])
}
#: Each kind's maker, by the same key (its config is of that kind's class: the tagged union sees to it).
SOURCES: dict[str, Callable[[Any], Source]] = {
    "simulated": SimulatedSource.from_config,
    "csv": CsvSource.from_config,
    "parquet": ParquetSource.from_config,
    "sql": SqlSource.from_config,
    "api": ApiSource.from_config,
    "service_log": ServiceLogSource.from_config,
}

__all__ = [
    "ApiConfig",
    "ApiSource",
    "CsvConfig",
    "CsvSource",
    "DataConfig",
    "JoinCounts",
    "ParquetConfig",
    "ParquetSource",
    "ServiceLogConfig",
    "ServiceLogSource",
    "SimulatedConfig",
    "SimulatedSource",
    "SnapshotResult",
    "Source",
    "SourceConfig",
    "SourceError",
    "SqlConfig",
    "SqlSource",
    "ingest_source",
    "make_source",
    "redact_url",
    "refresh_snapshot",
]


def make_source(config: SourceConfig) -> Source:
    """The live source that ``config`` (the parsed `data` group) describes."""
    return SOURCES[config.source](config)


def ingest_source(config: SourceConfig) -> Source:
    """The source `ingest` reads: the file or simulator itself, or a SQL/API source's snapshot (the
    service's log: its snapshot joined with its history)."""
    if isinstance(config, LiveConfig):
        return snapshot_source(config)
    return make_source(config)
