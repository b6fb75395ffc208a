"""``ServeConfig``: how `fraudpipe serve` runs, built from its command-line options.

Not a params.yaml group: serving is not a pipeline stage, and the options are the whole
configuration (their defaults live in the `serve` command). Validated like every config, so a
mistake is one line naming the option.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from fraudpipe.config import Config
from fraudpipe.errors import ConfigError


def _env_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise ValueError("must be an environment variable name")
    return value


class ServeConfig(Config):
    """One worker's configuration (the service runs one uvicorn worker: its state is in-process)."""

    model: Path  # the bundle directory
    state: Path  # the online state snapshot to start from when the journal directory has none of its own
    journal_dir: Path  # the durable log and the service's own snapshots
    host: str
    port: Annotated[int, Field(ge=0, le=65535)]
    max_batch: Annotated[int, Field(ge=1, le=10_000)]  # transactions per POST /v1/score/batch
    max_body_bytes: Annotated[int, Field(ge=1024)]  # larger request bodies get 413
    max_amount: Annotated[float, Field(gt=0, allow_inf_nan=False)]  # the largest tx_amount accepted
    late_days: Annotated[int, Field(ge=0)]  # how late (after newer ones) a transaction may arrive
    max_future_seconds: Annotated[int, Field(ge=0)]  # how far past the wall clock a tx_datetime may be
    api_key_env: Annotated[str, AfterValidator(_env_name)]  # the variable holding the API key, if any
    log_level: str = "info"
    access_log: bool = False
    http: Literal["auto", "h11", "httptools"] = "auto"  # uvicorn's HTTP parser ("auto": httptools when installed)
    loop: Literal["auto", "asyncio", "uvloop"] = "auto"  # uvicorn's event loop ("auto": uvloop when installed)

    def api_key(self) -> bytes | None:
        """The API key from the environment (None: none required); an empty variable is a mistake."""
        value = os.environ.get(self.api_key_env)
        if value is None:
            return None
        if not value.strip():
            raise ConfigError(f"{self.api_key_env} is set but empty: unset it to serve without an API key, or set a key")
        return value.encode("utf-8")
