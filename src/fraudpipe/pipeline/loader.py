"""params.yaml's one reader: ``load(key, group)``, the value at a dotted key as its typed object.

A stage names the key it declared in dvc.yaml and the model of that key's group, e.g.
``load("model", ModelConfig)`` or ``load("evaluate.gate", EvaluateConfig)``; the key's own type
and constraints come from that model. Passing the group's model rather than looking it up in the
root `Params` keeps a stage's imports (and so its dvc.yaml deps) to the groups it reads: an edit
to monitoring's config does not rerun ingest. tests/test_pipeline_params.py checks that every stage passes
the model `Params` declares for the group.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from fraudpipe.config import key_type, parse
from fraudpipe.errors import ConfigError
from fraudpipe.paths import PARAMS

RECOMPOSE = "run `fraudpipe params` to recompose it from conf/"


def read_params(path: Path = PARAMS) -> dict[str, Any]:
    """params.yaml as a mapping, unvalidated (what `check_config` checks as a whole). Parsed by
    libyaml's safe loader where PyYAML has it (the same documents as ``yaml.safe_load``, several
    times faster: a stage reads params.yaml once per group it loads)."""
    try:
        params = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except FileNotFoundError:
        raise ConfigError(f"{path} not found in {Path.cwd()}; {RECOMPOSE}") from None
    if not isinstance(params, dict):
        raise ConfigError(f"{path} is not a mapping of config groups; {RECOMPOSE}")
    return params


def load(key: str, group: Any, path: Path = PARAMS) -> Any:
    """The value at the dotted ``key`` of params.yaml, parsed by ``group`` (the model of the key's
    group) or the type it gives the inner key: ``load("evaluate.card_precision_k", EvaluateConfig)``
    is an int >= 1. A mistake names the full key path and the value."""
    return value_at(read_params(path), key, group, path)


def value_at(params: Mapping[str, Any], key: str, group: Any, source: Path = PARAMS) -> Any:
    """The dotted ``key`` of an already read params mapping, parsed into its type."""
    name, *inner = key.split(".")
    try:
        kind = key_type(group, ".".join(inner)) if inner else group
    except KeyError:
        raise KeyError(f"{key}: not a key of the {name!r} group of {source}") from None
    if name not in params:
        raise ConfigError(f"{source} has no group {name!r}; {RECOMPOSE}")
    value = params[name]
    for depth, part in enumerate(inner, start=1):
        where = ".".join([name, *inner[:depth]])
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where.rsplit('.', 1)[0]}: must be a mapping, got {value!r}")
        if part not in value:
            raise ConfigError(f"{where}: missing key; run `fraudpipe params` to recompose {source} from conf/")
        value = value[part]
    return parse(kind, value, key)
