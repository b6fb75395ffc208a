"""params.yaml as a whole: `Params`, the root model of every config group.

Each group's model lives next to the code it configures; this module gathers them, so it sits
above them all and nothing below it imports it. `check_config`, `fraudpipe check` and `data add`
validate the whole file with it; a stage reads only its own keys with `loader.load`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fraudpipe.config import Config, key_type
from fraudpipe.data.preprocess import PreprocessConfig
from fraudpipe.data.sources import DataConfig
from fraudpipe.data.split import SplitConfig
from fraudpipe.data.validate import ValidationConfig
from fraudpipe.engine import EngineConfig
from fraudpipe.features.definitions import FeatureConfig
from fraudpipe.metrics import EvaluateConfig
from fraudpipe.model.config import ModelConfig
from fraudpipe.monitoring.config import MonitorConfig
from fraudpipe.paths import PARAMS
from fraudpipe.pipeline.loader import value_at


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


def group_model(name: str) -> Any:
    """The model (or tagged union, with its discriminator) that parses the group ``name``."""
    return key_type(Params, name)


def load_all(params: Mapping[str, Any], name: str, source: Path = PARAMS) -> Any:
    """The group ``name`` (or a dotted key of it, as `loader.load` takes) of an already read params
    mapping, parsed by the model `Params` gives the group."""
    return value_at(params, name, group_model(name.split(".")[0]), source)
