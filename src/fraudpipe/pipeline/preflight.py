"""The whole configuration checked before the long stages run, so that one failed run lists every
problem with the key to change, instead of each stage finding its own one run at a time.

Two checks, two stages: the configuration alone (every group parsed by its model) before ingest,
here, and the data-dependent settings (periods, folds, threshold days, CP@k budget, fraud-rate
band) against the preprocessed transactions before split, in `rules` (the minimums `data add`
derives its settings against).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from fraudpipe.errors import ConfigError
from fraudpipe.model.engines import model_problems
from fraudpipe.pipeline.params import GROUPS, VALUES, Params, load_all


def config_problems(params: Mapping[str, Any]) -> list[str]:
    """Every group's mistakes (one entry per group, all its keys) and every unknown or missing group."""
    problems = []
    for name in params:
        if name not in Params.model_fields:
            close = difflib.get_close_matches(str(name), [*GROUPS, *VALUES], n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(f"{name}: unknown group ({hint}known groups: {', '.join(GROUPS)})")
    parsed = {}
    for name in Params.model_fields:
        if name not in params:
            problems.append(f"{name}: missing group; run `fraudpipe params` to recompose params.yaml from conf/")
            continue
        try:
            parsed[name] = load_all(params, name)
        except ConfigError as exc:
            problems.append(str(exc))
    if "engine" in parsed and "model" in parsed:  # a rule between two groups
        problems += model_problems(parsed["engine"], parsed["model"])
    return problems


def require_no_problems(problems: list[str], what: str) -> None:
    """Stop with every problem in one message; `what` says what they were found in."""
    if problems:
        raise ConfigError(f"{what}: every problem, each with the key to change: " + " | ".join(problems))
