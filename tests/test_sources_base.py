"""The `data` group: its tagged union picks the model of the source's kind; the columns mapping."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraudpipe.config import compose, parse
from fraudpipe.data.sources import CONFIGS, DataConfig
from fraudpipe.errors import ConfigError
from helpers.sources import data_config

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = sorted(p.stem for p in (ROOT / "conf/data").glob("*.yaml"))


def composed(option: str) -> dict:
    """conf/data/<option>.yaml as Hydra composes it (an option may extend another, e.g. simulated_drift)."""
    return compose(ROOT / "conf", [f"data={option}"])["data"]


def test_every_kind_has_a_conf_option_and_a_model():
    assert {composed(option)["source"] for option in OPTIONS} == set(CONFIGS)


@pytest.mark.parametrize("option", OPTIONS)
def test_each_conf_option_parses_into_the_model_of_its_kind(option):
    data = composed(option)
    config = parse(DataConfig, data, "data")
    assert type(config) is CONFIGS[data["source"]] and config.source == data["source"]
    assert config.to_dict() == data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"source": "excel"},
            "data.source: must be one of 'simulated', 'csv', 'parquet', 'sql', 'api', 'service_log', got 'excel'",
        ),
        ({"path": "x.csv"}, "data.source: missing key"),
        (["csv"], "data: must be a mapping, got ['csv']"),
    ],
)
def test_the_kind_of_source_is_checked_first(data, message):
    with pytest.raises(ConfigError) as err:
        parse(DataConfig, data, "data")
    assert str(err.value) == message


def test_a_kind_refuses_the_keys_of_another():
    with pytest.raises(
        ConfigError, match=r"^data\.url: unknown key \(known keys: columns, datetime_format, options, path, source\)$"
    ):
        data_config("csv", url="http://127.0.0.1/x")


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (
            {"tx_amout": "AMOUNT"},
            "data.columns.tx_amout: not a contract column (did you mean 'tx_amount'? contract columns: "
            "transaction_id, tx_datetime, customer_id, terminal_id, tx_amount, tx_fraud; optional coordinates: "
            "customer_x, customer_y, terminal_x, terminal_y), got 'AMOUNT'",
        ),
        (
            {"customer_x": "lon", "customer_y": "lat"},
            "data.columns.customer_x: coordinates are mapped all four or none: "
            "terminal_x, terminal_y missing, got 'lon'",
        ),
        ({"tx_amount": 5}, "data.columns.tx_amount: must be a string, got 5"),
        (["tx_amount"], "data.columns: must be a mapping, got ['tx_amount']"),
    ],
)
def test_the_columns_mapping_names_contract_columns_only(columns, message):
    with pytest.raises(ConfigError) as err:
        data_config("csv", columns=columns)
    assert str(err.value) == message


def test_a_mapping_may_leave_contract_columns_out():
    assert data_config("parquet", columns={"tx_amount": "AMOUNT"}).columns == {"tx_amount": "AMOUNT"}
