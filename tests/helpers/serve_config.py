"""A ``ServeConfig`` over the serve tests' small world (``_serve.world``), with any option changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fraudpipe.serve.config import ServeConfig
from helpers.serve import world


def serve_config(tmp_path: Path, **changes: Any) -> ServeConfig:
    w = world()
    options = {
        "model": w.bundle_dir,
        "state": w.state_dir,
        "journal_dir": tmp_path / "journal",
        "host": "127.0.0.1",
        "port": 8000,
        "max_batch": 100,
        "max_body_bytes": 1 << 20,
        "max_amount": 1e5,
        "late_days": 1,
        "max_future_seconds": 300,
        "api_key_env": "FRAUDPIPE_TEST_UNSET_KEY",
    }
    return ServeConfig.parse(options | changes, "serve")
