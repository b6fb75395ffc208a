"""What every stage script shares: params, and turning pipeline errors into one clear message.

A stage that fails on bad data must say what is wrong in one paragraph, not a traceback, and
exit non-zero so that `dvc repro` stops before anything downstream runs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

PARAMS_FILE = Path("params.yaml")


def load_params(*groups: str) -> dict[str, Any]:
    """The named top-level groups of params.yaml (the stage must list them in dvc.yaml)."""
    params = yaml.safe_load(PARAMS_FILE.read_text(encoding="utf-8"))
    missing = [g for g in groups if g not in params]
    if missing:
        raise KeyError(f"params.yaml has no group(s) {missing}; run `fraudpipe params` to recompose it from conf/")
    return {g: params[g] for g in groups}


def _pipeline_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that describe bad input or config, as opposed to bugs (which keep their traceback)."""
    errors: list[type[BaseException]] = []
    for module, name in [
        ("fraudpipe.sources.base", "SourceError"),
        ("fraudpipe.conform", "ContractError"),
        ("fraudpipe.validate", "BatchValidationError"),
        ("fraudpipe.clean", "PreprocessError"),
        ("fraudpipe.features", "FeatureError"),
        ("fraudpipe.split", "SplitError"),
        ("fraudpipe.model", "BundleError"),
        ("fraudpipe.metrics", "GateFailed"),
    ]:
        try:
            mod = __import__(module, fromlist=[name])
        except ImportError:
            continue
        if isinstance(getattr(mod, name, None), type):
            errors.append(getattr(mod, name))
    return tuple(errors)


def run(main: Callable[[], None], stage: str) -> None:
    """Run a stage's main; a known pipeline error becomes `stage <name> failed: <message>`, exit 1."""
    try:
        main()
    except _pipeline_errors() as exc:  # type: ignore[misc]
        print(f"stage {stage!r} failed: {exc}", file=sys.stderr)
        sys.exit(1)
