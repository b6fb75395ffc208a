"""params.yaml: `Params`, the root model of every config group, and the one loader of the file.

Each group's model lives next to the code it configures; this module gathers them, so it sits
above them all and nothing below it imports it. A stage loads only the keys it declares in
dvc.yaml (``load("model")``, ``load("evaluate.gate")``): a key is validated by its own type, and
a rule of the group around it (`check_config` checks those) is not applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from fraudpipe.config import Config, key_type, parse
from fraudpipe.data.preprocess import PreprocessConfig
from fraudpipe.data.sources import DataConfig
from fraudpipe.data.split import SplitConfig
from fraudpipe.data.validate import ValidationConfig
from fraudpipe.engine import EngineConfig
from fraudpipe.errors import ConfigError
from fraudpipe.features.definitions import FeatureConfig
from fraudpipe.metrics import EvaluateConfig
from fraudpipe.model.config import ModelConfig
from fraudpipe.monitoring.drift import MonitorConfig
from fraudpipe.paths import PARAMS

RECOMPOSE = "run `fraudpipe params` to recompose it from conf/"


class Params(Config):
    """params.yaml as a whole: one field per config group (conf/<group>/), and ``seed``."""

    data: DataConfig
    validation: ValidationConfig
    preprocess: PreprocessConfig
    features: FeatureConfig
    split: SplitConfig
    model: ModelConfig
    evaluate: EvaluateConfig
    monitor: MonitorConfig
    engine: EngineConfig
    seed: int  # conf/config.yaml's own value, which groups interpolate (``${seed}``)


#: Top-level values of params.yaml that are not config groups.
VALUES = ("seed",)
#: The config groups, in params.yaml's order.
GROUPS = tuple(name for name in Params.model_fields if name not in VALUES)


def read_params(path: Path = PARAMS) -> dict[str, Any]:
    """params.yaml as a mapping, unvalidated (what `check_config` checks as a whole)."""
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path} not found in {Path.cwd()}; run `fraudpipe params` to compose it from conf/"
        ) from None
    if not isinstance(params, dict):
        raise ConfigError(f"{path} is not a mapping of config groups; {RECOMPOSE}")
    return params


def load(key: str, path: Path = PARAMS) -> Any:
    """The value at the dotted ``key`` of params.yaml as its typed object: ``load("model")`` a
    `ModelConfig`, ``load("evaluate.card_precision_k")`` an int. A mistake names the full key
    path and the value; a key `Params` does not have is a bug (KeyError)."""
    return value_at(read_params(path), key, path)


def value_at(params: Mapping[str, Any], key: str, source: Path = PARAMS) -> Any:
    """The dotted ``key`` of an already read params mapping, parsed into its type."""
    kind = key_type(Params, key)
    group, *inner = key.split(".")
    if group not in params:
        raise ConfigError(f"{source} has no group {group!r}; {RECOMPOSE}")
    value = params[group]
    for depth, part in enumerate(inner, start=1):
        where = ".".join([group, *inner[:depth]])
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where.rsplit('.', 1)[0]}: must be a mapping, got {value!r}")
        if part not in value:
            raise ConfigError(f"{where}: missing key; run `fraudpipe params` to recompose {source} from conf/")
        value = value[part]
    return parse(kind, value, key)
