"""Where the data stages compute: pandas in the stage's process (the default), or a Dask cluster.

`engine: dask` runs featurize's windows (`engine_features`) and train's XGBoost fit
(`engine_training`) on a dask.distributed cluster: a LocalCluster the stage starts and stops
(``scheduler_address: null``), or an existing one given by its scheduler's address. Either engine
writes the same outputs in the same formats, so no later stage knows which one ran.

This module holds the configuration and the connection only (what the Dask engine can train is
`model.engines.model_problems`); it imports dask when a cluster is asked for, so the pandas
engine never pays for the import.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, Field

from fraudpipe.config import Config
from fraudpipe.errors import ConfigError

if TYPE_CHECKING:
    from distributed import Client

_BYTES = re.compile(r"^\d+(\.\d+)?\s*(B|kB|KB|MB|MiB|GB|GiB|TB|TiB)$")


def _memory_limit(value: str) -> str:
    if value != "auto" and not _BYTES.match(value):
        raise ValueError("must be 'auto' or a size such as '2GiB' or '1500MB'")
    return value


class EngineConfig(Config):
    """conf/engine/: which engine, and the LocalCluster to start when no scheduler is given."""

    name: Literal["pandas", "dask"]
    #: ``tcp://host:port`` of a running Dask scheduler; null starts a LocalCluster for the stage.
    scheduler_address: Annotated[str, Field(min_length=1)] | None
    n_workers: int = Field(ge=1)
    threads_per_worker: int = Field(ge=1)
    processes: bool
    memory_limit: Annotated[str, AfterValidator(_memory_limit)]
    #: Partitions of each shuffle (by customer, by terminal) and of the training rows.
    partitions: int = Field(ge=1)


@contextlib.contextmanager
def cluster(engine: EngineConfig, timeout: str = "10s") -> Iterator[Client]:
    """A client of the configured cluster: the scheduler at ``engine.scheduler_address`` (waited
    for up to ``timeout``, as a scheduler may be starting), or a LocalCluster started for the block
    and closed after it."""
    import dask
    from distributed import Client, LocalCluster

    # Text columns keep the contract's dtype (str): the output must not depend on the engine.
    with dask.config.set({"dataframe.convert-string": False}):
        if engine.scheduler_address is not None:
            try:
                client = Client(engine.scheduler_address, timeout=timeout)
            except (OSError, TimeoutError) as exc:
                raise ConfigError(
                    f"engine.scheduler_address: no Dask scheduler answers at {engine.scheduler_address!r} ({exc}); "
                    "start one (`dask scheduler` and `dask worker <address>`) or set engine.scheduler_address: null "
                    "to start a LocalCluster"
                ) from None
            with client:
                yield client
            return
        with (
            LocalCluster(
                n_workers=engine.n_workers,
                threads_per_worker=engine.threads_per_worker,
                processes=engine.processes,
                memory_limit=engine.memory_limit,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            ) as local,
            Client(local) as client,
        ):
            client.wait_for_workers(engine.n_workers)  # a fit spread over fewer workers than configured is another fit
            yield client


def worker_addresses(client: Client) -> list[str]:
    """The cluster's workers, ordered by name (a LocalCluster names them 0, 1, ...; XGBoost ranks them so)."""
    info = client.scheduler_info(n_workers=-1)["workers"]
    return sorted(info, key=lambda address: (str(info[address].get("name", "")), address))


def workers(client: Client) -> int:
    """How many workers the cluster has now (what a distributed fit is split across)."""
    return len(client.scheduler_info(n_workers=-1)["workers"])
