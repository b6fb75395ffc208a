"""`fraudpipe`: the commands that are not DVC stages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
import yaml

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@app.command()
def params(
    overrides: Annotated[list[str] | None, typer.Argument(help="Hydra overrides, e.g. model.max_depth=4")] = None,
    config_dir: Annotated[Path, typer.Option(help="Hydra config directory")] = Path("conf"),
    output: Annotated[Path, typer.Option(help="file to write")] = Path("params.yaml"),
) -> None:
    """Recompose params.yaml from conf/ exactly as `dvc exp run` would (run after editing conf/)."""
    from fraudpipe.config import write_params

    write_params(config_dir, output, overrides or [])
    typer.echo(f"wrote {output} from {config_dir}/ {' '.join(overrides or [])}".rstrip())


@app.command()
def snapshot(
    params_file: Annotated[Path, typer.Option("--params", help="params file naming the source")] = Path("params.yaml"),
    track: Annotated[bool, typer.Option(help="`dvc add` the snapshot so it is versioned and pushed")] = True,
) -> None:
    """Copy the configured SQL/API source into its snapshot file, the file `ingest` depends on.

    Unchanged source data gives a byte-identical snapshot, so `dvc repro` then reruns nothing.
    """
    from fraudpipe.config import group
    from fraudpipe.errors import PipelineError
    from fraudpipe.sources import SourceConfig, refresh_snapshot

    try:
        params = yaml.safe_load(params_file.read_text(encoding="utf-8")) or {}
        result = refresh_snapshot(SourceConfig.parse(group(params, "data", str(params_file)), "data"))
    except PipelineError as exc:
        typer.echo(f"snapshot failed: {exc}", err=True)
        raise typer.Exit(1) from None
    state = "changed" if result.changed else "unchanged"
    typer.echo(f"snapshot {result.path}: {result.rows:,} rows ({state})")
    if track:
        subprocess.run([sys.executable, "-m", "dvc", "add", "-q", str(result.path)], check=True)


if __name__ == "__main__":
    app()
