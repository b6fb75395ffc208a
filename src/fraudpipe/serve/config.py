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

from pydantic import AfterValidator, Field, model_validator

from fraudpipe.config import Config, rule_error
from fraudpipe.errors import ConfigError
from fraudpipe.serve.journal import DEFAULT_WAL_LIMIT
from fraudpipe.servicelog import is_redis_url


def _env_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise ValueError("must be an environment variable name")
    return value


MEMORY = "memory"


def _store(value: str) -> str:
    if value != MEMORY and not is_redis_url(value):
        raise ValueError(
            f"must be {MEMORY!r} (the in-process store) or a Redis URL: redis://host:port/db, rediss://..., "
            "unix:///path/redis.sock?db=0"
        )
    return value


def _prefix(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.:-]+", value):
        raise ValueError("must be letters, digits and _ . : - (the Redis key prefix)")
    return value


class Release(Config):
    """The registry version a bundle was fetched as (``serve.registry``): what the start-up line,
    /readyz, /metrics and the answers name beside the bundle's own content version."""

    reference: str  # as given to --model: fraud-model#prod, fraud-model@v1.2.0, fraud-model@latest
    artifact: str  # the artifact's name in dvc.yaml
    version: str  # the GTO version, v1.2.0
    stage: str | None  # the stage the reference named, if it named one
    commit: str  # the git commit the version points at (the bundle is dvc.lock's at that commit)

    @property
    def label(self) -> str:
        """``<artifact>@<version>``, GTO's own name for a version."""
        return f"{self.artifact}@{self.version}"


class ServeConfig(Config):
    """The service's configuration: one worker with the in-process state, or ``workers`` processes
    behind one port sharing the state in Redis (``store``)."""

    model: Path  # the bundle directory (a registry reference's: the fetched copy, ``serve.registry``)
    release: Release | None = None  # the registry version --model named; None: served from a path
    #: the challenger scored in the shadow (``serve.models``): its bundle directory and registry version
    shadow: Path | None = None
    shadow_release: Release | None = None
    registry: str = "."  # the git repository whose GTO tags references are read from (a swap's too)
    model_cache: Path | None = None  # where fetched bundles are kept (None: ``serve.registry.MODEL_CACHE``)
    #: seconds between two looks of a worker at the models the shared state records (several workers)
    follow_every: Annotated[float, Field(gt=0, le=60, allow_inf_nan=False)] = 1.0
    state: Path  # the online state snapshot to start from when the journal directory has none of its own
    journal_dir: Path  # the durable log and the service's own snapshots
    host: str
    port: Annotated[int, Field(ge=0, le=65535)]
    max_batch: Annotated[int, Field(ge=1, le=10_000)]  # transactions per POST /v1/score/batch
    max_body_bytes: Annotated[int, Field(ge=1024)]  # larger request bodies get 413
    max_amount: Annotated[float, Field(gt=0, allow_inf_nan=False)]  # the largest tx_amount accepted
    late_days: Annotated[int, Field(ge=0)]  # how late (after newer ones) a transaction may arrive
    max_future_seconds: Annotated[int, Field(ge=0)]  # how far past the wall clock a tx_datetime may be
    #: how far past the newest transaction seen a tx_datetime may be: one request moves the clock (and the
    #: retention window that follows it) at most this far; a move to a new period is POST /v1/admin/period
    max_time_jump_seconds: Annotated[int, Field(ge=0)] = 86_400
    #: the most customers / terminals the state holds: a transaction that would add one more is refused (503)
    max_state_customers: Annotated[int, Field(ge=1)] = 1_000_000
    max_state_terminals: Annotated[int, Field(ge=1)] = 1_000_000
    api_key_env: Annotated[str, AfterValidator(_env_name)]  # the variable holding the API key, if any
    log_level: str = "info"
    access_log: bool = False
    http: Literal["auto", "h11", "httptools"] = "auto"  # uvicorn's HTTP parser ("auto": httptools when installed)
    loop: Literal["auto", "asyncio", "uvloop"] = "auto"  # uvicorn's event loop ("auto": uvloop when installed)
    store: Annotated[str, AfterValidator(_store)] = MEMORY  # "memory", or the Redis URL holding the shared state
    redis_prefix: Annotated[str, AfterValidator(_prefix)] = "fraudpipe"  # the keys of one shared state in that Redis
    workers: Annotated[int, Field(ge=1, le=64)] = 1  # uvicorn worker processes behind the one port
    # the journal's bounds (in-process store)
    journal_wal_limit: Annotated[int, Field(ge=1 << 16)] = DEFAULT_WAL_LIMIT  # bytes of SQLite log before it restarts
    snapshot_every: Annotated[int, Field(ge=0)] = 100_000  # journal entries that set off a snapshot (0: on request)
    # slow and too many clients (``serve.limits``)
    header_timeout: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 10.0  # seconds for request line + headers
    body_timeout: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 10.0  # seconds for the body, after the headers
    keep_alive_timeout: Annotated[int, Field(ge=1)] = 5  # seconds an idle kept-alive connection stays open
    limit_concurrency: Annotated[int, Field(ge=1)] = 1000  # connections or requests in flight; beyond: 503 at once

    @model_validator(mode="after")
    def _shared_state_for_workers(self) -> ServeConfig:
        if self.workers > 1 and not self.shared:
            raise rule_error(
                f"--workers {self.workers} needs a shared state store: each worker would keep its own history in "
                "process and score from a part of it; add --store redis://host:port/db (or run --workers 1)",
                self.workers,
                key="workers",
            )
        return self

    @property
    def model_given(self) -> str:
        """--model as given: the registry reference, or the bundle directory."""
        return self.release.reference if self.release else str(self.model)

    @property
    def shadow_given(self) -> str | None:
        if self.shadow is None:
            return None
        return self.shadow_release.reference if self.shadow_release else str(self.shadow)

    @property
    def shared(self) -> bool:
        """Whether the state is in Redis (shared by the workers) rather than in this process."""
        return self.store != MEMORY

    def api_key(self) -> bytes | None:
        """The API key from the environment (None: none required); an empty variable is a mistake."""
        value = os.environ.get(self.api_key_env)
        if value is None:
            return None
        if not value.strip():
            raise ConfigError(
                f"{self.api_key_env} is set but empty: unset it to serve without an API key, or set a key"
            )
        return value.encode("utf-8")
