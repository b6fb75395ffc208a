"""dvc.yaml can be trusted: every stage declares the library code it runs and the paths it touches.

DVC reruns a stage only when a declared dependency changes, so a `fraudpipe` module that a stage
imports but does not list would leave its outputs stale without any error. The imports are read
from the code (transitively, function-level imports included), not from a list kept by hand; the
paths are the `fraudpipe.paths` constants each stage script imports.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml
from dvc.repo import Repo

from fraudpipe import paths
from fraudpipe.config import compose
from helpers.imports import ROOT, declared_deps, library_files

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def _param(match: re.Match) -> str:
    value = PARAMS
    for key in match.group(1).split("."):
        value = value[key]
    return str(value)


#: dvc.yaml with its ``${group.key}`` values taken from params.yaml, as DVC resolves them.
STAGES = yaml.safe_load(re.sub(r"\$\{([^}]+)\}", _param, (ROOT / "dvc.yaml").read_text()))["stages"]
#: Paths a stage reads because its config names them (file sources, snapshots), not its script.
CONFIGURED_INPUTS = ("data/external",)
#: Outputs of the check stages: a stage depends on them to run after a check passed, and never reads them.
GATES = ("reports/check/",)
#: Every constant of `fraudpipe.paths`, by name.
PATHS = {name: value.as_posix() for name, value in vars(paths).items() if isinstance(value, Path)}
#: Paths no stage declares: the service's journal (monitor declares it through
#: ``${monitor.window_input}`` when it watches the service's log).
NOT_STAGE_PATHS = ("JOURNAL_DIR",)
DATA_PREFIXES = ("data/", "models/", "reports/")


def _entries(stage: dict, *keys: str) -> list[str]:
    out = []
    for key in keys:
        for entry in stage.get(key, []):
            out.append(next(iter(entry)) if isinstance(entry, dict) else entry)
    return out


def _covered(path: Path, declared: list[str]) -> bool:
    return any(path == Path(d) or Path(d) in path.parents for d in declared)


def _script(name: str) -> Path:
    cmd = STAGES[name]["cmd"]
    assert cmd == f"python stages/{name}.py", f"stage {name!r}: cmd {cmd!r} is not its own stage script"
    return ROOT / "stages" / f"{name}.py"


def _named_paths(script: Path) -> set[str]:
    """The `fraudpipe.paths` constants a stage script imports (its data, model and report locations)."""
    tree = ast.parse(script.read_text())
    names = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "fraudpipe.paths"
        for alias in node.names
    }
    return {PATHS[name] for name in names if name not in NOT_STAGE_PATHS}


def _path_literals(script: Path) -> list[str]:
    tree = ast.parse(script.read_text())
    return sorted(
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(DATA_PREFIXES)
    )


def _inside(path: Path, declared: list[str]) -> bool:
    """``path`` is a declared path, lies in a declared directory, or is a directory holding one."""
    return _covered(path, declared) or any(path in Path(d).parents for d in declared)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_library_module_a_stage_imports_is_a_declared_dependency(stage):
    deps = _entries(STAGES[stage], "deps")
    script = _script(stage)
    assert script.relative_to(ROOT).as_posix() in deps, f"stage {stage!r}: dvc.yaml does not list its own script"
    missing = sorted(p.as_posix() for p in library_files(script) if not _covered(p, deps))
    assert not missing, f"stage {stage!r} imports {missing}, which dvc.yaml does not list in its deps"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_no_declared_library_dependency_is_unused(stage):
    """A listed module the stage never imports reruns it for nothing."""
    used = library_files(_script(stage))
    extra = [
        d
        for d in _entries(STAGES[stage], "deps")
        if d.startswith("src/") and not any(p == Path(d) or Path(d) in p.parents for p in used)
    ]
    assert not extra, f"stage {stage!r} lists {extra} in its deps but never imports it"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_the_library_deps_are_what_sync_dvc_deps_writes(stage):
    """Each folder the stage imports all of (or all but an eighth of) as one entry, the rest file by
    file: fewer dvc.lock entries, which DVC rewrites after every stage, at the price of a rerun when a
    module the stage does not import changes in such a folder."""
    all_modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "src/fraudpipe").rglob("*.py")}
    needed = {p.as_posix() for p in library_files(_script(stage))}
    listed = [d for d in _entries(STAGES[stage], "deps") if d.startswith("src/")]
    assert listed == declared_deps(needed, all_modules), f"stage {stage!r}: run `python tools/sync_dvc_deps.py`"


def test_a_folder_stands_for_its_modules_only_when_nearly_all_are_imported():
    all_modules = {f"src/fraudpipe/m/{i}.py" for i in range(9)} | {"src/fraudpipe/io.py"}
    nearly = {f"src/fraudpipe/m/{i}.py" for i in range(8)} | {"src/fraudpipe/io.py"}
    assert declared_deps(nearly, all_modules) == ["src/fraudpipe/io.py", "src/fraudpipe/m"]
    half = {f"src/fraudpipe/m/{i}.py" for i in range(5)}
    assert declared_deps(half, all_modules) == sorted(half)


#: Stages that read params.yaml as a whole (every group, unparsed first): they declare the file as a
#: dependency, not its values in ``params:``, which dvc.lock would hold in full after every run.
WHOLE_PARAMS = ("check_config",)


def _loaded_keys(script: Path) -> set[str]:
    """The keys of every ``load("key", Model)`` call in a stage script."""
    tree = ast.parse(script.read_text())
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "load" and isinstance(node.args[0], ast.Constant)
    }


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_stage_declares_exactly_the_params_it_loads(stage):
    """A key the stage reads but does not declare leaves it stale; a declared key it never reads
    reruns it for nothing (check_data reads model.threshold_validation_days, not the model)."""
    declared = set(_entries(STAGES[stage], "params"))
    if stage in WHOLE_PARAMS:
        assert not declared and paths.PARAMS.as_posix() in _entries(STAGES[stage], "deps")
        assert "read_params()" in _script(stage).read_text()
    else:
        assert declared == _loaded_keys(_script(stage)), f"stage {stage!r}: dvc.yaml params {sorted(declared)}"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_stage_script_and_dvc_yaml_agree_on_every_path(stage):
    spec = STAGES[stage]
    named = sorted(_named_paths(_script(stage)))
    declared = _entries(spec, "deps", "outs", "metrics", "plots")
    # A named directory is fine when dvc.yaml declares the files the script writes into it, and a
    # declared directory when the script reads files in it (data/raw's location tables).
    undeclared = [p for p in named if not _inside(Path(p), declared)]
    assert not undeclared, f"stage {stage!r}: the script names {undeclared}, which dvc.yaml does not declare"
    data = [d for d in declared if d.startswith(DATA_PREFIXES) and not d.startswith(CONFIGURED_INPUTS + GATES)]
    unnamed = sorted(d for d in data if not _inside(Path(d), named))
    assert not unnamed, f"stage {stage!r}: dvc.yaml declares {unnamed}, which the script never names"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_stage_script_names_its_paths_through_fraudpipe_paths(stage):
    literals = _path_literals(_script(stage))
    assert not literals, f"stage {stage!r} spells out {literals}: use the constants of fraudpipe.paths"


def test_every_path_dvc_yaml_declares_is_a_constant_of_fraudpipe_paths():
    declared = {d for spec in STAGES.values() for d in _entries(spec, "deps", "outs", "metrics", "plots")}
    known = sorted(PATHS.values())
    unknown = sorted(d for d in declared if d.startswith(DATA_PREFIXES) and not _covered(Path(d), known))
    assert not unknown, f"dvc.yaml declares {unknown}, which fraudpipe.paths does not name"


def test_every_constant_of_fraudpipe_paths_is_declared_by_a_stage():
    declared = [d for spec in STAGES.values() for d in _entries(spec, "deps", "outs", "metrics", "plots")]
    stray = sorted(name for name, p in PATHS.items() if name not in NOT_STAGE_PATHS and not _inside(Path(p), declared))
    assert not stray, f"fraudpipe.paths names {stray}, which no stage of dvc.yaml declares"


def test_the_import_reader_sees_function_level_imports():
    files = library_files(ROOT / "stages" / "ingest.py")
    assert Path("src/fraudpipe/data/simulate.py") in files  # imported inside SimulatedSource only
    assert Path("src/fraudpipe/errors.py") in files


def test_the_configuration_check_does_not_depend_on_the_dask_fit():
    """check_config asks `model.engines` what the Dask engine can train, not the fit itself."""
    files = library_files(ROOT / "stages" / "check_config.py")
    assert Path("src/fraudpipe/model/engines.py") in files
    assert Path("src/fraudpipe/model/estimators/xgboost_dask.py") not in files


def test_check_config_depends_on_conf_so_an_edit_there_reruns_it():
    assert "conf" in _entries(STAGES["check_config"], "deps")


@pytest.mark.parametrize(
    ("current", "read", "unread"),
    [("predictions", "data/predictions/live.parquet", "serving"), ("service_log", "serving", "data/predictions/live")],
)
def test_monitor_depends_on_the_service_log_only_when_it_watches_it(tmp_path, monkeypatch, current, read, unread):
    """DVC's own resolution of dvc.yaml: merely using the service leaves monitor up to date."""
    monkeypatch.chdir(tmp_path)  # DVC reads the params file of `${...}` relative to the working directory
    (tmp_path / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    params = compose(ROOT / "conf", [f"monitor.current={current}"])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    Repo.init(tmp_path, no_scm=True).close()
    with Repo(tmp_path) as repo:
        (stage,) = repo.stage.collect("monitor")
        deps = [dep.def_path for dep in stage.deps]
    assert read in deps
    assert not [d for d in deps if d.startswith(unread)], deps


def test_no_stage_writes_a_wall_clock_figure():
    """Latency and throughput differ on every run: as outputs they would dirty git and dvc.lock."""
    declared = [d for spec in STAGES.values() for d in _entries(spec, "outs", "metrics", "plots")]
    assert not [d for d in declared if re.search(r"latency|throughput", d)], declared


def test_the_checks_run_before_the_stages_they_protect():
    assert "reports/check/config.json" in _entries(STAGES["ingest"], "deps")
    assert "reports/check/data.json" in _entries(STAGES["split"], "deps")


def test_dvc_parses_its_yaml_with_the_c_parser():
    """ruamel.yaml 0.19 no longer installs its C parser; DVC parses dvc.yaml, dvc.lock and
    params.yaml a dozen times per command, a third of a no-op `dvc repro` in pure Python."""
    from dvc.utils.serialize._yaml import parse_yaml
    from ruamel.yaml import YAML

    assert YAML(typ="safe").Parser.__name__ == "CParser"
    assert parse_yaml((ROOT / "dvc.yaml").read_text(), "dvc.yaml")["stages"].keys() >= {"ingest", "train", "monitor"}


def test_the_model_artifact_is_the_train_stages_bundle():
    """The registry (GTO's tags, `dvc artifacts get`, `fraudpipe serve --model fraud-model#prod`) fetches
    what dvc.yaml's artifact points at: it must be the bundle the train stage writes, as a model."""
    from gto.constants import assert_name_is_valid

    artifacts = yaml.safe_load((ROOT / "dvc.yaml").read_text())["artifacts"]
    assert list(artifacts) == ["fraud-model"]
    assert_name_is_valid("fraud-model")  # GTO's naming rule, which DVC applies to artifact names
    model = artifacts["fraud-model"]
    assert model["type"] == "model" and model["desc"] and model["labels"]
    assert model["path"] == paths.BUNDLE_DIR.as_posix()
    assert model["path"] in _entries(STAGES["train"], "outs")


def test_gto_accepts_only_the_stages_the_registry_lists():
    stages = yaml.safe_load((ROOT / ".gto").read_text())["stages"]
    assert "prod" in stages and len(set(stages)) == len(stages)
