"""benchmarks/run.py: its pure parts (growth exponent, size scaling, floors and budgets, the result
schema, the Markdown table) and the stage profile it reads, written by real stages under a real
`dvc repro` in a tiny copy of the repository. No timed assertion: the figures are the benchmark's.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from fraudpipe.data.simulate import SimulatorConfig

ROOT = Path(__file__).resolve().parents[1]


def _harness():
    spec = importlib.util.spec_from_file_location("benchmarks_run", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the schema's annotations through it
    spec.loader.exec_module(module)
    return module


RUN = _harness()
DEFAULT_SIMULATOR = yaml.safe_load((ROOT / "params.yaml").read_text())["data"]["simulator"]


# --- growth exponent ------------------------------------------------------------------------


def test_growth_exponent_is_the_log_log_slope():
    sizes = [0.25e6, 1e6, 4e6, 10e6]
    assert RUN.growth_exponent(sizes, [3e-6 * n for n in sizes]) == pytest.approx(1.0)
    assert RUN.growth_exponent(sizes, [1e-12 * n**2 for n in sizes]) == pytest.approx(2.0)
    assert RUN.growth_exponent(sizes, [7.0] * 4) == pytest.approx(0.0, abs=1e-12)


def test_growth_exponent_least_squares_over_noisy_points():
    # log-log points (0, 0), (1, 1.2), (2, 1.8): slope of the least-squares line is 0.9
    e = math.e
    assert RUN.growth_exponent([1, e, e**2], [1, e**1.2, e**1.8]) == pytest.approx(0.9)


def test_growth_exponent_needs_two_distinct_sizes():
    assert RUN.growth_exponent([1e6], [10.0]) is None
    assert RUN.growth_exponent([1e6, 1e6], [10.0, 11.0]) is None
    assert RUN.growth_exponent([1e6, 0, 2e6], [10.0, 5.0, 0.0]) is None  # non-positive points are left out


def test_size_series_ratio_and_targets_leave_out_a_failed_size():
    def point(m, seconds, gb, error=None):
        run = _repro([_stage("ingest", seconds / 2, gb)], seconds, int(m * 1e6)).model_copy(update={"error": error})
        return RUN.SizePoint(millions=m, overrides={}, run=run)

    series = RUN.size_series(
        [point(1.0, 50, 1.0), point(4.0, 210, 3.0, error="dvc repro exited -9"), point(10.0, 550, 9.0)]
    )
    assert series.ratio_10m_1m == pytest.approx(11.0)
    assert series.growth_exponent == pytest.approx(math.log(11.0) / math.log(10.0))  # the failed 4 M point is left out
    assert series.within_targets == {
        "10 M total <= 300 s": False,
        "10 M peak RSS <= 6 GB": False,
        "time(10 M) / time(1 M) <= 12": True,
    }
    assert RUN.size_series([point(1.0, 50, 1.0)]).within_targets == {}


# --- size scaling ---------------------------------------------------------------------------


def _scaled(millions: float) -> dict:
    return RUN.set_keys(
        yaml.safe_load((ROOT / "params.yaml").read_text()), RUN.size_overrides(millions, DEFAULT_SIMULATOR)
    )["data"]["simulator"]


def test_the_default_size_gives_the_default_simulator():
    assert _scaled(RUN.DEFAULT_ROWS / 1e6) == DEFAULT_SIMULATOR


@pytest.mark.parametrize("millions", [0.1, 0.25, 1.0, 4.0, 10.0])
def test_scaled_simulator_is_valid_and_keeps_the_compromise_share(millions):
    sim = _scaled(millions)
    SimulatorConfig.parse(sim, "data.simulator")  # every scaled setting is one the simulator accepts
    f = millions * 1e6 / RUN.DEFAULT_ROWS
    assert sim["n_customers"] == round(DEFAULT_SIMULATOR["n_customers"] * f)
    assert sim["n_terminals"] == round(DEFAULT_SIMULATOR["n_terminals"] * f)
    assert sim["n_days"] == DEFAULT_SIMULATOR["n_days"] and sim["start_date"] == DEFAULT_SIMULATOR["start_date"]
    fraud, default = sim["fraud"], DEFAULT_SIMULATOR["fraud"]
    for per_day, days, population in (
        ("terminals_per_day", "terminal_days", "n_terminals"),
        ("customers_per_day", "customer_days", "n_customers"),
    ):
        assert fraud[per_day] >= 1
        # compromised terminal-days (customer-days) per terminal (customer) as in the default, within rounding
        share = fraud[per_day] * fraud[days] / sim[population]
        default_share = default[per_day] * default[days] / DEFAULT_SIMULATOR[population]
        assert share == pytest.approx(default_share, rel=0.2), (per_day, fraud, sim[population])


def test_set_keys_refuses_a_key_params_yaml_does_not_have():
    with pytest.raises(KeyError, match=re.escape("model.max_dept")):
        RUN.set_keys({"model": {"max_depth": 6}}, {"model.max_dept": 3})
    assert RUN.set_keys({"model": {"max_depth": 6}}, {"model.max_depth": 3}) == {"model": {"max_depth": 3}}


# --- floors, budgets, schema, table ---------------------------------------------------------


def _stage(name: str, seconds: float, gb: float = 0.5):
    return RUN.StageRun(stage=name, seconds=seconds, peak_rss_bytes=int(gb * 1e9))


def _repro(stages, seconds: float, rows: int = 1_754_155):
    total = sum(s.seconds for s in stages)
    return RUN.ReproRun(
        rows=rows,
        seconds=seconds,
        peak_rss_bytes=max(s.peak_rss_bytes for s in stages),
        stages_seconds=total,
        dvc_overhead_seconds=seconds - total,
        stages_run=[s.stage for s in stages],
        stages=stages,
    )


def test_budget_is_one_and_a_half_seconds_plus_twice_the_floor():
    run = RUN.with_floors(
        _repro([_stage("ingest", 5.0), _stage("train", 4.0), _stage("check_config", 1.0)], 12.0),
        {"ingest": 1.0, "train": 1.5},
    )
    ingest, train, check = run.stages
    assert (ingest.budget_seconds, ingest.within_budget) == (3.5, False)
    assert (train.budget_seconds, train.within_budget) == (4.5, True)
    assert check.floor_seconds is None and check.within_budget is None  # no floor known: no verdict


def test_floors_add_parquet_io_to_the_benchmarked_work_scaled_to_the_pipelines_rows():
    bench = {
        "simulate": RUN.BenchmarkRun(
            status="ok", seconds=9, command="c", figures={"rows": RUN.DEFAULT_ROWS, "seconds": 0.5}
        ),
        "validate": RUN.BenchmarkRun(
            status="ok", seconds=9, command="c", figures={"rows": RUN.DEFAULT_ROWS // 2, "ingest_batch_seconds": 1.0}
        ),
        "features": RUN.BenchmarkRun(status="failed", seconds=9, command="c", error="boom"),
    }
    fit = {
        "fit": 2.0,
        "score_test": 0.1,
        "fits_per_training": 2,
        "backtest_fits": 6,
        "backtest_what": "3 folds x 2 fits (fold 0 is train's bundle)",
    }
    floors = RUN.stage_floors(
        {"ingest": 0.2, "featurize": 0.3, "train": 0.1, "backtest": 0.4, "split": 0.6}, fit, bench, scale=1.0
    )
    assert floors["ingest"].seconds == pytest.approx(0.2 + 0.5 + 2.0)  # validation measured on half the rows: doubled
    assert floors["featurize"].seconds == pytest.approx(
        0.3
    )  # a failed benchmark contributes nothing (and says so by its absence)
    assert (
        floors["featurize"].source
        == "Parquet in + out 0.30 s; extended features: not measured; online state: not measured"
    )
    assert floors["train"].seconds == pytest.approx(0.1 + 4.0)
    assert floors["backtest"].seconds == pytest.approx(0.4 + 12.0)
    assert floors["backtest"].source == "Parquet in + out 0.40 s + 3 folds x 2 fits (fold 0 is train's bundle) 12.00 s"
    assert floors["split"].seconds == pytest.approx(0.6) and floors["split"].source.startswith("Parquet")
    half = RUN.stage_floors({"ingest": 0.2}, fit, bench, scale=0.5)
    assert half["ingest"].seconds == pytest.approx(0.2 + 0.25 + 1.0)


def test_paritys_floor_adds_the_online_state_of_the_rows_it_keeps_and_the_replay():
    features = {"rows": RUN.DEFAULT_ROWS, "online_from_history_seconds": 2.0, "online_features_p50_ms": 0.1}
    bench = {"features": RUN.BenchmarkRun(status="ok", seconds=9, command="c", figures=features)}
    fit = {"fit": 1.0, "score_test": 0.1, "fits_per_training": 1, "backtest_fits": 1, "backtest_what": "1 fit"}
    work = {"history_share": 0.75, "replayed": 2000}
    floor = RUN.stage_floors({"parity": 0.5}, fit, bench, scale=1.0, parity=work)["parity"]
    assert floor.seconds == pytest.approx(0.5 + 1.5 + 0.2)
    assert "online state of 75% of the rows" in floor.source and "replaying 2,000 rows" in floor.source
    assert RUN.stage_floors({"parity": 0.5}, fit, {}, scale=1.0, parity=work)["parity"].seconds == 0.5


def _results():
    cold = RUN.with_floors(
        _repro([_stage("ingest", 5.0, 0.7), _stage("train", 4.0, 0.4)], 11.5), {"ingest": 1.0, "train": 1.5}
    )
    pipeline = RUN.Pipeline(
        millions=None,
        cold=cold,
        floors={"ingest": RUN.Floor(seconds=1.0, source="Parquet in + out 1.00 s")},
        noop=RUN.NoOp(repro_seconds=1.2, status_seconds=0.6, ratio=2.0, repro_runs=[1.2], status_runs=[0.6]),
        param_change=_repro([_stage("train", 4.0)], 5.0),
        param_change_what="model.learning_rate: 0.06",
        total_within_target=True,
    )
    points = [
        RUN.SizePoint(
            millions=m,
            overrides={},
            run=_repro([_stage("ingest", 3 * m), _stage("train", 2 * m, m)], 6 * m, int(m * 1e6)),
        )
        for m in (1.0, 10.0)
    ]
    sizes = RUN.Sizes(
        points=points, growth_exponent=1.0, ratio_10m_1m=10.0, within_targets={"10 M peak RSS <= 6 GB": False}
    )
    bench = {
        "simulate": RUN.BenchmarkRun(
            status="ok", seconds=12, command="python benchmarks/simulate.py", figures={"rows": 5, "seconds": 0.51}
        ),
        "serve": RUN.BenchmarkRun(
            status="skipped", seconds=0, command="python benchmarks/serve.py", error="wrk not found"
        ),
    }
    return RUN.Results(
        created="2026-11-29T00:00:00+00:00",
        commit="a" * 40,
        dirty=False,
        quick=False,
        machine={"cpus": 2, "memory_gb": 24.0},
        benchmarks=bench,
        pipeline=pipeline,
        sizes=sizes,
    )


def test_results_round_trip_through_json_and_refuse_unknown_keys():
    results = _results()
    again = RUN.Results.model_validate_json(results.model_dump_json())
    assert again == results
    data = json.loads(results.model_dump_json())
    data["pipeline"]["cold"]["stages"][0]["secs"] = 1.0
    with pytest.raises(ValidationError, match="secs"):
        RUN.Results.model_validate(data)
    del data["pipeline"]["cold"]["stages"][0]["secs"]
    del data["pipeline"]["cold"]["seconds"]
    with pytest.raises(ValidationError, match="seconds"):
        RUN.Results.model_validate(data)


def test_the_header_names_the_host_s_speed_when_probed():
    results = _results()
    assert "CPU probe" not in RUN.render_markdown(results)  # results from before the probe render as they did
    results.machine |= {"cpu_probe_before": 0.871, "cpu_probe_after": 0.93}
    assert "CPU probe 0.871 s before / 0.93 s after" in RUN.render_markdown(results)
    assert RUN.cpu_probe() > 0


def test_markdown_tables_show_every_stage_its_budget_and_the_verdicts():
    text = RUN.render_markdown(_results())
    lines = text.splitlines()
    assert "| ingest | 5.00 | 0.70 | 1.00 | 3.50 | **no** |" in lines
    assert "| train | 4.00 | 0.40 | 1.50 | 4.50 | yes |" in lines
    assert "| dvc's own overhead | 2.50 |  |  |  |  |" in lines
    assert any(line.startswith("| **total** (target <= 45 s) | **11.50** |") for line in lines)
    assert "2.00x (target <= 1.5x: **no**)" in text
    assert "reran train" in text
    assert "After `model.learning_rate: 0.06`: 5.0 s (target <= 20 s: yes); reran train" in text
    assert "| stage | 1.00 M | 10.00 M |" in lines
    assert "| train | 2.0 / 1.00 | 20.0 / 10.00 |" in lines
    assert "| **total** | **6.0** / 1.00 | **60.0** / 10.00 |" in lines
    assert "time(10 M) / time(1 M): 10.0" in text and "10 M peak RSS <= 6 GB: **no**" in text
    assert "| simulate | ok | 12 | `python benchmarks/simulate.py` | rows 5, seconds 0.51 |" in lines
    assert "| serve | skipped | 0 | `python benchmarks/serve.py` | wrk not found |" in lines
    for table_start in (
        i for i, line in enumerate(lines) if line.startswith("|---")
    ):  # every row has the header's cells
        width = lines[table_start].count("|")
        for row in lines[table_start + 1 :]:
            if not row.startswith("|"):
                break
            assert row.count("|") == width, row


def test_results_go_between_the_readme_markers_one_heading_level_down():
    start, end = RUN.README_MARKERS
    readme = f"# fraudpipe\n\n## Benchmarks\n\ntext\n\n{start}\nold table\n{end}\n\n## Layout\n"
    markdown = RUN.render_markdown(_results())
    pasted = RUN.in_readme(readme, markdown)
    assert (
        "old table" not in pasted
        and pasted.startswith("# fraudpipe\n\n## Benchmarks\n\ntext\n\n")
        and pasted.endswith(f"{end}\n\n## Layout\n")
    )
    inside = pasted.split(start)[1].split(end)[0]
    assert "# Benchmark results" not in inside  # the title goes: the page's section has its own
    assert "\n### Cold `dvc repro`, the default data (params.yaml): 1,754,155 transactions\n" in inside
    assert "| ingest | 5.00 | 0.70 | 1.00 | 3.50 | **no** |" in inside
    assert RUN.in_readme(pasted, markdown) == pasted  # pasting again changes nothing
    with pytest.raises(ValueError, match="benchmarks:start"):
        RUN.in_readme("# no markers\n", markdown)
    assert (ROOT / "docs" / "benchmarks.md").read_text().count(start) == 1  # the real page has the section


def test_ran_stages_reads_dvc_repro_output():
    out = (
        "Stage 'check_config' didn't change, skipping\n"
        "Running stage 'train':\n> python stages/train.py\n"
        "Running stage 'evaluate':\n"
    )
    assert RUN.ran_stages(out) == ["train", "evaluate"]


def test_dvc_never_compares_the_wall_clock_results():
    dvc_yaml = (ROOT / "dvc.yaml").read_text()
    assert "reports/benchmarks" not in dvc_yaml and "results.json" not in dvc_yaml
    assert RUN.OUT == ROOT / "reports" / "benchmarks"


# --- the profile, written by real stages under `dvc repro` ----------------------------------


@pytest.mark.integration
def test_repro_collects_each_stages_own_profile(tmp_path):
    from helpers.repo import make_tiny_repo

    repo = make_tiny_repo(tmp_path / "repo")
    run = RUN.repro(repo, tmp_path / "profile", ["preprocess"])
    assert run.error is None, (tmp_path / "profile" / "dvc-repro.log").read_text()
    assert run.stages_run == ["check_config", "ingest", "preprocess"]
    assert [s.stage for s in run.stages] == run.stages_run  # every stage that ran wrote its own record
    for stage in run.stages:
        record = json.loads((tmp_path / "profile" / f"{stage.stage}.json").read_text())
        assert record == {"stage": stage.stage, "seconds": stage.seconds, "peak_rss_bytes": stage.peak_rss_bytes}
        assert 0 < stage.seconds < run.seconds
        assert stage.peak_rss_bytes > 20 * 2**20  # a Python process with pandas loaded: tens of MB at least
    assert run.stages_seconds == pytest.approx(sum(s.seconds for s in run.stages))
    assert run.dvc_overhead_seconds == pytest.approx(run.seconds - run.stages_seconds, abs=1e-3)
    assert run.rows == json.loads((repo / "reports/validation/summary.json").read_text())["rows_in"]
    again = RUN.repro(repo, tmp_path / "profile-again", ["preprocess"])
    assert again.stages_run == [] and again.stages == []  # nothing changed: no stage ran, none wrote a record
    assert not (tmp_path / "profile-again" / "ingest.json").exists()


def test_the_serving_headlines_name_each_store_and_worker_count():
    figures = {
        "in_process": {"fast_path": True, "features_model_p50_ms": 0.1234, "features_model_p99_ms": 0.5},
        "http": {
            "uvloop+httptools": [
                {"endpoint": "POST /v1/score", "load": "300 req/s", "rps": 299.6, "p99": 4.26},
                {"endpoint": "GET /healthz", "load": "300 req/s", "rps": 300, "p99": 1.0},
            ]
        },
        "scale": [{"store": "Redis", "workers": 2, "saturation_rps": 676.4, "rate": 300.0, "rate_p99_ms": 40.04}],
    }
    assert RUN._serve_headlines(figures) == [
        "fast path on",
        "features_model p50 0.123 ms p99 0.500 ms",
        "uvloop+httptools POST /v1/score 300 req/s: 300 req/s p99 4.3 ms",
        "Redis x2: 676 req/s at saturation, p99 40.0 ms at 300 req/s",
    ]


def test_the_engine_headlines_put_each_engine_beside_the_other_at_each_size():
    f = {"featurize_train_s": 75.1, "client_peak_rss_gib": 4.74, "average_precision": 0.75181}
    figures = {"sizes": [{"rows": 10_003_000, "engines": {"pandas": f, "dask": f | {"featurize_train_s": 211.3}}}]}
    assert RUN._engine_headlines(figures) == [
        "10.00 M pandas: featurize + train 75 s, client peak 4.74 GiB, AP 0.7518",
        "10.00 M dask: featurize + train 211 s, client peak 4.74 GiB, AP 0.7518",
    ]
