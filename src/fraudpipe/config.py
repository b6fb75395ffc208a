"""Composition of conf/ into params.yaml, exactly as `dvc exp run` does it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml


def compose(config_dir: str | Path, overrides: Sequence[str] = ()) -> dict:
    """The mapping `dvc exp run -S <overrides>` would write to params.yaml."""
    import tempfile

    from dvc.utils.hydra import compose_and_dump

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "params.yaml"
        compose_and_dump(out, str(Path(config_dir).resolve()), None, "config", "", list(overrides))
        return yaml.safe_load(out.read_text())


def write_params(config_dir: str | Path, output: str | Path, overrides: Sequence[str] = ()) -> None:
    from dvc.utils.hydra import compose_and_dump

    compose_and_dump(Path(output), str(Path(config_dir).resolve()), None, "config", "", list(overrides))
