"""dvc.yaml can be trusted: every stage declares the library code it runs and the paths it touches.

DVC reruns a stage only when a declared dependency changes, so a `fraudpipe` module that a stage
imports but does not list would leave its outputs stale without any error. The imports are read
from the code (transitively, function-level imports included), not from a list kept by hand.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from helpers.imports import ROOT, library_files

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
#: Paths a stage reads because its config names them (file sources, snapshots), not its script.
CONFIGURED_INPUTS = ("data/external",)
#: Outputs of the check stages: a stage depends on them to run after a check passed, and never reads them.
GATES = ("reports/check/",)


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
    """Path literals of a stage script (its data, model and report locations)."""
    tree = ast.parse(script.read_text())
    return {
        node.value.rstrip("/")
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.startswith(("data/", "models/", "reports/"))
    }


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
def test_a_stage_script_and_dvc_yaml_agree_on_every_path(stage):
    spec = STAGES[stage]
    named = _named_paths(_script(stage))
    declared = _entries(spec, "deps", "outs", "metrics", "plots")
    # A named directory is fine when dvc.yaml declares the files the script writes into it.
    undeclared = sorted(
        p for p in named if not _covered(Path(p), declared) and not any(Path(p) in Path(d).parents for d in declared)
    )
    assert not undeclared, f"stage {stage!r}: the script names {undeclared}, which dvc.yaml does not declare"
    data = [
        d
        for d in declared
        if d.startswith(("data/", "models/", "reports/")) and not d.startswith(CONFIGURED_INPUTS + GATES)
    ]
    unnamed = sorted(d for d in data if not _covered(Path(d), sorted(named)))
    assert not unnamed, f"stage {stage!r}: dvc.yaml declares {unnamed}, which the script never names"


def test_the_import_reader_sees_function_level_imports():
    files = library_files(ROOT / "stages" / "ingest.py")
    assert Path("src/fraudpipe/data/simulate.py") in files  # imported inside SimulatedSource only
    assert Path("src/fraudpipe/errors.py") in files


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
