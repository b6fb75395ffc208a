"""The simulator as a source: the contract's columns only, plus its customer and terminal tables."""

from __future__ import annotations

import pytest

from fraudpipe.config import parse
from fraudpipe.contract import TRANSACTION_COLUMNS
from fraudpipe.data.sources import DataConfig, SimulatedConfig, SimulatedSource, ingest_source, make_source
from fraudpipe.errors import ConfigError
from helpers.sources import data_conf


def small_conf() -> dict:
    conf = data_conf("simulated")
    conf["simulator"].update({"n_customers": 50, "n_terminals": 200, "n_days": 10})
    return conf


@pytest.fixture(scope="module")
def small_cfg() -> SimulatedConfig:
    config = parse(DataConfig, small_conf(), "data")
    assert isinstance(config, SimulatedConfig)
    return config


def test_simulated_batch_has_the_contract_columns_and_no_scenario_ground_truth(small_cfg):
    source = ingest_source(small_cfg)
    raw = source.read()
    assert isinstance(source, SimulatedSource)
    assert list(raw.columns) == list(TRANSACTION_COLUMNS)
    assert "tx_fraud_scenario" not in raw.columns and len(raw) > 100


def test_side_tables_come_from_the_same_simulation(small_cfg, monkeypatch):
    import fraudpipe.data.sources.simulated as simulated

    runs = []
    real = simulated.simulate
    monkeypatch.setattr(simulated, "simulate", lambda config: runs.append(config) or real(config))
    source = make_source(small_cfg)
    raw, tables = source.read(), source.side_tables()
    assert set(tables) == {"customers", "terminals"}
    assert len(tables["customers"]) == 50 and len(tables["terminals"]) == 200
    assert raw["customer_id"].isin(tables["customers"]["customer_id"]).all()
    assert source.read() is not raw and source.read().equals(raw)
    assert len(runs) == 1, "the transactions and the side tables must come from one simulation"


def test_the_conf_option_round_trips(small_cfg):
    assert parse(DataConfig, data_conf("simulated"), "data").to_dict() == data_conf("simulated")
    assert small_cfg.datetime_format is None and small_cfg.columns == {}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(simulater={}), "data.simulater: unknown key (did you mean 'simulator'?"),
        (lambda d: d.update(datetime_format=None), "data.datetime_format: unknown key"),
        (lambda d: d["simulator"].update(n_days=0), "data.simulator.n_days: must be >= 1, got 0"),
        (
            lambda d: d["simulator"]["drift"].update(amount_factr=2.0),
            "data.simulator.drift.amount_factr: unknown key (did you mean 'amount_factor'?",
        ),
        (
            lambda d: d["simulator"]["fraud"].update(customer_share=2.0),
            "data.simulator.fraud.customer_share: must be <= 1, got 2.0",
        ),
    ],
)
def test_a_bad_simulator_config_names_the_full_key_and_the_value(change, message):
    conf = small_conf()
    change(conf)
    with pytest.raises(ConfigError) as err:
        parse(DataConfig, conf, "data")
    assert message in str(err.value)
