"""dvc.yaml can be trusted: every stage declares the library code it runs and the paths it touches.

DVC reruns a stage only when a declared dependency changes, so a `fraudpipe` module that a stage
imports but does not list would leave its outputs stale without any error. The imports are read
from the code (transitively, function-level imports included), not from a list kept by hand.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
#: Paths a stage reads because its config names them (file sources, snapshots), not its script.
CONFIGURED_INPUTS = ("data/external",)
#: Outputs of the check stages: a stage depends on them to run after a check passed, and never reads them.
GATES = ("reports/check/",)


def _module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


@cache
def _direct_imports(path: Path) -> frozenset[str]:
    """The fraudpipe modules a file imports (each package on the way is imported too)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = ".".join(path.relative_to(SRC).with_suffix("").parts) if path.is_relative_to(SRC) else ""
    if path.name == "__init__.py":
        package += ".__init__"
    names: set[str] = set()
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                module = ".".join(package.split(".")[: -node.level] + ([module] if module else []))
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names)  # `from pkg import submodule`
    out = set()
    for name in names:
        parts = name.split(".")
        if parts[0] != "fraudpipe":
            continue
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1) if _module_file(".".join(parts[:i])))
    return frozenset(out)


def library_files(script: Path) -> set[Path]:
    """Every file of src/fraudpipe that running ``script`` imports, transitively."""
    seen: set[str] = set()
    todo = list(_direct_imports(script))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_direct_imports(_module_file(name)))
    return {_module_file(n).relative_to(ROOT) for n in seen}


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
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
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
    extra = [d for d in _entries(STAGES[stage], "deps") if d.startswith("src/")
             and not any(p == Path(d) or Path(d) in p.parents for p in used)]
    assert not extra, f"stage {stage!r} lists {extra} in its deps but never imports it"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_stage_script_and_dvc_yaml_agree_on_every_path(stage):
    spec = STAGES[stage]
    named = _named_paths(_script(stage))
    declared = _entries(spec, "deps", "outs", "metrics", "plots")
    # A named directory is fine when dvc.yaml declares the files the script writes into it.
    undeclared = sorted(p for p in named if not _covered(Path(p), declared) and not any(Path(p) in Path(d).parents for d in declared))
    assert not undeclared, f"stage {stage!r}: the script names {undeclared}, which dvc.yaml does not declare"
    data = [d for d in declared if d.startswith(("data/", "models/", "reports/")) and not d.startswith(CONFIGURED_INPUTS + GATES)]
    unnamed = sorted(d for d in data if not _covered(Path(d), sorted(named)))
    assert not unnamed, f"stage {stage!r}: dvc.yaml declares {unnamed}, which the script never names"


def test_the_import_reader_sees_function_level_imports():
    files = library_files(ROOT / "stages" / "ingest.py")
    assert Path("src/fraudpipe/simulate.py") in files  # imported inside SimulatedSource only
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
