"""fraudpipe.model.estimators.xgboost_dask: XGBoost trained by xgboost.dask on a real cluster of two worker
processes ranks a held-out period as the pandas engine's does (average precision within 0.002), and
its bundle is an ordinary bundle: saved, verified and loaded like any other, the engine named."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from distributed import LocalCluster

from fraudpipe.data.simulate import SimulatorConfig, simulate
from fraudpipe.data.split import SplitConfig, time_split
from fraudpipe.engine import EngineConfig, worker_addresses
from fraudpipe.errors import ConfigError
from fraudpipe.features.definitions import FeatureConfig, build_features
from fraudpipe.metrics import average_precision
from fraudpipe.model import load_bundle, save_bundle
from fraudpipe.model.engines import check_model, dask_tree_methods, model_problems
from fraudpipe.model.estimators.xgboost import curve_rounds
from fraudpipe.model.estimators.xgboost_dask import DASK_SPECS, DaskXGBoost, train_on_engine
from fraudpipe.pipeline.preflight import config_problems
from helpers.model import composed, model_config, stage_workdir
from helpers.stages import run_stage

#: The default model: hist trees, which both engines train.
DEFAULT = model_config()
#: The same settings with exact trees, which xgboost.dask cannot train.
EXACT = model_config(tree_method="exact", max_bin=None)


def engine_config(option: str = "dask", **changes) -> EngineConfig:
    return EngineConfig.parse(composed(f"engine={option}")["engine"] | changes, "engine")


def test_the_dask_engine_refuses_what_xgboost_dask_cannot_train_naming_both_groups():
    dask, pandas = engine_config(), engine_config("pandas")
    assert DEFAULT.tree_method == "hist"
    assert model_problems(dask, DEFAULT) == [] and model_problems(dask, model_config(tree_method="approx")) == []
    assert model_problems(pandas, model_config("random_forest")) == []
    [forest] = model_problems(dask, model_config("random_forest"))
    assert "engine.name: dask trains only model.estimator xgboost" in forest and "'random_forest'" in forest
    assert "set engine=pandas or model=xgboost" in forest
    with pytest.raises(
        ConfigError, match=r"engine\.name: dask cannot train model\.tree_method 'exact'.*set model\.tree_method=hist"
    ):
        check_model(dask, EXACT)  # exact trees need all rows in one process
    check_model(pandas, EXACT)


def test_the_configuration_check_knows_every_dask_fit():
    """`model.engines` names what the Dask engine trains without importing the fit: the two lists agree."""
    assert set(dask_tree_methods()) == set(DASK_SPECS)


def test_check_config_finds_the_engine_model_rule_with_the_other_groups():
    problems = config_problems(composed("engine=dask", "model=logistic_regression", "split.train_days=0"))
    assert len(problems) == 2, problems
    assert any(p.startswith("engine.name: dask trains only model.estimator xgboost") for p in problems)
    assert config_problems(composed("engine=dask")) == []  # the default model trains on either engine
    [exact] = config_problems(composed("engine=dask", "model.tree_method=exact"))
    assert exact.startswith("engine.name: dask cannot train model.tree_method 'exact'")


@pytest.fixture(scope="module")
def engine():
    """The Dask engine on a running LocalCluster of two worker processes, 4 partitions of rows."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as local:
        params = composed("engine=dask")["engine"] | {"scheduler_address": local.scheduler_address, "partitions": 4}
        yield EngineConfig.parse(params, "engine")


@pytest.fixture(scope="module")
def periods():
    """Two months of simulated transactions: 14 training days (about 27,000 rows, 1,100 frauds),
    a week of delay, and a held-out test week (about 4,700 rows, 160 frauds)."""
    params = composed()
    simulator = params["data"]["simulator"] | {
        "n_customers": 1000,
        "n_terminals": 2000,
        "n_days": 60,
        "start_date": "2018-07-01",
        "radius": 10.0,
    }
    sim = simulate(SimulatorConfig.parse(simulator, "data.simulator"))
    table = build_features(
        sim.transactions, FeatureConfig.parse(params["features"], "features"), sim.customers, sim.terminals
    )
    split = params["split"] | {"train_start": "2018-08-01", "train_days": 14, "delay_days": 7, "test_days": 7}
    return time_split(table, SplitConfig.parse(split, "split"))


@pytest.mark.slow  # trains on a local cluster twice (~20 s)
def test_dask_trained_xgboost_ranks_the_test_period_like_the_pandas_engine(engine, periods, tmp_path):
    assert periods.train["tx_fraud"].sum() > 500 and periods.test["tx_fraud"].sum() > 100
    y = periods.test["tx_fraud"].to_numpy()
    pandas = train_on_engine(engine.model_copy(update={"name": "pandas"}), periods.train, DEFAULT)
    dask = train_on_engine(engine, periods.train, DEFAULT)
    ap_pandas, ap_dask = (
        average_precision(y, pandas.score(periods.test)),
        average_precision(y, dask.score(periods.test)),
    )
    print(f"average precision on the test week: pandas engine {ap_pandas:.4f}, dask engine {ap_dask:.4f}")
    assert ap_pandas > 0.5
    assert abs(ap_dask - ap_pandas) <= 0.002
    assert "engine" not in pandas.metadata
    assert dask.metadata["engine"] == {"name": "dask", "workers": 2, "partitions": 4}
    assert dask.metadata["estimator_params"] == pandas.metadata["estimator_params"]
    assert dask.metadata["threshold_selection"]["n_rows"] == pandas.metadata["threshold_selection"]["n_rows"]

    save_bundle(dask, tmp_path / "bundle")  # an ordinary bundle: UBJSON, SHA256SUMS, verified on load
    assert sorted(p.name for p in (tmp_path / "bundle").iterdir()) == ["SHA256SUMS", "bundle.json", "model.ubj"]
    loaded = load_bundle(tmp_path / "bundle")
    assert loaded.metadata["engine"]["name"] == "dask"
    np.testing.assert_array_equal(loaded.score(periods.test), dask.score(periods.test))

    again = train_on_engine(engine, periods.train, DEFAULT)  # same params and data: the same bytes
    save_bundle(again, tmp_path / "again")
    assert (tmp_path / "again/SHA256SUMS").read_bytes() == (tmp_path / "bundle/SHA256SUMS").read_bytes()


def test_the_rows_of_a_fit_are_spread_over_the_workers_in_one_fixed_order(engine):
    """Partition i on the i-th worker by name, every time: which worker sums which rows changes
    XGBoost's merged histograms, so placement left to the scheduler made two fits of the same rows differ."""
    from distributed import Client

    X, y = np.arange(40, dtype=float).reshape(20, 2), np.arange(20) % 2
    with Client(engine.scheduler_address) as client:
        homes = worker_addresses(client)
        assert len(homes) == 2
        for _ in range(3):
            matrix = DaskXGBoost(client, 4)._matrix(X, y, ["a", "b"])
            placed = {
                address: sorted(matrix.partition_order[part.key] for part in parts)
                for address, parts in matrix.worker_map.items()
            }
            assert placed == {homes[0]: [0, 2], homes[1]: [1, 3]}


def test_a_model_the_dask_engine_cannot_train_is_refused_before_any_cluster(periods):
    nowhere = EngineConfig.parse(
        composed("engine=dask")["engine"] | {"scheduler_address": "tcp://127.0.0.1:9"}, "engine"
    )
    with pytest.raises(
        ConfigError, match=r"engine\.name: dask trains only model\.estimator xgboost.*'logistic_regression'"
    ):
        train_on_engine(nowhere, periods.train, model_config("logistic_regression"))
    with pytest.raises(ConfigError, match=r"engine\.name: dask cannot train model\.tree_method 'exact'"):
        train_on_engine(nowhere, periods.train, EXACT)


@pytest.mark.slow  # the train stage with its own cluster (~10 s)
def test_the_train_stage_on_a_local_cluster_writes_the_bundle_and_the_curves(tmp_path):
    work = stage_workdir(tmp_path / "work")
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["engine"] = composed("engine=dask")["engine"] | {"partitions": 2}
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = run_stage(work, "train")
    assert proc.returncode == 0, proc.stderr
    assert "train: xgboost (dask engine) on" in proc.stdout
    bundle = load_bundle(work / "models/bundle")
    assert bundle.metadata["engine"] == {"name": "dask", "workers": 2, "partitions": 2}
    rounds = params["model"]["n_estimators"]
    for curve in ("train/logloss", "train/aucpr", "validation/logloss", "validation/aucpr"):
        lines = (work / f"reports/train/plots/metrics/{curve}.tsv").read_text().splitlines()
        steps = [int(line.split("\t")[0]) for line in lines[1:]]
        assert steps == curve_rounds(rounds), curve  # the rounds the in-process fit evaluates
    metrics = json.loads((work / "reports/train/metrics.json").read_text())
    assert metrics["threshold"] == bundle.threshold
