"""Which models each engine can train: checked from the configuration alone, before any data is
read or cluster started, by `check_config` and by `train`.

The Dask fit itself (`estimators/xgboost_dask`) is not imported here: `check_config` does not
depend on the fit's code, so editing the fit does not rerun the check (nor ingest after it).
"""

from __future__ import annotations

from collections.abc import Mapping

from fraudpipe.engine import EngineConfig
from fraudpipe.errors import ConfigError
from fraudpipe.model.config import ModelConfig
from fraudpipe.model.estimators import SPECS, spec


def dask_tree_methods() -> Mapping[str, tuple[str, ...]]:
    """The estimators the Dask engine can fit, by `model.estimator`, and the tree methods each can
    build on several workers (each spec says so: `Estimator.dask_tree_methods`)."""
    return {name: s.dask_tree_methods for name, s in SPECS.items() if s.dask_tree_methods}


def model_problems(engine: EngineConfig, config: ModelConfig) -> list[str]:
    """What the engine cannot train of a model config, each naming the keys to change (none for pandas)."""
    if engine.name != "dask":
        return []
    tree_methods = spec(config.estimator).dask_tree_methods
    if not tree_methods:
        return [
            f"engine.name: dask trains only model.estimator {' or '.join(dask_tree_methods())} (xgboost.dask), and "
            f"model is {config.name!r} ({config.estimator}); set engine=pandas or model=xgboost"
        ]
    if config.tree_method in tree_methods:
        return []
    return [
        f"engine.name: dask cannot train model.tree_method {config.tree_method!r} (XGBoost trains only "
        f"{' or '.join(tree_methods)} trees on several workers); set model.tree_method=hist or engine=pandas"
    ]


def check_model(engine: EngineConfig, config: ModelConfig) -> None:
    """ConfigError when the engine cannot train this model config."""
    problems = model_problems(engine, config)
    if problems:
        raise ConfigError("; ".join(problems))
