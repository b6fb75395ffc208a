"""`fraudpipe`: the commands that are not DVC stages."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fraudpipe.paths import BUNDLE_DIR, CONF_DIR, INTERIM, JOURNAL_DIR, ONLINE_STATE, PARAMS

if TYPE_CHECKING:
    from fraudpipe.serve.config import Release

# Click's own help layout (rich_markup_mode=None): paragraphs rewrapped to the terminal, flags without a type.
app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, rich_markup_mode=None)
data_app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Bring your own transaction data.", rich_markup_mode=None
)
app.add_typer(data_app, name="data")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"fraudpipe {version('fraudpipe')}")
        raise typer.Exit()


@app.callback()
def main(
    show_version: Annotated[
        bool | None,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Show the version and exit."),
    ] = None,
) -> None:
    """`fraudpipe`: the commands that are not DVC stages."""


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    out = {}
    for value in values or []:
        key, sep, rest = value.partition("=")
        if not sep or not key or not rest:
            typer.echo(f"{option} {value!r}: expected KEY=VALUE", err=True)
            raise typer.Exit(2)
        out[key.strip()] = rest
    return out


@data_app.command("add")
def data_add(
    file: Annotated[Path, typer.Argument(help="a CSV or Parquet file of labelled transactions")],
    name: Annotated[str, typer.Option(help="the dataset's name: conf/data/<name>.yaml")],
    map_: Annotated[
        list[str] | None, typer.Option("--map", help="contract column=file column, e.g. tx_amount=amt")
    ] = None,
    datetime_format: Annotated[
        str | None, typer.Option(help="strftime format of the datetime column (default ISO 8601)")
    ] = None,
    option: Annotated[list[str] | None, typer.Option(help="a reader option, e.g. sep=;")] = None,
    track: Annotated[bool, typer.Option(help="`dvc add` the copied file")] = True,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="a setting of your own instead of the derived one, e.g. split.delay_days=2"),
    ] = None,
) -> None:
    """Without --map: show the file's columns, their kinds and a proposed mapping; write nothing.
    With --map: copy the file under data/external/ and `dvc add` it, write conf/data/<name>.yaml,
    make it and split=relative the defaults with settings derived from the data (--set: your own
    for some, the others derived around them), recompose params.yaml. Then `dvc repro`.
    A CSV file may be compressed (.csv.gz, .csv.bz2, .csv.zip, .csv.xz, .csv.zst)."""
    import yaml

    from fraudpipe.errors import PipelineError
    from fraudpipe.pipeline import onboarding as dataset

    mapping, options = _pairs(map_, "--map"), _pairs(option, "--option")
    fixed = {key: yaml.safe_load(value) for key, value in _pairs(set_, "--set").items()}
    try:
        if not mapping:
            _show_proposal(file, name, options, datetime_format)
            return
        added = dataset.add_dataset(file, name, mapping, Path.cwd(), datetime_format, options, track, fixed)
    except PipelineError as exc:
        typer.echo(f"data add failed: {' '.join(str(exc).split())}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{file} -> {added.path} ({'dvc add-ed' if track else 'not tracked'}); wrote {added.data_config}")
    typer.echo("settings derived from the data (conf/config.yaml; override any with dvc exp run -S KEY=VALUE):")
    for d in added.derived:
        typer.echo(f"  {d.key} = {d.value!r}: {d.reason}")
    typer.echo("params.yaml recomposed; next: dvc repro")


def _show_proposal(file: Path, name: str, options: dict[str, str], datetime_format: str | None) -> None:
    from fraudpipe.config import parse
    from fraudpipe.data.sources import DataConfig, make_source
    from fraudpipe.pipeline import onboarding as dataset

    config = dataset.source_config(Path(file), {}, datetime_format, options)
    raw = make_source(parse(DataConfig, config, "data")).read()
    profiles = dataset.profile_columns(raw)
    typer.echo(f"{file}: {len(raw):,} rows, {len(profiles)} columns")
    for p in profiles:
        note = f"  ({p.note})" if p.note else ""
        typer.echo(
            f"  {p.name:<28} {p.kind:<9} {p.distinct:>10,} distinct {p.missing:>8,} missing  "
            f"e.g. {', '.join(p.examples)}{note}"
        )
    proposal = dataset.propose_mapping(profiles)
    missing = [c for c in dataset.REQUIRED_MAPPING if c not in proposal]
    typer.echo("proposed mapping (contract column = file column):")
    for target, column in proposal.items():
        typer.echo(f"  {target} = {column}")
    for target in missing:
        typer.echo(f"  {target} = ?  (no column found: give --map {target}=<column>)")
    args = " ".join(f"--map {t}={c}" if " " not in c else f"--map '{t}={c}'" for t, c in proposal.items())
    if missing and (refusal := dataset.unmapped_refusal(profiles, missing)):
        typer.echo(f"nothing written. No column for {', '.join(missing)}: {refusal}")
        return
    typer.echo(f"nothing written. To add it: fraudpipe data add {file} --name {name} {args}")


@app.command()
def params(
    overrides: Annotated[list[str] | None, typer.Argument(help="Hydra overrides, e.g. model.max_depth=4")] = None,
    config_dir: Annotated[Path, typer.Option(help="Hydra config directory")] = CONF_DIR,
    output: Annotated[Path, typer.Option(help="file to write")] = PARAMS,
) -> None:
    """Recompose params.yaml from conf/ exactly as `dvc exp run` would (run after editing conf/)."""
    from fraudpipe.config import write_params
    from fraudpipe.errors import PipelineError

    try:
        write_params(config_dir, output, overrides or [])
    except PipelineError as exc:
        typer.echo(f"params failed: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"wrote {output} from {config_dir}/ {' '.join(overrides or [])}".rstrip())


@app.command()
def check(
    params_file: Annotated[Path, typer.Option("--params", help="the composed parameters")] = PARAMS,
    transactions: Annotated[Path, typer.Option(help="the preprocessed transactions")] = INTERIM,
    config_dir: Annotated[
        Path | None, typer.Option(help="the Hydra config params.yaml is composed from [default: conf/ beside it]")
    ] = None,
) -> None:
    """Check that params.yaml is what conf/ composes to, the whole configuration and, when the
    transactions exist, every data-dependent setting (periods, folds, threshold days, CP@k budget,
    fraud-rate band) at once, as the pipeline's check_config and check_data stages do, without
    running anything."""
    import pandas as pd

    from fraudpipe.config import compose
    from fraudpipe.errors import PipelineError
    from fraudpipe.pipeline.loader import read_params
    from fraudpipe.pipeline.params import load_all
    from fraudpipe.pipeline.preflight import composition_problem, config_problems
    from fraudpipe.pipeline.rules import settings_problems

    checked = f"{params_file}"
    config_dir = params_file.parent / CONF_DIR if config_dir is None else config_dir
    try:
        params = read_params(params_file)
        stale = composition_problem(params, compose(config_dir), config_dir) if config_dir.is_dir() else None
        problems = [stale] if stale else config_problems(params)
        if not problems and transactions.is_file():
            checked += f" against {transactions}"
            keys = (
                "split",
                "model.threshold_validation_days",
                "evaluate.card_precision_k",
                "validation",
            )  # check_data's
            configs = (load_all(params, key, params_file) for key in keys)
            problems = settings_problems(pd.read_parquet(transactions), *configs)
    except PipelineError as exc:
        problems = [str(exc)]
    if problems:
        typer.echo(f"{len(problems)} problem(s) in {checked}:", err=True)
        for problem in problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(1)
    later = (
        ""
        if transactions.is_file()
        else f" ({transactions} does not exist yet: the data-dependent settings are checked by `dvc repro`)"
    )
    typer.echo(f"no problem in {checked}{later}")


@app.command()
def adopt(
    params_file: Annotated[Path, typer.Option("--params", help="the params to adopt (after `dvc exp apply`)")] = PARAMS,
    config_dir: Annotated[Path, typer.Option(help="Hydra config directory")] = CONF_DIR,
) -> None:
    """Make conf/ compose to params.yaml (run after `dvc exp apply`, before committing): group
    options and overrides in conf/config.yaml, so conf/ and params.yaml agree."""
    from fraudpipe.config import adopt as adopt_params
    from fraudpipe.errors import PipelineError
    from fraudpipe.pipeline.loader import read_params

    try:
        choices, overrides = adopt_params(read_params(params_file), config_dir)
    except PipelineError as exc:
        typer.echo(f"adopt failed: {exc}", err=True)
        raise typer.Exit(1) from None
    if not choices and not overrides:
        typer.echo(f"{config_dir}/ already composes to {params_file}: nothing to adopt")
        return
    for name, option in choices.items():
        typer.echo(f"{config_dir}/{'config.yaml'}: defaults {name}: {option}")
    for key, value in overrides.items():
        typer.echo(f"{config_dir}/config.yaml: {key}: {value!r}")
    typer.echo(f"next: dvc repro (check_config, which depends on {config_dir}/, records it; nothing else reruns)")


@app.command()
def snapshot(
    params_file: Annotated[Path, typer.Option("--params", help="params file naming the source")] = PARAMS,
    track: Annotated[bool, typer.Option(help="`dvc add` the snapshot so it is versioned and pushed")] = True,
) -> None:
    """Copy the configured SQL/API source or service log into its snapshot file, the file `ingest` depends on.

    Unchanged source data gives a byte-identical snapshot, so `dvc repro` then reruns nothing.
    """
    from fraudpipe.data.sources import DataConfig, refresh_snapshot
    from fraudpipe.errors import PipelineError
    from fraudpipe.pipeline.loader import load

    try:
        result = refresh_snapshot(load("data", DataConfig, params_file))
    except PipelineError as exc:
        typer.echo(f"snapshot failed: {exc}", err=True)
        raise typer.Exit(1) from None
    state = "changed" if result.changed else "unchanged"
    typer.echo(f"snapshot {result.path}: {result.rows:,} rows ({state})")
    if track:
        subprocess.run([sys.executable, "-m", "dvc", "add", "-q", str(result.path)], check=True)


@app.command()
def serve(
    model: Annotated[
        str,
        typer.Option(
            help="the model: a bundle directory (the train stage writes it), or a version in the model registry "
            "(docs/registry.md) as GTO names it: fraud-model#prod (the version in a stage), fraud-model@v1.2.0, "
            "fraud-model@latest"
        ),
    ] = str(BUNDLE_DIR),
    shadow: Annotated[
        str | None,
        typer.Option(
            help="a challenger scored in the shadow on every request (same forms as --model): its score goes to "
            "the service's log, never into the answer"
        ),
    ] = None,
    registry: Annotated[
        str, typer.Option(help="the git repository whose GTO tags --model's reference is read from (path or URL)")
    ] = ".",
    model_cache: Annotated[
        Path | None,
        typer.Option(help="where bundles fetched from the registry are kept [default: serving/models]"),
    ] = None,
    state: Annotated[
        Path, typer.Option(help="the online state to start from when --journal-dir has no snapshot of its own")
    ] = ONLINE_STATE,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    journal_dir: Annotated[Path, typer.Option(help="the durable log and the service's own snapshots")] = JOURNAL_DIR,
    max_batch: Annotated[int, typer.Option(help="most transactions per POST /v1/score/batch")] = 100,
    max_body_bytes: Annotated[int, typer.Option(help="larger request bodies get 413")] = 1_048_576,
    max_amount: Annotated[
        float, typer.Option(help="largest tx_amount accepted (ingest's validation.max_amount)")
    ] = 100_000.0,
    late_days: Annotated[
        int, typer.Option(help="how many days after newer ones a transaction may arrive and be scored")
    ] = 1,
    max_future_seconds: Annotated[
        int, typer.Option(help="how far past this server's clock a tx_datetime may be")
    ] = 300,
    max_time_jump_seconds: Annotated[
        int,
        typer.Option(
            help="how far past the newest transaction seen a tx_datetime may be (a move to a new period is "
            "POST /v1/admin/period)"
        ),
    ] = 86_400,
    max_state_customers: Annotated[
        int, typer.Option(help="most customers the state holds: a transaction of a new one past it gets 503")
    ] = 1_000_000,
    max_state_terminals: Annotated[
        int, typer.Option(help="most terminals the state holds: a transaction at a new one past it gets 503")
    ] = 1_000_000,
    api_key_env: Annotated[
        str, typer.Option(help="environment variable whose value, when set, every /v1 request must send as X-API-Key")
    ] = "FRAUDPIPE_API_KEY",
    log_level: Annotated[str, typer.Option(help="uvicorn's log level")] = "info",
    access_log: Annotated[bool, typer.Option(help="log every request (costs throughput)")] = False,
    http: Annotated[
        str, typer.Option(help="uvicorn's HTTP implementation: auto (httptools when installed), h11, httptools")
    ] = "auto",
    loop: Annotated[
        str, typer.Option(help="uvicorn's event loop: auto (uvloop when installed), asyncio, uvloop")
    ] = "auto",
    store: Annotated[
        str,
        typer.Option(
            help="where the online state lives: memory (in this process, one worker, journal in "
            "--journal-dir), or a Redis URL shared by every worker: redis://host:port/db, "
            "unix:///path/redis.sock?db=0"
        ),
    ] = "memory",
    redis_prefix: Annotated[
        str, typer.Option(help="the Redis key prefix of this shared state (one prefix, one state)")
    ] = "fraudpipe",
    workers: Annotated[
        int, typer.Option(help="worker processes behind the one port (more than 1 needs --store redis://...)")
    ] = 1,
    journal_wal_limit: Annotated[
        int, typer.Option(help="bytes of the journal's SQLite write-ahead log before it starts over")
    ] = 4 << 20,
    snapshot_every: Annotated[
        int,
        typer.Option(help="journal entries after the latest snapshot that set off the next one (0: on request only)"),
    ] = 100_000,
    header_timeout: Annotated[
        float, typer.Option(help="seconds a client has to send a request's line and headers (else 408, closed)")
    ] = 10.0,
    body_timeout: Annotated[
        float, typer.Option(help="seconds a client has to send a request's body after its headers (else 408, closed)")
    ] = 10.0,
    keep_alive_timeout: Annotated[int, typer.Option(help="seconds an idle kept-alive connection stays open")] = 5,
    limit_concurrency: Annotated[
        int, typer.Option(help="connections or requests in flight beyond which requests get 503 at once")
    ] = 1000,
    follow_every: Annotated[
        float,
        typer.Option(help="seconds between two looks of a worker at the models the others serve (--store redis)"),
    ] = 1.0,
) -> None:
    """Serve fraud scores over HTTP (FastAPI on uvicorn): POST /v1/score, /v1/score/batch, /v1/labels;
    GET /healthz, /readyz, /metrics; OpenAPI at /docs. By default one worker with the state in
    process: every accepted transaction and label is journalled (SQLite WAL in --journal-dir) before
    the answer; a restart replays the journal on top of the latest snapshot; SIGUSR1 or POST
    /v1/admin/snapshot (and every --snapshot-every entries) writes a snapshot in the background and
    truncates the journal. With --store redis://... the state is in Redis, seeded once from --state
    and shared by --workers N processes (or several machines); Redis's append-only file is then the
    durable log. Slow clients get 408 (--header-timeout, --body-timeout). --shadow scores a challenger
    beside the model and logs its score; POST /v1/admin/model (or SIGHUP: --model and --shadow read
    again) swaps models without stopping (docs/serving.md)."""
    from fraudpipe.errors import PipelineError
    from fraudpipe.serve.config import ServeConfig

    try:
        bundle, release = _model(model, registry, model_cache)
        challenger, shadow_release = (
            (None, None) if shadow is None else _model(shadow, registry, model_cache, "--shadow")
        )
    except PipelineError as exc:
        typer.echo(f"serve failed: {' '.join(str(exc).split())}", err=True)
        raise typer.Exit(1) from None
    options = {
        "model": bundle,
        "release": release,
        "shadow": challenger,
        "shadow_release": shadow_release,
        "registry": registry,
        "model_cache": model_cache,
        "follow_every": follow_every,
        "state": state,
        "journal_dir": journal_dir,
        "host": host,
        "port": port,
        "max_batch": max_batch,
        "max_body_bytes": max_body_bytes,
        "max_amount": max_amount,
        "late_days": late_days,
        "max_future_seconds": max_future_seconds,
        "max_time_jump_seconds": max_time_jump_seconds,
        "max_state_customers": max_state_customers,
        "max_state_terminals": max_state_terminals,
        "api_key_env": api_key_env,
        "log_level": log_level,
        "access_log": access_log,
        "http": http,
        "loop": loop,
        "store": store,
        "redis_prefix": redis_prefix,
        "workers": workers,
        "journal_wal_limit": journal_wal_limit,
        "snapshot_every": snapshot_every,
        "header_timeout": header_timeout,
        "body_timeout": body_timeout,
        "keep_alive_timeout": keep_alive_timeout,
        "limit_concurrency": limit_concurrency,
    }
    try:
        config = ServeConfig.parse(options, "serve")
        from fraudpipe.serve.startup import preflight

        seeded = preflight(config)
    except PipelineError as exc:
        typer.echo(f"serve failed: {' '.join(str(exc).split())}", err=True)
        raise typer.Exit(1) from None
    if seeded:
        typer.echo(seeded)
    from fraudpipe.serve.server import run

    raise typer.Exit(run(config))


def _model(value: str, registry: str, cache: Path | None, option: str = "--model") -> tuple[Path, Release | None]:
    """--model (or --shadow) as a bundle directory, or the registry version it names, fetched (``serve.registry``)."""
    from fraudpipe.errors import PipelineError
    from fraudpipe.serve import registry as models

    try:
        bundle, release = models.model_from(value, registry, models.MODEL_CACHE if cache is None else cache)
    except PipelineError as exc:  # the registry's lines name --model: say which option it was
        raise type(exc)(str(exc).replace("--model ", f"{option} ", 1)) from None
    if release is not None:
        typer.echo(
            f"fraudpipe serve: {value} in {registry} is {release.label} (commit {release.commit[:12]}); "
            f"bundle verified in {bundle}"
        )
    return bundle, release


if __name__ == "__main__":
    app()
