"""What every stage script shares: reading its config groups, and failing in one line.

A stage that fails on bad data or configuration says what is wrong in one line, not a traceback,
and exits non-zero so that `dvc repro` stops before anything downstream runs. A bug (any other
exception) keeps its traceback.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from fraudpipe.config import Config, group
from fraudpipe.errors import ConfigError, PipelineError

PARAMS_FILE = Path("params.yaml")
#: When set (to a directory), every stage that ends well writes ``<dir>/<stage>.json``: its wall
#: time since the process started and its peak memory (benchmarks/run.py sets it around `dvc repro`).
PROFILE_ENV = "FRAUDPIPE_PROFILE"

C = TypeVar("C", bound=Config)


def load_params(*groups: str) -> dict[str, Any]:
    """The named top-level groups of params.yaml (the stage must list them in dvc.yaml)."""
    try:
        params = yaml.safe_load(PARAMS_FILE.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{PARAMS_FILE} not found in {Path.cwd()}; run `fraudpipe params` to compose it from conf/"
        ) from None
    if not isinstance(params, dict):
        raise ConfigError(f"{PARAMS_FILE} is not a mapping of config groups; run `fraudpipe params` to recompose it")
    return {g: group(params, g, str(PARAMS_FILE)) for g in groups}


def load_config(name: str, model: type[C]) -> C:
    """One group of params.yaml parsed into its typed model."""
    return model.parse(load_params(name)[name], name)


def run(main: Callable[[], None], stage: str) -> None:
    """Run a stage's main; a `PipelineError` becomes `stage '<name>' failed: <message>`, exit 1."""
    try:
        main()
    except PipelineError as exc:
        message = " ".join(str(exc).split())  # one line, whatever the message's layout
        print(f"stage {stage!r} failed: {message}", file=sys.stderr)
        sys.exit(1)
    if directory := os.environ.get(PROFILE_ENV):
        write_profile(Path(directory), stage)


def write_profile(directory: Path, stage: str) -> Path:
    """Record this process's cost, measured from its start (interpreter and imports included), so
    that the real `dvc repro` is measured rather than a re-enactment of it."""
    import psutil  # only when profiling: stages start faster without it

    seconds = time.time() - psutil.Process().create_time()
    # ru_maxrss is in KiB on Linux; children count for stages that start subprocesses.
    peak_kib = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stage}.json"
    path.write_text(
        json.dumps({"stage": stage, "seconds": round(seconds, 3), "peak_rss_bytes": peak_kib * 1024}) + "\n"
    )
    return path
