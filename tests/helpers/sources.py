"""Source configs for tests: an option of conf/data/ with some keys changed, parsed as `ingest` parses it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fraudpipe.config import parse
from fraudpipe.data.sources import DataConfig, SourceConfig

ROOT = Path(__file__).resolve().parents[2]


def data_conf(kind: str, **changes: Any) -> dict[str, Any]:
    """conf/data/<kind>.yaml as a mapping, with ``changes`` applied."""
    return yaml.safe_load((ROOT / "conf" / "data" / f"{kind}.yaml").read_text()) | changes


def data_config(kind: str, **changes: Any) -> SourceConfig:
    """conf/data/<kind>.yaml with ``changes``, parsed into its model."""
    return parse(DataConfig, data_conf(kind, **changes), "data")
