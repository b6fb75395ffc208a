"""The simulator as a source: the contract's columns only, plus its customer and terminal tables."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fraudpipe.contract import TRANSACTION_COLUMNS
from fraudpipe.sources import SimulatedSource, SourceError, ingest_source, make_source

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_cfg() -> dict:
    cfg = yaml.safe_load((ROOT / "conf/data/simulated.yaml").read_text())
    cfg["simulator"].update({"n_customers": 50, "n_terminals": 200, "n_days": 10})
    return cfg


def test_simulated_batch_has_the_contract_columns_and_no_scenario_ground_truth(small_cfg):
    source = ingest_source(small_cfg)
    raw = source.read()
    assert isinstance(source, SimulatedSource)
    assert list(raw.columns) == list(TRANSACTION_COLUMNS)
    assert "tx_fraud_scenario" not in raw.columns and len(raw) > 100


def test_side_tables_come_from_the_same_simulation(small_cfg, monkeypatch):
    import fraudpipe.simulate

    runs = []
    real = fraudpipe.simulate.simulate
    monkeypatch.setattr(fraudpipe.simulate, "simulate", lambda config: runs.append(config) or real(config))
    source = make_source(small_cfg)
    raw, tables = source.read(), source.side_tables()
    assert set(tables) == {"customers", "terminals"}
    assert len(tables["customers"]) == 50 and len(tables["terminals"]) == 200
    assert raw["customer_id"].isin(tables["customers"]["customer_id"]).all()
    assert source.read() is not raw and source.read().equals(raw)
    assert len(runs) == 1, "the transactions and the side tables must come from one simulation"


def test_a_bad_simulator_config_is_a_source_error(small_cfg):
    cfg = {**small_cfg, "simulator": {**small_cfg["simulator"], "n_days": 0}}
    with pytest.raises(SourceError, match=r"simulated source: data\.simulator is not a valid simulator config: .*n_days"):
        make_source(cfg).read()
