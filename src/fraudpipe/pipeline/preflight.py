"""The whole configuration checked before the long stages run, so that one failed run lists every
problem with the key to change, instead of each stage finding its own one run at a time.

Two checks, two stages: the configuration alone (params.yaml what conf/ composes to, every group
parsed by its model) before ingest, here, and the data-dependent settings (periods, folds, threshold
days, CP@k budget, fraud-rate band) against the preprocessed transactions before split, in `rules`
(the minimums `data add` derives its settings against).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fraudpipe.config import differences
from fraudpipe.errors import ConfigError
from fraudpipe.model.engines import model_problems
from fraudpipe.pipeline.params import GROUPS, VALUES, Params, load_all

#: Set by DVC for the stages `dvc exp run` runs, after it composed conf/ and the -S overrides into
#: params.yaml; unset in a plain `dvc repro`, which reads params.yaml as it is.
EXPERIMENT_ENV = "DVC_EXP_NAME"
#: Differing keys a stale params.yaml's message shows (the count says how many more).
SHOWN_DIFFERENCES = 3
#: What a failed experiment leaves behind, and how to undo it.
RESTORE = "this failed experiment's values stay in params.yaml until `fraudpipe params` recomposes it from conf/"


def in_experiment() -> bool:
    """Whether this stage runs inside `dvc exp run`, whose params.yaml is conf/ with its overrides."""
    return bool(os.environ.get(EXPERIMENT_ENV))


def composition_problem(params: Mapping[str, Any], composed: Mapping[str, Any], config_dir: Path) -> str | None:
    """Why params.yaml is not what ``config_dir`` composes to, with the commands that make them agree:
    an edit of conf/ not yet recomposed, a failed experiment's values, a hand edit. None when they agree."""
    found = differences(params, composed)
    if not found:
        return None
    shown = "; ".join(
        f"{key}: {have!r} in params.yaml, {want!r} from {config_dir}/" for key, have, want in found[:SHOWN_DIFFERENCES]
    )
    more = f"; {len(found) - SHOWN_DIFFERENCES} more" if len(found) > SHOWN_DIFFERENCES else ""
    return (
        f"params.yaml is not what {config_dir}/ composes to ({shown}{more}): run `fraudpipe params` to recompose "
        f"it from {config_dir}/ (after a failed `dvc exp run` this restores the workspace) or `fraudpipe adopt` to "
        f"write its values into {config_dir}/, then `dvc repro`"
    )


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


def require_no_problems(problems: list[str], what: str, then: str = "") -> None:
    """Stop with every problem in one message; `what` says what they were found in, `then` what to
    do besides fixing them."""
    if problems:
        after = f" ({then})" if then else ""
        raise ConfigError(f"{what}: every problem, each with the key to change: " + " | ".join(problems) + after)
