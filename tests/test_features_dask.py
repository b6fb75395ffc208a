"""fraudpipe.features.dask: the feature table on a Dask cluster equals the pandas engine's, on
a real cluster of two worker processes (a LocalCluster, reached by `engine.scheduler_address`),
and the featurize stage writes the same Parquet file with either engine. (The stage starting a
LocalCluster of its own is tested in test_model_xgboost_dask.py.)"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from distributed import LocalCluster

from fraudpipe.contract import COORDINATE_COLUMNS, CUSTOMER_ID, TERMINAL_ID, TRANSACTION_ID
from fraudpipe.data.simulate import SimulatorConfig, simulate
from fraudpipe.engine import EngineConfig
from fraudpipe.errors import DataError
from fraudpipe.features.dask import featurize, side_columns
from fraudpipe.features.definitions import EXTRAS, FeatureConfig, build_features, feature_names
from fraudpipe.io import write_parquet
from helpers.model import composed, stage_workdir
from helpers.stages import run_stage

#: Every extra, the distance included, over the default windows.
ALL = FeatureConfig.parse(composed()["features"] | {"extras": list(EXTRAS)}, "features")


@pytest.fixture(scope="module")
def dask_cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as local:
        yield local


@pytest.fixture(scope="module")
def engine(dask_cluster) -> EngineConfig:
    """The Dask engine on the running two-worker cluster, 5 partitions per shuffle."""
    params = composed("engine=dask")["engine"] | {"scheduler_address": dask_cluster.scheduler_address, "partitions": 5}
    return EngineConfig.parse(params, "engine")


@pytest.fixture(scope="module")
def simulation():
    """About 25,000 transactions over 40 days: every window of the default features is filled."""
    params = composed()["data"]["simulator"] | {"n_customers": 300, "n_terminals": 600, "n_days": 40, "radius": 10.0}
    sim = simulate(SimulatorConfig.parse(params, "data.simulator"))
    return sim.transactions.drop(columns="tx_fraud_scenario"), sim.customers, sim.terminals


def assert_same_table(dask: pd.DataFrame, pandas: pd.DataFrame) -> None:
    """Same columns, dtypes, key values and row order; every feature within 1e-9 of the pandas engine's."""
    assert list(dask.columns) == list(pandas.columns)
    assert dask.dtypes.to_dict() == pandas.dtypes.to_dict()
    features = [c for c in pandas.columns if pandas[c].dtype == np.float64]
    pd.testing.assert_frame_equal(dask.drop(columns=features), pandas.drop(columns=features), check_exact=True)
    difference = np.abs(dask[features].to_numpy() - pandas[features].to_numpy())
    assert difference.max() <= 1e-9, dict(zip(features, difference.max(axis=0)))


def test_the_two_sides_cover_every_feature_once_and_the_distance_is_the_client_s():
    sides = side_columns(ALL)
    together = sides[CUSTOMER_ID] + sides[TERMINAL_ID]
    assert sorted([*together, "customer_terminal_distance"]) == sorted(feature_names(ALL))
    assert all(c.startswith("terminal_id_") for c in sides[TERMINAL_ID])


def test_dask_features_equal_the_pandas_engine_s_on_every_row_and_column(engine, simulation):
    tx, customers, terminals = simulation
    pandas = featurize(engine.model_copy(update={"name": "pandas"}), tx, ALL, customers, terminals)
    pd.testing.assert_frame_equal(
        pandas, build_features(tx, ALL, customers, terminals)
    )  # pandas is build_features itself
    dask = featurize(engine, tx, ALL, customers, terminals)
    assert len(dask) == len(tx) > 20_000
    assert_same_table(dask, pandas)
    assert (dask["terminal_id_risk_7day_window"] > 0).sum() > 100  # the windows hold real signal


def test_text_ids_and_per_transaction_coordinates_give_the_same_features(engine, simulation):
    """Text keys shuffle by their text; coordinates missing in some rows are filled from the same
    customer's (terminal's) earlier rows, which only the partition holding all of them can do."""
    tx, customers, terminals = simulation
    tx = tx.copy()
    for column in (TRANSACTION_ID, CUSTOMER_ID, TERMINAL_ID):
        tx[column] = ("id-" + tx[column].astype(str)).astype("str")
    tx = tx.sort_values(["tx_datetime", TRANSACTION_ID], kind="stable", ignore_index=True)
    rng = np.random.default_rng(3)
    c = customers.set_index(customers[CUSTOMER_ID].map(lambda i: f"id-{i}"))
    t = terminals.set_index(terminals[TERMINAL_ID].map(lambda i: f"id-{i}"))
    coords = np.column_stack(
        [c.loc[tx[CUSTOMER_ID], ["x", "y"]].to_numpy(), t.loc[tx[TERMINAL_ID], ["x", "y"]].to_numpy()]
    )
    coords += rng.normal(0, 0.5, coords.shape)  # per transaction: not the side tables' values
    gaps = rng.uniform(size=len(tx)) < 0.3
    first = ~tx.duplicated(CUSTOMER_ID) | ~tx.duplicated(TERMINAL_ID)
    coords[gaps & ~first.to_numpy()] = np.nan  # an earlier row of the same id has them
    tx[list(COORDINATE_COLUMNS)] = coords
    pandas = build_features(tx, ALL)
    assert_same_table(featurize(engine, tx, ALL), pandas)


def test_more_partitions_than_customers_leaves_partitions_empty_and_the_table_whole(engine, simulation):
    tx, customers, terminals = simulation
    few = tx[tx[CUSTOMER_ID].isin(tx[CUSTOMER_ID].unique()[:3])].reset_index(drop=True)
    many = engine.model_copy(update={"partitions": 12})
    assert_same_table(featurize(many, few, ALL, customers, terminals), build_features(few, ALL, customers, terminals))


def test_a_table_out_of_order_is_refused_as_the_pandas_engine_refuses_it(engine, simulation):
    tx = simulation[0].iloc[::-1].reset_index(drop=True)
    with pytest.raises(DataError) as pandas:
        build_features(tx, ALL, *simulation[1:])
    with pytest.raises(DataError) as dask:
        featurize(engine, tx, ALL, *simulation[1:])
    assert str(dask.value) == str(pandas.value)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_featurize_stage_on_the_cluster_writes_the_pandas_engine_s_file_byte_for_byte(engine, tmp_path):
    work = stage_workdir(tmp_path / "work")
    params = yaml.safe_load((work / "params.yaml").read_text())
    tx, customers, terminals = (
        pd.read_parquet(work / f"data/{p}.parquet") for p in ("interim/transactions", "raw/customers", "raw/terminals")
    )
    write_parquet(
        build_features(tx, FeatureConfig.parse(params["features"], "features"), customers, terminals),
        tmp_path / "pandas.parquet",
    )
    params["engine"] = engine.to_dict() | {"partitions": 3}
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = run_stage(work, "featurize")
    assert proc.returncode == 0, proc.stderr
    assert "(extended, dask engine)" in proc.stdout
    assert _sha256(work / "data/features/features.parquet") == _sha256(
        tmp_path / "pandas.parquet"
    )  # split need not rerun
