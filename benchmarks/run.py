"""Every benchmark in one run, and the whole pipeline measured as `dvc repro` runs it.

    python benchmarks/run.py                          # everything, the 10 M run included (about an hour on 2 cores)
    python benchmarks/run.py --quick                  # small data and short runs: a few minutes
    python benchmarks/run.py --only pipeline,serve    # a subset (suites: see --help)
    python benchmarks/run.py --sizes 0.25,1           # the size series, in millions of transactions
    python benchmarks/run.py --readme                 # also paste results.md into docs/benchmarks.md

Writes ``reports/benchmarks/results.json`` (machine-readable, schema: ``Results`` below) and
``reports/benchmarks/results.md`` (the same as Markdown tables). Both are wall-clock figures that
differ on every run: no stage writes or reads them, and dvc.yaml never names them, so
`dvc metrics diff` never compares them.

Suites:
- ``simulate``, ``features``, ``validate``, ``serve``, ``monitor``, ``engine``, ``loop``: the scripts
  beside this one, each in its own process with ``--json`` (their figures, as they print them);
  ``engine`` is featurize + train with the pandas and the Dask engine at 4 and 10 million
  transactions; ``loop`` the time from a monitoring alert to the retrained model serving.
- ``pipeline``: in a temporary clone of this repository's HEAD with a fresh DVC cache of its own
  (so cold means cold; this checkout is never written): a cold `dvc repro` with the time and peak
  RSS of every stage (``FRAUDPIPE_PROFILE``: ``fraudpipe.pipeline.stage.run`` records each stage's own
  process) next to the floor of the work it does, and `dvc repro`'s own overhead; then no-op
  `dvc repro` against `dvc status` (medians, interleaved), and the rerun after a model parameter
  change. Targets: the total <= 45 s; each stage <= 1.5 s + 2 x its floor; no-op <= 1.5 x status.
- ``sizes``: the same cold `dvc repro` on simulated data of each size (customers, terminals and
  the daily compromised terminals and customers scaled together, so the fraud rate stays near the
  default's; the handbook's calendar split, which fits every size), and the growth exponent of
  the total time against the number of transactions. Targets at 10 M: <= 5 min, <= 6 GB peak,
  time(10 M) / time(1 M) <= 12.

The floors: the simulator, the extended features (+ the online state), the validation and one
model fit come from benchmarks/simulate.py, features.py, validate.py (which ``pipeline`` runs
too) and a fit timed here on the clone's training period; `parity`'s online state (the features
benchmark's, for the share of rows it keeps) and its replay (the benchmark's per-row online
features) from the same; reading a stage's Parquet inputs and writing its Parquet outputs is timed
here for every stage (`fraudpipe.io`, as the stages do it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict

from fraudpipe.config import update_composition, write_params

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "reports" / "benchmarks"
#: The documentation page whose benchmark section `--readme` rewrites.
README = ROOT / "docs" / "benchmarks.md"
README_MARKERS = ("<!-- benchmarks:start: reports/benchmarks/results.md -->", "<!-- benchmarks:end -->")
BENCHMARKS = ("simulate", "features", "validate", "scoring", "serve", "monitor", "engine", "loop")
#: Benchmarks that measure this checkout's pipeline outputs (the model bundle and the data it scores;
#: `loop` clones HEAD with this checkout's DVC cache).
NEED_BUNDLE = ("scoring", "serve", "loop")
SUITES = (*BENCHMARKS, "pipeline", "sizes")
#: The benchmarks whose figures are part of the pipeline's floors: `pipeline` runs them too.
FLOOR_BENCHMARKS = ("simulate", "features", "validate")

#: The default simulator run (conf/data/simulated.yaml, seed 1): the handbook's published size.
DEFAULT_ROWS = 1_754_155
SIZES = (0.25, 1.0, 4.0, 10.0)
QUICK_SIZES = (0.1, 0.25)
QUICK_PIPELINE_MILLIONS = 0.25

#: The issue's targets (benchmark figures, never timed tests).
TARGET_TOTAL_S = 45.0
STAGE_SLACK_S, STAGE_FLOOR_FACTOR = 1.5, 2.0
TARGET_NOOP_RATIO = 1.5
TARGET_RERUN_S = 20.0  # the rerun after a model parameter change (PARAM_CHANGE), default data only
TARGET_10M_S, TARGET_10M_PEAK_GB, TARGET_10M_OVER_1M = 300.0, 6.0, 12.0

#: Each benchmark script's arguments: full run, quick run.
BENCHMARK_ARGS: dict[str, tuple[list[str], list[str]]] = {
    "simulate": ([], ["--repeats", "1"]),
    "features": ([], ["--days", "30"]),
    "validate": ([], ["--rows", "300000"]),
    "scoring": ([], []),
    "serve": ([], ["--seconds", "3", "--rates", "300", "--setups", "uvloop+httptools", "--parts", "in_process,http"]),
    "monitor": (["--size", "tiny"], ["--size", "tiny", "--seeds", "1"]),
    "engine": (["--sizes", "4e6", "1e7"], ["--sizes", "2.5e5"]),  # pandas against dask: featurize + train
    "loop": ([], ["--days", "4"]),  # the time from a monitoring alert to the retrained model serving
}

#: The figures of each benchmark that results.md shows (all of them are in results.json).
HEADLINES: dict[str, tuple[str, ...]] = {
    "simulate": ("rows", "seconds", "peak_rss_mib", "fraud_rate"),
    "features": (
        "rows",
        "handbook_seconds",
        "extended_seconds",
        "speedup_over_pandas",
        "online_from_history_seconds",
        "online_features_p50_ms",
    ),
    "validate": ("rows", "import_gx_seconds", "validate_seconds", "ingest_batch_seconds", "peak_rss_mib"),
    "scoring": ("batch_throughput_tx_per_s", "score_latency_p50_ms", "score_latency_p99_ms", "infer_rows_per_s"),
    "serve": (),  # _serve_headlines
    "engine": (),  # _engine_headlines
    "monitor": ("stable_seeds", "false_alarms", "drifts", "drifts_alerted", "seconds_per_scenario"),
    "loop": (
        "rows_logged",
        "snapshot_seconds",
        "retrain_seconds",
        "register_seconds",
        "shadow_seconds",
        "swap_seconds",
        "alert_to_serving_seconds",
    ),
}

#: A model parameter change that costs what the default costs: train and what follows rerun.
PARAM_CHANGE = ("model.learning_rate", 0.06)


# --- the result schema ----------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StageRun(_Model):
    stage: str
    seconds: float  # wall time of the stage's process, from its start (interpreter and imports included)
    peak_rss_bytes: int
    floor_seconds: float | None = None
    budget_seconds: float | None = None  # 1.5 s + 2 x floor
    within_budget: bool | None = None


class ReproRun(_Model):
    rows: int | None = None
    seconds: float  # wall time of `dvc repro`
    peak_rss_bytes: int  # the largest stage process of the run
    stages_seconds: float  # the sum of the stages' own times
    dvc_overhead_seconds: float  # seconds - stages_seconds: DVC's hashing, caching, locking, start-up
    stages_run: list[str]
    stages: list[StageRun]
    error: str | None = None


class NoOp(_Model):
    repro_seconds: float  # median
    status_seconds: float  # median
    ratio: float
    repro_runs: list[float]
    status_runs: list[float]


class Floor(_Model):
    seconds: float
    source: str


class Pipeline(_Model):
    millions: float | None  # None: the default data as params.yaml has it
    cold: ReproRun
    noop: NoOp | None = None
    param_change: ReproRun | None = None
    param_change_what: str | None = None
    floors: dict[str, Floor] = {}
    total_within_target: bool | None = None


class SizePoint(_Model):
    millions: float
    overrides: dict[str, Any]
    run: ReproRun


class Sizes(_Model):
    points: list[SizePoint]
    growth_exponent: float | None
    ratio_10m_1m: float | None
    within_targets: dict[str, bool] = {}


class BenchmarkRun(_Model):
    status: Literal["ok", "failed", "skipped"]
    seconds: float
    command: str
    figures: dict[str, Any] = {}
    error: str | None = None


class Results(_Model):
    created: str
    commit: str
    dirty: bool
    quick: bool
    machine: dict[str, Any]
    benchmarks: dict[str, BenchmarkRun] = {}
    pipeline: Pipeline | None = None
    sizes: Sizes | None = None


# --- pure parts -----------------------------------------------------------------------------


def growth_exponent(rows: Sequence[float], seconds: Sequence[float]) -> float | None:
    """Least-squares slope of log(time) on log(size): 1 is linear; None below two distinct sizes."""
    import numpy as np

    pairs = [(r, s) for r, s in zip(rows, seconds) if r > 0 and s > 0]
    if len({r for r, _ in pairs}) < 2:
        return None
    x, y = np.log([r for r, _ in pairs]), np.log([s for _, s in pairs])
    return float(np.polyfit(x, y, 1)[0])


def stage_budget(floor_seconds: float) -> float:
    return STAGE_SLACK_S + STAGE_FLOOR_FACTOR * floor_seconds


def with_floors(run: ReproRun, floors: Mapping[str, float]) -> ReproRun:
    """The run's stages with their floor, budget (1.5 s + 2 x floor) and verdict."""
    stages = []
    for s in run.stages:
        floor = floors.get(s.stage)
        if floor is None:
            stages.append(s)
        else:
            budget = stage_budget(floor)
            stages.append(
                s.model_copy(
                    update={
                        "floor_seconds": round(floor, 3),
                        "budget_seconds": round(budget, 3),
                        "within_budget": s.seconds <= budget,
                    }
                )
            )
    return run.model_copy(update={"stages": stages})


def size_overrides(millions: float, simulator: Mapping[str, Any]) -> dict[str, Any]:
    """params.yaml keys that make the simulator produce about ``millions`` transactions.

    Customers and terminals scale with the size (transactions per customer and per terminal stay
    the same); so do the daily compromised terminals and customers, which are whole numbers: below
    one a day, the compromise lasts fewer days instead, so that compromised terminal-days (and
    customer-days), hence the fraud rate, keep their share."""
    f = millions * 1e6 / DEFAULT_ROWS
    fraud = simulator["fraud"]
    out: dict[str, Any] = {
        "data.simulator.n_customers": max(1, round(simulator["n_customers"] * f)),
        "data.simulator.n_terminals": max(1, round(simulator["n_terminals"] * f)),
    }
    for per_day, days in (("terminals_per_day", "terminal_days"), ("customers_per_day", "customer_days")):
        scaled = fraud[per_day] * f
        n = max(1, round(scaled))
        out[f"data.simulator.fraud.{per_day}"] = n
        out[f"data.simulator.fraud.{days}"] = max(1, round(fraud[days] * scaled / n))
    return out


def set_keys(params: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted keys set in a nested mapping (each key must exist: a typo fails here, not later)."""
    for dotted, value in overrides.items():
        *parents, last = dotted.split(".")
        node = params
        for key in parents:
            node = node[key]
        if last not in node:
            raise KeyError(f"{dotted}: no such key in params.yaml")
        node[last] = value
    return params


def _fmt(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}{suffix}"


def _gb(n: int | None) -> str:
    return "–" if n is None else f"{n / 1e9:.2f}"


def _verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("yes" if ok else "**no**")


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(results: Results) -> str:
    """results.json as Markdown tables (what docs/benchmarks.md shows)."""
    m = results.machine
    lines = [
        "# Benchmark results",
        "",
        f"`python benchmarks/run.py{' --quick' if results.quick else ''}` on {results.created}, "
        f"commit {results.commit[:12]}"
        f"{' (with uncommitted changes)' if results.dirty else ''}; {m.get('cpus')} CPUs, {m.get('memory_gb')} GB, "
        f"load average {m.get('load_before') or '–'} before / {m.get('load_after') or '–'} after (1-minute); "
        + (
            f"CPU probe {m['cpu_probe_before']} s before / {m.get('cpu_probe_after') or '–'} s after (a fixed "
            "single-threaded workload: lower is a faster moment of the host); "
            if m.get("cpu_probe_before")
            else ""
        )
        + f"OMP_NUM_THREADS={m.get('omp_num_threads') or 'unset'}. "
        "Wall-clock figures: they vary from run to run and with the machine's other load.",
    ]
    p = results.pipeline
    if p is not None:
        what = (
            "the default data (params.yaml)"
            if p.millions is None
            else f"about {p.millions:g} million simulated transactions"
        )
        lines += ["", f"## Cold `dvc repro`, {what}: {_fmt(p.cold.rows, 0)} transactions", ""]
        rows = [
            (
                s.stage,
                _fmt(s.seconds, 2),
                _gb(s.peak_rss_bytes),
                _fmt(s.floor_seconds, 2),
                _fmt(s.budget_seconds, 2),
                _verdict(s.within_budget),
            )
            for s in p.cold.stages
        ]
        rows.append(("stages (sum)", _fmt(p.cold.stages_seconds, 2), "", "", "", ""))
        rows.append(("dvc's own overhead", _fmt(p.cold.dvc_overhead_seconds, 2), "", "", "", ""))
        rows.append(
            (
                f"**total** (target <= {TARGET_TOTAL_S:g} s)",
                f"**{_fmt(p.cold.seconds, 2)}**",
                _gb(p.cold.peak_rss_bytes),
                "",
                "",
                _verdict(p.total_within_target),
            )
        )
        lines += _table(("stage", "time s", "peak RSS GB", "floor s", "budget s (1.5 + 2 x floor)", "within"), rows)
        if p.cold.error:
            lines += ["", f"The run failed: `{p.cold.error}`"]
        if p.floors:
            lines += ["", "Floors (the work each stage cannot avoid, measured apart):", ""]
            lines += _table(
                ("stage", "floor s", "made of"), ((k, _fmt(f.seconds, 2), f.source) for k, f in p.floors.items())
            )
            floor_sum = sum(f.seconds for f in p.floors.values())
            lines += [
                "",
                f"The floors add up to {floor_sum:.1f} s, "
                f"{floor_sum + p.cold.dvc_overhead_seconds:.1f} s with DVC's own "
                f"overhead, before any interpreter start or import: the total's target of {TARGET_TOTAL_S:g} s is "
                f"{'above' if floor_sum + p.cold.dvc_overhead_seconds <= TARGET_TOTAL_S else 'below'} the work itself.",
            ]
        if p.noop is not None:
            n = p.noop
            lines += [
                "",
                f"No-op `dvc repro` {_fmt(n.repro_seconds, 2)} s against `dvc status` {_fmt(n.status_seconds, 2)} s "
                f"(medians of {len(n.repro_runs)} interleaved runs): {n.ratio:.2f}x (target <= {TARGET_NOOP_RATIO:g}x: "
                f"{_verdict(n.ratio <= TARGET_NOOP_RATIO)}).",
            ]
        if p.param_change is not None:
            c = p.param_change
            ran = ", ".join(c.stages_run) or "nothing"
            lines += [
                "",
                f"After `{p.param_change_what}`: {_fmt(c.seconds, 1)} s"
                + (
                    f" (target <= {TARGET_RERUN_S:g} s: {_verdict(c.seconds <= TARGET_RERUN_S)})"
                    if p.millions is None
                    else ""
                )
                + f"; reran {ran} (stages {_fmt(c.stages_seconds, 1)} s, dvc {_fmt(c.dvc_overhead_seconds, 1)} s).",
            ]
    s = results.sizes
    if s is not None and s.points:
        lines += ["", "## Size series: cold `dvc repro` (time s / peak RSS GB)", ""]
        header = ["stage", *(f"{pt.run.rows / 1e6:.2f} M" if pt.run.rows else f"~{pt.millions:g} M" for pt in s.points)]
        names: list[str] = []
        for pt in s.points:
            names += [st.stage for st in pt.run.stages if st.stage not in names]
        by = [{st.stage: st for st in pt.run.stages} for pt in s.points]
        rows = [
            [name, *(f"{_fmt(b[name].seconds, 1)} / {_gb(b[name].peak_rss_bytes)}" if name in b else "–" for b in by)]
            for name in names
        ]
        rows.append(["dvc's own overhead", *(_fmt(pt.run.dvc_overhead_seconds, 1) for pt in s.points)])
        rows.append(
            ["**total**", *(f"**{_fmt(pt.run.seconds, 1)}** / {_gb(pt.run.peak_rss_bytes)}" for pt in s.points)]
        )
        lines += _table(header, rows)
        failed = [f"~{pt.millions:g} M: `{pt.run.error}`" for pt in s.points if pt.run.error]
        if failed:
            lines += ["", "Failed: " + "; ".join(failed)]
        lines += [
            "",
            "Growth exponent of total time against transactions (least-squares slope on log-log): "
            f"{_fmt(s.growth_exponent, 2)}; "
            f"time(10 M) / time(1 M): {_fmt(s.ratio_10m_1m, 1)} (target <= {TARGET_10M_OVER_1M:g}).",
        ]
        if s.within_targets:
            lines += [
                "",
                "10 M targets: " + "; ".join(f"{k}: {_verdict(v)}" for k, v in s.within_targets.items()) + ".",
            ]
    if results.benchmarks:
        lines += ["", "## Benchmarks", ""]
        rows = []
        for name, b in results.benchmarks.items():
            shown = ", ".join(f"{k} {b.figures[k]}" for k in HEADLINES.get(name, ()) if k in b.figures)
            if name == "serve" and b.figures:
                shown = ", ".join([shown, *_serve_headlines(b.figures)])
            if name == "engine" and b.figures:
                shown = ", ".join(_engine_headlines(b.figures))
            rows.append((name, b.status, _fmt(b.seconds, 0), f"`{b.command}`", shown or (b.error or "")))
        lines += _table(("benchmark", "status", "s", "command", "figures (all in results.json)"), rows)
    return "\n".join(lines) + "\n"


def in_readme(readme: str, markdown: str) -> str:
    """docs/benchmarks.md with results.md between its benchmark markers (headings one level down, no title)."""
    start, end = README_MARKERS
    if readme.count(start) != 1 or readme.count(end) != 1 or readme.index(start) > readme.index(end):
        raise ValueError(f"docs/benchmarks.md needs one {start} ... {end} section")
    body = [
        ("#" + line if line.startswith("## ") else line) for line in markdown.splitlines() if not line.startswith("# ")
    ]
    head, rest = readme.split(start, 1)
    return head + start + "\n" + "\n".join(body).strip("\n") + "\n" + end + rest.split(end, 1)[1]


def _engine_headlines(figures: Mapping[str, Any]) -> list[str]:
    return [
        f"{entry['rows'] / 1e6:.2f} M {name}: featurize + train {f['featurize_train_s']:.0f} s, client peak "
        f"{f['client_peak_rss_gib']:.2f} GiB, AP {f['average_precision']:.4f}"
        for entry in figures.get("sizes", [])
        for name, f in entry["engines"].items()
    ]


def _serve_headlines(figures: Mapping[str, Any]) -> list[str]:
    timings = figures.get("in_process", {})
    out = [f"fast path {'on' if timings.get('fast_path') else 'off'}"] if timings else []
    out += [
        f"{key.removesuffix('_p50_ms')} p50 {v:.3f} ms p99 {timings[key.replace('_p50_', '_p99_')]:.3f} ms"
        for key, v in timings.items()
        if key.endswith("_p50_ms")
    ]
    for setup, rows in figures.get("http", {}).items():
        out += [
            f"{setup} {r['endpoint']} {r['load']}: {r['rps']:.0f} req/s p99 {r['p99']:.1f} ms"
            for r in rows
            if r["endpoint"] == "POST /v1/score"
        ]
    out += [
        f"{r['store']} x{r['workers']}: {r['saturation_rps']:.0f} req/s at saturation, "
        f"p99 {r['rate_p99_ms']:.1f} ms at "
        f"{r['rate']:.0f} req/s"
        for r in figures.get("scale", [])
    ]
    return out


# --- processes ------------------------------------------------------------------------------


def tool_env(src: Path | None = None, **extra: str) -> dict[str, str]:
    """This interpreter's tools first on PATH; ``src``: the fraudpipe package the stages import."""
    env = dict(os.environ, DVC_NO_ANALYTICS="1", **extra)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if src is not None:
        env["PYTHONPATH"] = str(src)
    return env


def timed_process(
    args: Sequence[str], cwd: Path, env: Mapping[str, str], log: Path | None = None
) -> tuple[int, float, int, str]:
    """Exit code, wall seconds, peak RSS (bytes, of the process or any child it waited for) and output."""
    with tempfile.TemporaryFile("w+") if log is None else open(log, "w+") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(args, cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        return proc.returncode, seconds, usage.ru_maxrss * 1024, out.read()


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def run_benchmark(name: str, quick: bool, work: Path) -> BenchmarkRun:
    """One benchmark script in its own process; its figures from ``--json``."""
    if name == "serve" and not shutil.which("wrk"):
        return BenchmarkRun(
            status="skipped",
            seconds=0.0,
            command="python benchmarks/serve.py",
            error="wrk not found (apt-get install wrk)",
        )
    if name in NEED_BUNDLE and not (ROOT / "models/bundle").exists():
        return BenchmarkRun(
            status="skipped",
            seconds=0.0,
            command=f"python benchmarks/{name}.py",
            error="models/bundle missing: dvc repro first",
        )
    extra = BENCHMARK_ARGS[name][1 if quick else 0]
    out = work / f"{name}.json"
    command = [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *extra, "--json", str(out)]
    shown = " ".join(["python", f"benchmarks/{name}.py", *extra])
    print(f"[bench] {shown}", flush=True)
    code, seconds, _, output = timed_process(
        command, ROOT, tool_env(ROOT / "src", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    )
    if code != 0 or not out.exists():
        return BenchmarkRun(
            status="failed", seconds=round(seconds, 1), command=shown, error=f"exit {code}: {_tail(output)}"
        )
    return BenchmarkRun(status="ok", seconds=round(seconds, 1), command=shown, figures=json.loads(out.read_text()))


# --- the pipeline in a clone ----------------------------------------------------------------


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def make_clone(dest: Path, overrides: Mapping[str, Any] | None = None) -> Path:
    """A git clone of HEAD with a fresh DVC cache of its own beside it; ``overrides`` set in its conf/."""
    env = tool_env()
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(ROOT), str(dest)], check=True, env=env)
    git("checkout", "-q", git("rev-parse", "HEAD"), cwd=dest)
    subprocess.run(
        ["dvc", "config", "--local", "cache.dir", str(dest.parent / f"{dest.name}-cache")],
        cwd=dest,
        check=True,
        env=env,
    )
    if overrides:
        set_conf(dest, overrides)
    return dest


def set_conf(clone: Path, overrides: Mapping[str, Any]) -> None:
    """``overrides`` written into the clone's conf/config.yaml and its params.yaml recomposed, as a
    user edits conf/: `dvc repro` refuses a params.yaml that conf/ does not compose to."""
    set_keys(yaml.safe_load((clone / "params.yaml").read_text()), overrides)  # a misspelt key fails here
    update_composition(clone / "conf", {}, overrides)
    write_params(clone / "conf", clone / "params.yaml")


def ran_stages(output: str) -> list[str]:
    """Stages `dvc repro` executed (neither skipped nor restored from the run-cache), in order."""
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


def repro(clone: Path, profile: Path, args: Sequence[str] = ()) -> ReproRun:
    """`dvc repro` in the clone with every stage recording its own time and peak RSS into ``profile``."""
    profile.mkdir(parents=True, exist_ok=True)
    env = tool_env(clone / "src", FRAUDPIPE_PROFILE=str(profile))
    code, seconds, dvc_peak, output = timed_process(["dvc", "repro", *args], clone, env, log=profile / "dvc-repro.log")
    ran = ran_stages(output)
    stages = []
    for name in ran:
        path = profile / f"{name}.json"
        if path.exists():
            record = json.loads(path.read_text())
            stages.append(StageRun(stage=name, seconds=record["seconds"], peak_rss_bytes=record["peak_rss_bytes"]))
    total = round(sum(s.seconds for s in stages), 3)
    # The stages' own peaks: the dvc process's ru_maxrss also counts this harness's memory at the
    # fork (Linux carries it across exec), so it is only the fallback when no stage ran.
    peak = max((s.peak_rss_bytes for s in stages), default=dvc_peak)
    rows = _rows(clone)
    error = None if code == 0 else f"dvc repro exited {code}: {_tail(output)}"
    return ReproRun(
        rows=rows,
        seconds=round(seconds, 3),
        peak_rss_bytes=peak,
        stages_seconds=total,
        dvc_overhead_seconds=round(seconds - total, 3),
        stages_run=ran,
        stages=stages,
        error=error,
    )


def _rows(clone: Path) -> int | None:
    summary = clone / "reports/validation/summary.json"
    return json.loads(summary.read_text()).get("rows_in") if summary.exists() else None


def noop_against_status(clone: Path, runs: int) -> NoOp:
    """Median of interleaved no-op `dvc repro` and `dvc status` runs (one warm-up each, not counted)."""
    env = tool_env(clone / "src")
    times: dict[str, list[float]] = {"repro": [], "status": []}
    for i in range(runs + 1):
        for what in ("status", "repro"):
            code, seconds, _, output = timed_process(["dvc", what], clone, env)
            if code != 0 or (what == "repro" and ran_stages(output)):
                raise RuntimeError(f"no-op dvc {what} did not come back clean: {_tail(output)}")
            if i:
                times[what].append(round(seconds, 3))
    r, s = statistics.median(times["repro"]), statistics.median(times["status"])
    return NoOp(
        repro_seconds=r, status_seconds=s, ratio=round(r / s, 3), repro_runs=times["repro"], status_runs=times["status"]
    )


def io_floors(clone: Path, repeats: int = 2) -> dict[str, float]:
    """Per stage: reading its Parquet inputs and writing its Parquet outputs (as dvc.yaml declares
    them), best of ``repeats`` (the machine is shared: the best run is the closest to the floor)."""
    from fraudpipe.io import read_parquet, write_parquet

    def parquet_files(entries: Iterable[Any]) -> list[Path]:
        files: list[Path] = []
        for entry in entries:
            path = clone / (next(iter(entry)) if isinstance(entry, dict) else entry)
            if path.suffix == ".parquet" and path.is_file():
                files.append(path)
            elif path.is_dir():
                files += sorted(path.rglob("*.parquet"))
        return files

    stages = yaml.safe_load((clone / "dvc.yaml").read_text())["stages"]
    floors: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, stage in stages.items():
            inputs, outputs = parquet_files(stage.get("deps", [])), parquet_files(stage.get("outs", []))
            frames = [read_parquet(path) for path in outputs]  # not timed: only their writing is
            for _ in range(repeats):
                start = time.perf_counter()
                for path in inputs:
                    read_parquet(path)
                for k, frame in enumerate(frames):
                    write_parquet(frame, Path(tmp) / f"{k}.parquet")
                floors[name] = min(floors.get(name, math.inf), time.perf_counter() - start)
            del frames
    return floors


def fit_floor(clone: Path) -> dict[str, float]:
    """One fit of the configured model on the clone's training period (the library's `fit_model`:
    standardising and the estimator, no threshold), and scoring its test period."""
    import numpy as np

    from fraudpipe.contract import TX_FRAUD, feature_columns
    from fraudpipe.io import read_parquet
    from fraudpipe.model import ModelConfig, fitted_on, load_bundle
    from fraudpipe.model.fit import fit_model

    params = yaml.safe_load((clone / "params.yaml").read_text())
    config = ModelConfig.parse(params["model"], "model")
    train = read_parquet(clone / "data/split/train.parquet")
    features = feature_columns(train)
    X, y = train[features].to_numpy(dtype=np.float64), train[TX_FRAUD].to_numpy(dtype=np.int8)
    fit = math.inf
    for _ in range(2):  # best of two: the machine is shared
        start = time.perf_counter()
        fit_model(X, y, config, features)
        fit = min(fit, time.perf_counter() - start)
    bundle, test = load_bundle(clone / "models/bundle"), read_parquet(clone / "data/split/test.parquet")
    start = time.perf_counter()
    bundle.score(test)
    per_training = 2 if config.threshold_validation_days > 0 else 1
    folds = params["split"]["n_folds"]
    reused = fitted_on(
        bundle, train, config
    )  # backtest's fold 0 is then train's bundle, not a fit (backtest.evaluate_folds)
    return {
        "fit": fit,
        "score_test": time.perf_counter() - start,
        "fits_per_training": per_training,
        "backtest_fits": (folds - int(reused)) * per_training,
        "backtest_what": f"{folds - 1} folds x {per_training} fits (fold 0 is train's bundle)"
        if reused
        else f"{folds} folds x {per_training} fits",
    }


def parity_work(clone: Path) -> dict[str, float]:
    """What `parity` must do on the clone's data: build the online state from the rows before the
    test period that the state keeps (their share of all rows), and replay ``latency_rows`` rows."""
    import pandas as pd

    from fraudpipe.contract import TX_DATETIME
    from fraudpipe.data.split import SplitConfig, periods
    from fraudpipe.features.definitions import FeatureConfig
    from fraudpipe.features.online import history_since
    from fraudpipe.io import read_parquet

    params = yaml.safe_load((clone / "params.yaml").read_text())
    times = read_parquet(clone / "data/interim/transactions.parquet", columns=[TX_DATETIME])[TX_DATETIME]
    test_start = periods(SplitConfig.parse(params["split"], "split"), times.max()).test_start
    since = history_since(FeatureConfig.parse(params["features"], "features"), times, test_start)
    kept = (times < test_start) & (times >= (since if since is not None else pd.Timestamp.min))
    return {
        "history_share": float(kept.mean()) if len(times) else 0.0,
        "replayed": int(params["evaluate"]["latency_rows"]),
    }


def stage_floors(
    io: Mapping[str, float],
    fit: Mapping[str, float],
    bench: Mapping[str, BenchmarkRun],
    scale: float,
    parity: Mapping[str, float] | None = None,
) -> dict[str, Floor]:
    """Each stage's floor: its Parquet I/O plus the benchmarked work it must do (``scale``: the
    pipeline's rows over the benchmarks' rows, when they differ, as in --quick; ``parity``: its
    share of rows for the online state and its replayed rows, `parity_work`)."""

    def figure(name: str, key: str) -> float | None:
        b = bench.get(name)
        value = b.figures.get(key) if b is not None and b.status == "ok" else None
        if value is None:
            return None
        rows = b.figures.get("rows")
        return value * (scale if rows is None else scale * DEFAULT_ROWS / rows)

    work: dict[str, list[tuple[str, float | None]]] = {
        "ingest": [
            ("simulator (benchmarks/simulate.py)", figure("simulate", "seconds")),
            ("conform + validation (benchmarks/validate.py ingest_batch)", figure("validate", "ingest_batch_seconds")),
        ],
        "featurize": [
            ("extended features (benchmarks/features.py)", figure("features", "extended_seconds")),
            ("online state (benchmarks/features.py from_history)", figure("features", "online_from_history_seconds")),
        ],
        "train": [
            (
                f"{fit['fits_per_training']} fits (threshold day held out, then all)",
                fit["fits_per_training"] * fit["fit"],
            )
        ],
        "evaluate": [("scoring the test period", fit["score_test"])],
        "parity": _parity_parts(parity, figure("features", "online_from_history_seconds"), bench),
        "backtest": [(fit["backtest_what"], fit["backtest_fits"] * fit["fit"])],
    }
    floors = {}
    for stage, seconds in io.items():
        parts = [("Parquet in + out", seconds), *work.get(stage, [])]
        known = [(what, s) for what, s in parts if s is not None]
        missing = [what.split(" (")[0] for what, s in parts if s is None]  # its benchmark failed or was not selected
        source = " + ".join(f"{what} {s:.2f} s" for what, s in known) + "".join(
            f"; {what}: not measured" for what in missing
        )
        floors[stage] = Floor(seconds=round(sum(s for _, s in known), 3), source=source)
    return floors


def _parity_parts(
    parity: Mapping[str, float] | None, from_history: float | None, bench: Mapping[str, BenchmarkRun]
) -> list[tuple[str, float | None]]:
    """`parity`'s work: the online state of the history it keeps, and the replay (per-row online
    features, as benchmarks/features.py times them; the per-row score is left out, a few hundredths)."""
    if parity is None:
        return []
    features = bench.get("features")
    p50 = features.figures.get("online_features_p50_ms") if features is not None and features.status == "ok" else None
    share = parity["history_share"]
    return [
        (
            f"online state of {share:.0%} of the rows (benchmarks/features.py from_history)",
            None if from_history is None else from_history * share,
        ),
        (
            f"replaying {parity['replayed']:,} rows (benchmarks/features.py online p50)",
            None if p50 is None else parity["replayed"] * p50 / 1000,
        ),
    ]


def measure_pipeline(work: Path, millions: float | None, noop_runs: int, bench: Mapping[str, BenchmarkRun]) -> Pipeline:
    overrides = (
        {} if millions is None else {**size_overrides(millions, _default_simulator()), "evaluate.gate.enforce": False}
    )
    clone = make_clone(work / "pipeline", overrides)
    print("[pipeline] cold dvc repro", flush=True)
    # --force: a clone's stages whose outputs are all git-tracked (the check stages' records, the
    # metrics of backtest and monitor) are up to date in it; cold means every stage runs.
    cold = repro(clone, work / "profile-cold", ["--force"])
    if cold.error:
        return Pipeline(millions=millions, cold=cold)
    print("[pipeline] no-op dvc repro against dvc status", flush=True)
    noop = noop_against_status(clone, noop_runs)
    print("[pipeline] floors", flush=True)
    fit = fit_floor(clone)
    scale = (cold.rows or DEFAULT_ROWS) / DEFAULT_ROWS
    floors = stage_floors(io_floors(clone), fit, bench, scale, parity_work(clone))
    key, value = PARAM_CHANGE
    set_conf(clone, {key: value})
    print(f"[pipeline] dvc repro after {key}={value}", flush=True)
    changed = repro(clone, work / "profile-param")
    return Pipeline(
        millions=millions,
        cold=with_floors(cold, {k: f.seconds for k, f in floors.items()}),
        noop=noop,
        param_change=changed,
        param_change_what=f"{key}: {value} in conf/ (as dvc exp run -S {key}={value})",
        floors=floors,
        total_within_target=cold.seconds <= TARGET_TOTAL_S,
    )


def _default_simulator() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "params.yaml").read_text())["data"]["simulator"]


def measure_sizes(work: Path, sizes: Sequence[float], progress: Callable[[Sizes], None] = lambda _: None) -> Sizes:
    """The cold `dvc repro` at each size; ``progress`` gets the series so far after each size."""
    points: list[SizePoint] = []
    for millions in sizes:
        overrides = {**size_overrides(millions, _default_simulator()), "evaluate.gate.enforce": False}
        print(f"[sizes] cold dvc repro, ~{millions:g} M transactions", flush=True)
        clone = make_clone(work / f"size-{millions:g}", overrides)
        points.append(
            SizePoint(
                millions=millions,
                overrides=overrides,
                run=repro(clone, work / f"profile-size-{millions:g}", ["--force"]),
            )
        )
        shutil.rmtree(clone, ignore_errors=True)
        shutil.rmtree(work / f"size-{millions:g}-cache", ignore_errors=True)
        progress(size_series(points))
    return size_series(points)


def size_series(points: list[SizePoint]) -> Sizes:
    """The points with the growth exponent, time(10 M) / time(1 M) and the 10 M targets."""
    ok = [pt for pt in points if pt.run.error is None and pt.run.rows]
    exponent = growth_exponent([pt.run.rows for pt in ok], [pt.run.seconds for pt in ok])
    by_size = {pt.millions: pt.run for pt in ok}
    ratio = by_size[10.0].seconds / by_size[1.0].seconds if 10.0 in by_size and 1.0 in by_size else None
    targets = {}
    if 10.0 in by_size:
        targets[f"10 M total <= {TARGET_10M_S:g} s"] = by_size[10.0].seconds <= TARGET_10M_S
        targets[f"10 M peak RSS <= {TARGET_10M_PEAK_GB:g} GB"] = (
            by_size[10.0].peak_rss_bytes <= TARGET_10M_PEAK_GB * 1e9
        )
    if ratio is not None:
        targets[f"time(10 M) / time(1 M) <= {TARGET_10M_OVER_1M:g}"] = ratio <= TARGET_10M_OVER_1M
    return Sizes(points=points, growth_exponent=exponent, ratio_10m_1m=ratio, within_targets=targets)


# --- the run --------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    import psutil

    dvc = subprocess.run(["dvc", "--version"], capture_output=True, text=True, env=tool_env()).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "python": platform.python_version(),
        "dvc": dvc,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_before": round(os.getloadavg()[0], 2),
        "cpu_probe_before": cpu_probe(),
    }


def cpu_probe() -> float:
    """Seconds of a fixed single-threaded workload (a Python loop and NumPy sorts): the load average
    does not show a host whose other tenants slow this VM's cores, this does (lower: a faster moment;
    it ranged from 0.72 to 1.05 s over one evening here)."""
    import numpy as np

    values = np.random.default_rng(0).random(2_000_000)
    start, total = time.perf_counter(), 0
    for i in range(3_000_000):
        total += i * i
    for _ in range(5):
        np.sort(values)
    return round(time.perf_counter() - start, 3)


def write_results(results: Results, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(results.model_dump_json(indent=1) + "\n")
    (out / "results.md").write_text(render_markdown(results))


def run(
    only: Sequence[str],
    sizes: Sequence[float],
    quick: bool,
    out: Path,
    noop_runs: int,
    keep: bool = False,
    log: Callable[[str], None] = print,
) -> Results:
    """Everything selected, written to ``out`` (also after each part, so a long run can be followed)."""
    results = Results(
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        commit=git("rev-parse", "HEAD"),
        dirty=bool(git("status", "--porcelain", "--untracked-files=no")),
        quick=quick,
        machine=machine(),
    )
    work = Path(tempfile.mkdtemp(prefix="fraudpipe-bench-"))
    needed = set(only) | (set(FLOOR_BENCHMARKS) if "pipeline" in only else set())
    try:
        for name in BENCHMARKS:
            if name in needed:
                results.benchmarks[name] = run_benchmark(name, quick, work)
                log(f"[bench] {name}: {results.benchmarks[name].status} ({results.benchmarks[name].seconds:.0f} s)")
                write_results(results, out)
        if "pipeline" in only:
            results.pipeline = measure_pipeline(
                work, QUICK_PIPELINE_MILLIONS if quick else None, noop_runs, results.benchmarks
            )
            write_results(results, out)
        if "sizes" in only:

            def progress(series: Sizes) -> None:
                results.sizes = series
                write_results(results, out)

            results.sizes = measure_sizes(work, sizes, progress)
    finally:
        results.machine["load_after"] = round(os.getloadavg()[0], 2)
        results.machine["cpu_probe_after"] = cpu_probe()
        write_results(results, out)
        if keep:
            log(f"kept the clones and profiles in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SUITES), help=f"comma-separated suites, of: {', '.join(SUITES)}")
    parser.add_argument(
        "--sizes",
        help=f"millions of transactions for the size series (default {','.join(f'{s:g}' for s in SIZES)}; --quick: "
        f"{','.join(f'{s:g}' for s in QUICK_SIZES)})",
    )
    parser.add_argument("--quick", action="store_true", help="small data and short benchmark runs: a few minutes")
    parser.add_argument(
        "--noop-runs", type=int, help="no-op dvc repro / dvc status runs (median; default 5, --quick 3)"
    )
    parser.add_argument("--out", type=Path, default=OUT, help="where results.json and results.md go")
    parser.add_argument("--keep", action="store_true", help="keep the temporary clones and stage profiles")
    parser.add_argument(
        "--readme", action="store_true", help="also paste results.md into docs/benchmarks.md's benchmark section"
    )
    parser.add_argument(
        "--from-json", type=Path, help="run nothing: render this results.json into results.md (and --readme)"
    )
    args = parser.parse_args()
    if args.from_json:
        results = Results.model_validate_json(args.from_json.read_text())
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.md").write_text(render_markdown(results))
        if args.readme:
            README.write_text(in_readme(README.read_text(), render_markdown(results)))
        return
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SUITES))
    if unknown:
        parser.error(f"--only: unknown suite(s) {unknown}; choose from {', '.join(SUITES)}")
    sizes = [float(s) for s in args.sizes.split(",")] if args.sizes else list(QUICK_SIZES if args.quick else SIZES)
    noop_runs = args.noop_runs or (3 if args.quick else 5)
    results = run(only, sizes, args.quick, args.out, noop_runs, keep=args.keep)
    print(render_markdown(results))
    if args.readme:
        README.write_text(in_readme(README.read_text(), render_markdown(results)))
    print(f"wrote {args.out / 'results.json'} and {args.out / 'results.md'}")


if __name__ == "__main__":
    main()
