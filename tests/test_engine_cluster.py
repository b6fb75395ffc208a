"""fraudpipe.engine: the engine group and the connection to a
cluster: a LocalCluster of its own, or an existing scheduler given by `engine.scheduler_address`
(a real LocalCluster started here, with worker processes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from distributed import LocalCluster, get_task_stream

from fraudpipe.engine import EngineConfig, cluster, workers
from fraudpipe.errors import ConfigError
from helpers.model import composed

CONF = Path(__file__).resolve().parents[1] / "conf"


def engine_config(option: str = "dask", **changes) -> EngineConfig:
    return EngineConfig.parse(composed(f"engine={option}")["engine"] | changes, "engine")


def test_pandas_is_the_default_and_dask_an_option_with_a_local_cluster():
    assert composed()["engine"]["name"] == "pandas"
    dask = engine_config()
    assert (dask.name, dask.scheduler_address) == ("dask", None)
    assert engine_config(scheduler_address="tcp://10.0.0.5:8786").scheduler_address == "tcp://10.0.0.5:8786"


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"name": "spark"}, "engine.name: must be one of 'pandas' or 'dask', got 'spark'"),
        ({"partitions": 0}, "engine.partitions: must be >= 1, got 0"),
        ({"n_workers": "2"}, "engine.n_workers: must be a whole number, got '2'"),
        ({"memory_limit": "lots"}, "engine.memory_limit: must be 'auto' or a size such as '2GiB'"),
        ({"scheduler_address": ""}, "engine.scheduler_address: must be at least 1 character(s) long"),
        ({"workers": 2}, "engine.workers: unknown key (did you mean 'n_workers'?"),
    ],
)
def test_a_mistake_names_the_engine_key(change, said):
    with pytest.raises(ConfigError) as info:
        engine_config(**change)
    assert said in str(info.value)


@pytest.fixture(scope="module")
def existing_cluster():
    """A running cluster the engine did not start: a scheduler and two worker processes."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as local:
        yield local


def test_scheduler_address_connects_to_the_existing_cluster_and_leaves_it_running(existing_cluster):
    from distributed import Client

    engine = engine_config(scheduler_address=existing_cluster.scheduler_address, n_workers=1)
    with Client(existing_cluster) as watcher:
        with get_task_stream(client=watcher) as stream, cluster(engine) as client:
            assert client.scheduler.address == existing_cluster.scheduler_address
            assert workers(client) == 2  # the cluster's workers, not engine.n_workers
            assert client.submit(sum, [1, 2, 3]).result() == 6
        assert [t["key"] for t in stream.data if t["key"].startswith("sum-")]  # the work ran on that cluster
        assert watcher.submit(sum, [4]).result() == 4  # still up after the engine's client closed


def test_a_scheduler_that_does_not_answer_is_one_config_error_naming_the_key(closed_port):
    engine = engine_config(scheduler_address=f"tcp://127.0.0.1:{closed_port}")
    with pytest.raises(ConfigError) as info, cluster(engine, timeout="1s"):
        pass
    message = str(info.value)
    assert message.startswith(f"engine.scheduler_address: no Dask scheduler answers at 'tcp://127.0.0.1:{closed_port}'")
    assert "engine.scheduler_address: null" in message


def test_without_an_address_the_engine_starts_its_local_cluster_and_stops_it():
    engine = engine_config(n_workers=2, processes=False)
    with cluster(engine) as client:
        assert workers(client) == 2
        address = client.scheduler.address
        assert client.submit(sum, [1, 2]).result() == 3
    engine = engine_config(scheduler_address=address)
    with pytest.raises(ConfigError), cluster(engine, timeout="1s"):
        pass
