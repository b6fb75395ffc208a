"""Shared by the model, backtest and stage tests: configs built from conf/, a small feature table,
and a stage working directory on a small simulated month."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from fraudpipe.config import compose
from fraudpipe.data.simulate import SimulatorConfig, simulate
from fraudpipe.data.split import SplitConfig, time_split
from fraudpipe.features.definitions import FeatureConfig, build_features
from fraudpipe.io import write_parquet
from fraudpipe.model import ModelConfig

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
OPTIONS = tuple(sorted(p.stem for p in (CONF / "model").glob("*.yaml")))
FEATURES = ["tx_amount", "terminal_risk", "noise"]


@functools.cache
def _composed(*overrides: str) -> dict[str, Any]:
    return compose(CONF, list(overrides))


def composed(*overrides: str) -> dict[str, Any]:
    """params.yaml as `dvc exp run -S <overrides>` would compose it from conf/ (a fresh copy)."""
    return copy.deepcopy(_composed(*overrides))


def model_config(option: str = "xgboost", **changes: Any) -> ModelConfig:
    """conf/model/<option>.yaml as composed, with some keys changed (validated like conf/)."""
    return ModelConfig.parse(composed(f"model={option}")["model"] | changes, "model")


def small_config(option: str, **changes: Any) -> ModelConfig:
    """An option with 20 trees where it has trees at all, so fitting stays fast."""
    trees = {"n_estimators": 20} if model_config(option).n_estimators else {}
    return model_config(option, **(trees | changes))


def feature_table(n_days: int = 10, per_day: int = 300, seed: int = 0, start: str = "2018-07-01") -> pd.DataFrame:
    """A feature table of the contract's shape: key columns, then features with real signal."""
    rng = np.random.default_rng(seed)
    n = n_days * per_day
    seconds = np.sort(rng.uniform(0, n_days * 86_400, n))
    amount = np.round(rng.gamma(2.0, 30.0, n), 2)
    risk = rng.uniform(size=n)
    noise = rng.normal(size=n)
    logit = -7.0 + 0.03 * amount + 5.0 * risk
    fraud = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype("int8")
    return pd.DataFrame(
        {
            "transaction_id": np.arange(n, dtype="int64"),
            "tx_datetime": (pd.Timestamp(start) + pd.to_timedelta(seconds, unit="s")).astype("datetime64[us]"),
            "customer_id": rng.integers(0, 200, n).astype("int64"),
            "terminal_id": rng.integers(0, 100, n).astype("int64"),
            "tx_fraud": fraud,
            "tx_amount": amount,
            "terminal_risk": risk,
            "noise": noise,
        }
    )


def declared(stage: str) -> list[str]:
    """The params dvc.yaml lists for ``stage``."""
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]["params"]


def only_declared(params: dict, stage: str) -> dict:
    """params.yaml reduced to the groups and keys dvc.yaml lists for the stage."""
    out: dict = {}
    for entry in declared(stage):
        group, _, key = entry.partition(".")
        if key:
            out.setdefault(group, {})[key] = params[group][key]
        else:
            out[group] = params[group]
    return out


def write_params(work: Path, params: dict[str, Any]) -> None:
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def stage_workdir(work: Path, **params: Any) -> Path:
    """A stage working directory: params.yaml (composed conf/ + `group__key=value` overrides) and
    the upstream outputs of a small simulated month (interim transactions, locations, features,
    split)."""
    config = composed("model.n_estimators=20")
    config["split"] |= {"train_start": "2018-07-12", "train_days": 3, "delay_days": 1, "test_days": 2}
    config["data"]["simulator"] |= {
        "n_customers": 100,
        "n_terminals": 500,
        "n_days": 20,
        "start_date": "2018-07-01",
        "radius": 10.0,
    }
    for dotted, value in params.items():
        group, key = dotted.split("__")
        config[group][key] = value
    work.mkdir(parents=True, exist_ok=True)
    write_params(work, config)
    sim = simulate(SimulatorConfig.parse(config["data"]["simulator"], "data.simulator"))
    tx = sim.transactions.drop(columns="tx_fraud_scenario")
    table = build_features(tx, FeatureConfig.parse(config["features"], "features"), sim.customers, sim.terminals)
    parts = time_split(table, SplitConfig.parse(config["split"], "split"))
    write_parquet(tx, work / "data/interim/transactions.parquet")
    write_parquet(sim.customers, work / "data/raw/customers.parquet")
    write_parquet(sim.terminals, work / "data/raw/terminals.parquet")
    write_parquet(parts.train, work / "data/split/train.parquet")
    write_parquet(parts.test, work / "data/split/test.parquet")
    write_parquet(table, work / "data/features/features.parquet")
    return work
